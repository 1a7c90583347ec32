//! The file ledger identifies files by content: the same content under a new name is a
//! duplicate (recorded, skipped); a changed file under a loaded name is a new version.

use crate::workdir::{Workdir, text};

const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";

#[test]
fn duplicates_are_skipped_and_new_versions_loaded() {
    let w = Workdir::sample_config();
    let v1 = format!(
        "{HEADER}C000001,M00000001,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,1.000,actual\n"
    );
    w.write_raw("a.csv", &v1);
    w.run_expect(0);

    // Same bytes, new name: recorded once as a duplicate, nothing loaded twice.
    w.write_raw("a_copy.csv", &v1);
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("duplicate a_copy.csv: same content as a.csv, skipped"),
        "{r:?}"
    );
    assert_eq!(w.count("FROM bronze.readings"), 1);
    let r = w.run_expect(0);
    assert!(
        r.stdout.contains("nothing to do") && !r.stdout.contains("duplicate"),
        "{r:?}"
    );
    assert_eq!(
        w.count("FROM _medallion.files WHERE status = 'duplicate'"),
        1
    );

    // Changed content under a loaded name: a new file version, loaded and upserted.
    let v2 = format!(
        "{HEADER}C000001,M00000001,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,1.500,actual\n"
    );
    w.write_raw("a.csv", &v2);
    let r = w.run_expect(0);
    assert!(
        r.stdout.contains("loaded a.csv")
            && r.stdout.contains("a new version of a file loaded before"),
        "{r:?}"
    );
    assert_eq!(
        w.count("FROM bronze.readings WHERE _source_file = 'a.csv'"),
        2
    );
    assert_eq!(
        w.scalar("SELECT CAST(usage_kwh AS VARCHAR) FROM silver.readings"),
        "1.500"
    );
    let hashes = w.query(
        "SELECT DISTINCT sha256 FROM _medallion.files WHERE file = 'a.csv' AND status = 'loaded'",
    );
    assert_eq!(hashes.len(), 2);
    assert!(hashes.iter().all(|h| text(&h["sha256"]).len() == 64));
    let versions = w.scalar(
        "SELECT table_versions FROM _medallion.files WHERE status = 'loaded' ORDER BY seq LIMIT 1",
    );
    let versions: serde_json::Value = serde_json::from_str(&versions).unwrap();
    for t in [
        "bronze/readings",
        "rejected/readings",
        "silver/readings",
        "gold/daily_usage",
    ] {
        assert!(versions[t].is_u64(), "{t} version recorded: {versions}");
    }
    let s = w.medallion(&["status"]);
    assert!(
        s.stdout.contains("files loaded: 2") && s.stdout.contains("files pending: 0"),
        "{s:?}"
    );
}

#[test]
fn a_checkpoint_that_cannot_be_written_fails_no_commit() {
    // Every table's checkpoint at version 9 is blocked (an empty directory holds its
    // name; a listing of the log shows no such file): the commits landing version 9 (a
    // lease, the ledger, a run record, the data tables) are written all the same and
    // must not be reported failed; later checkpoints are written as usual.
    use crate::exactly_once::{check_invariants, make_file};
    let w = Workdir::sample_config();
    let mut warned = false;
    let n = 12;
    for i in 0..n {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
        let r = w.run_expect(0);
        warned |= r.stderr.contains("checkpoint or log cleanup failed");
        if i == 0 {
            for log in delta_logs(&w.root.join("lakehouse")) {
                std::fs::create_dir(log.join("00000000000000000009.checkpoint.parquet")).unwrap();
            }
        }
    }
    assert!(warned, "a blocked checkpoint is reported as a warning");
    check_invariants(&w, n);
    let lease = w.table_path("_medallion/leases/readings/_delta_log");
    assert!(
        lease
            .join("00000000000000000019.checkpoint.parquet")
            .is_file(),
        "the next checkpoint is written"
    );
}

/// The `_delta_log` directories under `dir`.
fn delta_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "_delta_log") {
            logs.push(path);
        } else if path.is_dir() {
            logs.extend(delta_logs(&path));
        }
    }
    logs
}

