//! Writing a refresh's recomputed rows into the gold table: a row flagged present
//! replaces the gold row of its key or is inserted; a key flagged absent is deleted.
//!
//! Like silver's upserts, a copy-on-write rewrite ([`storage::replace_rows`]): one scan
//! (pruned by the changed keys' bounds) finds the gold rows with a changed key, null
//! keys equal (a group may have a null key), and the data files holding them; each of
//! those files is rewritten without them, file by file, and the present rows are added,
//! in one commit. A Delta MERGE of the same rows held its join and its writers at once:
//! with a batch that changes most of gold, the largest memory peak of a run.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::AsArray;
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;

use super::{PRESENT, quote, same_keys};
use crate::config::GoldModel;
use crate::error::{MedallionError, Result};
use crate::storage::{self, AppendWriter, FILE_COLUMN, Replacement, UpsertMetrics};

/// Write `rows` (the model's columns and [`PRESENT`], one row per key) into `table`
/// (the model's gold table) in one commit, carrying `txn` when given.
pub(super) async fn apply(
    mut table: DeltaTable,
    ctx: &SessionContext,
    model: &GoldModel,
    rows: Vec<RecordBatch>,
    props: CommitProperties,
    txn: Option<(&str, i64)>,
) -> Result<UpsertMetrics> {
    let Some(schema) = rows.first().map(|b| b.schema()) else {
        return Ok(UpsertMetrics::default());
    };
    let relative = model.table();
    let t = std::time::Instant::now();
    let (matched, files, deleted) = matched_keys(&table, ctx, model, schema, &rows).await?;
    tracing::debug!(
        model = %model.name,
        files = files.len(),
        ms = t.elapsed().as_millis() as u64,
        "gold rows to replace found"
    );
    let present = present_rows(rows)?;
    let n_present: u64 = present.iter().map(|b| b.num_rows() as u64).sum();
    if matched.is_empty() {
        let mut writer = AppendWriter::new(&table, &relative)?;
        for b in present {
            writer.write(b).await?;
        }
        let committed = writer.commit(&mut table, props, txn).await?;
        return Ok(UpsertMetrics::appended(committed, n_present));
    }
    let n_matched: u64 = matched.iter().map(|b| b.num_rows() as u64).sum();
    let spec = Replacement {
        table_name: &relative,
        keys: &model.keys,
        replaced: &matched,
        files: &files,
        txn,
        returned: Some(&[]),
        marks: None,
    };
    let (_, m, _) = storage::replace_rows(table, ctx, &spec, &present, props).await?;
    // Nothing written (the batch's gold stage was already committed): no counts.
    if m.updated == 0 {
        return Ok(m);
    }
    let updated = n_matched - deleted;
    Ok(UpsertMetrics {
        inserted: n_present.saturating_sub(updated),
        updated,
        deleted,
        version: m.version,
    })
}

/// The key columns of the gold rows whose key is among `rows`' keys, the data files
/// holding them, and how many of them `rows` flag absent.
async fn matched_keys(
    table: &DeltaTable,
    ctx: &SessionContext,
    model: &GoldModel,
    schema: deltalake::arrow::datatypes::SchemaRef,
    rows: &[RecordBatch],
) -> Result<(Vec<RecordBatch>, Vec<String>, u64)> {
    let step = format!("gold rows to replace in {}", model.name);
    let err = || MedallionError::sql(step.clone());
    let staged = MemTable::try_new(schema, vec![rows.to_vec()]).map_err(err())?;
    let changes = ctx.read_table(Arc::new(staged)).map_err(err())?;
    storage::register_with_files(ctx, "__gold_files", table, FILE_COLUMN).await?;
    let gold = ctx.table("__gold_files").await.map_err(err())?;
    let near = storage::within_key_bounds(gold, &changes, &model.keys).await?;
    ctx.register_table("__changes", changes.into_view())
        .map_err(err())?;
    ctx.register_table("__gold_near", near.into_view())
        .map_err(err())?;
    let keys: Vec<String> = model
        .keys
        .iter()
        .map(|k| format!("__g.{}", quote(k)))
        .collect();
    let sql = format!(
        "SELECT {}, __c.{PRESENT}, __g.{FILE_COLUMN} FROM __gold_near __g \
         JOIN __changes __c ON {}",
        keys.join(", "),
        same_keys(model, "__g", "__c")
    );
    let found = storage::sql_batches(ctx, &sql, &step).await?;
    let (found, files) = storage::split_file_column(found)?;
    let mut deleted = 0;
    let mut matched = Vec::with_capacity(found.len());
    for b in found {
        let flag = b.num_columns() - 1;
        let present = b.column(flag).as_boolean();
        deleted += (present.len() - present.true_count()) as u64;
        matched.push(
            b.project(&(0..flag).collect::<Vec<_>>())
                .map_err(MedallionError::arrow("gold rows to replace"))?,
        );
    }
    Ok((matched, files, deleted))
}

/// The rows flagged present, without the flag.
fn present_rows(rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let err = || MedallionError::arrow("gold rows to write");
    rows.into_iter()
        .map(|b| {
            let flag = b.schema().index_of(PRESENT).map_err(err())?;
            let kept = filter_record_batch(&b, b.column(flag).as_boolean()).map_err(err())?;
            let columns: Vec<usize> = (0..b.num_columns()).filter(|&i| i != flag).collect();
            kept.project(&columns).map_err(err())
        })
        .filter(|b| b.as_ref().map_or(true, |b| b.num_rows() > 0))
        .collect()
}
