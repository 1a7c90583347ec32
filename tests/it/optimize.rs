//! `medallion optimize`: compaction and Z-order rewrite a table's files without
//! changing a row; the file count drops; time travel still reaches the version before;
//! a dry run writes nothing; and an optimize started at the same time as a `run` leaves
//! every exactly-once invariant standing.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::exactly_once::{check_invariants, files_in_batches_of, make_file, spawn_run};
use crate::workdir::{Workdir, assert_batch_counts_and_unique_keys, sample_model_sql};

/// The tables optimize rewrites, as `medallion query` names them and as paths.
const TABLES: [(&str, &str); 5] = [
    ("bronze.readings", "bronze/readings"),
    ("silver.readings", "silver/readings"),
    ("rejected.readings", "rejected/readings"),
    ("gold.daily_usage", "gold/daily_usage"),
    ("_medallion.files", "_medallion/files"),
];

/// Every row of `table`, each as JSON text, sorted: equal lists are equal contents.
fn rows(w: &Workdir, table: &str, as_of: Option<&str>) -> Vec<String> {
    let mut rows: Vec<String> = w
        .query_as_of(&format!("SELECT * FROM {table}"), as_of)
        .into_iter()
        .map(|r| Value::Object(r).to_string())
        .collect();
    rows.sort();
    rows
}

fn contents(w: &Workdir) -> BTreeMap<&'static str, Vec<String>> {
    TABLES.iter().map(|(t, _)| (*t, rows(w, t, None))).collect()
}

/// Data files of the newest version of the table at `relative`, by replaying its JSON
/// log (medallion keeps every commit file; checkpoints only add to them).
fn active_files(w: &Workdir, relative: &str) -> usize {
    let log = w.table_path(relative).join("_delta_log");
    let mut commits: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    let mut files = std::collections::BTreeSet::new();
    for c in commits {
        for line in std::fs::read_to_string(&c).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(path) = action.pointer("/add/path").and_then(Value::as_str) {
                files.insert(path.to_string());
            }
            if let Some(path) = action.pointer("/remove/path").and_then(Value::as_str) {
                files.remove(path);
            }
        }
    }
    files.len()
}

fn file_counts(w: &Workdir) -> BTreeMap<&'static str, usize> {
    TABLES
        .iter()
        .map(|(t, rel)| (*t, active_files(w, rel)))
        .collect()
}

fn optimize(w: &Workdir, args: &[&str]) -> String {
    let mut all = vec!["optimize"];
    all.extend(args);
    let r = w.medallion(&all);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout
}

/// The report's line for `table`.
fn line<'a>(out: &'a str, table: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{table} ")))
        .unwrap_or_else(|| panic!("no line for {table}:\n{out}"))
}

/// Optimize everything with `args`, then: contents unchanged, every table with more
/// than one file down to one, time travel to the version before gives the old rows.
fn optimize_keeps_rows_and_time_travel(w: &Workdir, args: &[&str]) -> String {
    let before = contents(w);
    let files_before = file_counts(w);
    let versions: BTreeMap<&str, i64> = TABLES
        .iter()
        .map(|(t, _)| (*t, w.newest_version(t)))
        .collect();
    let out = optimize(w, args);
    assert_eq!(contents(w), before, "optimize changes no row:\n{out}");
    for (table, files) in file_counts(w) {
        assert!(
            files <= files_before[table],
            "{table}: {files_before:?}\n{out}"
        );
        if files_before[table] > 1 {
            assert_eq!(files, 1, "{table} is one file now (small data):\n{out}");
            assert!(
                w.newest_version(table) > versions[table],
                "{table}: a new version"
            );
        }
        let old = versions[table].to_string();
        assert_eq!(
            rows(w, table, Some(&old)),
            before[table],
            "{table}: time travel to v{old} still works"
        );
    }
    out
}