#[test]
fn checkpoints_are_written_as_versions_grow() {
    // One file per batch, two ledger commits per batch: 60 files take the ledger far
    // past the checkpoint interval (10 versions), so opening it keeps reading one
    // checkpoint, not every commit.
    let w = Workdir::sample_config();
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    w.set_config(&format!("{config}\nbatches:\n  max_files: 1\n"));
    for i in 0..60 {
        w.write_raw(
            &format!("f{i:03}.csv"),
            &format!("{HEADER}C000001,M00000001,2026-03-01T{:02}:00:00Z,2026-03-01T{:02}:30:00Z,1.000,actual\n", i % 24, i % 24)
                .replace("2026-03-01", &format!("2026-03-{:02}", 1 + i / 24)),
        );
    }
    w.run_expect(0);
    let log = w.table_path("_medallion/files/_delta_log");
    assert!(
        log.join("_last_checkpoint").exists(),
        "the ledger has a checkpoint"
    );
    let checkpoints = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".checkpoint.parquet")
        })
        .count();
    // 120 commits at one checkpoint every 10 (delta-rs' default would be one).
    assert!(checkpoints >= 5, "{checkpoints} checkpoint files");
    // 120 one-row ledger files were compacted at the end of the run; no row is lost.
    let h = w.medallion(&["history", "_medallion.files"]);
    assert!(h.stdout.contains("OPTIMIZE"), "{}", h.stdout);
    assert_eq!(w.count("FROM _medallion.files"), 120);
    assert_eq!(w.count("FROM _medallion.files WHERE status = 'loaded'"), 60);
    // Nothing new: the run answers from the ledger without taking the lease.
    let lease_log = || {
        std::fs::read_dir(w.table_path("_medallion/leases/readings/_delta_log"))
            .unwrap()
            .count()
    };
    let before = lease_log();
    let r = w.run_expect(0);
    assert!(
        r.stdout.contains("nothing to do") && r.stdout.contains("60 already loaded"),
        "{r:?}"
    );
    assert_eq!(
        lease_log(),
        before,
        "a run with nothing to do commits nothing"
    );
}

#[test]
fn symlinked_files_load_once_and_dangling_links_are_skipped() {
    let w = Workdir::sample_config();
    let outside = w.root.join("landing");
    std::fs::create_dir_all(&outside).unwrap();
    let target = outside.join("linked.csv");
    std::fs::write(
        &target,
        format!(
            "{HEADER}C000001,M00000001,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,1.000,actual\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(w.raw()).unwrap();
    std::os::unix::fs::symlink(&target, w.raw().join("linked.csv")).unwrap();
    std::os::unix::fs::symlink(outside.join("gone.csv"), w.raw().join("dangling.csv")).unwrap();
    w.write_raw(
        "plain.csv",
        &format!(
            "{HEADER}C000002,M00000002,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2.000,actual\n"
        ),
    );
    let r = w.run_expect(0);
    assert!(
        r.stdout.contains("loaded linked.csv") && r.stdout.contains("loaded plain.csv"),
        "{r:?}"
    );
    assert!(r.stderr.contains("dangling.csv"), "{r:?}");
    assert_eq!(w.count("FROM silver.readings"), 2);
    let r = w.run_expect(0);
    assert!(r.stdout.contains("nothing to do"), "{r:?}");
    assert_eq!(w.count("FROM bronze.readings"), 2);
}

#[test]
fn restored_files_are_recorded_once_and_not_hashed_again() {
    // A loaded file copied back with a new mtime (a restore, `cp -r`): same content, so
    // nothing is loaded; one `unchanged` row records its new mtime, and the next run
    // recognises it from name, size and mtime alone (nothing to do, no new rows).
    let w = Workdir::sample_config();
    let v1 = format!(
        "{HEADER}C000001,M00000001,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,1.000,actual\n"
    );
    w.write_raw("a.csv", &v1);
    w.run_expect(0);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(w.raw().join("a.csv"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let r = w.run_expect(0);
    assert!(!r.stdout.contains("loaded a.csv"), "{r:?}");
    assert_eq!(w.count("FROM bronze.readings"), 1);
    let rows =
        w.query("SELECT status, modified FROM _medallion.files WHERE file = 'a.csv' ORDER BY seq, processed_at");
    let statuses: Vec<String> = rows.iter().map(|r| text(&r["status"])).collect();
    assert_eq!(statuses, ["claimed", "loaded", "unchanged"], "{rows:?}");
    assert_ne!(text(&rows[1]["modified"]), text(&rows[2]["modified"]));
    let r = w.run_expect(0);
    assert!(r.stdout.contains("nothing to do"), "{r:?}");
    assert_eq!(w.count("FROM _medallion.files WHERE file = 'a.csv'"), 3);
    let s = w.medallion(&["status"]);
    assert!(
        s.stdout.contains("files loaded: 1") && s.stdout.contains("files pending: 0"),
        "{s:?}"
    );
}
