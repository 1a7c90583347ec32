//! One worker per source: `run --source readings` and `run --source customers` at the
//! same time against one lakehouse, sharing `gold.regional_daily_usage` (a join of
//! both). Each source has its own lease and fences; the shared model is locked while a
//! source's batch meets the other source. With concurrent workers and with random
//! kills, every source keeps the exactly-once invariants and every model equals its
//! SQL.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::exactly_once::{check_delta_logs, make_file};
use crate::sample::model_sql;
use crate::workdir::{REPO, Workdir, assert_source_counts};

const READINGS: usize = 16;
const SNAPSHOTS: usize = 6;

/// The repository's config.yaml (readings + customer snapshots), 4 files per batch,
/// with `make_file`'s readings and customer snapshots that move its three customers
/// between regions (and drop one now and then).
fn two_sources() -> Workdir {
    let config = std::fs::read_to_string(Path::new(REPO).join("config.yaml")).unwrap();
    let w = Workdir::with_config(&format!("{config}\nbatches:\n  max_files: 4\n"));
    for i in 0..READINGS {
        w.write_raw(&format!("readings_{i:03}.csv"), &make_file(i));
    }
    for k in 0..SNAPSHOTS {
        w.write_raw(&format!("customers_{k:03}.csv"), &snapshot(k));
    }
    w
}

/// Snapshot `k`: customers C000000..C000002 in regions that change with `k`; C000002
/// is missing from every third snapshot.
fn snapshot(k: usize) -> String {
    let regions = ["north", "south", "east", "west"];
    let mut s = String::from("customer_id,region,tariff\n");
    for c in 0..3 {
        if c == 2 && k % 3 == 1 {
            continue;
        }
        s.push_str(&format!("C00000{c},{},standard\n", regions[(c + k) % 4]));
    }
    s
}

fn spawn(w: &Workdir, source: &str) -> Child {
    let mut cmd = w.command(&["run", "--source", source]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("spawn medallion")
}

/// Wait for every worker; each must succeed.
fn all_succeed<const N: usize>(workers: [Child; N]) {
    for c in workers {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every source's invariants, and every model equals its SQL over silver.
fn check(w: &Workdir) {
    for i in 0..READINGS {
        let name = format!("readings_{i:03}.csv");
        assert_eq!(
            w.count(&format!(
                "FROM bronze.readings WHERE _source_file = '{name}'"
            )),
            40,
            "every row of {name} is in bronze exactly once"
        );
    }
    for k in 0..SNAPSHOTS {
        let name = format!("customers_{k:03}.csv");
        let rows = snapshot(k).lines().count() as u64 - 1;
        assert_eq!(
            w.count(&format!(
                "FROM bronze.customers WHERE _source_file = '{name}'"
            )),
            rows,
            "every row of {name} is in bronze exactly once"
        );
    }
    for (source, files) in [("readings", READINGS), ("customers", SNAPSHOTS)] {
        assert_eq!(
            w.count(&format!(
                "FROM _medallion.files WHERE source = '{source}' AND status = 'loaded'"
            )),
            files as u64,
            "one loaded ledger row per {source} file"
        );
        let open = w.count(&format!(
            "FROM _medallion.files c WHERE c.source = '{source}' AND c.status = 'claimed' \
             AND c.seq NOT IN (SELECT seq FROM _medallion.files WHERE source = '{source}' \
             AND status IN ('loaded', 'failed'))"
        ));
        assert_eq!(open, 0, "no {source} batch left open");
    }
    assert_source_counts(w, "readings", &["customer_id", "meter_id", "start_time"]);
    assert_source_counts(w, "customers", &["customer_id"]);
    // Silver: the last snapshot; every accepted reading key.
    let last: BTreeSet<String> = snapshot(SNAPSHOTS - 1)
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    let silver: BTreeSet<String> = w
        .query("SELECT customer_id, region FROM silver.customers")
        .iter()
        .map(|r| {
            format!(
                "{},{}",
                r["customer_id"].as_str().unwrap(),
                r["region"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(silver, last, "silver.customers is the last snapshot");
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    for model in ["daily_usage", "regional_daily_usage"] {
        let sql = model_sql(&config, model);
        let diff = w.gold_sql_diff(&format!("gold.{model}"), &sql);
        assert_eq!(diff, 0, "gold.{model} = its SQL over silver");
    }
    check_delta_logs(w);
}

#[test]
fn workers_of_two_sources_run_at_once_and_share_a_gold_model() {
    let w = two_sources();
    let workers = ["readings", "customers", "readings", "customers"].map(|s| spawn(&w, s));
    all_succeed(workers);
    check(&w);
    // Each source's runs took only its own lease.
    assert!(w.table_path("_medallion/leases/readings").exists());
    assert!(w.table_path("_medallion/leases/customers").exists());
}

#[test]
fn workers_killed_at_random_recover_exactly_once() {
    let mut rng = crate::exactly_once::Rng::for_kills("workers");
    let mut next = |bound: u64| rng.next(bound);
    let w = two_sources();
    for _ in 0..8 {
        let mut readings = spawn(&w, "readings");
        let mut customers = spawn(&w, "customers");
        std::thread::sleep(Duration::from_millis(50 + next(500)));
        let _ = readings.kill();
        std::thread::sleep(Duration::from_millis(next(200)));
        let _ = customers.kill();
        let _ = readings.wait();
        let _ = customers.wait();
    }
    // The kills may leave leases held by dead processes of this host: they count as
    // released. Both workers then finish what the killed ones left.
    all_succeed([spawn(&w, "readings"), spawn(&w, "customers")]);
    check(&w);
}
