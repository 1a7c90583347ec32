//! Exactly-once under crashes and concurrency. After every scenario the invariants hold:
//! every input row is in bronze exactly once; per batch, bronze = silver-accepted +
//! rejected; silver has one row per natural key; gold equals its model over silver;
//! every Delta log is contiguous and every file it adds exists; the ledger shows every
//! file loaded once and no batch left open.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::workdir::{Workdir, sample_model_sql, text};

const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";
const ROWS_PER_FILE: usize = 40;

/// File `i`: 40 hourly readings overlapping the next file by 20 hours (corrections),
/// with a bad value every 13th row.
pub fn make_file(i: usize) -> String {
    let mut s = String::from(HEADER);
    for j in 0..ROWS_PER_FILE {
        let h = (i * 20 + j) as i64;
        let start = chrono::DateTime::from_timestamp(1_767_225_600 + h * 3600, 0).unwrap();
        let end = start + chrono::Duration::hours(1);
        let usage = if j % 13 == 7 {
            "abc".to_string()
        } else {
            format!("{}.{:03}", (i + j) % 5, (i * 37 + j * 11) % 1000)
        };
        s.push_str(&format!(
            "C00000{},M0000000{},{},{},{usage},{}\n",
            j % 3,
            j % 4,
            start.format("%Y-%m-%dT%H:%M:%SZ"),
            end.format("%Y-%m-%dT%H:%M:%SZ"),
            if (i + j).is_multiple_of(9) {
                "estimated"
            } else {
                "actual"
            }
        ));
    }
    s
}

fn workdir_with_files(n: usize) -> Workdir {
    files_in_batches_of(n, 1000)
}

/// `n` files made by `make_file`, taken at most `max_files` per batch.
pub fn files_in_batches_of(n: usize, max_files: usize) -> Workdir {
    let w = Workdir::sample_config();
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    w.set_config(&format!(
        "{config}
batches:
  max_files: {max_files}
"
    ));
    for i in 0..n {
        w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
    }
    w
}

