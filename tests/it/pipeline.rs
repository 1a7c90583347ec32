//! The bundled sample end to end: exact counts per table and rule, corrections upserted
//! in silver, gold equal to a recompute after every file, time travel, history, status.

use serde_json::Value;

use crate::workdir::{Workdir, expected, sample_model_sql, text};

const FILE1: &str = "readings_2026-01-01.csv";
const FILE2: &str = "readings_2026-01-04_corrections.csv";

/// Per-file equalities: rows read = bronze rows = silver-accepted + rejected.
fn assert_file_counts(w: &Workdir, file: &str, exp: &Value) {
    let rows = exp["rows"].as_u64().unwrap();
    let rejected = exp["rejected"].as_u64().unwrap();
    let accepted = exp["accepted"].as_u64().unwrap();
    let bronze = w.count(&format!(
        "FROM bronze.readings WHERE _source_file = '{file}'"
    ));
    let rej = w.count(&format!(
        "FROM rejected.readings WHERE _source_file = '{file}'"
    ));
    assert_eq!(bronze, rows, "bronze rows of {file}");
    assert_eq!(rej, rejected, "rejected rows of {file}");
    let ledger = w.query(&format!(
        "SELECT rows_read, silver_accepted, rejected FROM _medallion.files WHERE file = '{file}' AND status = 'loaded'"
    ));
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(text(&ledger[0]["rows_read"]), rows.to_string());
    assert_eq!(text(&ledger[0]["silver_accepted"]), accepted.to_string());
    assert_eq!(
        bronze,
        accepted + rej,
        "bronze = silver-accepted + rejected for {file}"
    );
    // Every rule the fixture expects, per line.
    for (line, rules) in exp["rejected_lines"].as_object().unwrap() {
        let got = w.query(&format!(
            "SELECT get_field(r, 'rule') AS rule FROM (SELECT unnest(rejection_reasons) AS r FROM rejected.readings \
             WHERE _source_file = '{file}' AND _source_line = {line}) ORDER BY 1"
        ));
        let got: Vec<String> = got.iter().map(|r| text(&r["rule"])).collect();
        let want: Vec<String> = rules.as_array().unwrap().iter().map(text).collect();
        assert_eq!(got, want, "rules of {file}:{line}");
    }
    let by_rule = w.query(&format!(
        "SELECT get_field(r, 'rule') AS rule, COUNT(DISTINCT _source_line) AS n FROM \
         (SELECT _source_line, unnest(rejection_reasons) AS r FROM rejected.readings WHERE _source_file = '{file}') \
         GROUP BY 1 ORDER BY 1"
    ));
    let got: Vec<(String, String)> = by_rule
        .iter()
        .map(|r| (text(&r["rule"]), text(&r["n"])))
        .collect();
    let want: Vec<(String, String)> = exp["rejected_by_rule"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    assert_eq!(got, want, "rows of {file} rejected per rule");
}

pub(crate) fn assert_gold_is_recompute(w: &Workdir) {
    let diff = w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings");
    assert_eq!(
        diff, 0,
        "gold.daily_usage differs from a recompute over silver"
    );
}

pub(crate) fn assert_silver_keys_unique(w: &Workdir) {
    let dupes = w.count(
        "FROM (SELECT customer_id, meter_id, start_time FROM silver.readings GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d",
    );
    assert_eq!(dupes, 0, "silver holds one row per natural key");
}

#[test]
fn sample_end_to_end_with_corrections() {
    sample_end_to_end(&Workdir::sample_config());
}

/// The sample's two files, one run each, with every count checked; on any store.
pub fn sample_end_to_end(w: &Workdir) {
    let exp = expected();
    w.add_sample(FILE1);
    let r = w.run_expect(0);
    assert!(r.stdout.contains(&format!("loaded {FILE1}")), "{r:?}");
    assert!(
        r.stdout.contains("plausible_hourly_usage: 2 rows kept"),
        "{r:?}"
    );
    assert_file_counts(w, FILE1, &exp["files"][FILE1]);
    assert_eq!(
        w.count("FROM silver.readings"),
        exp["silver_rows_after_first_file"].as_u64().unwrap()
    );
    assert_eq!(
        w.scalar("SELECT CAST(SUM(usage_kwh) AS VARCHAR) FROM silver.readings"),
        text(&exp["silver_total_kwh_after_first_file"])
    );
    assert_eq!(
        w.count("FROM gold.daily_usage"),
        exp["gold_daily_usage_rows_after_first_file"]
            .as_u64()
            .unwrap()
    );
    assert_gold_is_recompute(w);
    let gold_v1 = w.scalar("SELECT CAST(SUM(total_kwh) AS VARCHAR) FROM gold.daily_usage");

    // Second file: corrections replace earlier readings; the last line of a key wins.
    w.add_sample(FILE2);
    let r = w.run_expect(0);
    assert!(r.stdout.contains("1 already loaded before"), "{r:?}");
    assert_file_counts(w, FILE2, &exp["files"][FILE2]);
    let f2 = &exp["files"][FILE2];
    assert!(
        r.stdout.contains(&format!(
            "{} inserted, {} updated",
            f2["new_keys"].as_u64().unwrap(),
            f2["updated_keys"].as_u64().unwrap()
        )),
        "{r:?}"
    );
    assert_eq!(
        w.count("FROM silver.readings"),
        exp["silver_rows_after_all"].as_u64().unwrap()
    );
    assert_eq!(
        w.scalar("SELECT CAST(SUM(usage_kwh) AS VARCHAR) FROM silver.readings"),
        text(&exp["silver_total_kwh_after_all"])
    );
    assert_silver_keys_unique(w);
    for u in exp["updated_keys"].as_array().unwrap() {
        let v = w.scalar(&format!(
            "SELECT CAST(usage_kwh AS VARCHAR) FROM silver.readings WHERE customer_id = '{}' AND meter_id = '{}' \
             AND start_time = TIMESTAMP '{}'",
            text(&u["customer_id"]),
            text(&u["meter_id"]),
            text(&u["start_time"])
        ));
        assert_eq!(v, text(&u["new_usage_kwh"]), "correction {u}");
    }
    let d = &exp["duplicate_key"];
    let v = w.scalar(&format!(
        "SELECT CAST(usage_kwh AS VARCHAR) FROM silver.readings WHERE customer_id = '{}' AND meter_id = '{}' AND start_time = TIMESTAMP '{}'",
        text(&d["customer_id"]),
        text(&d["meter_id"]),
        text(&d["start_time"])
    ));
    assert_eq!(
        v,
        text(&d["usage_kwh_final"]),
        "the last line of a key wins within a file"
    );

    assert_eq!(
        w.count("FROM gold.daily_usage"),
        exp["gold_daily_usage_rows_after_all"].as_u64().unwrap()
    );
    assert_gold_is_recompute(w);
    let g = &exp["gold_row_example"];
    let row = w.query(&format!(
        "SELECT CAST(total_kwh AS VARCHAR) AS total_kwh, reading_count, estimated_count FROM gold.daily_usage \
         WHERE customer_id = '{}' AND usage_date = DATE '{}'",
        text(&g["customer_id"]),
        text(&g["usage_date"])
    ));
    assert_eq!(row.len(), 1);
    assert_eq!(text(&row[0]["total_kwh"]), text(&g["total_kwh"]));
    assert_eq!(text(&row[0]["reading_count"]), text(&g["reading_count"]));
    assert_eq!(
        text(&row[0]["estimated_count"]),
        text(&g["estimated_count"])
    );

    // Time travel: the previous gold version is the state after the first file.
    let version = w.newest_version("gold.daily_usage");
    let before = w.query_as_of(
        "SELECT CAST(SUM(total_kwh) AS VARCHAR) AS s FROM gold.daily_usage",
        Some(&(version - 1).to_string()),
    );
    assert_eq!(text(&before[0]["s"]), gold_v1);

    // History explains each version.
    let h = w.medallion(&["history", "silver.readings"]);
    assert_eq!(h.code, 0, "{h:?}");
    assert!(
        h.stdout.contains("silver_upsert") && h.stdout.contains(FILE2),
        "{h:?}"
    );

    // Nothing new: a second run does nothing and says so.
    let r = w.run_expect(0);
    assert!(r.stdout.contains("nothing to do"), "{r:?}");
    let s = w.medallion(&["status"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(
        s.stdout.contains("files loaded: 2") && s.stdout.contains("files pending: 0"),
        "{s:?}"
    );
}

#[test]
fn gold_deletes_keys_whose_rows_moved_away() {
    // Natural key without the customer: a correction can move a reading to another
    // customer, so the old customer's day disappears from gold and must be deleted.
    let cfg = std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
    .unwrap()
    .replace(
        "key: [customer_id, meter_id, start_time]",
        "key: [meter_id, start_time]",
    );
    let w = Workdir::with_config(&cfg);
    let header = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";
    w.write_raw(
        "a.csv",
        &format!(
            "{header}C000001,M00000001,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,1.000,actual\n\
             C000002,M00000002,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2.000,actual\n"
        ),
    );
    w.run_expect(0);
    assert_eq!(w.count("FROM gold.daily_usage"), 2);
    w.write_raw(
        "b.csv",
        &format!(
            "{header}C000002,M00000001,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,1.500,estimated\n"
        ),
    );
    let r = w.run_expect(0);
    assert!(
        r.stdout.contains("0 inserted, 1 updated, 1 deleted"),
        "{r:?}"
    );
    assert_eq!(w.count("FROM gold.daily_usage"), 1);
    assert_eq!(
        w.count("FROM gold.daily_usage WHERE customer_id = 'C000001'"),
        0
    );
    assert_eq!(
        w.scalar("SELECT CAST(total_kwh AS VARCHAR) FROM gold.daily_usage"),
        "3.500"
    );
    assert_gold_is_recompute(&w);
}

#[test]
fn time_travel_by_timestamp_and_protocol_versions() {
    time_travel_and_protocol_versions(&Workdir::sample_config());
}

/// Time travel by timestamp, and the protocol every table is created with; on any store.
pub fn time_travel_and_protocol_versions(w: &Workdir) {
    w.add_sample(FILE1);
    w.run_expect(0);
    let after_first = w.scalar(
        "SELECT CAST(processed_at AS VARCHAR) FROM _medallion.files WHERE status = 'loaded'",
    );
    let count_first = w.count("FROM silver.readings");
    std::thread::sleep(std::time::Duration::from_millis(20));
    w.add_sample(FILE2);
    w.run_expect(0);
    let rows = w.query_as_of(
        "SELECT COUNT(*) AS n FROM silver.readings",
        Some(&after_first),
    );
    assert_eq!(
        text(&rows[0]["n"]),
        count_first.to_string(),
        "silver as of {after_first}"
    );
    const TABLES: &str =
        "bronze/readings silver/readings rejected/readings gold/daily_usage _medallion/files";
    for t in TABLES.split(' ') {
        let log =
            String::from_utf8(w.read_lake(&format!("{t}/_delta_log/00000000000000000000.json")))
                .unwrap();
        let protocol: Value = log
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find_map(|v| v.get("protocol").cloned())
            .unwrap();
        assert_eq!(protocol["minReaderVersion"], 1, "{t}: {protocol}");
        assert_eq!(protocol["minWriterVersion"], 2, "{t}: {protocol}");
    }
}

#[test]
fn silver_upserts_in_bounded_slices() {
    // Slices of 100 rows: the sample becomes 22 upserts; every equality still holds and
    // a key repeated across slices keeps its last line.
    let cfg = std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
    .unwrap()
    .replace(
        "  key: [customer_id, meter_id, start_time]\n",
        "  key: [customer_id, meter_id, start_time]\n  batch_rows: 100\n",
    );
    let exp = expected();
    for tracked in [true, false] {
        let w = match tracked {
            true => Workdir::with_config(&cfg),
            false => Workdir::with_config(&cfg).without_repeat_tracking(),
        };
        w.add_sample(FILE1);
        w.add_sample(FILE2);
        let header = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";
        let mut dup = String::from(header);
        for i in 0..250 {
            // The same key on every line: 250 lines over 3 slices, the last one wins.
            dup.push_str(&format!(
                "C999999,M99999999,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,{}.000,actual\n",
                i % 50
            ));
        }
        w.write_raw("z_dups.csv", &dup);
        w.run_expect(0);
        assert_file_counts(&w, FILE1, &exp["files"][FILE1]);
        assert_file_counts(&w, FILE2, &exp["files"][FILE2]);
        assert_eq!(
            w.count("FROM silver.readings"),
            exp["silver_rows_after_all"].as_u64().unwrap() + 1
        );
        assert_eq!(
            w.scalar(
                "SELECT CAST(usage_kwh AS VARCHAR) FROM silver.readings WHERE customer_id = 'C999999'"
            ),
            "49.000"
        );
        assert_silver_keys_unique(&w);
        assert_gold_is_recompute(&w);
        // Tracked, the rows a later line supersedes are dropped before any slice is
        // written: one append. Untracked, slices with only new keys are appended and
        // slices that repeat a key are MERGEd.
        let ops = silver_operations(&w);
        assert!(ops.iter().any(|o| o == "WRITE"), "{ops:?}");
        assert_eq!(ops.iter().any(|o| o == "MERGE"), !tracked, "{ops:?}");
    }
}

/// Every action of every commit in `table`'s Delta log, in version order.
pub(crate) fn log_actions(w: &Workdir, table: &str) -> Vec<Value> {
    let log = w.table_path(table).join("_delta_log");
    let mut commits: Vec<_> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    commits
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The operation of every commit in silver's Delta log.
pub(crate) fn silver_operations(w: &Workdir) -> Vec<String> {
    log_actions(w, "silver/readings")
        .iter()
        .filter_map(|v| v.pointer("/commitInfo/operation").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

#[test]
fn merged_tables_are_created_with_smaller_files() {
    // MERGE rewrites whole files: silver and gold (MERGEd into) get 8 MiB files, tables
    // that are only appended to keep 32 MiB; the size is a standard table property.
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.run_expect(0);
    for (table, bytes) in [
        ("bronze/readings", "33554432"),
        ("rejected/readings", "33554432"),
        ("silver/readings", "8388608"),
        ("gold/daily_usage", "8388608"),
    ] {
        let size = log_actions(&w, table)
            .iter()
            .find_map(|v| {
                v.pointer("/metaData/configuration/delta.targetFileSize")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("{table} has no delta.targetFileSize"));
        assert_eq!(size, bytes, "delta.targetFileSize of {table}");
    }
}
