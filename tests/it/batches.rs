//! Micro-batches: new files are taken many per batch, with one commit per table per
//! batch and two ledger commits (claim, final rows); each file keeps its own ledger row,
//! lineage and counts; a file that fails fails alone and is retried next run; within a
//! batch, files apply in name order and the last row of a key wins.

use crate::exactly_once::{check_delta_logs, check_invariants, make_file};
use crate::workdir::{Workdir, sample_model_sql, text};

const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";

/// The sample configuration with at most `max_files` files per batch, and a `fail` rule.
pub fn with_batches(max_files: usize) -> Workdir {
    let w = Workdir::sample_config();
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    let config = config.replacen(
        "      action: warn\n",
        "      action: warn\n    - name: no_huge_reading\n      check: usage_kwh < 400\n      action: fail\n",
        1,
    );
    w.set_config(&format!("{config}\nbatches:\n  max_files: {max_files}\n"));
    w
}

/// Versions in `table`'s Delta log.
fn commits(w: &Workdir, table: &str) -> usize {
    w.lake_files()
        .iter()
        .filter(|f| f.starts_with(&format!("{table}/_delta_log/")) && f.ends_with(".json"))
        .count()
}

fn reading(customer: usize, hour: u32, kwh: &str) -> String {
    format!(
        "C00000{customer},M00000001,2026-01-01T{hour:02}:00:00Z,2026-01-01T{:02}:00:00Z,{kwh},actual\n",
        hour + 1
    )
}

