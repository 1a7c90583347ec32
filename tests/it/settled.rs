//! A run with nothing to do answers from the settled mark (`_medallion/settled/<source>.json`),
//! and never once anything changed since it was written: a new file, a changed file,
//! another configuration, another writer (a rebuild killed part-way). A run killed
//! before it released the lease does not keep later runs off the mark once its lease
//! has expired.

use crate::workdir::{Run, Workdir, assert_batch_counts_and_unique_keys, sample_model_sql};

const FILE1: &str = "readings_2026-01-01.csv";
const FILE2: &str = "readings_2026-01-04_corrections.csv";
const MARK: &str = "_medallion/settled/readings.json";
/// What `run` logs (at debug level) when it answers from the mark.
const FROM_MARK: &str = "nothing to do: the settled mark holds";

const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";

fn run_logged(w: &Workdir) -> Run {
    let out = w
        .command(&["run"])
        .env("MEDALLION_LOG", "debug")
        .output()
        .expect("run medallion");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if let Some(remote) = &w.remote {
        remote.record_output(&r.stdout, &r.stderr);
    }
    assert_eq!(r.code, 0, "{r:?}");
    r
}

/// Two runs with nothing to do: the first checks the long way and writes the mark,
/// the second answers from it.
fn settle(w: &Workdir) {
    let r = run_logged(w);
    assert!(r.stdout.contains("nothing to do"), "{r:?}");
    assert!(!r.stderr.contains(FROM_MARK), "{r:?}");
    assert!(
        w.lake_files().iter().any(|f| f == MARK),
        "the mark is written"
    );
    let r = run_logged(w);
    assert!(r.stdout.contains("nothing to do"), "{r:?}");
    assert!(
        r.stderr.contains(FROM_MARK),
        "the second run uses the mark: {r:?}"
    );
}

/// Gold equals its SQL over silver, and every batch's counts add up.
fn assert_exact(w: &Workdir) {
    assert_batch_counts_and_unique_keys(w);
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
        0
    );
}

/// The whole scenario, on any store.
pub fn nothing_to_do_answers_from_the_mark_until_anything_changes(w: &Workdir) {
    w.add_sample(FILE1);
    let r = run_logged(w);
    assert!(r.stdout.contains(&format!("loaded {FILE1}")), "{r:?}");
    settle(w);

    // A new file.
    w.add_sample(FILE2);
    let r = run_logged(w);
    assert!(r.stdout.contains(&format!("loaded {FILE2}")), "{r:?}");
    assert_exact(w);
    settle(w);

    // A file of the same name with other content.
    let line = "C000001,M00000001,2026-01-02T00:00:00Z,2026-01-02T01:00:00Z,1.500,actual\n";
    w.write_raw("extra.csv", &format!("{HEADER}{line}"));
    run_logged(w);
    settle(w);
    let more = "C000002,M00000002,2026-01-02T00:00:00Z,2026-01-02T01:00:00Z,2.500,actual\n";
    w.write_raw("extra.csv", &format!("{HEADER}{line}{more}"));
    let r = run_logged(w);
    assert!(r.stdout.contains("loaded extra.csv"), "{r:?}");
    assert_eq!(
        w.count("FROM silver.readings WHERE customer_id = 'C000002'"),
        1
    );
    assert_exact(w);
    settle(w);

    // Another configuration: a model added with the landing zone unchanged.
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    let model = "  - name: usage_per_customer\n    keys: [customer_id]\n    sql: |\n      \
                 SELECT customer_id, SUM(usage_kwh) AS total_kwh FROM silver GROUP BY customer_id\n";
    w.set_config(&format!("{}\n{model}", config.trim_end()));
    let r = run_logged(w);
    assert!(!r.stderr.contains(FROM_MARK), "{r:?}");
    assert_eq!(
        w.gold_recompute_diff(
            "gold.usage_per_customer",
            "SELECT customer_id, SUM(usage_kwh) AS total_kwh FROM silver GROUP BY customer_id",
            "silver.readings"
        ),
        0,
        "the new model is built"
    );
    settle(w);

    // Another writer: a rebuild killed after it replaced silver, with the same
    // configuration and landing zone. The next run completes it.
    let killed = w.medallion_failing_at(&["rebuild"], "after_rebuild_silver");
    assert_ne!(killed.code, 0, "{killed:?}");
    let r = run_logged(w);
    assert!(
        r.stdout
            .contains("completed a rebuild an earlier process left part-way"),
        "{r:?}"
    );
    assert_exact(w);
    settle(w);
}

#[test]
fn nothing_to_do_answers_from_the_settled_mark_until_anything_changes() {
    let w = Workdir::sample_config();
    nothing_to_do_answers_from_the_mark_until_anything_changes(&w);
}

#[test]
fn a_lease_left_by_a_killed_run_stops_the_mark_only_until_it_expires() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    let killed = w
        .command(&["run", "--lease-ttl", "3"])
        .env("MEDALLION_FAILPOINT", "before_lease_release")
        .output()
        .unwrap();
    assert!(
        !killed.status.success(),
        "the run aborts before releasing the lease"
    );
    assert_eq!(w.count("FROM _medallion.files WHERE status = 'loaded'"), 1);
    // Everything was loaded, but the lease is still held until it expires (3 s).
    std::thread::sleep(std::time::Duration::from_millis(3500));
    settle(&w);
    assert_exact(&w);
}
