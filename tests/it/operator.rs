//! What an operator reads: `status` (tables, files, the last run), the run metrics
//! table `_medallion.runs`, and the `--json` documents of `run`, `status` and `history`;
//! `run --quiet`.

use serde_json::Value;

use crate::workdir::{Workdir, expected, text};

const SAMPLE: &str = "readings_2026-01-01.csv";
const COPY: &str = "readings_copy.csv";
const BROKEN: &str = "readings_broken.csv";

/// The sample, a copy of it under another name (a duplicate) and a file whose header
/// lacks columns (it fails), loaded by one `run --json`.
fn loaded() -> (Workdir, Value) {
    let w = Workdir::sample_config();
    w.add_sample(SAMPLE);
    let bytes = std::fs::read(w.raw().join(SAMPLE)).unwrap();
    w.write_raw_bytes(COPY, &bytes);
    w.write_raw(BROKEN, "customer_id,usage_kwh\nC000001,1.0\n");
    let r = w.medallion(&["run", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (w, doc)
}

/// `status --json`, parsed.
fn status_json(w: &Workdir) -> Value {
    let r = w.medallion(&["status", "--json"]);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// The sample's rows with other customer ids: new content, new keys.
fn other_customers(w: &Workdir) -> String {
    std::fs::read_to_string(w.raw().join(SAMPLE))
        .unwrap()
        .replace("C0", "C1")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn run_json_and_the_runs_table_hold_every_file_with_exact_counts() {
    let (w, doc) = loaded();
    let exp = &expected()["files"][SAMPLE];
    assert_eq!(doc["outcome"], "failed", "{doc:#}");
    assert_eq!(n(&doc["files_loaded"]), 1, "{doc:#}");
    assert_eq!(n(&doc["files_failed"]), 1, "{doc:#}");
    // Files apply in name order: the sample loads, its copy is the duplicate.
    let dup = &doc["duplicates"][0];
    assert_eq!(dup["file"], COPY, "{doc:#}");
    assert_eq!(dup["of"], SAMPLE, "{doc:#}");
    let files: Vec<&Value> = doc["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["files"].as_array().unwrap())
        .collect();
    let loaded = files.iter().find(|f| f["loaded"] == true).unwrap();
    assert_eq!(loaded["file"], SAMPLE);
    assert_eq!(loaded["rows_read"], exp["rows"]);
    assert_eq!(loaded["bronze_rows"], exp["rows"]);
    assert_eq!(loaded["accepted"], exp["accepted"]);
    assert_eq!(loaded["rejected"], exp["rejected"]);
    assert_eq!(loaded["rejected_by_rule"], exp["rejected_by_rule"]);
    assert_eq!(loaded["warnings"], exp["warned"]);
    let broken = files.iter().find(|f| f["file"] == BROKEN).unwrap();
    assert_eq!(broken["loaded"], false);
    assert!(text(&broken["error"]).contains("header"), "{broken:#}");

    // The runs table: one row per file of the run, the same counts, the batch's
    // silver inserts once.
    let rows = w.query(
        "SELECT file, status, file_error, rows_read, accepted, rejected, rejected_by_rule, \
         warnings_by_rule, bytes_read, silver_inserted, gold_keys_touched, outcome, \
         medallion_version, config_fingerprint, peak_rss_bytes, duration_s, read_s \
         FROM _medallion.runs ORDER BY file",
    );
    let files: Vec<String> = rows.iter().map(|r| text(&r["file"])).collect();
    assert_eq!(files, [SAMPLE, BROKEN, COPY].map(String::from).to_vec());
    let sample = &rows[0];
    assert_eq!(text(&sample["status"]), "loaded");
    assert_eq!(sample["rows_read"], exp["rows"]);
    assert_eq!(sample["accepted"], exp["accepted"]);
    assert_eq!(sample["rejected"], exp["rejected"]);
    let by_rule: Value = serde_json::from_str(&text(&sample["rejected_by_rule"])).unwrap();
    assert_eq!(by_rule, exp["rejected_by_rule"]);
    let warned: Value = serde_json::from_str(&text(&sample["warnings_by_rule"])).unwrap();
    assert_eq!(warned, exp["warned"]);
    assert_eq!(n(&sample["bytes_read"]), bytes_of(&w, SAMPLE));
    let silver_rows = w.count("FROM silver.readings");
    let inserted: u64 = rows.iter().map(|r| n(&r["silver_inserted"])).sum();
    assert_eq!(inserted, silver_rows, "silver inserts add up to silver");
    let gold: Value = serde_json::from_str(&text(&sample["gold_keys_touched"])).unwrap();
    assert_eq!(n(&gold["daily_usage"]), w.count("FROM gold.daily_usage"));
    assert_eq!(text(&rows[1]["status"]), "failed");
    assert!(text(&rows[1]["file_error"]).contains("header"));
    assert_eq!(text(&rows[2]["status"]), "duplicate");
    for r in &rows {
        assert_eq!(text(&r["outcome"]), "failed");
        assert_eq!(text(&r["medallion_version"]), env!("CARGO_PKG_VERSION"));
        assert_eq!(text(&r["config_fingerprint"]).len(), 64, "{r:?}");
        assert!(n(&r["peak_rss_bytes"]) > 1 << 20, "{r:?}");
        assert!(r["duration_s"].as_f64().unwrap() > 0.0, "{r:?}");
    }
    assert!(sample["read_s"].as_f64().unwrap() > 0.0, "{sample:?}");

    // A run with nothing new records nothing; a run that loads a mended file does.
    w.run_expect(1); // the broken file fails again
    assert_eq!(
        w.count("FROM (SELECT DISTINCT run_id FROM _medallion.runs) r"),
        2
    );
    w.write_raw(BROKEN, &other_customers(&w));
    w.run_expect(0);
    let r = w.medallion(&["run", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["outcome"], "nothing_to_do", "{doc:#}");
    assert_eq!(
        w.count("FROM (SELECT DISTINCT run_id FROM _medallion.runs) r"),
        3
    );
}

fn bytes_of(w: &Workdir, name: &str) -> u64 {
    std::fs::metadata(w.raw().join(name)).unwrap().len()
}

#[test]
fn status_shows_tables_files_failures_duplicates_and_the_last_run() {
    let (w, _) = loaded();
    let s = w.medallion(&["status", "--json"]);
    assert_eq!(s.code, 0, "{s:?}");
    let doc: Value = serde_json::from_str(&s.stdout).unwrap();
    let table = |name: &str| {
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {doc:#}"))
            .clone()
    };
    for name in [
        "bronze.readings",
        "silver.readings",
        "rejected.readings",
        "gold.daily_usage",
    ] {
        let t = table(name);
        assert_eq!(n(&t["rows"]), w.count(&format!("FROM {name}")), "{t:#}");
        assert!(n(&t["files"]) >= 1 && n(&t["bytes"]) > 0, "{t:#}");
        assert!(t["last_commit"].is_string(), "{t:#}");
    }
    assert_eq!(n(&table("_medallion.runs")["rows"]), 3);
    let files = &doc["files"];
    // The sample and its copy are settled; the broken file is pending and failed.
    assert_eq!(n(&files["loaded"]), 2, "{doc:#}");
    assert_eq!(files["pending"], serde_json::json!([BROKEN]));
    assert_eq!(files["failed"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(files["failed"][0]["file"], BROKEN);
    assert!(
        text(&files["failed"][0]["reason"]).contains("header"),
        "{doc:#}"
    );
    assert_eq!(
        files["duplicates"],
        serde_json::json!([{ "file": COPY, "of": SAMPLE }])
    );
    let last = &doc["last_run"];
    assert_eq!(last["outcome"], "failed", "{doc:#}");
    assert_eq!(n(&last["files_loaded"]), 1);
    assert_eq!(n(&last["files_failed"]), 1);
    assert_eq!(n(&last["duplicates"]), 1);
    assert_eq!(last["rows_read"], expected()["files"][SAMPLE]["rows"]);

    let s = w.medallion(&["status"]);
    assert_eq!(s.code, 0, "{s:?}");
    for needle in [
        "files loaded: 2",
        "files pending: 1",
        "files failed: 1 (the next run tries them again)",
        &format!("  {COPY}: same content as {SAMPLE}"),
        "last run: ",
        ", outcome failed, files loaded 1, files failed 1, duplicates 1, rows read 2178,",
    ] {
        assert!(s.stdout.contains(needle), "{needle}: {s:?}");
    }
}

#[test]
fn status_before_any_run_and_history_json() {
    let w = Workdir::sample_config();
    w.add_sample(SAMPLE);
    let s = w.medallion(&["status", "--json"]);
    assert_eq!(s.code, 0, "{s:?}");
    let doc: Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(doc["last_run"], Value::Null);
    assert_eq!(doc["files"]["pending"], serde_json::json!([SAMPLE]));
    assert!(
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["version"].is_null())
    );
    assert!(
        w.medallion(&["status"])
            .stdout
            .contains("last run: none recorded")
    );

    w.run_expect(0);
    let h = w.medallion(&["history", "silver.readings", "--json"]);
    assert_eq!(h.code, 0, "{h:?}");
    let doc: Value = serde_json::from_str(&h.stdout).unwrap();
    assert_eq!(doc["table"], "silver.readings");
    let commits = doc["commits"].as_array().unwrap();
    let newest = n(&commits[0]["version"]);
    assert_eq!(commits.len() as u64, newest + 1, "{doc:#}");
    assert!(
        commits
            .iter()
            .any(|c| c["stage"] == "silver_upsert" && c["source_file"] == SAMPLE)
    );
    assert!(commits[0]["timestamp"].is_string(), "{doc:#}");
}

#[test]
fn run_quiet_prints_only_the_failures() {
    let w = Workdir::sample_config();
    w.add_sample(SAMPLE);
    w.write_raw(BROKEN, "customer_id,usage_kwh\nC000001,1.0\n");
    let r = w.medallion(&["run", "--quiet"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{r:?}");
    assert!(lines[0].starts_with(&format!("FAILED {BROKEN}: ")), "{r:?}");
    assert_eq!(
        w.count("FROM bronze.readings"),
        n(&expected()["files"][SAMPLE]["rows"])
    );
    let r = w.medallion(&["run", "-q"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
}

/// A batch left open by a failing gold model is `open` in the runs table with no
/// counts; the run that completes it records them once, so the sums are bronze's.
#[test]
fn a_batch_left_open_is_counted_once_by_the_run_that_completes_it() {
    let broken = std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
    .unwrap()
    .replace(
        "COUNT(*)                                                   AS reading_count",
        "CAST(MIN(meter_id) AS INT)                                 AS reading_count",
    );
    let w = Workdir::with_config(&broken);
    w.add_sample(SAMPLE);
    let r = w.medallion(&["run", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["outcome"], "stopped", "{doc:#}");
    let rows = w
        .query("SELECT status, outcome, rows_read, rejected, silver_inserted FROM _medallion.runs");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(text(&rows[0]["status"]), "open");
    assert_eq!(text(&rows[0]["outcome"]), "stopped");
    assert_eq!(
        n(&rows[0]["rows_read"]) + n(&rows[0]["rejected"]) + n(&rows[0]["silver_inserted"]),
        0
    );

    w.set_config(
        &std::fs::read_to_string(
            std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
        )
        .unwrap(),
    );
    w.run_expect(0);
    let sums = w.query(
        "SELECT CAST(SUM(rows_read) AS BIGINT) AS rd, CAST(SUM(rejected) AS BIGINT) AS rej FROM _medallion.runs",
    );
    assert_eq!(n(&sums[0]["rd"]), w.count("FROM bronze.readings"));
    assert_eq!(n(&sums[0]["rej"]), w.count("FROM rejected.readings"));
    let last = status_json(&w);
    assert_eq!(last["last_run"]["outcome"], "ok", "{last:#}");
    assert_eq!(n(&last["last_run"]["files_loaded"]), 1, "{last:#}");
}

/// A recovered batch whose file changed fails that file, and its new version loads in
/// the same run: the last run counts it loaded, not failed.
#[test]
fn a_file_that_fails_and_then_loads_in_one_run_counts_as_loaded() {
    let w = Workdir::sample_config();
    w.add_sample(SAMPLE);
    let r = w.medallion_failing_at(&["run"], "after_data_files");
    assert_ne!(r.code, 0, "{r:?}");
    let changed = other_customers(&w);
    w.write_raw(SAMPLE, &changed);
    w.run_expect(0);
    let doc = status_json(&w);
    let last = &doc["last_run"];
    assert_eq!(last["outcome"], "ok", "{doc:#}");
    assert_eq!(n(&last["files_loaded"]), 1, "{doc:#}");
    assert_eq!(n(&last["files_failed"]), 0, "{doc:#}");
    assert!(
        doc["files"]["failed"].as_array().unwrap().is_empty(),
        "{doc:#}"
    );
}

/// A duplicate whose name later loads new content is no longer listed as a duplicate.
#[test]
fn a_duplicate_name_that_loads_new_content_is_not_a_duplicate_any_more() {
    let w = Workdir::sample_config();
    w.add_sample(SAMPLE);
    w.write_raw_bytes(COPY, &std::fs::read(w.raw().join(SAMPLE)).unwrap());
    w.run_expect(0);
    let doc = status_json(&w);
    assert_eq!(
        doc["files"]["duplicates"].as_array().unwrap().len(),
        1,
        "{doc:#}"
    );
    let changed = other_customers(&w);
    w.write_raw(COPY, &changed);
    w.run_expect(0);
    let doc = status_json(&w);
    assert!(
        doc["files"]["duplicates"].as_array().unwrap().is_empty(),
        "{doc:#}"
    );
    assert_eq!(n(&doc["files"]["loaded"]), 2, "{doc:#}");
}

/// A command asked for JSON that fails still prints one JSON document.
#[test]
fn a_failing_json_command_prints_an_error_document() {
    let w = Workdir::sample_config();
    let r = w.medallion(&["history", "gold.daily_usage", "--json"]);
    assert_eq!(r.code, 2, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    assert_eq!(doc["exit_code"], 2);
    assert!(
        text(&doc["error"]).contains("does not exist yet"),
        "{doc:#}"
    );
}
