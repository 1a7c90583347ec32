//! `medallion rebuild`: silver and rejected recomputed from bronze under the current
//! configuration, gold from silver; one overwrite version per table; `--dry-run`
//! writes nothing; a kill at any moment is completed by the next run.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::workdir::{REPO, Workdir, sample_model_sql, text};

const FILE1: &str = "readings_2026-01-01.csv";
const FILE2: &str = "readings_2026-01-04_corrections.csv";

fn sample_config() -> String {
    std::fs::read_to_string(std::path::Path::new(REPO).join("examples/readings.yaml")).unwrap()
}

fn with_new_rule(cfg: &str) -> String {
    cfg.replace(
        "  row_rules:\n",
        "  row_rules:\n    - name: small_usage_only\n      check: usage_kwh <= 3\n",
    )
}

/// Every invariant after a rebuild: per batch (its latest counts) rows read = bronze =
/// silver-accepted + rejected; silver holds one row per key, none of them rejected;
/// gold equals its SQL over silver.
pub fn assert_rebuilt_invariants(w: &Workdir, model_sql: &str) {
    crate::workdir::assert_batch_counts_and_unique_keys(w);
    assert_eq!(
        w.count(
            "FROM silver.readings s WHERE EXISTS (SELECT 1 FROM rejected.readings r \
             WHERE r._batch_id = s._batch_id AND r._source_file = s._source_file \
             AND r._source_line = s._source_line)"
        ),
        0,
        "no silver row is a rejected row"
    );
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", model_sql, "silver.readings"),
        0,
        "gold = its SQL over silver"
    );
}

/// The business content of a zone, in a stable order (lineage ids and times differ
/// between lakehouses).
fn content(w: &Workdir, table: &str, columns: &str) -> Vec<String> {
    w.query(&format!(
        "SELECT {columns}, _source_file, _source_line FROM {table} ORDER BY _source_file, _source_line"
    ))
    .iter()
    .map(|r| serde_json::Value::Object(r.clone()).to_string())
    .collect()
}

#[test]
fn a_new_rule_moves_rows_to_rejected_and_dry_run_writes_nothing() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.add_sample(FILE2);
    w.run_expect(0);
    let silver_before = w.count("FROM silver.readings");
    let rejected_before = w.count("FROM rejected.readings");
    let silver_v = w.newest_version("silver.readings");
    let strict = with_new_rule(&sample_config());
    std::fs::write(w.root.join("config.yaml"), &strict).unwrap();

    let dry = w.medallion(&["rebuild", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("nothing was written"), "{dry:?}");
    assert_eq!(
        w.newest_version("silver.readings"),
        silver_v,
        "a dry run writes nothing"
    );
    assert_eq!(w.count("FROM silver.readings"), silver_before);

    let r = w.medallion(&["rebuild", "silver"]);
    assert_eq!(r.code, 0, "{r:?}");
    let moved = w.count("FROM rejected.readings") - rejected_before;
    assert!(moved > 0);
    assert!(
        dry.stdout
            .contains(&format!("{moved} rows would move from silver to rejected")),
        "{dry:?}"
    );
    assert!(
        dry.stdout
            .contains(&format!("small_usage_only       {moved}")),
        "{dry:?}"
    );
    assert!(
        r.stdout
            .contains(&format!("{moved} rows move from silver to rejected")),
        "{r:?}"
    );
    assert_eq!(
        w.newest_version("silver.readings"),
        silver_v + 1,
        "one overwrite version"
    );
    let h = w.medallion(&["history", "silver.readings"]);
    assert!(h.stdout.lines().nth(1).unwrap().contains("WRITE"), "{h:?}");
    assert_eq!(w.count("FROM silver.readings WHERE usage_kwh > 3"), 0);
    assert_rebuilt_invariants(&w, &sample_model_sql());
    // The same as loading the files afresh under the new rules.
    let fresh = Workdir::with_config(&strict);
    fresh.add_sample(FILE1);
    fresh.add_sample(FILE2);
    fresh.run_expect(0);
    let typed = "customer_id, meter_id, start_time, end_time, usage_kwh, reading_type";
    assert_eq!(
        content(&w, "silver.readings", typed),
        content(&fresh, "silver.readings", typed)
    );
    assert_eq!(
        content(&w, "rejected.readings", "usage_kwh, rejection_reasons"),
        content(&fresh, "rejected.readings", "usage_kwh, rejection_reasons")
    );
    let gold =
        |w: &Workdir| w.query("SELECT * FROM gold.daily_usage ORDER BY customer_id, usage_date");
    assert_eq!(gold(&w), gold(&fresh));
    // Time travel keeps the old state.
    let old = w.query_as_of(
        "SELECT COUNT(*) AS n FROM silver.readings",
        Some(&silver_v.to_string()),
    );
    assert_eq!(text(&old[0]["n"]), silver_before.to_string());
    // The ledger notes the rebuild.
    assert_eq!(
        w.count("FROM _medallion.files WHERE status = 'rebuild_done'"),
        1
    );
    // Nothing left to do, and later files load on top.
    let again = w.run_expect(0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
}

#[test]
fn a_changed_type_or_key_is_applied_by_a_rebuild() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.run_expect(0);
    // A wider decimal and a key without meter_id: `run` refuses both, `rebuild` applies them.
    let cfg = sample_config()
        .replace("type: decimal(12,3)", "type: decimal(14,4)")
        .replace(
            "key: [customer_id, meter_id, start_time]",
            "key: [customer_id, start_time]",
        );
    std::fs::write(w.root.join("config.yaml"), &cfg).unwrap();
    let refused = w.medallion(&["run"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("medallion rebuild silver"),
        "{refused:?}"
    );
    let r = w.medallion(&["rebuild"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        w.scalar("SELECT arrow_typeof(usage_kwh) FROM silver.readings LIMIT 1"),
        "Decimal128(14, 4)"
    );
    assert_eq!(
        w.count("FROM (SELECT customer_id, start_time FROM silver.readings GROUP BY 1, 2 HAVING COUNT(*) > 1) d"),
        0
    );
    w.add_sample(FILE2);
    w.run_expect(0);
    let model = cfg[cfg.find("SELECT customer_id").unwrap()..]
        .trim()
        .to_string();
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &model, "silver.readings"),
        0
    );
}

