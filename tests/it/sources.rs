//! Several sources in one lakehouse: `sources:` with a table set, ledger rows and
//! batch sequence per source, `run --source`, an append source, gold models that read
//! `silver.<source>` and join sources, and a ledger from before sources upgraded in
//! place.

use crate::workdir::{Workdir, assert_source_counts, expected, sample_model_sql};

const READINGS_KEY: [&str; 3] = ["customer_id", "meter_id", "start_time"];

/// The sample's readings source, customers (a reference table upserted by customer)
/// and meter events (an append source), with a model per source and one joining two.
fn config() -> String {
    let sample =
        std::fs::read_to_string(format!("{}/examples/readings.yaml", crate::workdir::REPO))
            .unwrap();
    // The sample's source, indented as the first item of `sources:`.
    let start = sample.find("\nsource:\n").unwrap() + "\nsource:\n".len();
    let end = sample.find("\nsilver:\n").unwrap();
    let readings: String = sample[start..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("  {l}\n"))
        .collect::<String>()
        .replacen("    name: readings", "  - name: readings", 1)
        .replace("pattern: \"*.csv\"", "pattern: \"readings_*.csv\"");
    let daily = sample_model_sql().replace("FROM silver", "FROM silver.readings");
    let daily: String = daily.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        r#"lakehouse: lakehouse
sources:
{readings}    key: [customer_id, meter_id, start_time]
  - name: customers
    pattern: "customers_*.csv"
    key: [customer_id]
    columns:
      - name: customer_id
        type: string
        required: true
        rules:
          - name: customer_id_format
            pattern: '^C\d{{6}}$'
      - name: region
        type: string
        required: true
      - name: tariff
        type: string
  - name: meter_events
    mode: append
    pattern: "events_*.csv"
    columns:
      - name: meter_id
        type: string
        required: true
      - name: event_time
        type: timestamp
        required: true
      - name: kind
        type: string
        required: true
gold:
  - name: daily_usage
    keys: [customer_id, usage_date]
    sql: |
{daily}  - name: regional_daily_usage
    keys: [region, usage_date]
    sql: |
      SELECT c.region, CAST(r.start_time AS DATE) AS usage_date,
             SUM(r.usage_kwh) AS total_kwh, COUNT(*) AS reading_count
      FROM silver.readings r JOIN silver.customers c ON r.customer_id = c.customer_id
      GROUP BY c.region, CAST(r.start_time AS DATE)
  - name: meter_event_counts
    keys: [meter_id, kind]
    sql: |
      SELECT meter_id, kind, COUNT(*) AS events FROM silver.meter_events GROUP BY meter_id, kind
"#
    )
}

/// The twelve customers of the sample readings, in two regions.
fn customers(moved: &str) -> String {
    let ids = [
        "C006896", "C011830", "C022692", "C046989", "C052668", "C109237", "C312403", "C402497",
        "C752547", "C925486", "C938322", "C982411",
    ];
    let mut out = String::from("customer_id,region,tariff\n");
    for (i, id) in ids.iter().enumerate() {
        let region = if *id == moved {
            "south"
        } else if i % 2 == 0 {
            "north"
        } else {
            "east"
        };
        out.push_str(&format!("{id},{region},standard\n"));
    }
    out.push_str("X1,west,standard\n"); // rejected: customer_id_format
    out
}

const EVENTS: &str = "meter_id,event_time,kind\n\
    M00071966,2026-01-01T03:00:00Z,outage\n\
    M00071966,2026-01-01T03:00:00Z,outage\n\
    M00161889,2026-01-02T10:00:00Z,tamper\n\
    M00161889,not-a-time,outage\n";

const MODELS: [(&str, &str); 3] = [
    ("daily_usage", ""),
    (
        "regional_daily_usage",
        "SELECT c.region, CAST(r.start_time AS DATE) AS usage_date, SUM(r.usage_kwh) AS total_kwh, \
         COUNT(*) AS reading_count FROM silver.readings r JOIN silver.customers c \
         ON r.customer_id = c.customer_id GROUP BY c.region, CAST(r.start_time AS DATE)",
    ),
    (
        "meter_event_counts",
        "SELECT meter_id, kind, COUNT(*) AS events FROM silver.meter_events GROUP BY meter_id, kind",
    ),
];

/// Every gold model equals its SQL over the current silver tables.
fn assert_gold_is_its_sql(w: &Workdir) {
    for (model, sql) in MODELS {
        let sql = if sql.is_empty() {
            sample_model_sql().replace("FROM silver", "FROM silver.readings")
        } else {
            sql.to_string()
        };
        let diff = w.gold_sql_diff(&format!("gold.{model}"), &sql);
        assert_eq!(diff, 0, "gold.{model} = its SQL over silver");
    }
}

