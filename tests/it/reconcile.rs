//! `medallion reconcile`: a gold model against a reference file of expected values —
//! matches, differences beyond the tolerance, keys missing on either side, the exit
//! code, the `--json` document, and references that cannot be compared.

use serde_json::Value;

use crate::workdir::Workdir;

/// Two customers over two days: daily_usage holds four keys with known totals
/// (C000001 2026-03-01: 3.500 kWh in 2 readings; 2026-03-02: 2.000 in 1;
/// C000002 2026-03-01: 0.250 in 1; 2026-03-02: 4.000 in 2).
const READINGS: &str = "customer_id,meter_id,start_time,end_time,usage_kwh,reading_type
C000001,M00000001,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,1.500,actual
C000001,M00000001,2026-03-01T01:00:00Z,2026-03-01T02:00:00Z,2.000,actual
C000001,M00000001,2026-03-02T00:00:00Z,2026-03-02T01:00:00Z,2.000,estimated
C000002,M00000002,2026-03-01T05:00:00Z,2026-03-01T06:00:00Z,0.250,actual
C000002,M00000002,2026-03-02T05:00:00Z,2026-03-02T06:00:00Z,1.000,actual
C000002,M00000002,2026-03-02T06:00:00Z,2026-03-02T07:00:00Z,3.000,actual
";

fn loaded() -> Workdir {
    let w = Workdir::sample_config();
    w.write_raw("readings_2026-03-02.csv", READINGS);
    w.run_expect(0);
    w
}

fn reconcile(w: &Workdir, reference: &str, extra: &[&str]) -> crate::workdir::Run {
    let path = w.root.join("billing.csv");
    std::fs::write(&path, reference).unwrap();
    let mut args = vec!["reconcile", "--reference", path.to_str().unwrap()];
    args.extend(extra);
    w.medallion(&args)
}

fn json(w: &Workdir, reference: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json"];
    args.extend(extra);
    let r = reconcile(w, reference, &args);
    let doc = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r.code, doc)
}

#[test]
fn a_reference_that_agrees_within_the_tolerance_reconciles() {
    let w = loaded();
    // Columns in another order than gold's, one of them compared; 3.5004 is within
    // the default tolerance of 0.001, and a semicolon-separated file is sniffed.
    let reference = "usage_date;total_kwh;customer_id
2026-03-01;3.5004;C000001
2026-03-02;2;C000001
2026-03-01;0.250;C000002
2026-03-02;4.000;C000002
";
    let r = reconcile(&w, reference, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("matches:               4"), "{r:?}");
    assert!(r.stdout.contains("reconciled: every key matches"), "{r:?}");
    let (code, doc) = json(&w, reference, &["--model", "daily_usage"]);
    assert_eq!(code, 0);
    assert_eq!(doc["model"], "daily_usage");
    assert_eq!(
        doc["keys"],
        serde_json::json!(["customer_id", "usage_date"])
    );
    assert_eq!(doc["columns"], serde_json::json!(["total_kwh"]));
    for (field, n) in [
        ("reference_rows", 4),
        ("gold_rows", 4),
        ("matches", 4),
        ("differences", 0),
        ("missing_in_gold", 0),
        ("missing_in_reference", 0),
    ] {
        assert_eq!(doc[field], n, "{field}: {doc:#}");
    }
    // A tighter tolerance turns the 0.0004 into a difference.
    let (code, doc) = json(&w, reference, &["--tolerance", "0.0001"]);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["differences"], 1, "{doc:#}");
    assert_eq!(doc["matches"], 3, "{doc:#}");
}