const REBUILD_FAILPOINTS: [&str; 5] = [
    "before_rebuild_claim",
    "after_rebuild_silver",
    "after_rebuild_rejected",
    "after_rebuild_recount",
    "after_rebuild_gold",
];

#[test]
fn a_killed_rebuild_is_completed_by_the_next_run() {
    for fp in REBUILD_FAILPOINTS {
        let w = Workdir::sample_config();
        w.add_sample(FILE1);
        w.add_sample(FILE2);
        w.run_expect(0);
        std::fs::write(w.root.join("config.yaml"), with_new_rule(&sample_config())).unwrap();
        let out = w.medallion_failing_at(&["rebuild"], fp);
        assert!(out.code != 0, "{fp}: the rebuild aborts");
        if fp == "before_rebuild_claim" {
            // Killed while it computed: nothing was claimed or committed.
            let r = w.run_expect(0);
            assert!(r.stdout.contains("nothing to do"), "{fp}: {r:?}");
            assert!(
                w.count("FROM silver.readings WHERE usage_kwh > 3") > 0,
                "{fp}"
            );
            assert_eq!(
                w.count("FROM _medallion.files WHERE status = 'rebuild_started'"),
                0
            );
            continue;
        }
        let r = w.run_expect(0);
        assert!(
            r.stdout
                .contains("completed a rebuild an earlier process left part-way"),
            "{fp}: {r:?}"
        );
        assert_rebuilt_invariants(&w, &sample_model_sql());
        assert_eq!(
            w.count("FROM silver.readings WHERE usage_kwh > 3"),
            0,
            "{fp}"
        );
        assert_eq!(
            w.count("FROM _medallion.files WHERE status = 'recounted'"),
            2,
            "{fp}"
        );
    }
}

