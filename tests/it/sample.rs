//! The bundled sample with its configuration (`config.yaml`): readings and customer
//! snapshots, joined in `gold.regional_daily_usage`. Step by step (a readings batch, a
//! customer who moves region, one deleted, one new, corrections and a late reading)
//! every model equals its SQL over the current silver tables, and the end state is the
//! generator's independent expectation (`tests/fixtures/sample_expected.json`).

use std::path::Path;

use serde_json::Value;

use crate::workdir::{REPO, Workdir, assert_source_counts, expected, text};

/// The repository's config.yaml, with an empty landing zone.
fn sample() -> Workdir {
    Workdir::with_config(&std::fs::read_to_string(Path::new(REPO).join("config.yaml")).unwrap())
}

/// The SQL of gold model `name` in configuration text `config` (its `sql: |` block).
pub fn model_sql(config: &str, name: &str) -> String {
    let at = config
        .find(&format!("- name: {name}\n"))
        .unwrap_or_else(|| panic!("no model {name}"));
    let block = &config[at..];
    let sql_at = block.find("sql: |\n").unwrap() + "sql: |\n".len();
    let mut lines = Vec::new();
    for line in block[sql_at..].lines() {
        if !line.starts_with("      ") && !line.trim().is_empty() {
            break;
        }
        lines.push(line.trim());
    }
    lines.join(" ").trim().to_string()
}

/// Every model of config.yaml equals its SQL over silver.
fn assert_models_are_their_sql(w: &Workdir) {
    let config = std::fs::read_to_string(w.root.join("config.yaml")).unwrap();
    for model in ["daily_usage", "regional_daily_usage"] {
        let sql = model_sql(&config, model);
        let diff = w.gold_sql_diff(&format!("gold.{model}"), &sql);
        assert_eq!(diff, 0, "gold.{model} = its SQL over silver");
    }
    assert_source_counts(w, "readings", &["customer_id", "meter_id", "start_time"]);
    assert_source_counts(w, "customers", &["customer_id"]);
}

/// silver.customers as (id, region, tariff), sorted.
fn customers(w: &Workdir) -> Vec<(String, String, String)> {
    w.query("SELECT customer_id, region, tariff FROM silver.customers ORDER BY customer_id")
        .iter()
        .map(|r| {
            (
                text(&r["customer_id"]),
                text(&r["region"]),
                text(&r["tariff"]),
            )
        })
        .collect()
}

fn expected_customers(e: &Value, key: &str) -> Vec<(String, String, String)> {
    e[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                text(&r["customer_id"]),
                text(&r["region"]),
                text(&r["tariff"]),
            )
        })
        .collect()
}

/// `run --json`'s silver counts of the batch of `file`.
fn silver_counts(run: &Value, file: &str) -> (u64, u64, u64) {
    let batch = run["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["file"] == file)
        })
        .unwrap_or_else(|| panic!("no batch of {file}: {run:#}"));
    let n = |k: &str| batch["silver"][k].as_u64().unwrap();
    (n("inserted"), n("updated"), n("deleted"))
}

