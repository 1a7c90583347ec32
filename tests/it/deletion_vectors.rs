//! `silver.deletion_vectors: true`: an upsert marks the rows it replaces deleted in
//! deletion vectors instead of rewriting their files. The results are those of the
//! copy-on-write default (every invariant, every external reader), the log shows
//! vectors and no rewritten file, the setting can be turned on and off on a loaded
//! lakehouse, and `optimize` folds the vectors away.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::exactly_once::check_delta_logs;
use crate::workdir::{REPO, Workdir, assert_batch_counts_and_unique_keys, sample_model_sql};

/// `config` (the one-source form) with silver's deletion vectors on.
pub fn with_deletion_vectors(config: &str) -> String {
    let on = config.replacen("\nsilver:\n", "\nsilver:\n  deletion_vectors: true\n", 1);
    assert_ne!(on, config, "the configuration has a `silver:` section");
    on
}

pub fn sample() -> String {
    std::fs::read_to_string(std::path::Path::new(REPO).join("examples/readings.yaml")).unwrap()
}

/// Every action of silver's log, with its version, in order.
fn silver_log(w: &Workdir) -> Vec<(u64, Value)> {
    let mut versions: Vec<u64> = w
        .lake_files()
        .iter()
        .filter_map(|f| f.strip_prefix("silver/readings/_delta_log/"))
        .filter_map(|n| n.strip_suffix(".json")?.parse().ok())
        .collect();
    versions.sort();
    let mut actions = Vec::new();
    for v in versions {
        let bytes = w.read_lake(&format!("silver/readings/_delta_log/{v:020}.json"));
        for line in String::from_utf8(bytes).unwrap().lines() {
            actions.push((v, serde_json::from_str(line).unwrap()));
        }
    }
    actions
}

/// (adds with a deletion vector, adds without one, removes) of silver's version `v`.
fn commit_shape(log: &[(u64, Value)], v: u64) -> (usize, usize, usize) {
    let of = |kind: &'static str| {
        log.iter()
            .filter(move |(x, a)| *x == v && a.get(kind).is_some())
    };
    let with_dv = of("add")
        .filter(|(_, a)| a["add"]["deletionVector"].is_object())
        .count();
    (with_dv, of("add").count() - with_dv, of("remove").count())
}

/// The versions of silver's log that gave a file a deletion vector.
fn marking_versions(log: &[(u64, Value)]) -> BTreeSet<u64> {
    log.iter()
        .filter(|(_, a)| a["add"]["deletionVector"].is_object())
        .map(|(v, _)| *v)
        .collect()
}

/// The newest protocol silver's log states.
fn protocol(log: &[(u64, Value)]) -> Value {
    log.iter()
        .rev()
        .find_map(|(_, a)| a.get("protocol").cloned())
        .expect("a protocol action")
}

fn assert_gold_is_recompute(w: &Workdir) {
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
        0,
        "gold = recompute"
    );
}

#[test]
fn corrections_mark_rows_deleted_and_every_reader_agrees() {
    corrections_mark_rows_deleted(&Workdir::with_config(&with_deletion_vectors(&sample())));
}

/// The sample and its corrections loaded into `w` (deletion vectors on; any store):
/// DuckDB, Sail and Polars agree with medallion and with the sample's expected sums,
/// also at an earlier version, and the corrections commit marked rows.
pub fn corrections_mark_rows_deleted(w: &Workdir) {
    crate::interop::readers_read_every_table(w);
    assert_batch_counts_and_unique_keys(w);
    assert_gold_is_recompute(w);

    let log = silver_log(w);
    let p = protocol(&log);
    assert_eq!(
        (
            p["minReaderVersion"].as_u64(),
            p["minWriterVersion"].as_u64()
        ),
        (Some(3), Some(7))
    );
    assert!(
        p["readerFeatures"].to_string().contains("deletionVectors"),
        "{p}"
    );
    let marked = marking_versions(&log);
    assert_eq!(
        marked.len(),
        1,
        "the corrections commit marks rows: {marked:?}"
    );
    let v = *marked.first().unwrap();
    let (with_dv, plain, removes) = commit_shape(&log, v);
    // Each marked file is removed and re-added under its path with its vector; the
    // only plain adds are the corrections themselves.
    assert_eq!(with_dv, removes, "one remove per marked file");
    assert!(plain >= 1, "the corrected rows are added");
    for (_, a) in log
        .iter()
        .filter(|(x, a)| *x == v && a["add"]["deletionVector"].is_object())
    {
        let add = &a["add"];
        let dv = &add["deletionVector"];
        // Inline: no vector file for a reader to fetch (or lose).
        assert_eq!(dv["storageType"], "i", "{dv}");
        assert!(dv["cardinality"].as_u64().unwrap() > 0, "{dv}");
        let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["tightBounds"], false, "{stats}");
        assert!(
            log.iter()
                .any(|(x, r)| *x == v && r["remove"]["path"] == add["path"])
        );
    }
    assert!(
        !w.lake_files()
            .iter()
            .any(|f| f.contains("deletion_vector_")),
        "no vector files"
    );
    check_delta_logs(w);
}

