//! Gold equals its SQL over silver for every model the configuration accepts: models
//! with HAVING, a rank window, `date_trunc`, a global aggregate under a constant key and
//! `COUNT(DISTINCT …)`, beside `daily_usage`, after new data, after corrections and
//! after a batch that removes a key's last row. Models that can never equal a
//! recompute are refused, and `validate` prints each model's maintenance mode.

use crate::workdir::{Workdir, sample_model_sql};

pub const HEADER: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n";

/// Hourly readings of `customers` customers with two meters each, on `days` days
/// starting at 2026-03-0`first_day`; usage and reading type from `value(c, m, day, h)`.
pub fn readings(
    customers: usize,
    first_day: u32,
    days: u32,
    value: impl Fn(usize, usize, u32, u32) -> (String, &'static str),
) -> String {
    let mut s = String::from(HEADER);
    for c in 1..=customers {
        for m in 0..2 {
            for d in first_day..first_day + days {
                for h in 0..24 {
                    let (kwh, kind) = value(c, m, d, h);
                    s.push_str(&format!(
                        "C{c:06},M{:08},2026-03-{d:02}T{h:02}:00:00Z,2026-03-{d:02}T{h:02}:59:59Z,{kwh},{kind}\n",
                        c * 10 + m
                    ));
                }
            }
        }
    }
    s
}

pub fn base_value(c: usize, m: usize, d: u32, h: u32) -> (String, &'static str) {
    let kwh = (c * 7 + m * 3 + d as usize * 5 + h as usize) % 17;
    let kind = if (c + h as usize).is_multiple_of(5) {
        "estimated"
    } else {
        "actual"
    };
    (
        format!("{kwh}.{:03}", (c * 131 + h as usize * 17) % 1000),
        kind,
    )
}

/// (name, keys, SQL) of the models tested beside `daily_usage`.
pub const MODELS: [(&str, &str, &str); 5] = [
    (
        "busy_days",
        "[customer_id, usage_date]",
        "SELECT customer_id, CAST(start_time AS DATE) AS usage_date, COUNT(*) AS n, SUM(usage_kwh) AS kwh FROM silver WHERE reading_type = 'actual' GROUP BY customer_id, CAST(start_time AS DATE) HAVING COUNT(*) >= 20",
    ),
    (
        "daily_rank",
        "[usage_date, customer_id]",
        "SELECT usage_date, customer_id, kwh, RANK() OVER (PARTITION BY usage_date ORDER BY kwh DESC) AS rnk FROM (SELECT CAST(start_time AS DATE) AS usage_date, customer_id, SUM(usage_kwh) AS kwh FROM silver WHERE reading_type = 'actual' GROUP BY 1, 2) d",
    ),
    (
        "monthly",
        "[customer_id, month]",
        "SELECT customer_id, date_trunc('month', start_time) AS month, SUM(usage_kwh) AS kwh, COUNT(*) AS n FROM silver WHERE reading_type = 'actual' GROUP BY 1, 2",
    ),
    (
        "totals",
        "[scope]",
        "SELECT 'all' AS scope, COUNT(*) AS readings, SUM(usage_kwh) AS kwh, MAX(start_time) AS last_start FROM silver WHERE reading_type = 'actual'",
    ),
    (
        "meters",
        "[customer_id]",
        "SELECT customer_id, COUNT(DISTINCT meter_id) AS meters, COUNT(DISTINCT CAST(start_time AS DATE)) AS days FROM silver WHERE reading_type = 'actual' GROUP BY customer_id",
    ),
];

/// The sample configuration with `models` added to its gold section.
pub fn config_with_models(models: &[(&str, &str, &str)]) -> String {
    let mut cfg = std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
    .unwrap();
    for (name, keys, sql) in models {
        cfg.push_str(&format!(
            "  - name: {name}\n    keys: {keys}\n    sql: \"{sql}\"\n"
        ));
    }
    cfg
}

/// Every model's gold table equals its SQL over silver (both ways, with multiplicity).
pub fn assert_every_model_is_its_sql(w: &Workdir, models: &[(&str, &str, &str)], when: &str) {
    let daily = w.gold_recompute_diff("gold.daily_usage", &sample_model_sql(), "silver.readings");
    assert_eq!(daily, 0, "{when}: gold.daily_usage differs from its SQL");
    for (name, _, sql) in models {
        let diff = w.gold_recompute_diff(&format!("gold.{name}"), sql, "silver.readings");
        assert_eq!(
            diff, 0,
            "{when}: gold.{name} differs from its SQL on {diff} rows"
        );
    }
}

#[test]
fn every_model_equals_its_sql_after_new_data_corrections_and_lost_keys() {
    let w = Workdir::with_config(&config_with_models(&MODELS));
    let v = w.medallion(&["validate"]);
    assert_eq!(v.code, 0, "{v:?}");
    for (model, mode) in [
        ("daily_usage", "incremental"),
        ("busy_days", "incremental"),
        (
            "daily_rank",
            "full recompute every batch: a window function",
        ),
        ("monthly", "incremental"),
        ("totals", "full recompute every batch: a global aggregate"),
        ("meters", "incremental"),
    ] {
        let line = v
            .stdout
            .lines()
            .find(|l| l.contains(&format!("gold.{model} ")))
            .unwrap_or_else(|| panic!("validate lists gold.{model}: {v:?}"));
        assert!(line.contains(mode), "{model}: {line}");
    }

    // New data: three customers on two days.
    w.write_raw("a_first.csv", &readings(3, 1, 2, base_value));
    w.run_expect(0);
    assert_every_model_is_its_sql(&w, &MODELS, "after the first file");
    assert!(w.count("FROM gold.busy_days") > 0, "HAVING keeps some keys");

    // A later day, plus corrections: customer 2's day 1 gets mostly estimated readings
    // (busy_days' HAVING now filters that key although its rows changed, and daily_rank
    // re-ranks the day) and customer 3's usage on day 2 rises.
    let mut corrections = readings(3, 3, 1, base_value);
    for line in readings(3, 1, 2, |c, m, d, h| {
        let (kwh, kind) = base_value(c, m, d, h);
        match (c, d) {
            (2, 1) if h >= 4 => (kwh, "estimated"),
            (3, 2) => ("42.500".to_string(), kind),
            _ => (kwh, kind),
        }
    })
    .lines()
    .skip(1)
    .filter(|l| {
        (l.starts_with("C000002") && l.contains("2026-03-01"))
            || (l.starts_with("C000003") && l.contains("2026-03-02"))
    }) {
        corrections.push_str(line);
        corrections.push('\n');
    }
    w.write_raw("b_corrections.csv", &corrections);
    let r = w.run_expect(0);
    assert!(r.stdout.contains("updated"), "{r:?}");
    assert_every_model_is_its_sql(&w, &MODELS, "after corrections");
    assert_eq!(
        w.count(
            "FROM gold.busy_days WHERE customer_id = 'C000002' AND usage_date = DATE '2026-03-01'"
        ),
        0,
        "the HAVING now filters the corrected key"
    );

    // Customer 1's every reading becomes estimated: every model filtering on actual
    // readings loses that customer's keys (its last rows are gone).
    let lost = readings(1, 1, 3, |c, m, d, h| {
        (base_value(c, m, d, h).0, "estimated")
    });
    w.write_raw("c_estimated.csv", &lost);
    w.run_expect(0);
    assert_every_model_is_its_sql(&w, &MODELS, "after a batch that removes keys");
    for model in ["busy_days", "daily_rank", "monthly", "meters"] {
        assert_eq!(
            w.count(&format!("FROM gold.{model} WHERE customer_id = 'C000001'")),
            0,
            "gold.{model} dropped customer 1"
        );
    }
    crate::workdir::assert_batch_counts_and_unique_keys(&w);
}

#[test]
fn models_that_cannot_equal_a_recompute_are_refused() {
    let cfg = config_with_models(&[
        (
            "stamped",
            "[customer_id]",
            "SELECT customer_id, now() AS computed_at FROM silver GROUP BY customer_id",
        ),
        (
            "sampled",
            "[customer_id]",
            "SELECT customer_id, usage_kwh FROM silver LIMIT 10",
        ),
        (
            "noisy",
            "[customer_id]",
            "SELECT customer_id, SUM(usage_kwh) * random() AS x FROM silver GROUP BY customer_id",
        ),
        (
            "not_unique",
            "[customer_id]",
            "SELECT customer_id, SUM(usage_kwh) AS kwh FROM silver GROUP BY customer_id, meter_id",
        ),
    ]);
    let w = Workdir::with_config(&cfg);
    let v = w.medallion(&["validate"]);
    assert_eq!(v.code, 2, "{v:?}");
    assert!(v.stderr.contains("4 problems"), "{v:?}");
    for (place, why) in [
        ("gold[1].sql", "now() can give a different result"),
        ("gold[2].sql", "LIMIT without ORDER BY"),
        ("gold[3].sql", "random() can give a different result"),
        ("gold[4].sql", "do not identify a row"),
    ] {
        assert!(v.stderr.contains(&format!("{place}: ")), "{place}: {v:?}");
        assert!(v.stderr.contains(why), "{why}: {v:?}");
    }
    w.write_raw("a.csv", &readings(1, 1, 1, base_value));
    let r = w.medallion(&["run"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!w.table_path("bronze").exists(), "nothing written");
}

#[test]
fn null_group_keys_are_updated_and_deleted_like_any_other() {
    use crate::config_changes::{HEADER_WITH_TARIFF, TARIFF, with_column};
    let models = [
        (
            "per_tariff",
            "[tariff]",
            "SELECT tariff, COUNT(*) AS n, SUM(usage_kwh) AS kwh FROM silver GROUP BY tariff",
        ),
        (
            "tariff_rank",
            "[tariff]",
            "SELECT tariff, n, RANK() OVER (ORDER BY n DESC) AS r FROM (SELECT tariff, COUNT(*) AS n FROM silver GROUP BY tariff) t",
        ),
    ];
    let base = std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
    .unwrap();
    let mut cfg = with_column(&base, TARIFF);
    for (name, keys, sql) in models {
        cfg.push_str(&format!(
            "  - name: {name}\n    keys: {keys}\n    sql: \"{sql}\"\n"
        ));
    }
    let w = Workdir::with_config(&cfg);
    let row = |m: u32, h: u32, kwh: &str, tariff: &str| {
        format!(
            "C000001,M0000000{m},2026-03-01T{h:02}:00:00Z,2026-03-01T{h:02}:59:59Z,{kwh},actual,{tariff}\n"
        )
    };
    let mut f1 = String::from(HEADER_WITH_TARIFF);
    for h in 0..6 {
        f1.push_str(&row(1, h, "1.000", if h % 2 == 0 { "" } else { "peak" }));
    }
    w.write_raw("a.csv", &f1);
    w.run_expect(0);
    assert_every_model_is_its_sql(&w, &models, "after the first file");
    assert_eq!(w.count("FROM gold.per_tariff WHERE tariff IS NULL"), 1);
    // The null group changes (one more row, one corrected); then it loses every row.
    w.write_raw(
        "b.csv",
        &format!(
            "{HEADER_WITH_TARIFF}{}{}",
            row(1, 0, "5.000", ""),
            row(2, 0, "2.000", "")
        ),
    );
    w.run_expect(0);
    assert_every_model_is_its_sql(&w, &models, "after the null group changed");
    assert_eq!(w.count("FROM gold.per_tariff WHERE tariff IS NULL"), 1);
    assert_eq!(w.count("FROM gold.tariff_rank WHERE tariff IS NULL"), 1);
    let mut c = String::from(HEADER_WITH_TARIFF);
    for h in [0, 2, 4] {
        c.push_str(&row(1, h, "1.000", "offpeak"));
    }
    c.push_str(&row(2, 0, "2.000", "offpeak"));
    w.write_raw("c.csv", &c);
    w.run_expect(0);
    assert_every_model_is_its_sql(&w, &models, "after the null group lost its rows");
    assert_eq!(w.count("FROM gold.per_tariff WHERE tariff IS NULL"), 0);
    assert_eq!(w.count("FROM gold.tariff_rank WHERE tariff IS NULL"), 0);
}

#[test]
fn a_full_model_whose_keys_repeat_fails_with_the_model_named() {
    let cfg = config_with_models(&[(
        "meter_rank",
        "[customer_id]",
        "SELECT customer_id, kwh, RANK() OVER (ORDER BY kwh DESC) AS r FROM (SELECT customer_id, meter_id, SUM(usage_kwh) AS kwh FROM silver GROUP BY 1, 2) t",
    )]);
    let w = Workdir::with_config(&cfg);
    assert_eq!(w.medallion(&["validate"]).code, 0);
    w.write_raw("a.csv", &readings(2, 1, 1, base_value));
    let r = w.run_expect(1);
    assert!(
        r.stdout
            .contains("gold model meter_rank: its keys [customer_id] do not identify a row"),
        "{r:?}"
    );
}
