//! Configuration changes between runs: a batch interrupted after bronze and rejected
//! were committed is completed under the current rules, and every one of its rows
//! still lands in silver or in rejected.

use crate::workdir::{REPO, Workdir, text};

const FILE1: &str = "readings_2026-01-01.csv";

#[test]
fn recovery_under_a_changed_rule_loses_no_row() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    let out = w.medallion_failing_at(&["run"], "after_rejected_commit");
    assert!(out.code != 0, "the run aborts at the fail point");
    let rejected_before = w.count("FROM rejected.readings");

    // A stricter rule arrives before the batch is completed.
    let cfg = std::fs::read_to_string(std::path::Path::new(REPO).join("examples/readings.yaml"))
        .unwrap()
        .replace(
            "  row_rules:\n",
            "  row_rules:\n    - name: small_usage_only\n      check: usage_kwh <= 3\n",
        );
    std::fs::write(w.root.join("config.yaml"), cfg).unwrap();
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("completing a batch an earlier run left part-way"),
        "{r:?}"
    );
    let newly = w.count(
        "FROM (SELECT unnest(rejection_reasons) AS r FROM rejected.readings) \
         WHERE get_field(r, 'rule') = 'small_usage_only'",
    );
    assert!(newly > 0, "the new rule rejects rows: {r:?}");
    assert_eq!(w.count("FROM rejected.readings"), rejected_before + newly);
    assert_eq!(w.count("FROM silver.readings WHERE usage_kwh > 3"), 0);
    let l = w.query(
        "SELECT rows_read, silver_accepted, rejected FROM _medallion.files WHERE status = 'loaded'",
    );
    assert_eq!(l.len(), 1, "{l:?}");
    let n = |k: &str| text(&l[0][k]).parse::<u64>().unwrap();
    let bronze = w.count("FROM bronze.readings");
    assert_eq!(n("rows_read"), bronze);
    assert_eq!(n("rejected"), w.count("FROM rejected.readings"));
    assert_eq!(
        bronze,
        n("silver_accepted") + n("rejected"),
        "bronze = silver-accepted + rejected after recovery under a new rule"
    );
    assert_eq!(w.count("FROM silver.readings"), n("silver_accepted"));
}

fn sample_config() -> String {
    std::fs::read_to_string(std::path::Path::new(REPO).join("examples/readings.yaml")).unwrap()
}

/// The sample config with `column` (YAML lines) added after the `reading_type` column.
pub fn with_column(cfg: &str, column: &str) -> String {
    let anchor = "          allowed: [actual, estimated]\n";
    assert!(cfg.contains(anchor));
    cfg.replace(anchor, &format!("{anchor}{column}"))
}

pub const TARIFF: &str = "    - name: tariff\n      type: string\n";
pub const HEADER_WITH_TARIFF: &str =
    "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type,tariff\n";

fn table_versions(w: &Workdir) -> Vec<String> {
    [
        "bronze.readings",
        "silver.readings",
        "rejected.readings",
        "gold.daily_usage",
    ]
    .iter()
    .map(|t| {
        let h = w.medallion(&["history", t]);
        h.stdout.lines().nth(1).unwrap_or_default().to_string()
    })
    .collect()
}

fn assert_invariants(w: &Workdir) {
    crate::workdir::assert_batch_counts_and_unique_keys(w);
    assert_eq!(
        w.gold_recompute_diff(
            "gold.daily_usage",
            &crate::workdir::sample_model_sql(),
            "silver.readings"
        ),
        0
    );
}

