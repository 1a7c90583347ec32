//! What a rebuild learns from a batch's earlier rejections: its rows' structural
//! problems (which bronze does not keep), and which rows move between silver and
//! rejected, counted by rule.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, ListArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Int64Type};

use super::silver::Recomputed;
use crate::error::{MedallionError, Result};
use crate::ingest::reader::{CUT_RULES, STRUCTURAL_RULES};
use crate::row::{RawRow, Violation};
use crate::schema::{REJECTION_REASONS, SOURCE_FILE, SOURCE_LINE};

/// One batch's rows as the rejected table held them before the rebuild, by file and
/// line.
#[derive(Default)]
pub(super) struct OldRejections {
    lists: Vec<ListArray>,
    by_line: HashMap<(String, i64), (usize, usize)>,
}

impl OldRejections {
    /// From batches of (`_source_file`, `_source_line`, `rejection_reasons`).
    pub(super) fn new(batches: &[RecordBatch]) -> Result<Self> {
        let mut old = OldRejections::default();
        for b in batches {
            let files = deltalake::arrow::compute::cast(b.column(0), &DataType::Utf8).map_err(
                MedallionError::arrow("rebuild: read the earlier rejections"),
            )?;
            let files = files.as_string::<i32>();
            let lines = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let at = (files.value(i).to_string(), lines.value(i));
                old.by_line.insert(at, (old.lists.len(), i));
            }
            old.lists.push(b.column(2).as_list::<i32>().clone());
        }
        Ok(old)
    }

    /// The earlier rejection reasons of `line` of `file`, if it was rejected.
    fn reasons(&self, file: &str, line: i64) -> Option<Arc<dyn Array>> {
        self.by_line
            .get(&(file.to_string(), line))
            .map(|&(b, i)| self.lists[b].value(i))
    }
}

/// The (file, line) of each row of `b`.
fn lines_of(b: &RecordBatch) -> Result<Vec<(String, i64)>> {
    let missing = || MedallionError::Internal("rows without lineage".into());
    let lines = b.column_by_name(SOURCE_LINE).ok_or_else(missing)?;
    let files = b.column_by_name(SOURCE_FILE).ok_or_else(missing)?;
    let files = deltalake::arrow::compute::cast(files, &DataType::Utf8)
        .map_err(MedallionError::arrow("rebuild: lineage"))?;
    let files = files.as_string::<i32>();
    Ok(lines
        .as_primitive::<Int64Type>()
        .values()
        .iter()
        .enumerate()
        .map(|(i, &l)| (files.value(i).to_string(), l))
        .collect())
}

/// Count the rows that change side, by the rule they break now (to rejected) or broke
/// before (to silver).
pub(super) fn count_moves(
    out: &mut Recomputed,
    old: &OldRejections,
    accepted: &RecordBatch,
    rejected: &RecordBatch,
) -> Result<()> {
    let reasons = rejected
        .column_by_name(REJECTION_REASONS)
        .map(|c| c.as_list::<i32>().clone());
    for (i, (file, line)) in lines_of(rejected)?.into_iter().enumerate() {
        if old.reasons(&file, line).is_none() {
            out.to_rejected_rows += 1;
            if let Some(r) = &reasons {
                for rule in rules_of(&r.value(i)) {
                    *out.to_rejected.entry(rule).or_insert(0) += 1;
                }
            }
        }
    }
    for (file, line) in lines_of(accepted)? {
        if let Some(before) = old.reasons(&file, line) {
            out.to_silver_rows += 1;
            for rule in rules_of(&before) {
                *out.to_silver.entry(rule).or_insert(0) += 1;
            }
        }
    }
    Ok(())
}

/// The (rule, column, message) of one row's `rejection_reasons`.
fn reasons_of(reasons: &Arc<dyn Array>) -> Vec<(String, Option<String>, String)> {
    let s = reasons.as_struct();
    let text = |name: &str| {
        s.column_by_name(name)
            .and_then(|c| deltalake::arrow::compute::cast(c, &DataType::Utf8).ok())
    };
    let (Some(rule), Some(column), Some(message)) = (text("rule"), text("column"), text("message"))
    else {
        return Vec::new();
    };
    let (rule, column, message) = (
        rule.as_string::<i32>(),
        column.as_string::<i32>(),
        message.as_string::<i32>(),
    );
    (0..rule.len())
        .filter(|&j| rule.is_valid(j))
        .map(|j| {
            (
                rule.value(j).to_string(),
                column.is_valid(j).then(|| column.value(j).to_string()),
                message.value(j).to_string(),
            )
        })
        .collect()
}

/// The distinct rule names of one row's `rejection_reasons`.
fn rules_of(reasons: &Arc<dyn Array>) -> Vec<String> {
    let mut out: Vec<String> = reasons_of(reasons).into_iter().map(|(r, _, _)| r).collect();
    out.sort();
    out.dedup();
    out
}

/// Give each row (of `file`) the structural problems of its earlier rejection; a
/// record that was cut stays cut.
pub(super) fn restore_structural(rows: &mut [RawRow], file: &str, old: &OldRejections) {
    for row in rows.iter_mut() {
        let Some(reasons) = old.reasons(file, row.line as i64) else {
            continue;
        };
        for (rule, column, message) in reasons_of(&reasons) {
            if STRUCTURAL_RULES.contains(&rule.as_str()) {
                row.cut |= CUT_RULES.contains(&rule.as_str());
                row.problems
                    .push(Violation::new(&rule, column.as_deref(), message));
            }
        }
    }
}
