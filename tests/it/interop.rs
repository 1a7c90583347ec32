//! The tables are read correctly by real external readers — DuckDB's delta extension,
//! Spark's API (Sail via Spark Connect) and Polars — which must agree with medallion's
//! own `query` on counts, sums and a gold row, including time travel. The readers run in
//! the venv of `scripts/setup-python.sh` (`MEDALLION_PYTHON`, else installed here); a
//! missing reader fails the test, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::workdir::{REPO, Workdir, expected, text};

pub fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| crate::workdir::installed("MEDALLION_PYTHON", "scripts/setup-python.sh"))
}

/// Read `tables` with every reader (at `version` when given); results per reader per table.
pub fn read_with_all(w: &Workdir, tables: &[&str], version: Option<i64>) -> Value {
    let out_path = w.root.join(format!(
        "readers-{}.json",
        version.map_or("latest".into(), |v| v.to_string())
    ));
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(REPO).join("tests/interop/read_tables.py"))
        .args(["--reader", "all", "--out"])
        .arg(&out_path);
    for t in tables {
        cmd.arg("--table").arg(table_location(w, t));
    }
    if let Some(remote) = &w.remote {
        let options: serde_json::Map<String, Value> = remote
            .emulator
            .options()
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        cmd.arg("--storage-options")
            .arg(Value::Object(options).to_string());
    }
    if let Some(v) = version {
        cmd.args(["--version", &v.to_string()]);
    }
    let res = cmd.output().expect("run read_tables.py");
    assert!(
        res.status.success(),
        "an external reader failed:\n{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let mut by_reader = serde_json::Map::new();
    for (reader, tables_out) in v["results"].as_object().unwrap() {
        let mut m = serde_json::Map::new();
        for t in tables {
            m.insert(t.to_string(), tables_out[&table_location(w, t)].clone());
        }
        by_reader.insert(reader.clone(), Value::Object(m));
    }
    Value::Object(by_reader)
}

/// Where a reader finds table `t`: a local path, or a URI on the emulator.
fn table_location(w: &Workdir, t: &str) -> String {
    match &w.remote {
        Some(remote) => format!("{}/{t}", remote.lake),
        None => w.table_path(t).to_string_lossy().into_owned(),
    }
}

#[test]
fn duckdb_spark_and_polars_read_every_table() {
    readers_read_every_table(&Workdir::sample_config());
}

/// The sample loaded, then every table read by DuckDB, Sail and Polars, also at an
/// earlier version; on any store.
pub fn readers_read_every_table(w: &Workdir) {
    w.add_sample("readings_2026-01-01.csv");
    w.run_expect(0);
    let gold_after_first = w.scalar("SELECT CAST(SUM(total_kwh) AS VARCHAR) FROM gold.daily_usage");
    w.add_sample("readings_2026-01-04_corrections.csv");
    w.run_expect(0);

    let tables = [
        "bronze/readings",
        "silver/readings",
        "rejected/readings",
        "gold/daily_usage",
        "_medallion/files",
        "_medallion/runs",
    ];
    let sql_names = [
        "bronze.readings",
        "silver.readings",
        "rejected.readings",
        "gold.daily_usage",
        "_medallion.files",
        "_medallion.runs",
    ];
    let results = read_with_all(w, &tables, None);
    let readers: Vec<&String> = results.as_object().unwrap().keys().collect();
    assert_eq!(
        readers.len(),
        3,
        "duckdb, spark and polars all ran: {readers:?}"
    );

    let exp = expected();
    let silver_sum = w.scalar("SELECT CAST(SUM(usage_kwh) AS VARCHAR) FROM silver.readings");
    assert_eq!(silver_sum, text(&exp["silver_total_kwh_after_all"]));
    let gold_sum = w.scalar("SELECT CAST(SUM(total_kwh) AS VARCHAR) FROM gold.daily_usage");
    let g = &exp["gold_row_example"];
    for (reader, per_table) in results.as_object().unwrap() {
        for (t, sql) in tables.iter().zip(sql_names) {
            let ours = w.count(&format!("FROM {sql}"));
            assert_eq!(
                per_table[*t]["row_count"].as_u64(),
                Some(ours),
                "{reader} count of {t}"
            );
        }
        assert_eq!(
            text(&per_table["silver/readings"]["sums"]["usage_kwh"]),
            silver_sum,
            "{reader} silver sum"
        );
        assert_eq!(
            text(&per_table["gold/daily_usage"]["sums"]["total_kwh"]),
            gold_sum,
            "{reader} gold sum"
        );
        let rows = per_table["gold/daily_usage"]["rows"].as_array().unwrap();
        let row = rows
            .iter()
            .find(|r| {
                text(&r["customer_id"]) == text(&g["customer_id"])
                    && text(&r["usage_date"]) == text(&g["usage_date"])
            })
            .unwrap_or_else(|| panic!("{reader}: gold row {g} missing"));
        for col in [
            "total_kwh",
            "reading_count",
            "estimated_count",
            "first_start",
            "last_end",
        ] {
            assert_eq!(text(&row[col]), text(&g[col]), "{reader}: gold {col}");
        }
        let reasons = &per_table["rejected/readings"]["columns"];
        assert!(
            reasons.to_string().contains("rejection_reasons"),
            "{reader}: {reasons}"
        );
    }

    // Time travel: every reader sees the gold version before the corrections.
    let h = w.medallion(&["history", "gold.daily_usage"]);
    let latest: i64 = h
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let old = read_with_all(w, &["gold/daily_usage"], Some(latest - 1));
    for (reader, per_table) in old.as_object().unwrap() {
        assert_eq!(
            text(&per_table["gold/daily_usage"]["sums"]["total_kwh"]),
            gold_after_first,
            "{reader} at v{}",
            latest - 1
        );
    }
}