/// File `i`: 40 hourly readings, each hour of one meter, the first 20 re-reading the
/// last 20 of file `i - 1` (corrections: same key, new value), a bad value every 13th.
fn make_file(i: usize) -> String {
    let mut s = String::from(HEADER);
    for j in 0..40 {
        let usage = match j % 13 {
            7 => "abc".to_string(),
            _ => format!("{}.{:03}", (i + j) % 5, (i * 37 + j * 11) % 1000),
        };
        s.push_str(&reading((i * 20 + j) as i64, &usage));
    }
    s
}

const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";

/// The CSV line of hour `h`'s reading (of meter `h % 4`, customer `h % 3`).
fn reading(h: i64, usage: &str) -> String {
    let start = chrono::DateTime::from_timestamp(1_767_225_600 + h * 3600, 0).unwrap();
    let end = start + chrono::Duration::hours(1);
    format!(
        "C00000{},M0000000{},{},{},{usage},actual\n",
        h % 3,
        h % 4,
        start.format("%Y-%m-%dT%H:%M:%SZ"),
        end.format("%Y-%m-%dT%H:%M:%SZ"),
    )
}

/// Whether silver's version `v` gave a file that had a vector a larger one.
fn grown_vector(log: &[(u64, Value)], v: u64) -> bool {
    let cardinality = |a: &Value| a["add"]["deletionVector"]["cardinality"].as_u64();
    log.iter()
        .filter(|(x, a)| *x == v && cardinality(a).is_some())
        .any(|(_, new)| {
            log.iter().any(|(x, old)| {
                *x < v
                    && old["add"]["path"] == new["add"]["path"]
                    && cardinality(old).is_some_and(|c| c < cardinality(new).unwrap())
            })
        })
}

