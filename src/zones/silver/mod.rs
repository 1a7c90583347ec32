//! Silver: typed rows that passed every `reject` rule, one row per natural key.
//!
//! Contract: `dedupe_batch` keeps the last line per natural key of a slice of accepted
//! rows (a file's later line corrects an earlier one); `replaced_rows` finds the silver
//! rows those keys replace; `upsert_batch` writes the slice: an existing key is replaced
//! (newest batch wins), a new key inserted. When no key of the slice is in silver yet
//! (the common case: new readings), the rows are appended without a MERGE, which would
//! only have joined them against target files to find nothing; otherwise the files
//! holding the replaced rows (found with them) are rewritten without them and the slice
//! added, in one commit ([`storage::replace_rows`]; with `sequence_by` or `delete_when`
//! the new keys are appended and only the rows that replace one are MERGEd). Running it
//! twice for the same slice leaves silver unchanged the second time: the second time,
//! every key is found, so it writes the same values. The slices of a batch that replace
//! no silver row are appended by [`BatchAppend`] in one commit.

mod batch_append;
mod builders;
mod dedupe;
mod repeats;
mod replaced;
mod round;
pub mod sequence;
pub mod snapshot;
mod staging;
mod validate;

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

pub use batch_append::BatchAppend;
pub use replaced::{Replaced, replaced_rows, rewrites};
pub use round::Round;
pub use staging::{StagedRows, Staging, staging_properties};
pub use validate::{ValidatedChunk, Validator};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::schema;
use crate::storage::{self, AppendWriter, UpsertMetrics, UpsertSpec};
use crate::zones::Lineage;

/// Accepted rows of a batch, keeping the last line per natural key (with `sequence_by`,
/// the line with the highest sequence value, the last of equal ones).
pub fn dedupe_batch(p: &Pipeline, accepted: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let sequence = p.source.sequence_by.as_deref();
    dedupe::last_line_per_key(
        &p.source.silver_schema(),
        &p.source.key,
        sequence,
        &accepted,
    )
}

/// Staging for a batch of `bytes` bytes of text: an upsert without `sequence_by` or
/// `delete_when` (whose slices may be appended unchecked) also tracks repeated keys.
pub fn staging_for(p: &Pipeline, bytes: u64) -> Result<Staging> {
    let schema = p.source.silver_schema();
    let s = &p.source;
    let tracked = s.mode == crate::config::SourceMode::Upsert
        && s.sequence_by.is_none()
        && s.delete_when.is_none();
    let tracker = match tracked {
        true => repeats::RepeatTracker::new(&schema, &s.key, bytes)?,
        false => None,
    };
    Staging::tracking(&schema, tracker)
}

/// `rows` as one batch (none when empty): a join's or MERGE's source is best one batch,
/// which DataFusion builds its hash table from (with several, the corrections MERGE took
/// far more time and memory; see BENCHMARKS.md).
pub fn one_batch(p: &Pipeline, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    dedupe::one_batch(&p.source.silver_schema(), rows)
}

/// A deduplicated slice of staged rows (in the batches they were read in when no key
/// repeated, else in one), and whether it is the last.
pub type Slice = Result<(Vec<RecordBatch>, bool)>;

/// The staged rows read back in slices of about `batch_rows` rows, each deduplicated,
/// on a thread of their own ahead of the caller (one slice queued, the next being
/// prepared): a slice is written while the next is read back and deduplicated.
pub struct Slices {
    rx: Receiver<Slice>,
    producer: Option<JoinHandle<()>>,
    unique: bool,
}