/// Day `day`'s hourly readings of four meters: a daily delivery, whose gold rows are
/// all new keys (so gold gets a file per batch), with a bad value every 13th row.
fn day_file(day: usize) -> String {
    let mut s = String::from("customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n");
    for j in 0..96 {
        let start =
            chrono::DateTime::from_timestamp(1_767_225_600 + (day * 24 + j / 4) as i64 * 3600, 0)
                .unwrap();
        let end = start + chrono::Duration::hours(1);
        let usage = if j % 13 == 7 {
            "abc".to_string()
        } else {
            format!("{}.{:03}", j % 5, (day * 37 + j * 11) % 1000)
        };
        s.push_str(&format!(
            "C00000{},M0000000{},{},{},{usage},actual\n",
            j % 2,
            j % 4,
            start.format("%Y-%m-%dT%H:%M:%SZ"),
            end.format("%Y-%m-%dT%H:%M:%SZ"),
        ));
    }
    s
}

#[test]
fn compaction_merges_small_files_without_changing_a_row() {
    // One file per batch, one day per file: every batch adds files to every table.
    let w = files_in_batches_of(0, 1);
    // Nothing loaded yet: nothing to do, and nothing written (not even a lease).
    let empty = optimize(&w, &[]);
    assert!(
        line(&empty, "gold.daily_usage").contains("does not exist yet"),
        "{empty}"
    );
    assert!(!w.table_path("_medallion/leases").exists(), "{empty}");
    for day in 0..8 {
        w.write_raw(&format!("day_{day:02}.csv"), &day_file(day));
    }
    w.run_expect(0);
    let counts = file_counts(&w);
    assert!(counts["gold.daily_usage"] >= 8, "{counts:?}");

    let dry = optimize(&w, &["--dry-run"]);
    assert!(dry.starts_with("dry run: nothing written"), "{dry}");
    assert!(
        line(&dry, "silver.readings").contains("would compact"),
        "{dry}"
    );
    assert_eq!(file_counts(&w), counts, "a dry run writes nothing");

    let out = optimize_keeps_rows_and_time_travel(&w, &[]);
    let gold = line(&out, "gold.daily_usage");
    assert!(
        gold.contains(&format!("{} → 1", counts["gold.daily_usage"])),
        "{out}"
    );
    assert!(gold.contains("compacted"), "{out}");
    assert!(
        line(&out, "_medallion.lease_readings").contains("not optimized"),
        "{out}"
    );
    let history = w.medallion(&["history", "gold.daily_usage"]).stdout;
    let newest = history.lines().nth(1).unwrap_or_default();
    assert!(
        newest.contains("OPTIMIZE") && newest.contains("compacted"),
        "{history}"
    );

    // Nothing left to do; one table by name.
    let again = optimize(&w, &["gold.daily_usage"]);
    assert!(
        line(&again, "gold.daily_usage").contains("nothing to rewrite"),
        "{again}"
    );
    assert_eq!(again.lines().count(), 2, "only the table named: {again}");

    assert_batch_counts_and_unique_keys(&w);
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings"),
        0
    );
    // Later runs load on top of the optimized tables.
    w.write_raw("day_99.csv", &day_file(99));
    w.run_expect(0);
    assert_batch_counts_and_unique_keys(&w);
}

