//! Silver and rejected recomputed from bronze with the current columns, rules and key.
//!
//! Bronze is streamed once in bounded record batches; each batch's rows are typed and
//! checked again (with the batch's own lineage). Rejected rows stream to the new
//! rejected table; accepted rows stream to a local staging Parquet file with their
//! batch's `seq`. The new silver is then the last row per key in (`seq`, file, line) order,
//! found by a `ROW_NUMBER()` window in a DataFusion session whose memory is capped, so
//! its sort spills to disk instead of growing with bronze. Each table is written as one
//! overwrite version, adopting the configured schema.

use std::collections::{BTreeMap, HashMap};

use deltalake::arrow::array::{AsArray, RecordBatch};

use super::moves::{OldRejections, count_moves, restore_structural};
use deltalake::arrow::datatypes::DataType;
use futures::StreamExt;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::schema::{
    BATCH_ID, RECEIVED_AT, REJECTION_REASONS, SOURCE_FILE, SOURCE_LINE, quote_ident,
};
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::silver::Validator;
use crate::zones::{Lineage, bronze};
use deltalake::DeltaTable;

/// Memory the recompute's DataFusion session may hold before its sorts spill.
const MEMORY_LIMIT: usize = 128 << 20;

/// Rows per batch (file) under the current rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub rows: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// What the recompute found.
#[derive(Debug, Clone, Default)]
pub struct Recomputed {
    /// Per (batch id, file).
    pub per_batch: HashMap<(String, String), BatchCounts>,
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Rows silver accepted before that the current rules reject, by rule broken now.
    pub to_rejected: BTreeMap<String, u64>,
    pub to_rejected_rows: u64,
    /// Rows rejected before that the current rules accept, by rule broken then.
    pub to_silver: BTreeMap<String, u64>,
    pub to_silver_rows: u64,
    /// Rows in the new silver (one per key).
    pub silver_rows: u64,
    /// Bronze rows of batches that never completed, left out as before.
    pub unfinished_rows: u64,
}

/// A recompute whose new tables are written but not committed yet.
pub struct Prepared {
    pub out: Recomputed,
    /// The new silver, when it was asked for.
    pub silver: Option<AppendWriter>,
    /// The new rejected, when it was asked for.
    pub rejected: Option<AppendWriter>,
}

