//! Rule actions: `warn` keeps the row and counts it; `fail` stops the file with the rule
//! and line named, commits nothing for it, and the other files still load.

use crate::workdir::{Workdir, expected, text};

const FILE1: &str = "readings_2026-01-01.csv";

fn config_with_fail_rule() -> String {
    let cfg = std::fs::read_to_string(
        std::path::Path::new(crate::workdir::REPO).join("examples/readings.yaml"),
    )
    .unwrap();
    cfg.replace(
        "          min: 0\n          max: 500\n",
        "          min: 0\n          max: 500\n          action: fail\n",
    )
}

#[test]
fn warn_rows_are_kept_and_counted() {
    let w = Workdir::sample_config();
    w.add_sample(FILE1);
    let r = w.run_expect(0);
    let exp = expected();
    let warned = exp["files"][FILE1]["warned"]["plausible_hourly_usage"]
        .as_u64()
        .unwrap();
    assert!(
        r.stdout
            .contains(&format!("plausible_hourly_usage: {warned} rows kept")),
        "{r:?}"
    );
    assert_eq!(
        w.count("FROM silver.readings WHERE usage_kwh > 100"),
        warned
    );
    for line in exp["files"][FILE1]["warned_lines"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert_eq!(
            w.count(&format!("FROM silver.readings WHERE _source_line = {line}")),
            1,
            "line {line} kept"
        );
    }
}

#[test]
fn fail_rule_stops_only_its_file() {
    let w = Workdir::with_config(&config_with_fail_rule());
    w.add_sample(FILE1);
    w.write_raw(
        "good.csv",
        "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n\
         C000001,M00000001,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,1.5,actual\n\
         C000001,M00000001,2026-02-01T01:00:00Z,2026-02-01T02:00:00Z,1.25,\n",
    );
    let r = w.run_expect(1);
    let first_bad = expected()["files"][FILE1]["rejected_line_details"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, d)| {
            d.as_array()
                .unwrap()
                .iter()
                .any(|x| text(&x["rule"]) == "usage_kwh_range")
        })
        .map(|(l, _)| l.parse::<u64>().unwrap())
        .min()
        .unwrap();
    assert!(r.stdout.contains(&format!("FAILED {FILE1}")), "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "{FILE1}:{first_bad}: rule `usage_kwh_range` failed"
        )),
        "names the file, line and rule: {r:?}"
    );
    assert!(r.stdout.contains("loaded good.csv"), "{r:?}");
    assert_eq!(
        w.count(&format!(
            "FROM bronze.readings WHERE _source_file = '{FILE1}'"
        )),
        0,
        "nothing committed"
    );
    assert_eq!(
        w.count(&format!(
            "FROM rejected.readings WHERE _source_file = '{FILE1}'"
        )),
        0
    );
    assert_eq!(w.count("FROM silver.readings"), 2);
    assert_eq!(
        w.count(&format!(
            "FROM _medallion.files WHERE file = '{FILE1}' AND status = 'failed'"
        )),
        1
    );
    // The failed file stays pending and is retried (and fails again) on the next run.
    let again = w.run_expect(1);
    assert!(
        again.stdout.contains(&format!("FAILED {FILE1}")),
        "{again:?}"
    );
    let s = w.medallion(&["status"]);
    assert!(s.stdout.contains("files pending: 1"), "{s:?}");
}