#[test]
fn zorder_orders_silver_by_its_key_and_gold_by_a_configured_list() {
    let w = files_in_batches_of(6, 1);
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    w.set_config(&config.replace(
        "    keys: [customer_id, usage_date]\n",
        "    keys: [customer_id, usage_date]\n    zorder_by: [usage_date, customer_id]\n",
    ));
    w.run_expect(0);

    let out = optimize_keeps_rows_and_time_travel(&w, &["--zorder"]);
    assert!(
        line(&out, "silver.readings").contains("Z-ordered by customer_id, meter_id, start_time"),
        "{out}"
    );
    assert!(
        line(&out, "gold.daily_usage").contains("Z-ordered by usage_date, customer_id"),
        "{out}"
    );
    assert!(line(&out, "bronze.readings").contains("compacted"), "{out}");

    // Nothing written since: not rewritten again.
    let version = w.newest_version("silver.readings");
    let again = optimize(&w, &["silver.readings", "--zorder"]);
    assert!(
        line(&again, "silver.readings").contains("already Z-ordered"),
        "{again}"
    );
    assert_eq!(w.newest_version("silver.readings"), version);

    // Bronze has no Z-order columns; an unknown table is named as such.
    let r = w.medallion(&["optimize", "bronze.readings", "--zorder"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no Z-order columns"), "{r:?}");
    let r = w.medallion(&["optimize", "gold.nope"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown table"), "{r:?}");
    let r = w.medallion(&["optimize", "--target-size", "1KiB"]);
    assert_eq!(r.code, 2, "{r:?}");

    // An unknown column in `zorder_by` is a configuration error.
    w.set_config(&config.replace(
        "    keys: [customer_id, usage_date]\n",
        "    keys: [customer_id, usage_date]\n    zorder_by: [usage_day]\n",
    ));
    let r = w.medallion(&["optimize", "--zorder"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("gold[0].zorder_by[0]"), "{r:?}");
}

#[test]
fn optimize_refuses_while_a_batch_is_open() {
    let w = files_in_batches_of(2, 1);
    let r = w.medallion_failing_at(&["run"], "after_silver_commit");
    assert_ne!(r.code, 0, "{r:?}");
    let r = w.medallion(&["optimize"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is open"), "{r:?}");
    w.run_expect(0);
    optimize(&w, &[]);
    check_invariants(&w, 2);
}

fn spawn_optimize(w: &Workdir, args: &[&str]) -> Child {
    let mut all = vec!["optimize"];
    all.extend(args);
    let mut cmd = w.command(&all);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("spawn medallion optimize")
}

fn wait_ok(c: Child, what: &str) {
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Business content of silver and gold (lineage ids and times differ between lakehouses).
fn business(w: &Workdir) -> Vec<Vec<String>> {
    vec![
        rows(
            w,
            "(SELECT customer_id, meter_id, start_time, end_time, usage_kwh, reading_type, \
             _source_file, _source_line FROM silver.readings) s",
            None,
        ),
        rows(w, "gold.daily_usage", None),
        rows(
            w,
            "(SELECT _source_file, _source_line FROM rejected.readings) r",
            None,
        ),
    ]
}

#[test]
fn optimize_and_run_started_together_keep_every_invariant() {
    let (first, n) = (6, 12);
    // What the lakehouse holds after loading the files without any optimize.
    let reference = files_in_batches_of(n, 2);
    reference.run_expect(0);
    let expected = business(&reference);
    let unoptimized = file_counts(&reference);

    // Optimize first, run first, both at once; with and without Z-order.
    for (round, (optimize_after, run_after, args)) in [
        (0, 150, &["--zorder"][..]),
        (150, 0, &[][..]),
        (0, 0, &["--zorder"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let w = files_in_batches_of(first, 2);
        w.run_expect(0);
        for i in first..n {
            w.write_raw(&format!("batch_{i:03}.csv"), &make_file(i));
        }
        let (optimizer, runner) = if optimize_after <= run_after {
            let o = spawn_optimize(&w, args);
            std::thread::sleep(Duration::from_millis(run_after - optimize_after));
            (o, spawn_run(&w, None))
        } else {
            let r = spawn_run(&w, None);
            std::thread::sleep(Duration::from_millis(optimize_after - run_after));
            (spawn_optimize(&w, args), r)
        };
        wait_ok(runner, &format!("round {round}: run"));
        wait_ok(optimizer, &format!("round {round}: optimize"));

        check_invariants(&w, n);
        assert_eq!(
            business(&w),
            expected,
            "round {round}: the same rows as without optimize"
        );

        // Optimized again with nothing running: rows unchanged, files down, time travel.
        optimize_keeps_rows_and_time_travel(&w, args);
        check_invariants(&w, n);
        for (table, files) in file_counts(&w) {
            assert!(
                files <= 1 && (files < unoptimized[table] || unoptimized[table] <= 1),
                "round {round}: {table} has {files} files, {} without optimize",
                unoptimized[table]
            );
        }
    }
}