/// Recompute silver and rejected from bronze; for `silver_table` and `rejected_table`
/// given, write their replacements (uploaded, not committed: see [`Prepared`]).
pub async fn recompute(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    seqs: &HashMap<String, i64>,
    (silver_table, rejected_table): (Option<&DeltaTable>, Option<&DeltaTable>),
) -> Result<Prepared> {
    let tables = p.source.tables();
    // A snapshot source's silver is its last loaded snapshot.
    let last_seq = seqs.values().copied().max().unwrap_or(0);
    let ctx = storage::bounded_session(MEMORY_LIMIT)?;
    let bronze = lake.open(&tables.bronze).await?.ok_or_else(|| {
        MedallionError::Usage(format!(
            "nothing to rebuild: {} does not exist yet",
            tables.bronze
        ))
    })?;
    storage::register(&ctx, "__bronze", &bronze).await?;
    let old_rejected = lake.open(&tables.rejected).await?;
    if let Some(r) = &old_rejected {
        storage::register(&ctx, "__rejected", r).await?;
    }
    let staged_dir = tempfile::tempdir().map_err(|source| MedallionError::ReadFile {
        path: std::env::temp_dir(),
        source,
    })?;
    let staged_path = staged_dir.path().join("accepted.parquet");
    let mut staged = super::staged::Staged::create(&staged_path, &p.source.silver_schema())?;
    let mut rejected_w = match rejected_table {
        Some(t) => Some(AppendWriter::replacing(
            t,
            &tables.rejected,
            &p.source.rejected_schema(),
            &[],
        )?),
        None => None,
    };
    let mut out = Recomputed::default();
    // Batch by batch, in `seq` order: a batch's bronze rows stream, its earlier
    // rejections (one file's worth at most) are held to compare with.
    for (batch_id, seq) in batches_in_order(seqs) {
        let old = match &old_rejected {
            Some(_) => OldRejections::new(&old_rejections(&ctx, batch_id).await?)?,
            None => OldRejections::default(),
        };
        let mut stream = batch_rows(&ctx, p, batch_id).await?;
        let n = p.source.columns.len();
        while let Some(b) = stream.next().await {
            let b = b.map_err(MedallionError::sql("rebuild: read bronze"))?;
            for (file, part) in bronze::file_runs(&b, n + 1)? {
                let lineage = lineage_of(&part, n)?;
                let mut rows = bronze::read_back(&part, n)?;
                // Bronze keeps the text, not its structural problems: those come back
                // from the row's earlier rejection, so such a row stays rejected for them.
                restore_structural(&mut rows, &file, &old);
                let v = validator.validate(&rows, &lineage)?;
                count_moves(&mut out, &old, &v.accepted, &v.rejected)?;
                let c = out
                    .per_batch
                    .entry((batch_id.to_string(), file))
                    .or_default();
                c.rows += rows.len() as u64;
                c.accepted += v.accepted.num_rows() as u64;
                c.rejected += v.rejected.num_rows() as u64;
                for (rule, k) in v.rejected_by_rule {
                    *out.rejected_by_rule.entry(rule).or_insert(0) += k;
                }
                staged.write(&v.accepted, seq)?;
                if let Some(w) = rejected_w.as_mut() {
                    w.write(v.rejected).await?;
                }
            }
        }
    }
    // Rows of a batch that never completed (closed as failed after its bronze commit,
    // its raw file gone) were in neither silver nor rejected: they stay so.
    let rebuilt: u64 = out.per_batch.values().map(|c| c.rows).sum();
    out.unfinished_rows = storage::row_count(&ctx, &bronze, &tables.bronze).await? - rebuilt;
    let staged_rows = staged.finish()?;
    if staged_rows > 0 {
        ctx.register_parquet(
            "__staged",
            staged_path.to_string_lossy().as_ref(),
            Default::default(),
        )
        .await
        .map_err(MedallionError::sql("rebuild: stage accepted rows"))?;
    }
    if silver_table.is_none() && staged_rows > 0 {
        let sql = format!("SELECT COUNT(*) FROM ({}) __k", new_silver_sql(p, last_seq));
        let counted = storage::sql_batches(&ctx, &sql, "rebuild: count silver keys").await?;
        out.silver_rows = counted.first().map_or(0, |b| {
            b.column(0)
                .as_primitive::<deltalake::arrow::datatypes::Int64Type>()
                .value(0) as u64
        });
    }
    let silver_w = match silver_table {
        Some(table) => {
            let mut w = AppendWriter::replacing(
                table,
                &tables.silver,
                &p.source.silver_schema(),
                &[(
                    super::super::evolve::SILVER_KEY_PROPERTY,
                    &super::super::evolve::silver_key_value(&p.source),
                )],
            )?;
            if staged_rows > 0 {
                let step = || MedallionError::sql("rebuild: the new silver");
                let mut rows = ctx
                    .sql(&new_silver_sql(p, last_seq))
                    .await
                    .map_err(step())?
                    .execute_stream()
                    .await
                    .map_err(step())?;
                while let Some(b) = rows.next().await {
                    w.write(b.map_err(step())?).await?;
                }
            }
            out.silver_rows = w.rows();
            Some(w)
        }
        None => None,
    };
    Ok(Prepared {
        out,
        silver: silver_w,
        rejected: rejected_w,
    })
}

