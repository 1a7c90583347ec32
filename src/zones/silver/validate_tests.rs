//! Unit tests of typing and every rule kind and action.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use deltalake::arrow::array::{Array, AsArray, ListArray, StructArray};

use super::*;
use crate::config::load_str;
use crate::row::RawRow;

const CONFIG: &str = r#"
lakehouse: lake
source:
  name: t
  columns:
    - { name: id, type: string, required: true, rules: [{ name: id_format, pattern: '^A\d+$' }] }
    - { name: amount, type: "decimal(6,2)", required: true, rules: [{ name: amount_range, min: 0, max: 100 }] }
    - { name: kind, type: string, default: x, rules: [{ name: kind_allowed, allowed: [x, y] }] }
    - { name: n, type: int, rules: [{ name: n_small, max: 10, action: warn }] }
    - { name: starts, type: timestamp }
    - { name: ends, type: timestamp }
  row_rules:
    - { name: ordered, check: ends > starts }
    - { name: not_big, check: amount < 90, action: fail }
silver:
  key: [id]
"#;

fn validator() -> Validator {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let p = rt.block_on(load_str(CONFIG, Path::new("/tmp"))).unwrap();
    Validator::new(Arc::new(p)).unwrap()
}

fn row(line: u64, fields: &[Option<&str>]) -> RawRow {
    let fields = fields.iter().map(|f| f.map(str::to_string)).collect();
    RawRow::new(line, fields, Vec::new(), false)
}

fn lineage() -> Lineage {
    Lineage {
        source_file: "f.csv".into(),
        batch_id: "b".into(),
        received_at: Utc::now(),
    }
}

/// Rules per rejected row, in row order.
fn reasons(v: &ValidatedChunk) -> Vec<Vec<String>> {
    let list: &ListArray = v
        .rejected
        .column_by_name("rejection_reasons")
        .unwrap()
        .as_list();
    (0..list.len())
        .map(|i| {
            let s = list.value(i);
            let s: &StructArray = s.as_struct();
            let rules = s.column(0).as_string::<i32>();
            (0..rules.len())
                .map(|j| rules.value(j).to_string())
                .collect()
        })
        .collect()
}

const OK: [Option<&str>; 6] = [
    Some("A1"),
    Some("5.5"),
    Some("y"),
    Some("3"),
    Some("2026-01-01T00:00:00Z"),
    Some("2026-01-01T01:00:00Z"),
];

fn with(i: usize, value: Option<&str>) -> Vec<Option<&'static str>> {
    let mut r = OK.to_vec();
    r[i] = value.map(|v| &*Box::leak(v.to_string().into_boxed_str()));
    r
}

#[test]
fn good_rows_are_typed_and_accepted() {
    let v = validator()
        .validate(&[row(2, &OK), row(3, &with(2, Some(" ")))], &lineage())
        .unwrap();
    assert_eq!(v.accepted.num_rows(), 2);
    assert_eq!(v.rejected.num_rows(), 0);
    let kind = v
        .accepted
        .column_by_name("kind")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(kind.value(1), "x", "default applies to a missing value");
}

#[test]
fn each_rule_kind_rejects_with_its_name() {
    let rows = [
        row(2, &with(0, Some("B1"))),
        row(3, &with(1, Some("100.01"))),
        row(4, &with(2, Some("z"))),
        row(5, &with(0, None)),
        row(6, &with(1, Some("1.234"))),
        row(7, &with(5, Some("2025-12-31T00:00:00Z"))),
        row(8, &with(1, Some("abc"))),
    ];
    let v = validator().validate(&rows, &lineage()).unwrap();
    assert_eq!(v.accepted.num_rows(), 0);
    assert_eq!(
        reasons(&v),
        [
            vec!["id_format"],
            vec!["amount_range"],
            vec!["kind_allowed"],
            vec!["required"],
            vec!["type"],
            vec!["ordered"],
            vec!["type"]
        ]
    );
    assert_eq!(v.rejected_by_rule.get("type"), Some(&2));
    let lines = v.rejected.column_by_name("_source_line").unwrap();
    assert_eq!(lines.len(), 7);
}

#[test]
fn every_failed_rule_is_named() {
    let mut r = with(0, Some("X"));
    r[1] = Some("-1");
    r[5] = Some("2020-01-01T00:00:00Z");
    let v = validator().validate(&[row(2, &r)], &lineage()).unwrap();
    assert_eq!(reasons(&v), [vec!["id_format", "amount_range", "ordered"]]);
}

#[test]
fn warn_keeps_the_row_and_fail_is_reported() {
    let v = validator()
        .validate(&[row(2, &with(3, Some("11")))], &lineage())
        .unwrap();
    assert_eq!(v.accepted.num_rows(), 1);
    assert_eq!(v.warnings.get("n_small"), Some(&1));
    assert!(v.failure.is_none());
    let v = validator()
        .validate(&[row(2, &OK), row(9, &with(1, Some("95")))], &lineage())
        .unwrap();
    let (line, rule, _) = v.failure.unwrap();
    assert_eq!((line, rule.as_str()), (9, "not_big"));
}

#[test]
fn structural_problems_reject() {
    let mut r = row(4, &OK);
    r.problems.push(Violation::new(
        "field_count",
        None,
        "expected 6 fields, found 7",
    ));
    let v = validator().validate(&[r], &lineage()).unwrap();
    assert_eq!(reasons(&v), [vec!["field_count"]]);
}

#[test]
fn null_row_rule_results_pass() {
    let v = validator()
        .validate(&[row(2, &with(4, None))], &lineage())
        .unwrap();
    assert_eq!(
        v.accepted.num_rows(),
        1,
        "ends > NULL is NULL, which passes"
    );
}