#[test]
fn added_and_removed_columns_evolve_every_table() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.run_expect(0);
    let old_rows = w.count("FROM bronze.readings");

    // An optional column appears, with a file that has it (one row rejected).
    std::fs::write(
        w.root.join("config.yaml"),
        with_column(&sample_config(), TARIFF),
    )
    .unwrap();
    w.write_raw(
        "t1_with_tariff.csv",
        &format!(
            "{HEADER_WITH_TARIFF}\
             C000001,M00000001,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,1.5,actual,peak\n\
             C000001,M00000001,2026-02-01T01:00:00Z,2026-02-01T02:00:00Z,-3,actual,offpeak\n"
        ),
    );
    // A file without the optional column still loads, with nulls.
    w.write_raw(
        "t2_without_tariff.csv",
        "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n\
         C000002,M00000002,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,2.5,actual\n",
    );
    let r = w.run_expect(0);
    assert!(r.stdout.contains("loaded t1_with_tariff.csv"), "{r:?}");
    assert!(r.stdout.contains("loaded t2_without_tariff.csv"), "{r:?}");
    for table in ["bronze.readings", "silver.readings", "rejected.readings"] {
        assert_eq!(
            w.count(&format!(
                "FROM {table} WHERE _source_file = '{FILE1}' AND tariff IS NOT NULL"
            )),
            0,
            "{table}: old rows read as null"
        );
    }
    assert_eq!(
        w.scalar("SELECT tariff FROM silver.readings WHERE _source_file = 't1_with_tariff.csv'"),
        "peak"
    );
    assert_eq!(
        w.scalar("SELECT tariff FROM rejected.readings WHERE _source_file = 't1_with_tariff.csv'"),
        "offpeak"
    );
    assert_eq!(
        w.count(
            "FROM silver.readings WHERE _source_file = 't2_without_tariff.csv' AND tariff IS NULL"
        ),
        1
    );
    assert_eq!(w.count("FROM bronze.readings"), old_rows + 3);
    let h = w.medallion(&["history", "silver.readings"]);
    assert!(h.stdout.contains("ADD COLUMN"), "{h:?}");
    // Adding a column needs no table feature: the protocol stays reader 1 / writer 2.
    for table in ["bronze/readings", "silver/readings", "rejected/readings"] {
        let log = w.table_path(&format!("{table}/_delta_log"));
        for entry in std::fs::read_dir(&log).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with("00000000000000000000") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    !text.contains("\"protocol\""),
                    "{table} {name} changes the protocol"
                );
            }
        }
    }

    // A required column with a default: files without it load with the default.
    let cfg = with_column(
        &with_column(&sample_config(), TARIFF),
        "    - name: region\n      type: string\n      required: true\n      default: north\n",
    );
    std::fs::write(w.root.join("config.yaml"), &cfg).unwrap();
    w.write_raw(
        "t3_no_region.csv",
        &format!(
            "{HEADER_WITH_TARIFF}C000003,M00000003,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,1,actual,peak\n"
        ),
    );
    w.run_expect(0);
    assert_eq!(
        w.scalar("SELECT region FROM silver.readings WHERE _source_file = 't3_no_region.csv'"),
        "north"
    );
    assert_eq!(
        w.count("FROM silver.readings WHERE region IS NULL"),
        w.count("FROM silver.readings") - 1
    );

    // The column removed again: it stays in the tables, null for new rows.
    std::fs::write(
        w.root.join("config.yaml"),
        with_column(&sample_config(), TARIFF),
    )
    .unwrap();
    w.write_raw(
        "t4_after_removal.csv",
        &format!(
            "{HEADER_WITH_TARIFF}C000004,M00000004,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,1,actual,peak\n\
             C000003,M00000003,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,2,actual,peak\n"
        ),
    );
    w.run_expect(0);
    assert_eq!(
        w.count(
            "FROM silver.readings WHERE _source_file = 't4_after_removal.csv' AND region IS NULL"
        ),
        2,
        "new and updated rows have no region"
    );
    assert_eq!(
        w.count(
            "FROM bronze.readings WHERE _source_file = 't4_after_removal.csv' AND region IS NULL"
        ),
        2
    );
    assert_invariants(&w);
}

#[test]
fn incompatible_changes_are_refused_before_anything_is_written() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.run_expect(0);
    let versions = table_versions(&w);
    w.add_sample("readings_2026-01-04_corrections.csv");
    for (change, needles) in [
        (
            sample_config().replace("type: decimal(12,3)", "type: double"),
            vec![
                "silver/readings",
                "\"usage_kwh\"",
                "Decimal128(12, 3)",
                "Float64",
                "type cannot change",
            ],
        ),
        (
            with_column(
                &sample_config(),
                "    - name: tariff\n      type: string\n      required: true\n",
            ),
            vec![
                "silver/readings",
                "\"tariff\"",
                "required without a default",
            ],
        ),
        (
            sample_config().replace(
                "key: [customer_id, meter_id, start_time]",
                "key: [customer_id, start_time]",
            ),
            vec!["silver/readings", "key", "[\"customer_id\",\"start_time\"]"],
        ),
    ] {
        std::fs::write(w.root.join("config.yaml"), &change).unwrap();
        let r = w.medallion(&["run"]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("nothing was written"), "{r:?}");
        for n in needles {
            assert!(r.stderr.contains(n), "{n}: {r:?}");
        }
        let v = w.medallion(&["validate"]);
        assert_eq!(v.code, 2, "validate reports it too: {v:?}");
    }
    std::fs::write(w.root.join("config.yaml"), sample_config()).unwrap();
    assert_eq!(table_versions(&w), versions, "nothing was written");
    w.run_expect(0);
    assert_invariants(&w);
}