/// The new silver from the staged accepted rows, as the source's mode keeps it
/// (without the `__seq` column): an `append` source keeps every row; an `upsert`
/// source the last row per key in (`seq`, file, line) order — with `sequence_by`, the
/// highest sequence value first — minus keys whose winning row `delete_when` deletes;
/// a `snapshot` source the rows of the last loaded snapshot (batch `last_seq`; none when
/// all of them are rejected now), the last line of a key winning.
fn new_silver_sql(p: &Pipeline, last_seq: i64) -> String {
    use crate::config::SourceMode;
    let s = &p.source;
    let columns: Vec<String> = s
        .silver_schema()
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    let columns = columns.join(", ");
    if s.mode == SourceMode::Append {
        return format!("SELECT {columns} FROM __staged");
    }
    let keys: Vec<String> = s.key.iter().map(|k| quote_ident(k)).collect();
    let sequence = s
        .sequence_by
        .as_deref()
        .map(|c| format!("{} DESC, ", quote_ident(c)))
        .unwrap_or_default();
    let from = match s.mode {
        SourceMode::Snapshot => format!("(SELECT * FROM __staged WHERE __seq = {last_seq})"),
        _ => "__staged".to_string(),
    };
    let deleted = s
        .delete_when
        .as_ref()
        .map(|rule| format!(" AND NOT COALESCE(({}), FALSE)", rule.sql))
        .unwrap_or_default();
    format!(
        "SELECT {columns} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY \
         {sequence}__seq DESC, {SOURCE_FILE} DESC, {SOURCE_LINE} DESC) AS __rn \
         FROM {from}) __s WHERE __rn = 1{deleted}",
        keys.join(", ")
    )
}

/// Loaded batches as (batch id, seq), in `seq` order.
fn batches_in_order(seqs: &HashMap<String, i64>) -> Vec<(&str, i64)> {
    let mut batches: Vec<(&str, i64)> = seqs.iter().map(|(b, s)| (b.as_str(), *s)).collect();
    batches.sort_by_key(|(_, s)| *s);
    batches
}

/// The rejected rows of one batch before the rebuild: (`_source_file`, `_source_line`,
/// reasons).
async fn old_rejections(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    batch_id: &str,
) -> Result<Vec<RecordBatch>> {
    let sql = format!(
        "SELECT {SOURCE_FILE}, {SOURCE_LINE}, {REJECTION_REASONS} FROM __rejected WHERE {BATCH_ID} = {}",
        crate::schema::quote_literal(batch_id)
    );
    storage::sql_batches(ctx, &sql, "rebuild: read the earlier rejections").await
}

/// One batch's bronze rows: the configured columns, then `_source_line`, file, batch
/// id and received at (the layout of `bronze::read_back` and `lineage_of`).
async fn batch_rows(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    p: &Pipeline,
    batch_id: &str,
) -> Result<deltalake::datafusion::physical_plan::SendableRecordBatchStream> {
    let mut columns: Vec<String> = p
        .source
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    columns.extend([SOURCE_LINE, SOURCE_FILE, BATCH_ID, RECEIVED_AT].map(String::from));
    let sql = format!(
        "SELECT {} FROM __bronze WHERE {BATCH_ID} = {}",
        columns.join(", "),
        crate::schema::quote_literal(batch_id)
    );
    let step = || MedallionError::sql("rebuild: read bronze");
    ctx.sql(&sql)
        .await
        .map_err(step())?
        .execute_stream()
        .await
        .map_err(step())
}

/// The lineage of a run of rows of one batch and file (file, batch id, received at).
fn lineage_of(part: &RecordBatch, n: usize) -> Result<Lineage> {
    let text = |i: usize| -> Result<String> {
        let c = deltalake::arrow::compute::cast(part.column(i), &DataType::Utf8)
            .map_err(MedallionError::arrow("rebuild: lineage"))?;
        Ok(c.as_string::<i32>().value(0).to_string())
    };
    let received = part
        .column(n + 3)
        .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    Ok(Lineage {
        source_file: text(n + 1)?,
        batch_id: text(n + 2)?,
        received_at: chrono::DateTime::from_timestamp_micros(received).unwrap_or_default(),
    })
}