pub fn spawn_run(w: &Workdir, failpoint: Option<&str>) -> Child {
    let mut cmd = w.command(&["run"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(f) = failpoint {
        cmd.env("MEDALLION_FAILPOINT", f);
    }
    cmd.spawn().expect("spawn medallion")
}

/// Every Delta log under the lakehouse is contiguous from 0 and every added file exists
/// (on a local disk or an object store alike).
pub fn check_delta_logs(w: &Workdir) {
    let files: BTreeSet<String> = w.lake_files().into_iter().collect();
    let mut logs: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for f in &files {
        if let Some((table, name)) = f.split_once("/_delta_log/")
            && let Some(v) = name.strip_suffix(".json").and_then(|v| v.parse().ok())
        {
            logs.entry(table.to_string()).or_default().push(v);
        }
    }
    assert!(
        !logs.is_empty(),
        "no Delta log under the lakehouse: {files:?}"
    );
    for (table, mut versions) in logs {
        versions.sort();
        let expected: Vec<u64> = (0..versions.len() as u64).collect();
        assert_eq!(versions, expected, "{table} log is contiguous");
        let mut table_id = None;
        for v in versions {
            let bytes = w.read_lake(&format!("{table}/_delta_log/{v:020}.json"));
            for line in String::from_utf8(bytes).unwrap().lines() {
                let action: Value = serde_json::from_str(line).unwrap();
                // Later metadata (schema evolution, a rebuild) keeps the table's id:
                // a second id would be a second CREATE over the first.
                if let Some(id) = action.pointer("/metaData/id") {
                    let first = table_id.get_or_insert_with(|| id.clone());
                    assert_eq!(
                        first, id,
                        "{table} v{v} has another table id (a second CREATE?)"
                    );
                }
                if let Some(path) = action.get("add").and_then(|a| a["path"].as_str()) {
                    let decoded = path.replace("%3A", ":").replace("%20", " ");
                    assert!(
                        files.contains(&format!("{table}/{decoded}")),
                        "{table} v{v} adds missing {path}"
                    );
                }
            }
        }
    }
}

/// All the invariants, for `n` files made by `make_file`.
pub fn check_invariants(w: &Workdir, n: usize) {
    for i in 0..n {
        let name = format!("batch_{i:03}.csv");
        assert_eq!(
            w.count(&format!(
                "FROM bronze.readings WHERE _source_file = '{name}'"
            )),
            ROWS_PER_FILE as u64,
            "every row of {name} is in bronze exactly once"
        );
    }
    let per_batch = w.query(
        "SELECT l._batch_id AS b, l.file AS f, l.silver_accepted AS acc, \
         (SELECT COUNT(*) FROM bronze.readings x WHERE x._batch_id = l._batch_id AND x._source_file = l.file) AS bronze, \
         (SELECT COUNT(*) FROM rejected.readings r WHERE r._batch_id = l._batch_id AND r._source_file = l.file) AS rej \
         FROM _medallion.files l WHERE l.status = 'loaded'",
    );
    assert_eq!(
        per_batch.len(),
        n,
        "one loaded ledger row per file: {per_batch:?}"
    );
    for b in &per_batch {
        let (acc, bronze, rej): (u64, u64, u64) = (
            text(&b["acc"]).parse().unwrap(),
            text(&b["bronze"]).parse().unwrap(),
            text(&b["rej"]).parse().unwrap(),
        );
        assert_eq!(
            bronze,
            acc + rej,
            "batch {} file {}: bronze = silver-accepted + rejected",
            text(&b["b"]),
            text(&b["f"])
        );
    }
    let keys = w.count("FROM (SELECT customer_id, meter_id, start_time FROM silver.readings GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d");
    assert_eq!(keys, 0, "silver holds one row per natural key");
    let distinct_inputs = accepted_keys((0..n).map(make_file));
    assert_eq!(
        w.count("FROM silver.readings"),
        distinct_inputs.len() as u64,
        "silver has every accepted key"
    );
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
        0,
        "gold = recompute"
    );
    let open = w.count(
        "FROM _medallion.files c WHERE c.status = 'claimed' AND c.seq NOT IN \
         (SELECT seq FROM _medallion.files WHERE status IN ('loaded', 'failed'))",
    );
    assert_eq!(open, 0, "no batch left open");
    check_delta_logs(w);
}

/// The distinct keys (customer, meter, start) of the accepted lines of CSV `files`
/// (header first; a bad value is `abc`).
pub fn accepted_keys(files: impl Iterator<Item = String>) -> BTreeSet<String> {
    files
        .flat_map(|f| {
            f.lines()
                .skip(1)
                .filter(|l| !l.contains(",abc,"))
                .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub const FAILPOINTS: [&str; 6] = [
    "after_data_files",
    "after_bronze_commit",
    "after_rejected_commit",
    "after_silver_commit",
    "after_gold_commit",
    "before_ledger_final",
];

#[test]
fn every_fail_point_recovers() {
    // Five files: in one batch, and in batches of two (the crash is in the first).
    for (fp, max_files) in FAILPOINTS.iter().flat_map(|fp| [(*fp, 1000), (*fp, 2)]) {
        let w = files_in_batches_of(5, max_files);
        let out = spawn_run(&w, Some(fp)).wait_with_output().unwrap();
        assert!(!out.status.success(), "{fp}: the run should abort");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint {fp}")),
            "{fp}"
        );
        let r = w.run_expect(0);
        if fp != "after_data_files" {
            assert!(
                r.stdout
                    .contains("completing a batch an earlier run left part-way"),
                "{fp}: {r:?}"
            );
        }
        check_invariants(&w, 5);
    }
}

/// A tiny deterministic generator (xorshift), seeded from MEDALLION_KILL_SEED or the clock.
pub struct Rng(u64);

impl Rng {
    /// Seeded from MEDALLION_KILL_SEED, else the clock; the seed is printed (to replay a
    /// failure) with `what`.
    pub fn for_kills(what: &str) -> Rng {
        let seed: u64 = std::env::var("MEDALLION_KILL_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{what}: MEDALLION_KILL_SEED={seed}");
        Rng(seed)
    }

    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[test]
fn random_kills_then_recovery() {
    let iterations: usize = std::env::var("MEDALLION_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng::for_kills(&format!("random kills: {iterations} iterations"));
    let n = 60;
    // Batches of up to 8 files: kills land inside batches of many files and between them.
    let w = files_in_batches_of(n, 8);
    let mut interrupted = 0;
    for _ in 0..iterations {
        let mut child = spawn_run(&w, None);
        std::thread::sleep(Duration::from_millis(30 + rng.next(400)));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("{interrupted} of {iterations} runs were killed while working");
    let r = w.run_expect(0);
    let summary = r.stdout.lines().last().unwrap_or_default().to_string();
    eprintln!("{summary}");
    // "L file(s) loaded, 0 failed, A already loaded before": each file counted once.
    let numbers: Vec<usize> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    // Or "nothing to do: ... (A already loaded)" when the last kill came after the work.
    match numbers[..] {
        [loaded, 0, before] => assert_eq!(loaded + before, n, "{summary}"),
        [before] => assert_eq!(before, n, "{summary}"),
        _ => panic!("unexpected summary: {summary}"),
    }
    check_invariants(&w, n);
}

#[test]
fn concurrent_runs_load_every_file_once() {
    let n = 20;
    let w = files_in_batches_of(n, 4);
    let children: Vec<Child> = (0..4).map(|_| spawn_run(&w, None)).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    check_invariants(&w, n);

    // One of the runs is killed while the others go on.
    let w = files_in_batches_of(n, 4);
    let mut children: Vec<Child> = (0..4).map(|_| spawn_run(&w, None)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let _ = children[0].kill();
    let _ = children.remove(0).wait();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    w.run_expect(0);
    check_invariants(&w, n);
}

#[test]
fn vacuum_removes_only_old_unreferenced_files() {
    let w = workdir_with_files(2);
    let out = spawn_run(&w, Some("after_data_files"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    w.run_expect(0);
    let bronze = w.table_path("bronze/readings");
    let parquet = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect()
    };
    let all = parquet(&bronze);
    // Age every file by two days: only the crashed run's uncommitted file is unreferenced.
    for f in &all {
        let ok = Command::new("touch")
            .args(["-d", "2 days ago"])
            .arg(f)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let dry = w.medallion(&["vacuum", "--dry-run", "--retain-hours", "24"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains("bronze.readings              would delete 1 file(s)"),
        "{dry:?}"
    );
    assert_eq!(
        parquet(&bronze).len(),
        all.len(),
        "a dry run deletes nothing"
    );
    let too_short = w.medallion(&["vacuum", "--retain-hours", "1"]);
    assert_eq!(too_short.code, 2, "{too_short:?}");
    let r = w.medallion(&["vacuum", "--retain-hours", "24"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(parquet(&bronze).len(), all.len() - 1);
    check_invariants(&w, 2);
}

#[test]
fn recovery_rebuilds_from_bronze_when_the_raw_file_is_gone() {
    // Bronze and rejected committed, then the crash; the raw file is moved away before
    // the rerun: silver and gold are rebuilt from the batch's bronze rows.
    let w = workdir_with_files(3);
    let out = spawn_run(&w, Some("after_rejected_commit"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_file(w.raw().join("batch_000.csv")).unwrap();
    let r = w.run_expect(0);
    assert!(
        r.stdout.contains("loaded batch_000.csv") && r.stdout.contains("completing a batch"),
        "{r:?}"
    );
    check_invariants(&w, 3);

    // With only bronze committed, the rejected rows come from bronze too (its text:
    // a structural problem of a raw record could not be checked again).
    let w = workdir_with_files(2);
    let out = spawn_run(&w, Some("after_bronze_commit"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_file(w.raw().join("batch_000.csv")).unwrap();
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("completing a batch an earlier run left part-way"),
        "{r:?}"
    );
    check_invariants(&w, 2);
    let again = w.run_expect(0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");
}
