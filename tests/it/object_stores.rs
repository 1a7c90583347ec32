//! The lakehouse and the landing zone on object storage: every scenario runs on moto's
//! S3 server and on Azurite, started by the tests (see `stores`). The sample end to end
//! with exact counts, a separate landing bucket (with `rebuild` and `vacuum`), time
//! travel, four concurrent runs, kills and recovery, the commit-safety probe, external
//! readers straight from the emulator (also of a silver with deletion vectors), a run
//! with nothing to do answered from the settled mark, and no secret in any output.

use std::process::Child;
use std::time::Duration;

use crate::exactly_once::{check_invariants, make_file, spawn_run};
use crate::remote::Landing;
use crate::stores::Kind;
use crate::workdir::Workdir;

fn sample_end_to_end(kind: Kind) {
    let w = Workdir::on_store(kind, Landing::InsideLakehouse);
    crate::pipeline::sample_end_to_end(&w);
    assert_remembered_probe(&w);
    assert_no_secret(&w);
}

fn landing_in_its_own_bucket(kind: Kind) {
    let w = Workdir::on_store(kind, Landing::OwnBucket);
    let remote = w.remote.as_ref().unwrap();
    crate::pipeline::sample_end_to_end(&w);
    // The landing bucket holds only what was put there: the raw zone is only read.
    let landing = remote.raw_files();
    let names: Vec<&str> = landing.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "readings_2026-01-01.csv",
            "readings_2026-01-04_corrections.csv"
        ]
    );
    assert!(
        w.lake_files().iter().all(|f| !f.starts_with("raw/")),
        "the lakehouse holds no raw zone of its own"
    );
    // The full refresh and vacuum work on the store too; the rebuild changes nothing.
    let silver = w.count("FROM silver.readings");
    let r = w.medallion(&["rebuild"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(w.count("FROM silver.readings"), silver);
    crate::workdir::assert_batch_counts_and_unique_keys(&w);
    assert_eq!(
        w.gold_recompute_diff(
            "gold.daily_usage",
            &crate::workdir::sample_model_sql(),
            "silver.readings"
        ),
        0
    );
    for args in [
        vec!["vacuum", "--dry-run"],
        vec!["vacuum", "--retain-hours", "24"],
    ] {
        let r = w.medallion(&args);
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert_eq!(
        w.count("FROM silver.readings"),
        silver,
        "vacuum keeps what versions need"
    );
    assert_eq!(
        remote.raw_files(),
        landing,
        "no object of the landing zone changed"
    );
    assert_no_secret(&w);
}

fn time_travel(kind: Kind) {
    let w = Workdir::on_store(kind, Landing::InsideLakehouse);
    crate::pipeline::time_travel_and_protocol_versions(&w);
}

fn concurrent_runs(kind: Kind) {
    let n = 20;
    let w = Workdir::on_store(kind, Landing::InsideLakehouse);
    for i in 0..n {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    let children: Vec<Child> = (0..4).map(|_| spawn_run(&w, None)).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        w.remote
            .as_ref()
            .unwrap()
            .record_output(&String::from_utf8_lossy(&out.stdout), &stderr);
        assert!(out.status.success(), "{stderr}");
    }
    check_invariants(&w, n);
    assert_no_secret(&w);
}

/// Each file's run aborts at another fail point, one more run is killed at a random
/// moment, and the next run completes everything exactly once.
fn kills_and_recovery(kind: Kind) {
    let w = Workdir::on_store(kind, Landing::InsideLakehouse);
    let points = crate::exactly_once::FAILPOINTS;
    for (i, fp) in points.iter().enumerate() {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
        let r = w.medallion_failing_at(&["run"], fp);
        assert_ne!(r.code, 0, "{fp}: the run should abort: {r:?}");
        assert!(r.stderr.contains(&format!("failpoint {fp}")), "{fp}: {r:?}");
    }
    let n = points.len() + 2;
    for i in points.len()..n {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    let mut child = spawn_run(&w, None);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    w.run_expect(0);
    check_invariants(&w, n);
}

fn readers(kind: Kind) {
    let w = Workdir::on_store(kind, Landing::OwnBucket);
    crate::interop::readers_read_every_table(&w);
}

/// Deletion vectors on an object store: the vector files are written and read there.
fn deletion_vectors(kind: Kind) {
    let config = crate::deletion_vectors::with_deletion_vectors(&crate::deletion_vectors::sample());
    let w = Workdir::on_store_with(kind, Landing::OwnBucket, &config);
    crate::deletion_vectors::corrections_mark_rows_deleted(&w);
}

/// The probe's outcome is kept in the lakehouse, so later runs do not probe again.
fn assert_remembered_probe(w: &Workdir) {
    let probe = String::from_utf8(w.read_lake("_medallion/store_probe.json")).unwrap();
    assert!(probe.contains("was refused"), "{probe}");
    assert!(
        w.lake_files()
            .iter()
            .all(|f| !f.starts_with("_medallion/probe/")),
        "the probe key was removed"
    );
}

/// No output of any medallion command, `--help` text or commit of any table holds the
/// secret the store was configured with (through `${MEDALLION_TEST_SECRET}`).
fn assert_no_secret(w: &Workdir) {
    let remote = w.remote.as_ref().unwrap();
    let secret = remote.emulator.secret();
    // Output of the commands that tell the most, including debug logs and a failure.
    for args in [
        vec!["validate"],
        vec!["status"],
        vec!["history", "silver.readings"],
        vec!["history", "_medallion.files"],
        vec!["--help"],
        vec!["run", "--help"],
        vec!["query", "SELECT COUNT(*) FROM nowhere.nothing"],
    ] {
        w.medallion(&args);
    }
    let mut debug = w.command(&["status"]);
    debug.env("MEDALLION_LOG", "debug");
    let out = debug.output().unwrap();
    remote.record_output(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    let outputs = remote.outputs();
    assert!(outputs.len() > 10, "outputs were recorded");
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(secret), "output {i} shows the secret:\n{o}");
    }
    for f in w.lake_files() {
        if f.ends_with(".json") {
            let text = String::from_utf8_lossy(&w.read_lake(&f)).into_owned();
            assert!(!text.contains(secret), "{f} holds the secret");
        }
    }
}

fn nothing_to_do(kind: Kind) {
    let w = Workdir::on_store(kind, Landing::OwnBucket);
    crate::settled::nothing_to_do_answers_from_the_mark_until_anything_changes(&w);
    assert_no_secret(&w);
}

#[test]
fn s3_nothing_to_do_answers_from_the_settled_mark() {
    nothing_to_do(Kind::S3);
}

#[test]
fn azure_nothing_to_do_answers_from_the_settled_mark() {
    nothing_to_do(Kind::Azure);
}

#[test]
fn s3_sample_end_to_end() {
    sample_end_to_end(Kind::S3);
}

#[test]
fn azure_sample_end_to_end() {
    sample_end_to_end(Kind::Azure);
}

#[test]
fn s3_landing_in_its_own_bucket() {
    landing_in_its_own_bucket(Kind::S3);
}

#[test]
fn azure_landing_in_its_own_container() {
    landing_in_its_own_bucket(Kind::Azure);
}

#[test]
fn s3_time_travel() {
    time_travel(Kind::S3);
}

#[test]
fn azure_time_travel() {
    time_travel(Kind::Azure);
}

#[test]
fn s3_concurrent_runs() {
    concurrent_runs(Kind::S3);
}

#[test]
fn azure_concurrent_runs() {
    concurrent_runs(Kind::Azure);
}

#[test]
fn s3_kills_and_recovery() {
    kills_and_recovery(Kind::S3);
}

#[test]
fn azure_kills_and_recovery() {
    kills_and_recovery(Kind::Azure);
}

#[test]
fn s3_external_readers() {
    readers(Kind::S3);
}

#[test]
fn azure_external_readers() {
    readers(Kind::Azure);
}

#[test]
fn s3_deletion_vectors() {
    deletion_vectors(Kind::S3);
}

#[test]
fn azure_deletion_vectors() {
    deletion_vectors(Kind::Azure);
}

/// A store that will not refuse a second conditional create is never written to: here
/// S3 with conditional puts switched off, the way a store that ignores them behaves.
#[test]
fn a_store_without_conditional_creates_is_refused() {
    let w = Workdir::on_store(Kind::S3, Landing::InsideLakehouse);
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    w.set_config(&config.replacen(
        "storage_options:\n",
        "storage_options:\n  aws_conditional_put: disabled\n",
        1,
    ));
    w.add_sample("readings_2026-01-01.csv");
    let r = w.run_expect(2);
    let remote = w.remote.as_ref().unwrap();
    assert!(
        r.stderr.contains("does not honour conditional creates") && r.stderr.contains(&remote.lake),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("aws_conditional_put"),
        "says what to configure: {r:?}"
    );
    assert!(
        w.lake_files().iter().all(|f| !f.contains("_delta_log")),
        "nothing was written: {:?}",
        w.lake_files()
    );
    assert_no_secret(&w);
}