fn run_json(w: &Workdir) -> Value {
    let r = w.medallion(&["run", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn the_sample_step_by_step_keeps_every_model_equal_to_its_sql() {
    let e = expected();
    let w = sample();
    // Readings and the first customer snapshot.
    w.add_sample("readings_2026-01-01.csv");
    w.add_sample("customers_2026-01-01.csv");
    run_json(&w);
    assert_eq!(
        customers(&w),
        expected_customers(&e, "customers_after_first")
    );
    assert_eq!(w.count("FROM rejected.customers"), 1);
    assert_eq!(
        w.scalar("SELECT _source_line FROM rejected.customers"),
        "8",
        "the bad customer id's line"
    );
    assert_models_are_their_sql(&w);

    // The second snapshot: one customer moves region, one is gone, one is new.
    w.add_sample("customers_2026-01-04.csv");
    let run = run_json(&w);
    assert_eq!(silver_counts(&run, "customers_2026-01-04.csv"), (1, 1, 1));
    assert_eq!(customers(&w), expected_customers(&e, "customers_after_all"));
    assert_models_are_their_sql(&w);

    // Corrections and new readings.
    w.add_sample("readings_2026-01-04_corrections.csv");
    run_json(&w);
    assert_models_are_their_sql(&w);
    let row = |r: &serde_json::Map<String, Value>| {
        ["region", "usage_date", "total_kwh", "reading_count"].map(|c| text(&r[c]))
    };
    let regional: Vec<[String; 4]> = w
        .query(
            "SELECT region, CAST(usage_date AS VARCHAR) AS usage_date, \
             CAST(total_kwh AS VARCHAR) AS total_kwh, reading_count \
             FROM gold.regional_daily_usage ORDER BY region, usage_date",
        )
        .iter()
        .map(row)
        .collect();
    let want: Vec<[String; 4]> = e["gold_regional_daily_usage_after_all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| row(r.as_object().unwrap()))
        .collect();
    assert_eq!(regional, want);

    // A late reading for the first day: only its region's and customer's rows change.
    w.write_raw(
        "readings_2026-01-05_late.csv",
        "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n\
         C046989,M00589537,2025-12-31T23:00:00Z,2026-01-01T00:00:00Z,1.000,actual\n",
    );
    run_json(&w);
    assert_models_are_their_sql(&w);
    assert_eq!(
        w.count("FROM gold.regional_daily_usage WHERE region = 'west' AND usage_date = DATE '2025-12-31'"),
        1
    );

    // A customer with readings is gone from the next snapshot: its readings leave the
    // joined model (an inner join), and the other models stay as they were.
    let third: String =
        std::fs::read_to_string(Path::new(REPO).join("lakehouse/raw/customers_2026-01-04.csv"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("C046989,"))
            .map(|l| format!("{l}\n"))
            .collect();
    w.write_raw("customers_2026-01-06.csv", &third);
    let daily = w.newest_version("gold.daily_usage");
    let run = run_json(&w);
    assert_eq!(silver_counts(&run, "customers_2026-01-06.csv"), (0, 0, 1));
    assert_models_are_their_sql(&w);
    assert_eq!(
        w.scalar("SELECT CAST(SUM(reading_count) AS VARCHAR) FROM gold.regional_daily_usage"),
        w.scalar(
            "SELECT CAST(COUNT(*) AS VARCHAR) FROM silver.readings \
             WHERE customer_id <> 'C046989'"
        ),
        "every reading but the gone customer's"
    );
    assert_eq!(w.newest_version("gold.daily_usage"), daily);
}

#[test]
fn the_sample_in_one_run_is_the_expected_end_state() {
    let e = expected();
    let w = sample();
    for f in [
        "readings_2026-01-01.csv",
        "readings_2026-01-04_corrections.csv",
        "customers_2026-01-01.csv",
        "customers_2026-01-04.csv",
    ] {
        w.add_sample(f);
    }
    run_json(&w);
    assert_eq!(customers(&w), expected_customers(&e, "customers_after_all"));
    assert_eq!(
        w.count("FROM silver.readings").to_string(),
        e["silver_rows_after_all"].to_string()
    );
    assert_eq!(
        w.count("FROM gold.regional_daily_usage").to_string(),
        e["gold_regional_daily_usage_rows_after_all"].to_string()
    );
    assert_models_are_their_sql(&w);
    // Each snapshot is its own batch, applied in name order.
    assert_eq!(
        w.count("FROM _medallion.files WHERE source = 'customers' AND status = 'loaded'"),
        2
    );
}

/// A gold refresh runs with a memory cap, a table's first fill as well as a later
/// batch's recompute by keys; a refresh whose operators cannot stay under it is done
/// again without one, and every model is still its SQL.
#[test]
fn gold_refreshed_again_without_a_memory_cap_is_its_sql() {
    for (cap, again) in [("1", true), ("268435456", false)] {
        let mut w = sample();
        w.env.push(("MEDALLION_GOLD_MEMORY".into(), cap.into()));
        w.env.push((
            "MEDALLION_LOG".into(),
            "medallion::zones::gold=debug".into(),
        ));
        for files in [
            &["readings_2026-01-01.csv", "customers_2026-01-01.csv"][..],
            &["readings_2026-01-04_corrections.csv"],
        ] {
            for f in files {
                w.add_sample(f);
            }
            let r = w.run_expect(0);
            let again_here = r.stderr.contains("refreshing again without a memory cap");
            assert_eq!(again_here, again, "cap {cap}, {files:?}: {}", r.stderr);
            assert_models_are_their_sql(&w);
        }
    }
}

/// DuckDB, Sail and Polars read every table of the sample's two sources.
#[test]
fn readers_read_every_table_of_both_sources() {
    let w = sample();
    for f in [
        "readings_2026-01-01.csv",
        "readings_2026-01-04_corrections.csv",
        "customers_2026-01-01.csv",
        "customers_2026-01-04.csv",
    ] {
        w.add_sample(f);
    }
    run_json(&w);
    let tables = [
        "bronze/readings",
        "silver/readings",
        "rejected/readings",
        "bronze/customers",
        "silver/customers",
        "rejected/customers",
        "gold/daily_usage",
        "gold/regional_daily_usage",
        "_medallion/files",
        "_medallion/runs",
    ];
    let results = crate::interop::read_with_all(&w, &tables, None);
    let readers = results.as_object().unwrap();
    assert_eq!(
        readers.len(),
        3,
        "duckdb, spark and polars all ran: {results}"
    );
    let regional =
        w.scalar("SELECT CAST(SUM(total_kwh) AS VARCHAR) FROM gold.regional_daily_usage");
    for (reader, per_table) in readers {
        for t in tables {
            let ours = w.count(&format!("FROM {}", t.replace('/', ".")));
            assert_eq!(
                per_table[t]["row_count"].as_u64(),
                Some(ours),
                "{reader} count of {t}"
            );
        }
        assert_eq!(
            text(&per_table["gold/regional_daily_usage"]["sums"]["total_kwh"]),
            regional,
            "{reader} regional sum"
        );
    }
}