impl Slices {
    pub fn new(p: &Pipeline, mut staged: StagedRows) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let schema = p.source.silver_schema();
        let keys = p.source.key.clone();
        let sequence = p.source.sequence_by.clone();
        let rows = p.source.batch_rows;
        // The batch's repeats were dropped as the rows were read back: nothing to dedupe.
        let unique = staged.keys_unique();
        let producer = tokio::task::spawn_blocking(move || {
            loop {
                let slice = match staged.next_slice(rows) {
                    Ok(None) => break,
                    Ok(Some((slice, last))) if unique => Ok((slice, last)),
                    Ok(Some((slice, last))) => {
                        let seq = sequence.as_deref();
                        dedupe::last_line_per_key_as_read(&schema, &keys, seq, &slice)
                            .map(|rows| (rows, last))
                    }
                    Err(e) => Err(e),
                };
                let failed = slice.is_err();
                if tx.blocking_send(slice).is_err() || failed {
                    break;
                }
            }
        });
        Slices {
            rx,
            producer: Some(producer),
            unique,
        }
    }

    /// Whether no two slices share a key (the batch's repeats were tracked).
    pub fn keys_unique(&self) -> bool {
        self.unique
    }

    /// The next slice, `None` after the last; an error ends them (also a thread that
    /// stopped without sending the last slice).
    pub async fn next(&mut self) -> Option<Slice> {
        if let Some(slice) = self.rx.recv().await {
            return Some(slice);
        }
        let stopped = match self.producer.take()?.await {
            Ok(()) => return None,
            Err(e) => e.to_string(),
        };
        Some(Err(MedallionError::Internal(format!(
            "reading back the staged rows stopped: {stopped}"
        ))))
    }
}

