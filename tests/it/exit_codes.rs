//! Exit codes mean one thing: 0 success; 1 a data or runtime failure (a bad file, a
//! `fail` rule, an unreadable file, a query that fails while running), the other files
//! still loading; 2 only for a wrong configuration or command line.

use crate::workdir::{REPO, Workdir};

const GOOD: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type\n\
    C000001,M00000001,2026-02-01T00:00:00Z,2026-02-01T01:00:00Z,1.5,actual\n";

#[test]
fn data_failures_exit_1_and_the_other_files_load() {
    let cfg = std::fs::read_to_string(std::path::Path::new(REPO).join("examples/readings.yaml"))
        .unwrap()
        .replace(
            "          min: 0\n          max: 500\n",
            "          min: 0\n          max: 500\n          action: fail\n",
        );
    let w = Workdir::with_config(&cfg);
    w.write_raw("a_good.csv", GOOD);
    w.write_raw("b_bad_header.csv", "nothing,like,the,header\n1,2,3,4\n");
    w.write_raw("c_fail_rule.csv", &GOOD.replace("1.5,actual", "900,actual"));
    // A file that cannot be read (even by root): a link to a file whose reads fail.
    std::os::unix::fs::symlink("/proc/self/mem", w.raw().join("d_unreadable.csv")).unwrap();
    w.write_raw(
        "e_good.csv",
        &GOOD.replace("T00:00", "T05:00").replace("T01:00", "T06:00"),
    );
    let r = w.run_expect(1);
    for file in ["b_bad_header.csv", "c_fail_rule.csv", "d_unreadable.csv"] {
        assert!(
            r.stdout.contains(&format!("FAILED {file}")),
            "{file}: {r:?}"
        );
    }
    assert!(r.stdout.contains("loaded a_good.csv"), "{r:?}");
    assert!(r.stdout.contains("loaded e_good.csv"), "{r:?}");
    assert_eq!(w.count("FROM silver.readings"), 2);
    // Failed files are tried again, and fail again: still 1.
    w.run_expect(1);
}

#[test]
fn configuration_and_command_line_errors_exit_2() {
    let w = Workdir::with_config("lakehouse: lakehouse\nsource: {}\n");
    assert_eq!(w.medallion(&["run"]).code, 2);
    assert_eq!(w.medallion(&["validate"]).code, 2);
    let w = Workdir::sample_config();
    assert_eq!(w.medallion(&["run", "--lease-ttl", "0"]).code, 2);
    assert_eq!(w.medallion(&["frobnicate"]).code, 2);
    w.write_raw("a.csv", GOOD);
    assert_eq!(w.run_expect(0).code, 0);
    let r = w.medallion(&["query", "SELEC 1"]);
    assert_eq!(r.code, 2, "a query that does not parse: {r:?}");
    let r = w.medallion(&["query", "SELECT nope FROM silver.readings"]);
    assert_eq!(r.code, 2, "a query that does not plan: {r:?}");
    let r = w.medallion(&["query", "SELECT CAST('x' AS INT) FROM silver.readings"]);
    assert_eq!(r.code, 1, "a query that fails while running: {r:?}");
}