#[test]
fn many_small_files_load_in_few_batches_with_one_commit_per_table_each() {
    let w = with_batches(12);
    for i in 0..25 {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    let r = w.run_expect(0);
    assert!(r.stdout.contains("25 file(s) loaded, 0 failed"), "{r:?}");
    assert!(
        r.stdout.contains(": 12 files loaded, 0 failed")
            && r.stdout.contains("… and 2 more loaded files"),
        "{r:?}"
    );
    check_invariants(&w, 25);
    let batches =
        w.query("SELECT DISTINCT _batch_id FROM _medallion.files WHERE status = 'loaded'");
    assert_eq!(batches.len(), 3, "25 files in batches of 12: {batches:?}");
    // A version to create each table, then one commit per batch (two for the ledger).
    for table in [
        "bronze/readings",
        "rejected/readings",
        "silver/readings",
        "gold/daily_usage",
    ] {
        assert_eq!(commits(&w, table), 1 + 3, "{table}");
    }
    assert_eq!(commits(&w, "_medallion/files"), 1 + 2 * 3);
    // Each file has its own claim and final row, lineage and counts.
    for i in 0..25 {
        let name = format!("batch_{i:03}.csv");
        let rows = w.query(&format!(
            "SELECT status, rows_read FROM _medallion.files WHERE file = '{name}' ORDER BY status"
        ));
        assert_eq!(rows.len(), 2, "{name}: {rows:?}");
        assert_eq!(text(&rows[0]["status"]), "claimed");
        assert_eq!(text(&rows[1]["status"]), "loaded");
        assert_eq!(text(&rows[1]["rows_read"]), "40", "{name}");
    }
    let again = w.run_expect(0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
}

#[test]
fn a_file_that_fails_fails_alone_and_is_retried_next_run() {
    let w = with_batches(1000);
    w.write_raw("a_good.csv", &make_file(0));
    w.write_raw(
        "b_header.csv",
        &make_file(1).replacen("usage_kwh", "usage", 1),
    );
    w.write_raw("c_good.csv", &make_file(2));
    w.write_raw_bytes("d_gzip.csv", &[0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7]);
    w.write_raw(
        "e_fail.csv",
        &format!("{HEADER}{}", reading(1, 0, "450.000")),
    );
    w.write_raw("f_good.csv", &make_file(3));
    let r = w.run_expect(1);
    assert!(r.stdout.contains(": 3 files loaded, 3 failed"), "{r:?}");
    for (file, why) in [
        ("b_header.csv", "usage_kwh"),
        ("d_gzip.csv", "gzip"),
        ("e_fail.csv", "no_huge_reading"),
    ] {
        let message = r.failure_of(file);
        assert!(message.contains(why), "{file}: {message}");
        assert_eq!(
            w.count(&format!(
                "FROM bronze.readings WHERE _source_file = '{file}'"
            )),
            0,
            "nothing of {file} is loaded"
        );
        assert_eq!(
            w.count(&format!(
                "FROM _medallion.files WHERE file = '{file}' AND status = 'failed' AND message IS NOT NULL"
            )),
            1
        );
    }
    assert_eq!(w.count("FROM bronze.readings"), 3 * 40);
    assert_eq!(commits(&w, "bronze/readings"), 2, "one batch commit");
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
        0
    );

    // The failed files are tried again (and fail again); the loaded ones are not.
    let r = w.run_expect(1);
    assert!(
        r.stdout
            .contains("0 file(s) loaded, 3 failed, 3 already loaded"),
        "{r:?}"
    );
    assert_eq!(w.count("FROM bronze.readings"), 3 * 40);
    // Mended, one loads.
    w.write_raw("b_header.csv", &make_file(1));
    let r = w.run_expect(1);
    assert!(
        r.stdout
            .contains("1 file(s) loaded, 2 failed, 3 already loaded"),
        "{r:?}"
    );
    assert_eq!(w.count("FROM bronze.readings"), 4 * 40);
    crate::workdir::assert_batch_counts_and_unique_keys(&w);
    check_delta_logs(&w);
}

#[test]
fn within_a_batch_files_apply_in_name_order_and_the_last_row_of_a_key_wins() {
    let files = [
        (
            "a.csv",
            format!(
                "{HEADER}{}{}",
                reading(1, 0, "1.000"),
                reading(2, 0, "5.000")
            ),
        ),
        (
            "b.csv",
            format!(
                "{HEADER}{}{}{}",
                reading(1, 0, "2.000"),
                reading(3, 0, "9.000"),
                reading(1, 0, "3.000")
            ),
        ),
        ("c.csv", format!("{HEADER}{}", reading(2, 0, "7.000"))),
    ];
    let silver = |w: &Workdir| {
        w.query("SELECT customer_id, CAST(usage_kwh AS VARCHAR) AS kwh, _source_file AS f, _source_line AS l FROM silver.readings ORDER BY customer_id")
    };
    let one_batch = with_batches(1000);
    let one_per_file = with_batches(1);
    for w in [&one_batch, &one_per_file] {
        for (name, content) in &files {
            w.write_raw(name, content);
        }
        w.run_expect(0);
        assert_eq!(
            w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
            0
        );
    }
    assert_eq!(
        one_batch
            .query("SELECT DISTINCT _batch_id FROM bronze.readings")
            .len(),
        1
    );
    let got = silver(&one_batch);
    assert_eq!(got, silver(&one_per_file), "one batch = one batch per file");
    let kwh: Vec<(String, String, String)> = got
        .iter()
        .map(|r| (text(&r["customer_id"]), text(&r["kwh"]), text(&r["f"])))
        .collect();
    assert_eq!(
        kwh,
        vec![
            ("C000001".into(), "3.000".into(), "b.csv".into()),
            ("C000002".into(), "7.000".into(), "c.csv".into()),
            ("C000003".into(), "9.000".into(), "b.csv".into()),
        ]
    );
}

#[test]
fn a_batch_completed_after_a_crash_takes_the_files_its_bronze_commit_holds() {
    let w = with_batches(1000);
    w.write_raw("batch_000.csv", &make_file(0));
    w.write_raw(
        "batch_001.csv",
        &make_file(1).replacen("usage_kwh", "usage", 1),
    );
    w.write_raw("batch_002.csv", &make_file(2));
    let out = crate::exactly_once::spawn_run(&w, Some("after_bronze_commit"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    // Mended before the next run: the batch completes without it (it failed in the
    // interrupted attempt), then it loads as a batch of its own.
    w.write_raw("batch_001.csv", &make_file(1));
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("completing a batch an earlier run left part-way"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("failed in an interrupted attempt"),
        "{r:?}"
    );
    assert!(r.stdout.contains("loaded batch_001.csv"), "{r:?}");
    check_invariants(&w, 3);
    assert_eq!(
        w.count("FROM _medallion.files WHERE file = 'batch_001.csv' AND status = 'failed'"),
        1
    );
}

#[test]
fn a_claimed_file_that_changed_or_vanished_before_any_commit_fails_alone() {
    let w = with_batches(1000);
    for i in 0..3 {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    let out = crate::exactly_once::spawn_run(&w, Some("after_data_files"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_file(w.raw().join("batch_000.csv")).unwrap();
    w.write_raw("batch_001.csv", &make_file(5));
    // The interrupted batch completes with batch_002 alone; batch_001's new content is
    // a new file, loaded in the same run; batch_000 is gone.
    let r = w.medallion(&["run"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.failure_of("batch_000.csv")
            .contains("changed or vanished"),
        "{r:?}"
    );
    assert!(r.stdout.contains("1 failed"), "{r:?}");
    for (file, rows) in [
        ("batch_000.csv", 0),
        ("batch_001.csv", 40),
        ("batch_002.csv", 40),
    ] {
        assert_eq!(
            w.count(&format!(
                "FROM bronze.readings WHERE _source_file = '{file}'"
            )),
            rows,
            "{file}"
        );
    }
    // make_file(5) starts at hour 100 (make_file(1) at hour 20).
    assert_eq!(
        w.count(
            "FROM bronze.readings WHERE _source_file = 'batch_001.csv' \
             AND start_time = '2026-01-05T04:00:00Z'"
        ),
        1,
        "batch_001.csv loaded with its new content"
    );
    assert_consistent(&w);
    let again = w.run_expect(0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
}

#[test]
fn a_completion_that_fails_while_reading_leaves_the_batch_open() {
    // Bronze committed, then the crash. With a raw file gone, the completion replays
    // the batch from bronze; with bronze's data files out of reach too it fails while
    // it is prepared, so the batch must stay open (its files are not failed, which
    // would load them a second time) and be completed once the files are back.
    let w = crate::exactly_once::files_in_batches_of(5, 1000);
    let out = crate::exactly_once::spawn_run(&w, Some("after_bronze_commit"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let bronze = w.table_path("bronze/readings");
    let data: Vec<std::path::PathBuf> = std::fs::read_dir(&bronze)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!data.is_empty());
    let away = w.root.join("away");
    std::fs::create_dir_all(&away).unwrap();
    let raw = w.raw().join("batch_000.csv");
    std::fs::rename(&raw, away.join("batch_000.csv")).unwrap();
    for f in &data {
        std::fs::rename(f, away.join(f.file_name().unwrap())).unwrap();
    }
    let r = w.medallion(&["run"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("completed by the next run"),
        "{r:?}"
    );
    for f in &data {
        std::fs::rename(away.join(f.file_name().unwrap()), f).unwrap();
    }
    std::fs::rename(away.join("batch_000.csv"), &raw).unwrap();
    assert_eq!(
        w.count("FROM _medallion.files WHERE status IN ('failed', 'loaded')"),
        0,
        "the batch stayed open: no file was closed as failed (or loaded)"
    );
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("completing a batch an earlier run left part-way"),
        "{r:?}"
    );
    check_invariants(&w, 5);
}

/// The reading of meter `M1000…` number `i` (one hour, the key the other readings of
/// `i` have), of `kwh`.
fn meter_reading(i: usize, kwh: &str) -> String {
    format!(
        "C000001,M{:08},2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,{kwh},actual\n",
        10_000_000 + i
    )
}

/// `n` readings of distinct keys (meter `M1000…`, one hour each), then `tail`.
fn many_readings(n: usize, tail: &str) -> String {
    let mut s = String::from(HEADER);
    for i in 0..n {
        s.push_str(&meter_reading(i, &format!("1.{:03}", i % 1000)));
    }
    s.push_str(tail);
    s
}

/// A workdir of batches of up to 1,000 files whose silver is upserted in slices of
/// `rows` rows, the batch's repeated keys tracked while staged or not.
fn in_slices(rows: u64, tracked: bool) -> Workdir {
    let mut w = with_batches(1000);
    if !tracked {
        w = w.without_repeat_tracking();
    }
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    let key = "  key: [customer_id, meter_id, start_time]\n";
    assert!(config.contains(key));
    w.set_config(&config.replacen(key, &format!("{key}  batch_rows: {rows}\n"), 1));
    w
}

/// Gold is its SQL over silver, the batches' counts add up, silver's keys are unique
/// and every Delta log is valid.
fn assert_consistent(w: &Workdir) {
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
        0
    );
    crate::workdir::assert_batch_counts_and_unique_keys(w);
    check_delta_logs(w);
}

#[test]
fn a_file_failing_after_its_first_chunk_fails_alone_and_the_others_are_read_again() {
    let w = with_batches(1000);
    w.write_raw("a_good.csv", &make_file(0));
    // More rows than a chunk before the row that breaks the `fail` rule: the file's
    // first rows have streamed to the writers when it fails.
    let late = reading(1, 0, "450.000");
    w.write_raw("b_fails_late.csv", &many_readings(20_000, &late));
    w.write_raw("c_good.csv", &make_file(2));
    let out = w
        .command(&["run"])
        .env("MEDALLION_LOG", "medallion=info")
        .output()
        .unwrap();
    let r = crate::workdir::Run::from(out);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(": 2 files loaded, 1 failed"), "{r:?}");
    assert!(r.failure_of("b_fails_late.csv").contains("no_huge_reading"));
    assert!(
        r.stderr.contains("reading the batch's other files again"),
        "the file streamed, then failed: {r:?}"
    );
    assert_eq!(
        w.count("FROM bronze.readings WHERE _source_file = 'b_fails_late.csv'"),
        0
    );
    assert_eq!(w.count("FROM bronze.readings"), 2 * 40);
    assert_eq!(commits(&w, "bronze/readings"), 2, "one batch commit");
    assert_consistent(&w);
}

#[test]
fn corrections_in_the_same_batch_rewrite_no_silver_file() {
    // Slices of 5,000 rows: the corrections come slices after the rows they correct.
    let w = in_slices(5000, true);
    // Corrections of keys spread over the whole first file, in a file of their own
    // and within the first file itself.
    w.write_raw(
        "a_readings.csv",
        &many_readings(30_000, &meter_reading(1000, "9.000")),
    );
    let mut fixes = String::from(HEADER);
    for i in (0..30_000).step_by(1000) {
        fixes.push_str(&meter_reading(i, "7.000"));
    }
    w.write_raw("b_corrections.csv", &fixes);
    let r = w.run_expect(0);
    assert!(r.stdout.contains("2 file(s) loaded, 0 failed"), "{r:?}");
    // 30,001 rows + 30 corrections; every row but the last of its key is counted.
    assert!(
        r.stdout
            .contains("30031 accepted: 30000 inserted, 0 updated, 31 replaced within the batch"),
        "{}",
        r.stdout
    );
    assert_eq!(w.count("FROM silver.readings"), 30_000);
    assert_eq!(w.count("FROM silver.readings WHERE usage_kwh = 7"), 30);
    assert_eq!(
        w.count("FROM silver.readings WHERE usage_kwh = 9"),
        0,
        "b_corrections.csv comes after a_readings.csv"
    );
    assert_eq!(
        commits(&w, "silver/readings"),
        2,
        "created, then one append"
    );
    let removes = crate::pipeline::log_actions(&w, "silver/readings")
        .iter()
        .filter(|a| a.get("remove").is_some())
        .count();
    assert_eq!(removes, 0, "no silver file rewritten");
    assert_consistent(&w);
}

/// A batch of corrections spread over silver, slices of it, is upserted in rounds of
/// up to four slices: one rewrite of the files holding the replaced rows per round
/// (when its keys were tracked), instead of one per slice.
#[test]
fn corrections_over_many_slices_rewrite_silver_once_per_round() {
    // Slices of one staged chunk (16,384 rows) each; a round is 4 × 16,384 rows.
    let cases: [(bool, usize, usize); 3] =
        [(true, 40_000, 1), (true, 100_000, 2), (false, 40_000, 3)];
    for (tracked, fixes, commits_expected) in cases {
        let w = in_slices(16_384, tracked);
        w.write_raw("a_readings.csv", &many_readings(120_000, ""));
        w.run_expect(0);
        let before = commits(&w, "silver/readings");
        // Keys spread over all of silver, in key order: every silver file gets hits.
        let mut body = String::from(HEADER);
        for j in 0..fixes {
            body.push_str(&meter_reading(j * 120_000 / fixes, "7.000"));
        }
        w.write_raw("b_corrections.csv", &body);
        let r = w.medallion(&["run", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let silver = &doc["batches"][0]["silver"];
        assert_eq!(silver["updated"], fixes as u64, "{doc:#}");
        assert_eq!(silver["inserted"], 0, "{doc:#}");
        assert_eq!(
            commits(&w, "silver/readings") - before,
            commits_expected,
            "tracked {tracked}, {fixes} corrections"
        );
        assert_eq!(w.count("FROM silver.readings"), 120_000);
        assert_eq!(
            w.count("FROM silver.readings WHERE usage_kwh = 7"),
            fixes as u64
        );
        assert_consistent(&w);
    }
}

/// A slice joins the open round only when it replaces rows in a silver file the round
/// already rewrites: corrections in silver's order rewrite their files slice by slice,
/// corrections that every slice spreads over the same files rewrite them once (with
/// deletion vectors, the round marks each file once with both slices' rows).
#[test]
fn slices_share_a_round_only_when_they_share_silver_files() {
    // (corrections interleaved, tracked, deletion vectors, silver commits of the
    // corrections batch)
    for (interleaved, tracked, dv, commits_expected) in [
        (false, true, false, 2),
        (true, true, false, 1),
        (true, false, false, 2),
        (true, true, true, 1),
    ] {
        let w = in_slices(16_384, tracked);
        if dv {
            let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
            w.set_config(&crate::deletion_vectors::with_deletion_vectors(&config));
        }
        // Three runs, three silver files: keys [0, 40k), [40k, 80k), [80k, 120k).
        let all = many_readings(120_000, "");
        let lines: Vec<&str> = all.lines().skip(1).collect();
        for (i, part) in lines.chunks(40_000).enumerate() {
            w.write_raw(
                &format!("a{i}_readings.csv"),
                &format!("{HEADER}{}\n", part.join("\n")),
            );
            w.run_expect(0);
        }
        assert_eq!(w.count("FROM silver.readings"), 120_000);
        let before = commits(&w, "silver/readings");
        // 16,384 corrections in the first file and 16,384 in the third: two slices,
        // each within one file, or each spread over both.
        let mut keys: Vec<usize> = (0..16_384).map(|j| 2 * j).collect();
        keys.extend((0..16_384).map(|j| 80_000 + 2 * j));
        if interleaved {
            let (first, third) = keys.split_at(16_384);
            keys = first
                .iter()
                .zip(third)
                .flat_map(|(a, b)| [*a, *b])
                .collect();
        }
        let body: String = keys.iter().map(|&k| meter_reading(k, "7.000")).collect();
        w.write_raw("b_corrections.csv", &format!("{HEADER}{body}"));
        let r = w.medallion(&["run", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(doc["batches"][0]["silver"]["updated"], 32_768, "{doc:#}");
        assert_eq!(
            commits(&w, "silver/readings") - before,
            commits_expected,
            "interleaved {interleaved}, tracked {tracked}, deletion vectors {dv}"
        );
        assert_eq!(w.count("FROM silver.readings"), 120_000);
        assert_eq!(w.count("FROM silver.readings WHERE usage_kwh = 7"), 32_768);
        if dv {
            // The round's one commit marks the first and third files, each once.
            let log = w.root.join(format!(
                "lakehouse/silver/readings/_delta_log/{:020}.json",
                commits(&w, "silver/readings") - 1
            ));
            let last = std::fs::read_to_string(log).unwrap();
            assert_eq!(last.matches("\"deletionVector\":{").count(), 2, "{last}");
        }
        assert_consistent(&w);
    }
}

/// Whether a batch's repeats are tracked or found slice by slice (within a slice, and
/// across slices as updates), its silver counts add up to the rows it accepted.
#[test]
fn a_batch_with_repeated_keys_accounts_for_every_accepted_row() {
    for tracked in [true, false] {
        let w = in_slices(5000, tracked);
        // Repeats within the first slice and across slices, then a second file.
        let mut tail = String::new();
        for i in [3, 4_000, 12_000, 19_999] {
            tail.push_str(&meter_reading(i, "8.000"));
        }
        let mut head = many_readings(20, "");
        head.push_str(&tail.lines().next().map(|l| format!("{l}\n")).unwrap());
        w.write_raw("a_readings.csv", &many_readings(20_000, &tail));
        w.write_raw("b_more.csv", &head);
        let r = w.medallion(&["run", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let b = &doc["batches"][0];
        let n = |v: &serde_json::Value| v.as_u64().unwrap();
        let accepted: u64 = b["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| n(&f["accepted"]))
            .sum();
        assert_eq!(accepted, 20_004 + 21, "{b:#}");
        let s = &b["silver"];
        let counted = n(&s["inserted"]) + n(&s["updated"]) + n(&s["deleted"]);
        assert_eq!(
            counted + n(&b["repeated"]) + n(&b["superseded"]),
            accepted,
            "tracked {tracked}: {b:#}"
        );
        assert_eq!(n(&s["inserted"]), 20_000, "tracked {tracked}: {b:#}");
        assert_eq!(w.count("FROM silver.readings"), 20_000);
        assert_eq!(w.count("FROM silver.readings WHERE usage_kwh = 8"), 4);
        crate::workdir::assert_batch_counts_and_unique_keys(&w);
    }
}
