//! What a rebuild moves: rows silver accepted before that the current rules reject,
//! and rows rejected before that they accept, counted by rule.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use deltalake::arrow::datatypes::DataType;

use super::silver::Recomputed;
use crate::error::{MedallionError, Result};
use crate::schema::{REJECTION_REASONS, SOURCE_LINE};

/// Count the rows that change side: `old` (column `old_col` of `part`) holds each
/// row's earlier rejection reasons, null when silver accepted it.
pub(super) fn count_moves(
    out: &mut Recomputed,
    part: &RecordBatch,
    old_col: usize,
    accepted: &RecordBatch,
    rejected: &RecordBatch,
) -> Result<()> {
    let old = part.column(old_col);
    let lines = part
        .column(old_col - 4)
        .as_primitive::<deltalake::arrow::datatypes::Int64Type>();
    let was: HashMap<i64, usize> = (0..part.num_rows()).map(|i| (lines.value(i), i)).collect();
    let line_col = |b: &RecordBatch| -> Result<Int64Array> {
        let c = b
            .column_by_name(SOURCE_LINE)
            .ok_or_else(|| MedallionError::Internal("rows without _source_line".into()))?;
        Ok(c.as_primitive::<deltalake::arrow::datatypes::Int64Type>()
            .clone())
    };
    let reasons = rejected
        .column_by_name(REJECTION_REASONS)
        .map(|c| c.as_list::<i32>().clone());
    for (i, line) in line_col(rejected)?.iter().enumerate() {
        let Some(&row) = line.and_then(|l| was.get(&l)) else {
            continue;
        };
        if old.is_null(row) {
            out.to_rejected_rows += 1;
            if let Some(r) = &reasons {
                for rule in rules_of(&r.value(i)) {
                    *out.to_rejected.entry(rule).or_insert(0) += 1;
                }
            }
        }
    }
    if old.data_type() == &DataType::Int32 {
        return Ok(()); // no rejected table before: nothing moves to silver
    }
    let old_lists = old.as_list::<i32>();
    for line in line_col(accepted)?.iter() {
        let Some(&row) = line.and_then(|l| was.get(&l)) else {
            continue;
        };
        if !old.is_null(row) {
            out.to_silver_rows += 1;
            for rule in rules_of(&old_lists.value(row)) {
                *out.to_silver.entry(rule).or_insert(0) += 1;
            }
        }
    }
    Ok(())
}

/// The distinct rule names of one row's `rejection_reasons`.
fn rules_of(reasons: &Arc<dyn Array>) -> Vec<String> {
    let s = reasons.as_struct();
    let Some(rule) = s.column_by_name("rule") else {
        return Vec::new();
    };
    let Ok(rule) = deltalake::arrow::compute::cast(rule, &DataType::Utf8) else {
        return Vec::new();
    };
    let rule = rule.as_string::<i32>();
    let mut out: Vec<String> = (0..rule.len())
        .filter(|&i| rule.is_valid(i))
        .map(|i| rule.value(i).to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}