/// Write one deduplicated slice into silver: appended when `replaced` (from
/// [`replaced_rows`] on this same silver state) is empty, otherwise the files holding
/// the replaced rows are rewritten with the slice (or, with `sequence_by` or
/// `delete_when`, the slice is MERGEd on the natural key). The commit carries `txn`
/// when given. Also returns the replaced rows whole, in the configured columns.
pub async fn upsert_batch(
    ctx: &SessionContext,
    p: &Pipeline,
    silver: DeltaTable,
    (rows, replaced): (&[RecordBatch], &Replaced),
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<(DeltaTable, UpsertMetrics, Vec<RecordBatch>)> {
    if replaced.is_empty() {
        let rows = sequence::present_only(p, rows).await?;
        let (silver, m) = append_batch(p, silver, &rows, lineage, txn).await?;
        return Ok((silver, m, Vec::new()));
    }
    if rewrites(p) {
        let mut writer = AppendWriter::new(&silver, &p.source.tables().silver)?;
        for b in rows {
            writer.write(b.clone()).await?;
        }
        return rewrite_replaced(ctx, p, silver, (replaced, writer), lineage, txn).await;
    }
    let (silver, m) = merge_replacing(ctx, p, silver, (rows, replaced), lineage, txn).await?;
    Ok((silver, m, replaced.rows.clone()))
}

/// Commit `writer` (a slice's or a round's new rows, not committed yet) with the files
/// holding the `replaced` rows rewritten without them. Returns silver, the counts and
/// the replaced rows whole, in the configured columns.
async fn rewrite_replaced(
    ctx: &SessionContext,
    p: &Pipeline,
    silver: DeltaTable,
    (replaced, writer): (&Replaced, AppendWriter),
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<(DeltaTable, UpsertMetrics, Vec<RecordBatch>)> {
    let name = p.source.tables().silver;
    let columns = schema::column_names(&p.source.silver_schema());
    let spec = storage::Replacement {
        table_name: &name,
        keys: &p.source.key,
        replaced: &replaced.rows,
        files: &replaced.files,
        txn,
        returned: Some(&columns),
        marks: (!replaced.marks.is_empty()).then_some(&replaced.marks),
    };
    let props = commit_info(lineage, writer.rows() as usize);
    let (silver, m, whole) = storage::replace_with(silver, ctx, &spec, writer, props).await?;
    Ok((silver, m, configured_columns(p, whole)?))
}

/// The rows in the configured silver columns (a table may also keep columns no longer
/// configured, and in another order).
fn configured_columns(p: &Pipeline, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let layout = p.source.silver_schema();
    rows.into_iter()
        .map(|b| {
            let indices = layout
                .fields()
                .iter()
                .map(|f| b.schema().index_of(f.name()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(MedallionError::arrow("read the replaced rows"))?;
            b.project(&indices)
                .map_err(MedallionError::arrow("read the replaced rows"))
        })
        .collect()
}

/// Upsert a slice some of whose keys are in silver with MERGE (`sequence_by` or
/// `delete_when`): the new keys are appended, the rows that replace one MERGEd.
async fn merge_replacing(
    ctx: &SessionContext,
    p: &Pipeline,
    silver: DeltaTable,
    (rows, replaced): (&[RecordBatch], &Replaced),
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<(DeltaTable, UpsertMetrics)> {
    // Only the rows that replace one go through the MERGE: its key bounds, and so the
    // files it scans and rewrites, are theirs alone; the new keys are appended first.
    let (replacing, new) = dedupe::split_by_keys(&p.source.key, rows, &replaced.rows)?;
    if replacing.is_empty() {
        // Every row that would replace one was superseded (`sequence_by`).
        let new = sequence::present_only(p, &new).await?;
        return append_batch(p, silver, &new, lineage, txn).await;
    }
    let (silver, appended) = if new.is_empty() {
        (silver, UpsertMetrics::default())
    } else {
        let new = sequence::present_only(p, &new).await?;
        append_batch(p, silver, &new, lineage, None).await?
    };
    let (silver, mut m) = merge_batch(ctx, p, silver, &replacing, lineage, txn).await?;
    m.inserted += appended.inserted;
    m.version = m.version.or(appended.version);
    Ok((silver, m))
}

fn commit_info(
    lineage: &Lineage,
    n_rows: usize,
) -> deltalake::kernel::transaction::CommitProperties {
    storage::commit_info(
        "silver_upsert",
        serde_json::json!({
            "batch_id": lineage.batch_id,
            "source_file": lineage.source_file,
            "rows": n_rows,
        }),
    )
}

/// Append rows none of whose keys is in silver.
async fn append_batch(
    p: &Pipeline,
    mut silver: DeltaTable,
    rows: &[RecordBatch],
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<(DeltaTable, UpsertMetrics)> {
    let name = p.source.tables().silver;
    let mut writer = AppendWriter::new(&silver, &name)?;
    for b in rows {
        writer.write(b.clone()).await?;
    }
    let n_rows = writer.rows();
    let committed = writer
        .commit(&mut silver, commit_info(lineage, n_rows as usize), txn)
        .await?;
    Ok((silver, UpsertMetrics::appended(committed, n_rows)))
}

/// MERGE the rows into silver on the natural key.
async fn merge_batch(
    ctx: &SessionContext,
    p: &Pipeline,
    silver: DeltaTable,
    rows: &[RecordBatch],
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<(DeltaTable, UpsertMetrics)> {
    let name = p.source.tables().silver;
    // Every column of the table is written: one no longer configured becomes null.
    let silver_schema = storage::arrow_schema(&silver, &name)?;
    let rows = rows
        .iter()
        .map(|b| storage::conform(b.clone(), &silver_schema, &name))
        .collect::<Result<Vec<_>>>()?;
    let n_rows: usize = rows.iter().map(|b| b.num_rows()).sum();
    let staged = MemTable::try_new(silver_schema.clone(), vec![rows])
        .map_err(MedallionError::sql("stage silver rows"))?;
    let source: DataFrame = ctx
        .read_table(Arc::new(staged))
        .map_err(MedallionError::sql("stage silver rows"))?;
    let (source, present_flag) = match sequence::with_present(p, source.clone())? {
        Some(flagged) => (flagged, Some(sequence::PRESENT)),
        None => (source, None),
    };
    let columns = schema::column_names(&silver_schema);
    let spec = UpsertSpec {
        table_name: &name,
        keys: &p.source.key,
        columns: &columns,
        present_flag,
        delete_unmatched: false,
        null_safe_keys: false,
        txn,
    };
    storage::upsert(silver, ctx, source, &spec, commit_info(lineage, n_rows)).await
}