#[test]
fn random_kills_during_rebuilds_leave_old_or_new_state() {
    let iterations: u64 = std::env::var("MEDALLION_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(6, |n: u64| n.min(20));
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.add_sample(FILE2);
    w.run_expect(0);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..iterations {
        // Alternate between two rule sets, so every rebuild changes something.
        let cfg = if i % 2 == 0 {
            with_new_rule(&sample_config())
        } else {
            sample_config()
        };
        std::fs::write(w.root.join("config.yaml"), &cfg).unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(env!("CARGO_BIN_EXE_medallion"))
            .args(["rebuild", "--config"])
            .arg(w.root.join("config.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng % 1500));
        let _ = child.kill();
        let _ = child.wait();
        // Each table is in its old or its new state: silver never holds rejected rows.
        assert_eq!(
            w.count("FROM (SELECT customer_id, meter_id, start_time FROM silver.readings GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d"),
            0,
            "iteration {i}"
        );
        w.run_expect(0);
        assert_rebuilt_invariants(&w, &sample_model_sql());
        // A rebuild run to the end applies the configuration.
        let r = w.medallion(&["rebuild"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_rebuilt_invariants(&w, &sample_model_sql());
        let strict = cfg.contains("small_usage_only");
        assert_eq!(
            w.count("FROM silver.readings WHERE usage_kwh > 3") == 0,
            strict,
            "iteration {i}"
        );
    }
}

#[test]
fn a_rebuild_under_the_same_rules_changes_nothing_even_for_malformed_rows() {
    let dir = std::path::Path::new(REPO).join("tests/fixtures/bad");
    let w = Workdir::with_config(&std::fs::read_to_string(dir.join("config.yaml")).unwrap());
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    for name in expected.as_object().unwrap().keys() {
        std::fs::copy(dir.join(name), w.raw().join(name)).unwrap();
    }
    w.run_expect(1);
    let columns = "customer_id, meter_id, start_time, end_time, usage_kwh, reading_type";
    let before = (
        content(&w, "silver.readings", columns),
        content(
            &w,
            "rejected.readings",
            &format!("{columns}, rejection_reasons"),
        ),
    );
    let r = w.medallion(&["rebuild"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("0 rows move from silver to rejected"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("0 rows move from rejected to silver"),
        "{r:?}"
    );
    let after = (
        content(&w, "silver.readings", columns),
        content(
            &w,
            "rejected.readings",
            &format!("{columns}, rejection_reasons"),
        ),
    );
    assert_eq!(before.0, after.0, "silver unchanged");
    assert_eq!(
        before.1, after.1,
        "rejected unchanged, structural reasons included"
    );
    assert_rebuilt_invariants(&w, &sample_model_sql());
}

#[test]
fn a_batch_completed_from_bronze_after_its_raw_file_went_away_rebuilds_like_any_other() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    let out = w.medallion_failing_at(&["run"], "after_bronze_commit");
    assert!(out.code != 0);
    // The raw file goes away: the batch is completed from its bronze rows.
    std::fs::remove_file(w.raw().join(FILE1)).unwrap();
    let r = w.run_expect(0);
    assert!(r.stdout.contains("completing a batch"), "{r:?}");
    w.add_sample(FILE2);
    w.run_expect(0);
    let before = w.count("FROM silver.readings");
    let r = w.medallion(&["rebuild"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.stdout
            .contains("bronze rows of batches that never completed"),
        "{r:?}"
    );
    assert_eq!(w.count("FROM silver.readings"), before);
    assert!(
        w.count(&format!(
            "FROM silver.readings WHERE _source_file = '{FILE1}'"
        )) > 0
    );
    assert_rebuilt_invariants(&w, &sample_model_sql());
    let again = w.run_expect(0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
}

#[test]
fn a_rebuild_left_open_under_another_configuration_is_started_again() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.run_expect(0);
    std::fs::write(w.root.join("config.yaml"), with_new_rule(&sample_config())).unwrap();
    let out = w.medallion_failing_at(&["rebuild"], "after_rebuild_silver");
    assert!(out.code != 0);
    assert_eq!(
        w.count("FROM silver.readings WHERE usage_kwh > 3"),
        0,
        "silver was replaced"
    );
    // Back to the old rules before the rebuild is completed: it is redone under them.
    std::fs::write(w.root.join("config.yaml"), sample_config()).unwrap();
    let r = w.run_expect(0);
    assert!(r.stdout.contains("completed a rebuild"), "{r:?}");
    assert!(
        w.count("FROM silver.readings WHERE usage_kwh > 3") > 0,
        "the old rules hold again"
    );
    assert_rebuilt_invariants(&w, &sample_model_sql());
    assert_eq!(
        w.count("FROM _medallion.files WHERE status = 'rebuild_started'"),
        2
    );
    assert_eq!(
        w.count("FROM _medallion.files WHERE status = 'rebuild_done'"),
        2
    );
    assert_eq!(
        w.count(
            "FROM _medallion.files WHERE status = 'rebuild_done' AND message LIKE 'superseded%'"
        ),
        1
    );
}