/// Every reader reads tables whose schema evolved (a column added, then removed from
/// the configuration) and a gold table rebuilt for a changed model, old and new rows.
#[test]
fn readers_read_evolved_and_rebuilt_tables() {
    use crate::config_changes::{HEADER_WITH_TARIFF, TARIFF, with_column};
    let w = Workdir::sample_config();
    w.add_sample("readings_2026-01-01.csv");
    w.run_expect(0);
    let base = std::fs::read_to_string(Path::new(REPO).join("examples/readings.yaml")).unwrap();
    std::fs::write(w.root.join("config.yaml"), with_column(&base, TARIFF)).unwrap();
    w.write_raw(
        "t1.csv",
        &format!(
            "{HEADER_WITH_TARIFF}C000001,M00000001,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,1.5,actual,peak\n\
             C000001,M00000001,2026-02-01T01:00:00Z,2026-02-01T02:00:00Z,-3,actual,offpeak\n"
        ),
    );
    w.run_expect(0);
    // The column leaves the configuration, and the model gains a measure.
    let changed = base.replace(
        "MAX(end_time)                                              AS last_end",
        "MAX(end_time) AS last_end, MAX(usage_kwh) AS peak_kwh",
    );
    std::fs::write(w.root.join("config.yaml"), &changed).unwrap();
    w.write_raw(
        "t2.csv",
        "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n\
         C000002,M00000002,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,2.5,actual\n",
    );
    let r = w.run_expect(0);
    assert!(r.stdout.contains("model changed: rebuilt"), "{r:?}");

    let tables = [
        "bronze/readings",
        "silver/readings",
        "rejected/readings",
        "gold/daily_usage",
    ];
    let sql_names = [
        "bronze.readings",
        "silver.readings",
        "rejected.readings",
        "gold.daily_usage",
    ];
    let results = read_with_all(&w, &tables, None);
    assert_eq!(results.as_object().unwrap().len(), 3);
    let peak_sum = w.scalar("SELECT CAST(SUM(peak_kwh) AS VARCHAR) FROM gold.daily_usage");
    for (reader, per_table) in results.as_object().unwrap() {
        for (t, sql) in tables.iter().zip(sql_names) {
            assert_eq!(
                per_table[*t]["row_count"].as_u64(),
                Some(w.count(&format!("FROM {sql}"))),
                "{reader} count of {t}"
            );
        }
        for (t, value, rows) in [
            ("silver/readings", "peak", 1),
            ("rejected/readings", "offpeak", 1),
            ("bronze/readings", "peak", 1),
        ] {
            let all = per_table[t]["rows"].as_array().unwrap();
            assert_eq!(
                all.iter().filter(|r| text(&r["tariff"]) == value).count(),
                rows,
                "{reader}: {t} has the new column's value"
            );
            assert_eq!(
                all.iter().filter(|r| r["tariff"].is_null()).count() as u64,
                w.count(&format!(
                    "FROM {} WHERE tariff IS NULL",
                    t.replace('/', ".")
                )),
                "{reader}: {t}'s older and newer rows have no tariff"
            );
        }
        assert_eq!(
            text(&per_table["gold/daily_usage"]["sums"]["peak_kwh"]),
            peak_sum,
            "{reader}: the rebuilt gold table's new column"
        );
    }

    // `medallion rebuild` under a stricter rule: silver, rejected and gold are replaced.
    let strict = changed.replace(
        "  row_rules:\n",
        "  row_rules:\n    - name: small_usage_only\n      check: usage_kwh <= 3\n",
    );
    std::fs::write(w.root.join("config.yaml"), &strict).unwrap();
    let r = w.medallion(&["rebuild"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rebuilt = &tables[1..];
    let results = read_with_all(&w, rebuilt, None);
    let silver_sum = w.scalar("SELECT CAST(SUM(usage_kwh) AS VARCHAR) FROM silver.readings");
    for (reader, per_table) in results.as_object().unwrap() {
        for (t, sql) in rebuilt.iter().zip(&sql_names[1..]) {
            assert_eq!(
                per_table[*t]["row_count"].as_u64(),
                Some(w.count(&format!("FROM {sql}"))),
                "{reader} count of rebuilt {t}"
            );
        }
        assert_eq!(
            text(&per_table["silver/readings"]["sums"]["usage_kwh"]),
            silver_sum,
            "{reader}: rebuilt silver's sum"
        );
    }
}
