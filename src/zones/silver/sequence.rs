//! Upsert refinements of a source: `sequence_by` (a row replaces its key's current row
//! only if its sequence value is not lower, so a late older reading never overwrites a
//! newer correction) and `delete_when` (rows matching the predicate delete their key
//! instead of being stored).
//!
//! Contract: [`not_superseded`] drops the rows of a deduplicated slice that silver
//! already holds a newer version of, or that an earlier slice of the batch deleted
//! with a newer sequence value ([`deletes`]); they stay in bronze and are counted as
//! superseded, not rejected. [`with_present`] flags each row present, or absent when
//! `delete_when` holds for it, for the MERGE to update, insert or delete by.

use std::sync::Arc;

use deltalake::arrow::compute::concat_batches;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::logical_expr::not;
use deltalake::datafusion::prelude::{DataFrame, SessionContext, coalesce, col, lit};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::schema::quote_ident;
use crate::storage;

/// The flag of a row to upsert: false deletes its key.
pub const PRESENT: &str = "__present";

/// The rows of `rows` (one per key) that replace silver's current row of their key
/// (`replaced`, as read before the slice) and are not older than a delete of their key
/// in an earlier slice of the batch (`tombstones`): all of them without `sequence_by`.
/// Returns them as one batch, and how many were superseded.
pub async fn not_superseded(
    p: &Pipeline,
    rows: Vec<RecordBatch>,
    replaced: &[RecordBatch],
    tombstones: &[RecordBatch],
) -> Result<(Vec<RecordBatch>, u64)> {
    let Some(sequence) = p.source.sequence_by.as_deref() else {
        return Ok((rows, 0));
    };
    let before: usize = rows.iter().map(|b| b.num_rows()).sum();
    let newer: Vec<RecordBatch> = replaced.iter().chain(tombstones).cloned().collect();
    if newer.iter().all(|b| b.num_rows() == 0) || before == 0 {
        return Ok((rows, 0));
    }
    let ctx = storage::session();
    let err = || MedallionError::sql("drop rows silver holds a newer version of");
    let layout = p.source.silver_schema();
    let new = MemTable::try_new(layout.clone(), vec![rows]).map_err(err())?;
    let old = MemTable::try_new(layout.clone(), vec![newer]).map_err(err())?;
    ctx.register_table("__rows", Arc::new(new)).map_err(err())?;
    ctx.register_table("__versions", Arc::new(old))
        .map_err(err())?;
    // Per key, the newest version silver holds or an earlier slice deleted.
    let keys: Vec<String> = p.source.key.iter().map(|k| quote_ident(k)).collect();
    let newest = format!(
        "SELECT {k}, MAX({seq}) AS {seq} FROM __versions GROUP BY {k}",
        k = keys.join(", "),
        seq = quote_ident(sequence)
    );
    ctx.register_table("__old", ctx.sql(&newest).await.map_err(err())?.into_view())
        .map_err(err())?;
    let on: Vec<String> = p
        .source
        .key
        .iter()
        .map(|k| format!("r.{q} = o.{q}", q = quote_ident(k)))
        .collect();
    let first_key = quote_ident(&p.source.key[0]);
    let seq = quote_ident(sequence);
    let sql = format!(
        "SELECT r.* FROM __rows r LEFT JOIN __old o ON {} \
         WHERE o.{first_key} IS NULL OR r.{seq} >= o.{seq}",
        on.join(" AND ")
    );
    let kept = storage::sql_batches(&ctx, &sql, "drop superseded rows").await?;
    let kept =
        concat_batches(&layout, &kept).map_err(MedallionError::arrow("drop superseded rows"))?;
    let superseded = (before - kept.num_rows()) as u64;
    Ok((vec![kept], superseded))
}

/// `df` with the [`PRESENT`] flag: false where the source's `delete_when` holds (a
/// NULL predicate keeps the row). `None` when the source has no `delete_when`.
pub fn with_present(p: &Pipeline, df: DataFrame) -> Result<Option<DataFrame>> {
    let Some(rule) = &p.source.delete_when else {
        return Ok(None);
    };
    let flag = not(coalesce(vec![rule.expr.clone(), lit(false)]));
    df.with_column(PRESENT, flag)
        .map(Some)
        .map_err(MedallionError::sql("evaluate delete_when"))
}

/// The rows of `rows` that delete their key (for later slices of the batch to compare
/// with: a delete leaves no row in silver); none without `sequence_by` and `delete_when`.
pub async fn deletes(p: &Pipeline, rows: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    if p.source.delete_when.is_none() || p.source.sequence_by.is_none() {
        return Ok(Vec::new());
    }
    let kept = present_only(p, rows).await?;
    let kept: usize = kept.iter().map(|b| b.num_rows()).sum();
    let total: usize = rows.iter().map(|b| b.num_rows()).sum();
    if kept == total {
        return Ok(Vec::new());
    }
    filtered(p, rows, false).await
}

/// The rows of `rows` that `delete_when` does not delete (all of them without it):
/// appended to silver where no key matches, a delete of a missing key does nothing.
pub async fn present_only(p: &Pipeline, rows: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    if p.source.delete_when.is_none() {
        return Ok(rows.to_vec());
    }
    filtered(p, rows, true).await
}

/// The rows of `rows` whose [`PRESENT`] flag is `present`.
async fn filtered(p: &Pipeline, rows: &[RecordBatch], present: bool) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    let err = || MedallionError::sql("evaluate delete_when");
    let table = MemTable::try_new(p.source.silver_schema(), vec![rows.to_vec()]).map_err(err())?;
    let df = ctx.read_table(Arc::new(table)).map_err(err())?;
    let Some(flagged) = with_present(p, df)? else {
        return Ok(rows.to_vec());
    };
    let columns = crate::schema::column_names(&p.source.silver_schema());
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let flag = if present {
        col(PRESENT)
    } else {
        not(col(PRESENT))
    };
    flagged
        .filter(flag)
        .and_then(|d| d.select_columns(&columns))
        .map_err(err())?
        .collect()
        .await
        .map_err(err())
}
