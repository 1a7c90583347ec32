//! Gold and the typed reference joined on the keys, and each joined row sorted into a
//! match, a difference, or a key missing on one side.

use std::collections::BTreeMap;

use deltalake::arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::{Difference, EXAMPLES, Pair, Reconciliation, ident, raw};
use crate::config::GoldModel;
use crate::error::{MedallionError, Result};

/// Stream the full outer join of gold (`g`) and the reference (`r`) into `out`.
pub async fn compare(
    ctx: &SessionContext,
    model: &GoldModel,
    columns: &[(String, bool)],
    out: &mut Reconciliation,
) -> Result<()> {
    let mut stream = ctx
        .sql(&join_sql(model, columns))
        .await
        .map_err(MedallionError::sql("plan the comparison"))?
        .execute_stream()
        .await
        .map_err(MedallionError::sql("compare with the reference"))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(MedallionError::sql("compare with the reference"))?;
        classify(&batch, model, columns, out)?;
    }
    Ok(())
}

/// Presence markers, then per key (gold, reference as written), then per compared
/// column (gold, typed reference, reference as written).
fn join_sql(model: &GoldModel, columns: &[(String, bool)]) -> String {
    let mut select = vec!["g.__in_gold".to_string(), "r.__in_reference".to_string()];
    for k in &model.keys {
        select.push(format!("g.{}", ident(k)));
        select.push(format!("r.{}", ident(&raw(k))));
    }
    for (c, _) in columns {
        select.push(format!("g.{}", ident(c)));
        select.push(format!("r.{}", ident(c)));
        select.push(format!("r.{}", ident(&raw(c))));
    }
    let on: Vec<String> = model
        .keys
        .iter()
        .map(|k| format!("(g.{0} IS NOT DISTINCT FROM r.{0})", ident(k)))
        .collect();
    format!(
        "SELECT {} FROM (SELECT *, true AS __in_gold FROM g) g \
         FULL OUTER JOIN (SELECT *, true AS __in_reference FROM r) r ON {}",
        select.join(", "),
        on.join(" AND ")
    )
}

/// A batch's columns cast once: text for showing, doubles for numeric comparison.
struct Columns {
    text: Vec<StringArray>,
    numbers: Vec<Option<Float64Array>>,
}

impl Columns {
    fn of(b: &RecordBatch, numeric: impl Fn(usize) -> bool) -> Result<Self> {
        let mut text = Vec::new();
        let mut numbers = Vec::new();
        for (i, c) in b.columns().iter().enumerate() {
            text.push(as_type::<StringArray>(c, &DataType::Utf8)?);
            numbers.push(if numeric(i) {
                Some(as_type::<Float64Array>(c, &DataType::Float64)?)
            } else {
                None
            });
        }
        Ok(Columns { text, numbers })
    }

    /// A value to show, cut to 64 characters (values can be personal data).
    fn text(&self, column: usize, row: usize) -> Option<String> {
        let a = &self.text[column];
        a.is_valid(row)
            .then(|| a.value(row).chars().take(64).collect())
    }

    /// Both null, or both present and equal (numbers within the tolerance). A reference
    /// value that is written but did not read as the column's type (`written`) agrees
    /// with nothing.
    fn agree(
        &self,
        gold: usize,
        reference: usize,
        written: usize,
        row: usize,
        tolerance: f64,
    ) -> bool {
        let (g, r) = (&self.text[gold], &self.text[reference]);
        match (g.is_valid(row), r.is_valid(row)) {
            (false, false) => self.text[written].is_null(row),
            (true, true) => match (&self.numbers[gold], &self.numbers[reference]) {
                (Some(g), Some(r)) => (g.value(row) - r.value(row)).abs() <= tolerance,
                _ => g.value(row) == r.value(row),
            },
            _ => false,
        }
    }
}

fn as_type<T: Clone + 'static>(a: &ArrayRef, to: &DataType) -> Result<T> {
    let c = cast(a, to).map_err(MedallionError::arrow("compare with the reference"))?;
    c.as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| MedallionError::Internal(format!("a cast to {to} gave another type")))
}

/// Sort each joined row into a match, a difference or a key missing on one side.
fn classify(
    b: &RecordBatch,
    model: &GoldModel,
    columns: &[(String, bool)],
    out: &mut Reconciliation,
) -> Result<()> {
    let nk = model.keys.len();
    let first_value = 2 + 2 * nk;
    let numeric = |i: usize| {
        i >= first_value && (i - first_value) % 3 < 2 && columns[(i - first_value) / 3].1
    };
    let cols = Columns::of(b, numeric)?;
    for row in 0..b.num_rows() {
        let in_gold = b.column(0).is_valid(row);
        let in_reference = b.column(1).is_valid(row);
        let key: super::Key = model
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let side = if in_gold { 2 + 2 * i } else { 3 + 2 * i };
                (k.clone(), cols.text(side, row))
            })
            .collect();
        if !in_gold || !in_reference {
            let (count, examples) = if in_gold {
                (
                    &mut out.missing_in_reference,
                    &mut out.examples.missing_in_reference,
                )
            } else {
                (&mut out.missing_in_gold, &mut out.examples.missing_in_gold)
            };
            *count += 1;
            if examples.len() < EXAMPLES {
                examples.push(key);
            }
            continue;
        }
        let mut differing = BTreeMap::new();
        for (j, (c, _)) in columns.iter().enumerate() {
            let at = first_value + 3 * j;
            if !cols.agree(at, at + 1, at + 2, row, out.tolerance) {
                let pair = Pair {
                    gold: cols.text(at, row),
                    reference: cols.text(at + 2, row),
                };
                differing.insert(c.clone(), pair);
            }
        }
        if differing.is_empty() {
            out.matches += 1;
            continue;
        }
        out.differences += 1;
        if out.examples.differences.len() < EXAMPLES {
            out.examples.differences.push(Difference {
                key,
                columns: differing,
            });
        }
    }
    Ok(())
}