fn ledger_rows(w: &Workdir, source: &str) -> u64 {
    w.count(&format!(
        "FROM _medallion.files WHERE source = '{source}' AND status = 'loaded'"
    ))
}

#[test]
fn sources_load_into_their_own_tables_and_gold_joins_them() {
    let w = Workdir::with_config(&config());
    w.add_sample("readings_2026-01-01.csv");
    w.write_raw("customers_2026-01-01.csv", &customers(""));
    w.write_raw("events_2026-01-01.csv", EVENTS);
    let check = w.medallion(&["validate"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(check.stdout.contains("3 sources"), "{check:?}");

    // One source alone: the others' files wait.
    let r = w.medallion(&["run", "--source", "customers"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(w.count("FROM silver.customers"), 12);
    assert_eq!(w.count("FROM rejected.customers"), 1);
    assert_eq!(ledger_rows(&w, "customers"), 1);
    assert_eq!(ledger_rows(&w, "readings"), 0);
    let status = w.medallion(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let pending: Vec<&str> = doc["files"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        pending,
        ["readings_2026-01-01.csv", "events_2026-01-01.csv"],
        "{status:?}"
    );
    let unknown = w.medallion(&["run", "--source", "nope"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown.stderr.contains("unknown source \"nope\""),
        "{unknown:?}"
    );

    // Every source: readings and events load; customers has nothing new.
    let r = w.medallion(&["run"]);
    assert_eq!(r.code, 0, "{r:?}");
    let e = expected();
    let first = &e["files"]["readings_2026-01-01.csv"];
    assert_eq!(
        w.count("FROM silver.readings").to_string(),
        first["accepted"].to_string()
    );
    assert_eq!(
        w.count("FROM rejected.readings").to_string(),
        first["rejected"].to_string()
    );
    // Append: the repeated event is kept, the bad timestamp rejected.
    assert_eq!(w.count("FROM silver.meter_events"), 3);
    assert_eq!(w.count("FROM rejected.meter_events"), 1);
    assert_eq!(
        w.count("FROM gold.meter_event_counts WHERE meter_id = 'M00071966' AND events = 2"),
        1
    );
    for (source, key) in [
        ("readings", &READINGS_KEY[..]),
        ("customers", &["customer_id"][..]),
        ("meter_events", &[][..]),
    ] {
        assert_eq!(ledger_rows(&w, source), 1, "{source}");
        assert_source_counts(&w, source, key);
    }
    // Each source numbers its own batches.
    assert_eq!(
        w.count("FROM _medallion.files WHERE status = 'loaded' AND seq = 1"),
        3
    );
    assert!(w.count("FROM gold.regional_daily_usage") > 0);
    assert_gold_is_its_sql(&w);

    // A customer moves region: the joined model follows, the others are untouched.
    w.write_raw("customers_2026-01-02.csv", &customers("C046989"));
    let daily = w.newest_version("gold.daily_usage");
    w.run_expect(0);
    assert_eq!(
        w.scalar("SELECT region FROM silver.customers WHERE customer_id = 'C046989'"),
        "south"
    );
    assert!(w.count("FROM gold.regional_daily_usage WHERE region = 'south'") > 0);
    assert_eq!(w.newest_version("gold.daily_usage"), daily);
    assert_gold_is_its_sql(&w);
    assert_eq!(w.medallion(&["run"]).code, 0, "nothing left to do");
    // Rebuilding an append source from bronze keeps every row.
    let r = w.medallion(&["rebuild", "silver"]);
    assert_eq!(r.code, 2, "several sources: name one: {r:?}");
    let r = w.medallion(&["rebuild", "silver", "--source", "meter_events"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(w.count("FROM silver.meter_events"), 3);
    assert_gold_is_its_sql(&w);
}

#[test]
fn the_same_content_in_two_sources_is_two_files() {
    let two = config().replace(
        "  - name: meter_events\n    mode: append\n    pattern: \"events_*.csv\"",
        "  - name: meter_events\n    mode: append\n    pattern: \"*events_*.csv\"",
    );
    let w = Workdir::with_config(&two);
    w.write_raw("events_1.csv", EVENTS);
    // The same bytes again under another name: a duplicate within the source.
    w.write_raw("more_events_1.csv", EVENTS);
    w.run_expect(0);
    assert_eq!(w.count("FROM silver.meter_events"), 3);
    assert_eq!(
        w.count("FROM _medallion.files WHERE source = 'meter_events' AND status = 'duplicate'"),
        1
    );
}

#[test]
fn configuration_errors_name_the_source() {
    let bad = config()
        .replace(
            "      - name: region\n        type: string",
            "      - name: region\n        type: text",
        )
        .replace(
            "    mode: append\n",
            "    mode: append\n    key: [meter_id]\n",
        );
    let w = Workdir::with_config(&bad);
    let r = w.medallion(&["validate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("sources[1].columns[1].type"), "{r:?}");
    assert!(
        r.stderr
            .contains("sources[2].key: an append source has no key"),
        "{r:?}"
    );

    // Names SQL would fold, and two sources reading the same files.
    let bad = config()
        .replace("  - name: customers\n", "  - name: Customers\n")
        .replace("pattern: \"events_*.csv\"", "pattern: \"customers_*.csv\"");
    let r = Workdir::with_config(&bad).medallion(&["validate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("sources[1].name: must be a lowercase"),
        "{r:?}"
    );
    assert!(r.stderr.contains("reads the same files as source"), "{r:?}");
    // A text sequence.
    let seq = config().replace(
        "    key: [customer_id]\n",
        "    key: [customer_id]\n    sequence_by: region\n",
    );
    let r = Workdir::with_config(&seq).medallion(&["validate"]);
    assert!(
        r.stderr
            .contains("sources[1].sequence_by: column \"region\" is string"),
        "{r:?}"
    );
    // A model that reads no source.
    let none = config().replace(
        "SELECT meter_id, kind, COUNT(*) AS events FROM silver.meter_events GROUP BY meter_id, kind",
        "SELECT 'm' AS meter_id, 'k' AS kind, 1 AS events",
    );
    let r = Workdir::with_config(&none).medallion(&["validate"]);
    assert!(
        r.stderr
            .contains("gold[2].sql: the model reads no silver table"),
        "{r:?}"
    );
}

/// A lakehouse whose ledger was written before sources (no `source` column) goes on
/// working: its rows are labelled once, its files stay loaded, new files load.
#[test]
fn a_ledger_from_before_sources_is_labelled_and_nothing_loads_twice() {
    let w = Workdir::sample_config();
    w.add_sample("readings_2026-01-01.csv");
    w.run_expect(0);
    let bronze = w.count("FROM bronze.readings");
    drop_ledger_source_column(&w);
    assert!(
        w.query("SELECT * FROM _medallion.files LIMIT 1")[0]
            .get("source")
            .is_none()
    );
    w.add_sample("readings_2026-01-04_corrections.csv");
    w.run_expect(0);
    let e = expected();
    let second = &e["files"]["readings_2026-01-04_corrections.csv"];
    assert_eq!(
        w.count("FROM bronze.readings").to_string(),
        (bronze + second["rows"].as_u64().unwrap()).to_string(),
        "the first file did not load again"
    );
    assert_eq!(
        w.count("FROM _medallion.files WHERE source IS NULL OR source <> 'readings'"),
        0
    );
    assert_eq!(ledger_rows(&w, "readings"), 2);
    assert_source_counts(&w, "readings", &READINGS_KEY);
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
        0
    );
}

/// Rewrite the ledger as a medallion from before sources wrote it (with Python's
/// deltalake, as any other writer would).
fn drop_ledger_source_column(w: &Workdir) {
    let python = crate::workdir::installed("MEDALLION_PYTHON", "scripts/setup-python.sh");
    let script = r#"
import sys
from deltalake import DeltaTable, write_deltalake
path = sys.argv[1]
t = DeltaTable(path).to_pyarrow_table()
t = t.drop(["source"])
write_deltalake(path, t, mode="overwrite", schema_mode="overwrite")
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(w.table_path("_medallion/files"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DuckDB, Sail and Polars read an append source's tables and its model.
#[test]
fn readers_read_an_append_source() {
    let w = Workdir::with_config(&config());
    w.write_raw("events_2026-01-01.csv", EVENTS);
    w.run_expect(0);
    let tables = [
        "bronze/meter_events",
        "silver/meter_events",
        "rejected/meter_events",
        "gold/meter_event_counts",
    ];
    let results = crate::interop::read_with_all(&w, &tables, None);
    let readers = results.as_object().unwrap();
    assert_eq!(
        readers.len(),
        3,
        "duckdb, spark and polars all ran: {results}"
    );
    for (reader, per_table) in readers {
        for (t, n) in tables.iter().zip([4, 3, 1, 2]) {
            assert_eq!(
                per_table[*t]["row_count"].as_u64(),
                Some(n),
                "{reader} count of {t}"
            );
        }
    }
}
