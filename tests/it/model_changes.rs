//! Model changes: a gold table carries its model's fingerprint; a changed model is
//! rebuilt from silver in one overwrite commit by the next run (even with no new
//! files), adopting the new schema; time travel still reaches the old output; a
//! removed model's table is left alone and flagged; a renamed model is a new table.

use crate::workdir::{REPO, Workdir, sample_model_sql};

const FILE1: &str = "readings_2026-01-01.csv";
const FILE2: &str = "readings_2026-01-04_corrections.csv";

fn sample_config() -> String {
    std::fs::read_to_string(std::path::Path::new(REPO).join("examples/readings.yaml")).unwrap()
}

fn set_config(w: &Workdir, cfg: &str) {
    std::fs::write(w.root.join("config.yaml"), cfg).unwrap();
}

fn model_sql(cfg: &str) -> String {
    let start = cfg.find("SELECT customer_id").unwrap();
    cfg[start..].trim().to_string()
}

fn columns(w: &Workdir, table: &str, as_of: Option<&str>) -> Vec<String> {
    let rows = w.query_as_of(&format!("SELECT * FROM {table} LIMIT 1"), as_of);
    rows[0].keys().cloned().collect()
}

#[test]
fn a_changed_model_is_rebuilt_with_its_new_schema() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.run_expect(0);
    let before = w.scalar("SELECT CAST(SUM(total_kwh) AS VARCHAR) FROM gold.daily_usage");
    let v_before: i64 = w
        .medallion(&["history", "gold.daily_usage"])
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // A measure added: the next run rebuilds gold with the new column, with no new file.
    let with_peak = sample_config().replace(
        "MAX(end_time)                                              AS last_end",
        "MAX(end_time) AS last_end, MAX(usage_kwh) AS peak_kwh",
    );
    assert_ne!(with_peak, sample_config());
    set_config(&w, &with_peak);
    let status = w.medallion(&["status"]);
    assert!(
        status
            .stdout
            .contains("gold.daily_usage: the next run rebuilds it (model changed"),
        "{status:?}"
    );
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("gold.daily_usage: model changed: rebuilt"),
        "{r:?}"
    );
    assert!(columns(&w, "gold.daily_usage", None).contains(&"peak_kwh".to_string()));
    assert_eq!(
        w.gold_recompute_diff(
            "gold.daily_usage",
            &model_sql(&with_peak),
            "silver.readings"
        ),
        0
    );
    let h = w.medallion(&["history", "gold.daily_usage"]);
    let newest = h.stdout.lines().nth(1).unwrap();
    assert!(newest.contains("model changed: rebuilt"), "{h:?}");
    assert!(newest.contains("WRITE"), "one overwrite commit: {h:?}");
    // Time travel reaches the old model's output, without the new column.
    let old = v_before.to_string();
    assert!(!columns(&w, "gold.daily_usage", Some(&old)).contains(&"peak_kwh".to_string()));
    assert_eq!(
        w.query_as_of(
            "SELECT CAST(SUM(total_kwh) AS VARCHAR) AS s FROM gold.daily_usage",
            Some(&old)
        )[0]["s"],
        serde_json::Value::String(before)
    );
    // Nothing changed since: nothing to do.
    let again = w.run_expect(0);
    assert!(again.stdout.contains("nothing to do"), "{again:?}");

    // SUM becomes AVG, a column is dropped and another retyped: every row gets the new
    // meaning, old keys as well as new ones.
    let reshaped = with_peak
        .replace("SUM(usage_kwh)  ", "AVG(usage_kwh)  ")
        .replace(
            "SUM(CASE WHEN reading_type = 'estimated' THEN 1 ELSE 0 END) AS estimated_count,",
            "",
        )
        .replace("COUNT(*)  ", "CAST(COUNT(*) AS DOUBLE)  ");
    assert!(reshaped.contains("AVG(usage_kwh)") && !reshaped.contains("estimated_count"));
    set_config(&w, &reshaped);
    let r = w.run_expect(0);
    assert!(r.stdout.contains("model changed: rebuilt"), "{r:?}");
    let cols = columns(&w, "gold.daily_usage", None);
    assert!(!cols.contains(&"estimated_count".to_string()), "{cols:?}");
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &model_sql(&reshaped), "silver.readings"),
        0
    );
    // Later batches maintain the new model incrementally.
    w.add_sample(FILE2);
    w.run_expect(0);
    assert_eq!(
        w.gold_recompute_diff("gold.daily_usage", &model_sql(&reshaped), "silver.readings"),
        0
    );
    assert_eq!(
        w.scalar("SELECT arrow_typeof(reading_count) FROM gold.daily_usage LIMIT 1"),
        "Float64"
    );
}

/// The number of commits in a Delta log directory.
fn commits(log: &std::path::Path) -> usize {
    std::fs::read_dir(log)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count()
}

#[test]
fn removed_models_are_left_alone_and_renamed_models_are_new_tables() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    w.run_expect(0);
    let rows = w.count("FROM gold.daily_usage");
    let renamed = sample_config().replace("name: daily_usage", "name: usage_per_day");
    set_config(&w, &renamed);
    let r = w.run_expect(0);
    assert!(
        r.stdout
            .contains("gold.usage_per_day: model added: built from silver"),
        "{r:?}"
    );
    assert_eq!(w.count("FROM gold.usage_per_day"), rows);
    assert_eq!(
        w.gold_recompute_diff("gold.usage_per_day", &sample_model_sql(), "silver.readings"),
        0
    );
    let status = w.medallion(&["status"]);
    assert!(
        status
            .stdout
            .contains("gold.daily_usage: its model is no longer in the configuration"),
        "{status:?}"
    );
    // The old table is untouched: still its last version and rows.
    let log = w.table_path("gold/daily_usage/_delta_log");
    let versions = commits(&log);
    w.add_sample(FILE2);
    w.run_expect(0);
    let after = commits(&log);
    assert_eq!(versions, after, "a removed model's table is left alone");
    assert_eq!(
        w.gold_recompute_diff("gold.usage_per_day", &sample_model_sql(), "silver.readings"),
        0
    );
    let rebuilt_history = w.medallion(&["history", "gold.usage_per_day"]);
    assert!(
        rebuilt_history.stdout.contains("MERGE"),
        "{rebuilt_history:?}"
    );
}