/// A file re-sending the first `n` good readings of `make_file(i)` with new values.
fn resend(i: usize, n: usize, usage: &str) -> String {
    let file = make_file(i);
    let mut lines = file.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines.filter(|l| !l.contains(",abc,")).take(n) {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields[4] = usage;
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Silver's distinct keys over the `make_file` files `0..n`.
fn keys_of_files(n: usize) -> u64 {
    crate::exactly_once::accepted_keys((0..n).map(make_file)).len() as u64
}

/// Every invariant, for the `make_file` files `0..files` (and any re-sent readings):
/// each file's rows in bronze once, bronze = accepted + rejected per file, one silver
/// row per key and every key there, gold = recompute, no batch left open.
fn check(w: &Workdir, files: usize) {
    for i in 0..files {
        let name = format!("batch_{i:03}.csv");
        let n = w.count(&format!(
            "FROM bronze.readings WHERE _source_file = '{name}'"
        ));
        assert_eq!(n, 40, "every row of {name} in bronze once");
    }
    assert_batch_counts_and_unique_keys(w);
    assert_eq!(
        w.count("FROM silver.readings"),
        keys_of_files(files),
        "every key once"
    );
    assert_gold_is_recompute(w);
    let open = w.count(
        "FROM _medallion.files c WHERE c.status = 'claimed' AND c.seq NOT IN \
         (SELECT seq FROM _medallion.files WHERE status IN ('loaded', 'failed'))",
    );
    assert_eq!(open, 0, "no batch left open");
    check_delta_logs(w);
}

#[test]
fn deletion_vectors_turn_on_and_off_on_a_loaded_lakehouse() {
    let off = format!("{}\nbatches:\n  max_files: 1\n", sample());
    let on = with_deletion_vectors(&off);
    let w = Workdir::with_config(&off);
    for i in 0..3 {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    w.run_expect(0);
    assert!(
        marking_versions(&silver_log(&w)).is_empty(),
        "copy-on-write by default"
    );
    let p = protocol(&silver_log(&w));
    assert_eq!(p["minReaderVersion"].as_u64(), Some(1), "{p}");

    // On: the table is upgraded, and each file's corrections mark rows of the last.
    w.set_config(&on);
    let v = w.medallion(&["validate"]);
    assert!(
        v.stdout
            .contains("silver/readings: the next run turns deletion vectors on"),
        "{v:?}"
    );
    // Twelve batches: more files with vectors than the runtime has blocking threads
    // (a scan that fetched each vector on one of them would hang).
    for i in 3..15 {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    w.run_expect(0);
    let log = silver_log(&w);
    assert_eq!(protocol(&log)["minReaderVersion"].as_u64(), Some(3));
    assert_eq!(
        marking_versions(&log).len(),
        12,
        "twelve batches of corrections marked rows"
    );
    check(&w, 15);

    // More rows of a file that has a vector: the first hours of file 13 (file 14
    // corrected its last ones). The file's new vector holds both.
    w.write_raw("resend_a.csv", &resend(13, 10, "9.001"));
    w.run_expect(0);
    check(&w, 15);
    assert_eq!(
        w.count("FROM silver.readings WHERE CAST(usage_kwh AS VARCHAR) = '9.001'"),
        10,
        "the re-sent readings replaced theirs"
    );
    let log = silver_log(&w);
    let last = *marking_versions(&log).last().unwrap();
    assert!(grown_vector(&log, last), "a file's vector grew in v{last}");
    // And again: rows whose replacements were themselves marked before.
    w.write_raw("resend_b.csv", &resend(13, 4, "9.002"));
    w.run_expect(0);
    check(&w, 15);
    assert_eq!(
        w.count("FROM silver.readings WHERE CAST(usage_kwh AS VARCHAR) = '9.001'"),
        6
    );
    assert_eq!(
        w.count("FROM silver.readings WHERE CAST(usage_kwh AS VARCHAR) = '9.002'"),
        4
    );

    // Off: files holding vectors are rewritten copy-on-write, their deletions kept.
    w.set_config(&off);
    let before = marking_versions(&silver_log(&w)).len();
    let resend = resend(13, 40, "9.003");
    w.write_raw("resend_c.csv", &resend);
    w.run_expect(0);
    assert_eq!(
        marking_versions(&silver_log(&w)).len(),
        before,
        "no new vector"
    );
    check(&w, 15);
    let resent = resend.lines().count() as u64 - 1;
    assert_eq!(
        w.count("FROM silver.readings WHERE CAST(usage_kwh AS VARCHAR) = '9.003'"),
        resent
    );

    // Compaction folds the vectors away and keeps the rows.
    let sum = w.scalar("SELECT CAST(SUM(usage_kwh) AS VARCHAR) FROM silver.readings");
    w.medallion(&["optimize", "silver.readings"]);
    check(&w, 15);
    assert_eq!(
        w.scalar("SELECT CAST(SUM(usage_kwh) AS VARCHAR) FROM silver.readings"),
        sum
    );
}

/// `n` files made by `make_file`, at most `max_files` per batch, deletion vectors on.
fn dv_files_in_batches_of(n: usize, max_files: usize) -> Workdir {
    let config = format!("{}\nbatches:\n  max_files: {max_files}\n", sample());
    let w = Workdir::with_config(&with_deletion_vectors(&config));
    for i in 0..n {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    w
}

#[test]
fn every_fail_point_and_random_kills_recover_with_deletion_vectors() {
    use crate::exactly_once::{FAILPOINTS, Rng, spawn_run};
    // Each file corrects half of the one before: two files loaded, then a batch of
    // two that marks rows of the second crashes at each point.
    for fp in FAILPOINTS {
        let w = dv_files_in_batches_of(2, 2);
        w.run_expect(0);
        for i in 2..5 {
            w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
        }
        let out = spawn_run(&w, Some(fp)).wait_with_output().unwrap();
        assert!(!out.status.success(), "{fp}: the run should abort");
        w.run_expect(0);
        check(&w, 5);
        assert!(
            !marking_versions(&silver_log(&w)).is_empty(),
            "{fp}: rows were marked"
        );
    }
    let mut rng = Rng::for_kills("random kills with deletion vectors: 10 iterations");
    let n = 30;
    let w = dv_files_in_batches_of(n, 4);
    for _ in 0..10 {
        let mut child = spawn_run(&w, None);
        std::thread::sleep(std::time::Duration::from_millis(30 + rng.next(400)));
        let _ = child.kill();
        let _ = child.wait();
    }
    w.run_expect(0);
    check(&w, n);
    assert!(
        !marking_versions(&silver_log(&w)).is_empty(),
        "rows were marked"
    );
}

/// Readings `hours` of the `make_file` meters, all with usage `usage`.
fn readings(hours: std::ops::Range<i64>, usage: &str) -> String {
    let lines: String = hours.map(|h| reading(h, usage)).collect();
    format!("{HEADER}{lines}")
}

#[test]
fn one_run_marks_the_same_file_batch_after_batch() {
    // Four batches in one run: the table stays open, so each marks from the state the
    // previous commit left in memory (a file re-added with a vector, then marked again).
    let config = format!("{}\nbatches:\n  max_files: 1\n", sample());
    let w = Workdir::with_config(&with_deletion_vectors(&config));
    w.write_raw("a.csv", &readings(0..40, "1.000"));
    w.write_raw("b.csv", &readings(0..10, "2.000"));
    w.write_raw("c.csv", &readings(10..20, "3.000"));
    w.write_raw("d.csv", &readings(5..15, "4.000"));
    w.run_expect(0);
    let by_value = w.query(
        "SELECT CAST(usage_kwh AS VARCHAR) AS v, COUNT(*) AS n FROM silver.readings \
         GROUP BY 1 ORDER BY 1",
    );
    let got: Vec<(String, String)> = by_value
        .iter()
        .map(|r| (r["v"].to_string(), r["n"].to_string()))
        .collect();
    let want = [("1.000", 20), ("2.000", 5), ("3.000", 5), ("4.000", 10)];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(v, n)| (format!("\"{v}\""), n.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(marking_versions(&silver_log(&w)).len(), 3);
    assert!(
        grown_vector(&silver_log(&w), 3),
        "the first file marked twice"
    );
    assert_batch_counts_and_unique_keys(&w);
    assert_gold_is_recompute(&w);
}
