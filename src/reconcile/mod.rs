//! `medallion reconcile`: a gold model against a reference table of expected values
//! (the billing system's kWh per customer and day, say).
//!
//! Contract: the reference is a CSV file with a header (dialect sniffed as `init` does)
//! that names every key of the model and at least one other column of it; other
//! columns are an error. Each reference value is read as the model column's type (a
//! compared value that does not read counts as different; a key that does not read is
//! an error naming its line) and the two sides are joined on the keys (`IS NOT
//! DISTINCT FROM`). A key is a *match* when every compared column agrees: numbers
//! within the absolute `tolerance`, anything else exactly, null only with null. Keys
//! only in the reference are *missing in gold*, keys only in gold *missing in the
//! reference*. A key the reference names twice is an error. Nothing is written.

mod compare;
mod reference;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::config::{GoldModel, Pipeline};
use crate::error::{MedallionError, Result};
use crate::storage::{self, Lakehouse};

/// Examples kept per kind of discrepancy.
pub const EXAMPLES: usize = 100;

/// A key's values by column, as text (`None`: null).
pub type Key = BTreeMap<String, Option<String>>;

/// One key whose values differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub key: Key,
    /// Per differing column: `{"gold", "reference"}` as text; `null` when missing. The
    /// reference value is shown as written in the file.
    pub columns: BTreeMap<String, Pair>,
}

/// A gold value and the reference's, as text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    pub gold: Option<String>,
    pub reference: Option<String>,
}

/// The outcome, in the documented `--json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub model: String,
    pub reference: String,
    pub tolerance: f64,
    pub keys: Vec<String>,
    /// The compared (non-key) columns, in the reference's order.
    pub columns: Vec<String>,
    pub reference_rows: u64,
    pub gold_rows: u64,
    pub matches: u64,
    pub differences: u64,
    pub missing_in_gold: u64,
    pub missing_in_reference: u64,
    /// The first [`EXAMPLES`] of each kind.
    pub examples: Examples,
}

/// The first keys of each kind of discrepancy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Examples {
    pub differences: Vec<Difference>,
    pub missing_in_gold: Vec<Key>,
    pub missing_in_reference: Vec<Key>,
}

impl Reconciliation {
    /// Whether nothing differs and nothing is missing on either side.
    pub fn clean(&self) -> bool {
        self.differences + self.missing_in_gold + self.missing_in_reference == 0
    }
}

/// Compare `model` (the only model when `None`) with the reference file.
pub async fn reconcile(
    p: &Pipeline,
    reference: &Path,
    model: Option<&str>,
    tolerance: f64,
) -> Result<Reconciliation> {
    if !(tolerance >= 0.0 && tolerance.is_finite()) {
        return Err(MedallionError::Usage(format!(
            "--tolerance must be a number ≥ 0, not {tolerance}"
        )));
    }
    let model = pick_model(p, model)?;
    let path = reference.to_path_buf();
    let text = tokio::task::spawn_blocking(move || reference::read(&path))
        .await
        .map_err(|e| MedallionError::Internal(format!("the reference reader failed: {e}")))??;
    let file = reference.display().to_string();
    let columns = reference::compared_columns(model, &text, &file)?;
    let typed = reference::typed(model, &text, &file)?;
    let lake = Lakehouse::new(p.lakehouse.clone());
    let table = lake.open(&model.table()).await?.ok_or_else(|| {
        MedallionError::Usage(format!(
            "table gold.{} does not exist yet (run `medallion run` first)",
            model.name
        ))
    })?;
    let stale = crate::zones::gold::rebuild::stale_models(&lake, p).await?;
    if let Some((_, reason)) = stale.iter().find(|(m, _)| m.name == model.name) {
        return Err(MedallionError::Usage(format!(
            "gold.{} was built by another version of its model ({}): `medallion run` rebuilds it first",
            model.name,
            reason.note()
        )));
    }
    let ctx = storage::session();
    storage::register(&ctx, "g", &table).await?;
    ctx.register_batch("r", typed)
        .map_err(MedallionError::sql("register the reference"))?;
    reference::check_unique(&ctx, model, &file).await?;
    let gold_rows = storage::row_count(&ctx, &table, "gold").await?;
    let mut out = Reconciliation {
        model: model.name.clone(),
        reference: file,
        tolerance,
        keys: model.keys.clone(),
        columns: columns.iter().map(|(c, _)| c.clone()).collect(),
        reference_rows: text.num_rows() as u64,
        gold_rows,
        matches: 0,
        differences: 0,
        missing_in_gold: 0,
        missing_in_reference: 0,
        examples: Examples::default(),
    };
    compare::compare(&ctx, model, &columns, &mut out).await?;
    Ok(out)
}

fn pick_model<'a>(p: &'a Pipeline, name: Option<&str>) -> Result<&'a GoldModel> {
    let names = || {
        p.gold
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => p.gold.iter().find(|m| m.name == n).ok_or_else(|| {
            MedallionError::Usage(format!("no gold model \"{n}\" (models: {})", names()))
        }),
        None if p.gold.len() == 1 => Ok(&p.gold[0]),
        None if p.gold.is_empty() => Err(MedallionError::Usage(
            "the configuration has no gold model to reconcile".into(),
        )),
        None => Err(MedallionError::Usage(format!(
            "several gold models: name one with --model ({})",
            names()
        ))),
    }
}

use crate::schema::quote_ident as ident;

/// The reference's column holding a value as written in the file.
fn raw(name: &str) -> String {
    format!("__raw_{name}")
}
