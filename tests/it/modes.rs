//! Source modes: `snapshot` (silver becomes each file; empty snapshots refused unless
//! allowed; the same state again is applied again; unchanged rows are not rewritten),
//! `upsert` with `sequence_by` (a late older row never overwrites a newer one) and
//! `delete_when` (matching rows delete their key, sequence-aware). After every run each
//! gold model equals its SQL, and the per-file counts hold.

use serde_json::Value;

use crate::workdir::{Workdir, assert_source_counts, text};

const CONFIG: &str = r#"lakehouse: lakehouse
sources:
  - name: customers
    pattern: "customers_*.csv"
    mode: snapshot
    key: [customer_id]
    columns:
      - {name: customer_id, type: string, required: true}
      - {name: region, type: string, required: true}
  - name: meter_status
    pattern: "status_*.csv"
    key: [meter_id]
    sequence_by: version
    delete_when: op = 'D'
    columns:
      - {name: meter_id, type: string, required: true}
      - {name: version, type: bigint, required: true}
      - {name: status, type: string}
      - {name: op, type: string, default: U}
gold:
  - name: customers_per_region
    keys: [region]
    sql: SELECT region, COUNT(*) AS customers FROM silver.customers GROUP BY region
  - name: meters_per_status
    keys: [status]
    sql: SELECT status, COUNT(*) AS meters, MAX(version) AS newest FROM silver.meter_status GROUP BY status
"#;

const CUSTOMERS: &str = "customers_per_region";
const STATUS: &str = "meters_per_status";

/// The models named equal their SQL over silver.
fn assert_models_are_their_sql(w: &Workdir, models: &[&str]) {
    for (model, sql) in [
        (
            "customers_per_region",
            "SELECT region, COUNT(*) AS customers FROM silver.customers GROUP BY region",
        ),
        (
            "meters_per_status",
            "SELECT status, COUNT(*) AS meters, MAX(version) AS newest FROM silver.meter_status GROUP BY status",
        ),
    ] {
        if !models.contains(&model) {
            continue;
        }
        let diff = w.gold_sql_diff(&format!("gold.{model}"), sql);
        assert_eq!(diff, 0, "gold.{model} = its SQL over silver");
    }
}

/// The query's rows as `a,b,c` of `columns`, in order.
fn rows(w: &Workdir, sql: &str, columns: &[&str]) -> Vec<String> {
    w.query(sql)
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| text(&r[*c]))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

fn customers(w: &Workdir) -> Vec<String> {
    rows(
        w,
        "SELECT customer_id, region FROM silver.customers ORDER BY 1",
        &["customer_id", "region"],
    )
}

fn statuses(w: &Workdir) -> Vec<String> {
    rows(
        w,
        "SELECT meter_id, version, status FROM silver.meter_status ORDER BY 1",
        &["meter_id", "version", "status"],
    )
}