#[test]
fn differences_and_keys_missing_on_either_side_are_reported_and_exit_1() {
    let w = loaded();
    // C000001 2026-03-02 is 2.5 in the reference (gold 2.000) and counts 1 reading as
    // gold does; C000002 2026-03-02 is left out; C000003 is not in gold.
    let reference = "customer_id,usage_date,total_kwh,reading_count
C000001,2026-03-01,3.500,2
C000001,2026-03-02,2.5,1
C000002,2026-03-01,0.250,
C000003,2026-03-01,9.000,3
";
    let r = reconcile(&w, reference, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("NOT reconciled"), "{r:?}");
    assert!(
        r.stdout.contains("differs: customer_id=C000001, usage_date=2026-03-02 | total_kwh: gold 2.000 reference 2.5"),
        "{r:?}"
    );
    let (code, doc) = json(&w, reference, &[]);
    assert_eq!(code, 1);
    assert_eq!(doc["matches"], 1, "{doc:#}");
    // C000002 2026-03-01: gold counts 1 reading, the reference leaves it empty.
    assert_eq!(doc["differences"], 2, "{doc:#}");
    assert_eq!(doc["missing_in_gold"], 1, "{doc:#}");
    assert_eq!(doc["missing_in_reference"], 1, "{doc:#}");
    let diffs = doc["examples"]["differences"].as_array().unwrap();
    let c1 = diffs
        .iter()
        .find(|d| d["key"]["customer_id"] == "C000001")
        .unwrap();
    assert_eq!(c1["key"]["usage_date"], "2026-03-02");
    assert_eq!(c1["columns"]["total_kwh"]["gold"], "2.000");
    assert_eq!(c1["columns"]["total_kwh"]["reference"], "2.5");
    assert!(c1["columns"].get("reading_count").is_none(), "{c1:#}");
    let c2 = diffs
        .iter()
        .find(|d| d["key"]["customer_id"] == "C000002")
        .unwrap();
    assert_eq!(c2["columns"]["reading_count"]["gold"], "1");
    assert_eq!(c2["columns"]["reading_count"]["reference"], Value::Null);
    assert_eq!(
        doc["examples"]["missing_in_gold"],
        serde_json::json!([{"customer_id": "C000003", "usage_date": "2026-03-01"}])
    );
    assert_eq!(
        doc["examples"]["missing_in_reference"],
        serde_json::json!([{"customer_id": "C000002", "usage_date": "2026-03-02"}])
    );
}

#[test]
fn a_value_that_does_not_read_as_the_column_type_differs() {
    let w = loaded();
    let reference = "customer_id,usage_date,reading_count
C000001,2026-03-01,two
C000001,2026-03-02,1
C000002,2026-03-01,1
C000002,2026-03-02,2
";
    let (code, doc) = json(&w, reference, &[]);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["matches"], 3, "{doc:#}");
    assert_eq!(doc["differences"], 1, "{doc:#}");
    let d = &doc["examples"]["differences"][0];
    assert_eq!(d["columns"]["reading_count"]["gold"], "2");
    assert_eq!(d["columns"]["reading_count"]["reference"], "two");
}

#[test]
fn a_reference_that_cannot_be_compared_is_refused_with_the_reason() {
    let w = loaded();
    let cases: [(&str, &[&str], i32, &str); 7] = [
        (
            "customer_id,usage_date,total_kwh,total_kwh\nC000001,2026-03-01,3.5,3.5\n",
            &[],
            1,
            "the header names column total_kwh twice",
        ),
        (
            "customer_id,total_kwh\nC000001,3.5\n",
            &[],
            2,
            "the header lacks key column(s) usage_date",
        ),
        (
            "customer_id,usage_date,kwh\nC000001,2026-03-01,3.5\n",
            &[],
            2,
            "column(s) kwh are not in gold.daily_usage",
        ),
        (
            "customer_id,usage_date\nC000001,2026-03-01\n",
            &[],
            2,
            "the header names no column to compare besides the keys",
        ),
        (
            "customer_id,usage_date,total_kwh\nC000001,2026-03-01,3.5\nC000001,2026-03-01,3.5\n",
            &[],
            1,
            "key (C000001, 2026-03-01) appears more than once",
        ),
        (
            "customer_id,usage_date,total_kwh\nC000001,2026-03-01,3.5\nC000001,1st of March,3.5\n",
            &[],
            1,
            "line 3: key usage_date \"1st of March\" does not read as the model's type Date32",
        ),
        (
            "customer_id,usage_date,total_kwh\nC000001,2026-03-01,3.5\n",
            &["--model", "monthly"],
            2,
            "no gold model \"monthly\" (models: daily_usage)",
        ),
    ];
    for (reference, extra, code, message) in cases {
        let r = reconcile(&w, reference, extra);
        assert_eq!(r.code, code, "{reference}: {r:?}");
        assert!(r.stderr.contains(message), "{reference}: {r:?}");
        assert!(r.stdout.is_empty(), "{reference}: {r:?}");
    }
    let r = reconcile(
        &w,
        "customer_id,usage_date,total_kwh\n",
        &["--tolerance=-1"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("a number ≥ 0 is expected"), "{r:?}");
}

#[test]
fn reconcile_before_the_first_run_says_so() {
    let w = Workdir::sample_config();
    let r = reconcile(
        &w,
        "customer_id,usage_date,total_kwh\nC000001,2026-03-01,3.5\n",
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("gold.daily_usage does not exist yet"),
        "{r:?}"
    );
}