/// `rebuild silver` of `source` from bronze leaves silver as loading left it.
fn rebuild_keeps(w: &Workdir, source: &str, silver: fn(&Workdir) -> Vec<String>) {
    let before = silver(w);
    let r = w.medallion(&["rebuild", "silver", "--source", source]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(silver(w), before, "rebuilt silver.{source}");
}

fn run_json(w: &Workdir, code: i32) -> Value {
    let r = w.medallion(&["run", "--json"]);
    assert_eq!(r.code, code, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn a_snapshot_replaces_silver_and_unchanged_rows_keep_their_lineage() {
    let w = Workdir::with_config(CONFIG);
    w.write_raw(
        "customers_1.csv",
        "customer_id,region\nC1,north\nC2,south\nC3,east\n",
    );
    run_json(&w, 0);
    let first = w.scalar("SELECT _batch_id FROM silver.customers WHERE customer_id = 'C1'");
    // C2 moves, C3 is gone, C4 is new; C1 is unchanged.
    w.write_raw(
        "customers_2.csv",
        "customer_id,region\nC1,north\nC2,west\nC4,north\nC4,east\n",
    );
    let run = run_json(&w, 0);
    let silver = &run["batches"][0]["silver"];
    assert_eq!(
        (&silver["inserted"], &silver["updated"], &silver["deleted"]),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{run:#}"
    );
    assert_eq!(
        customers(&w),
        ["C1,north", "C2,west", "C4,east"],
        "the last line of a key wins"
    );
    assert_eq!(
        w.scalar("SELECT _batch_id FROM silver.customers WHERE customer_id = 'C1'"),
        first,
        "an unchanged row is not rewritten"
    );
    assert_models_are_their_sql(&w, &[CUSTOMERS]);
    // The first state again under a new name is a new state, not a duplicate.
    w.write_raw(
        "customers_3.csv",
        "customer_id,region\nC1,north\nC2,south\nC3,east\n",
    );
    run_json(&w, 0);
    assert_eq!(customers(&w), ["C1,north", "C2,south", "C3,east"]);
    assert_models_are_their_sql(&w, &[CUSTOMERS]);
    assert_source_counts(&w, "customers", &["customer_id"]);
    rebuild_keeps(&w, "customers", customers);
    assert_models_are_their_sql(&w, &[CUSTOMERS]);
}

#[test]
fn an_empty_snapshot_is_refused_unless_allowed() {
    let w = Workdir::with_config(CONFIG);
    w.write_raw("customers_1.csv", "customer_id,region\nC1,north\n");
    run_json(&w, 0);
    w.write_raw("customers_2.csv", "customer_id,region\n");
    let r = w.medallion(&["run"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.failure_of("customers_2.csv")
            .contains("snapshot with no accepted row"),
        "{r:?}"
    );
    assert_eq!(w.count("FROM silver.customers"), 1, "silver is kept");
    w.set_config(&CONFIG.replace(
        "    mode: snapshot\n",
        "    mode: snapshot\n    allow_empty_snapshot: true\n",
    ));
    run_json(&w, 0);
    assert_eq!(
        w.count("FROM silver.customers"),
        0,
        "an allowed empty snapshot empties silver"
    );
    assert_eq!(w.count("FROM gold.customers_per_region"), 0);
    assert_source_counts(&w, "customers", &["customer_id"]);
}

#[test]
fn sequence_by_keeps_the_newest_row_and_delete_when_deletes_by_sequence() {
    let w = Workdir::with_config(CONFIG);
    w.write_raw(
        "status_1.csv",
        "meter_id,version,status,op\nM1,2,on,U\nM2,1,on,U\nM4,5,off,U\nM4,4,on,U\n",
    );
    run_json(&w, 0);
    assert_eq!(
        statuses(&w),
        ["M1,2,on", "M2,1,on", "M4,5,off"],
        "within a file the highest version wins"
    );
    assert_models_are_their_sql(&w, &[STATUS]);
    // A late older row of M1 is superseded; M2 moves on; M3 is new.
    w.write_raw(
        "status_2.csv",
        "meter_id,version,status,op\nM1,1,off,U\nM2,3,off,U\nM3,1,on,U\n",
    );
    let run = run_json(&w, 0);
    assert_eq!(run["batches"][0]["superseded"], 1, "{run:#}");
    assert_eq!(statuses(&w), ["M1,2,on", "M2,3,off", "M3,1,on", "M4,5,off"]);
    assert_models_are_their_sql(&w, &[STATUS]);
    // Deletes: M2's newer delete removes it; M3's older delete is superseded; a delete
    // of a key silver never had does nothing.
    w.write_raw(
        "status_3.csv",
        "meter_id,version,status,op\nM2,4,,D\nM3,0,,D\nM9,1,,D\n",
    );
    let run = run_json(&w, 0);
    assert_eq!(run["batches"][0]["silver"]["deleted"], 1, "{run:#}");
    assert_eq!(run["batches"][0]["superseded"], 1, "{run:#}");
    assert_eq!(statuses(&w), ["M1,2,on", "M3,1,on", "M4,5,off"]);
    assert_models_are_their_sql(&w, &[STATUS]);
    assert_source_counts(&w, "meter_status", &["meter_id"]);
    // Every row read is in bronze, superseded and deleting rows included.
    assert_eq!(w.count("FROM bronze.meter_status"), 10);
    rebuild_keeps(&w, "meter_status", statuses);
    assert_models_are_their_sql(&w, &[STATUS]);
}

#[test]
fn snapshots_come_back_under_one_name_late_ones_are_refused_and_bad_rows_keep_their_key() {
    let w = Workdir::with_config(CONFIG);
    let a = "customer_id,region\nC1,north\nC2,south\n";
    let b = "customer_id,region\nC1,east\nC2,south\n";
    // One file name, rewritten: A, then B, then A again.
    w.write_raw("customers_latest.csv", a);
    run_json(&w, 0);
    w.write_raw("customers_latest.csv", b);
    run_json(&w, 0);
    assert_eq!(customers(&w), ["C1,east", "C2,south"]);
    w.write_raw("customers_latest.csv", a);
    run_json(&w, 0);
    assert_eq!(
        customers(&w),
        ["C1,north", "C2,south"],
        "A is applied again"
    );
    // A snapshot that sorts before the one silver holds is an older state: refused.
    w.write_raw("customers_early.csv", b);
    let r = w.medallion(&["run"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("sorts before customers_latest.csv"),
        "{r:?}"
    );
    assert_eq!(customers(&w), ["C1,north", "C2,south"]);
    std::fs::remove_file(w.raw().join("customers_early.csv")).unwrap();
    // A bad row does not delete its customer: the file did not say C2 is gone.
    w.write_raw("customers_newer.csv", "customer_id,region\nC1,north\nC2,\n");
    let run = run_json(&w, 0);
    assert_eq!(run["batches"][0]["silver"]["deleted"], 0, "{run:#}");
    assert_eq!(customers(&w), ["C1,north", "C2,south"]);
    assert_eq!(w.count("FROM rejected.customers"), 1);
    assert_models_are_their_sql(&w, &[CUSTOMERS]);
    assert_source_counts(&w, "customers", &["customer_id"]);
}

/// A delete in one slice of a batch is not undone by an older row of its key in a
/// later slice (silver no longer holds the key's sequence value then).
#[test]
fn a_delete_in_an_earlier_slice_supersedes_older_rows_later_in_the_batch() {
    let w = Workdir::with_config(&CONFIG.replace(
        "    delete_when: op = 'D'\n",
        "    delete_when: op = 'D'\n    batch_rows: 2\n",
    ));
    w.write_raw("status_1.csv", "meter_id,version,status,op\nM7,3,on,U\n");
    run_json(&w, 0);
    // Two files of one batch: each file's rows are a slice of their own here.
    w.write_raw(
        "status_2a.csv",
        "meter_id,version,status,op\nM7,4,,D\nM8,1,on,U\n",
    );
    w.write_raw(
        "status_2b.csv",
        "meter_id,version,status,op\nM7,2,off,U\nM9,1,on,U\n",
    );
    let run = run_json(&w, 0);
    assert_eq!(run["batches"].as_array().unwrap().len(), 1, "{run:#}");
    assert_eq!(run["batches"][0]["superseded"], 1, "{run:#}");
    assert_eq!(run["batches"][0]["silver"]["deleted"], 1, "{run:#}");
    assert_eq!(statuses(&w), ["M8,1,on", "M9,1,on"]);
    assert_models_are_their_sql(&w, &[STATUS]);
    assert_source_counts(&w, "meter_status", &["meter_id"]);
}

/// A rejected snapshot row keeps its key also when the key's text is not written the
/// way silver prints it (`01` for the int key 1).
#[test]
fn a_rejected_snapshot_row_keeps_a_typed_key() {
    let w = Workdir::with_config(
        r#"lakehouse: lakehouse
sources:
  - name: tariffs
    mode: snapshot
    key: [tariff_id]
    columns:
      - {name: tariff_id, type: int, required: true}
      - {name: price, type: "decimal(6,3)", required: true}
gold:
  - name: tariff_count
    keys: [n]
    sql: SELECT 1 AS n, COUNT(*) AS tariffs FROM silver.tariffs GROUP BY 1
"#,
    );
    w.write_raw("tariffs_1.csv", "tariff_id,price\n1,0.100\n2,0.200\n");
    run_json(&w, 0);
    w.write_raw("tariffs_2.csv", "tariff_id,price\n01,abc\n2,0.250\n");
    let run = run_json(&w, 0);
    assert_eq!(run["batches"][0]["silver"]["deleted"], 0, "{run:#}");
    assert_eq!(
        rows(
            &w,
            "SELECT tariff_id, CAST(price AS VARCHAR) AS price FROM silver.tariffs ORDER BY 1",
            &["tariff_id", "price"]
        ),
        ["1,0.100", "2,0.250"]
    );
    assert_source_counts(&w, "tariffs", &["tariff_id"]);
}
