//! Silver and rejected recomputed from bronze with the current columns, rules and key.
//!
//! Bronze is streamed once in bounded record batches; each batch's rows are typed and
//! checked again (with the batch's own lineage). Rejected rows stream to the new
//! rejected table; accepted rows stream to a local staging Parquet file with their
//! batch's `seq`. The new silver is then the last row per key in (`seq`, line) order,
//! found by a `ROW_NUMBER()` window in a DataFusion session whose memory is capped, so
//! its sort spills to disk instead of growing with bronze. Each table is written as one
//! overwrite version, adopting the configured schema.

use std::collections::{BTreeMap, HashMap};

use deltalake::arrow::array::{AsArray, RecordBatch};
use deltalake::arrow::datatypes::DataType;
use futures::StreamExt;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::schema::{BATCH_ID, RECEIVED_AT, REJECTION_REASONS, SOURCE_FILE, SOURCE_LINE};
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::silver::Validator;
use crate::zones::{Lineage, bronze};

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
    /// Per batch id.
    pub per_batch: HashMap<String, BatchCounts>,
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Rows silver accepted before that the current rules reject, by rule broken now.
    pub to_rejected: BTreeMap<String, u64>,
    pub to_rejected_rows: u64,
    /// Rows rejected before that the current rules accept, by rule broken then.
    pub to_silver: BTreeMap<String, u64>,
    pub to_silver_rows: u64,
    /// Rows in the new silver (one per key).
    pub silver_rows: u64,
}

/// Which tables the recompute writes (a resumed rebuild skips those already written).
pub struct Writes<'a> {
    pub silver: Option<&'a mut deltalake::DeltaTable>,
    pub rejected: Option<&'a mut deltalake::DeltaTable>,
    /// The rebuild's transaction, committed with each table.
    pub txn: (&'a str, i64),
    pub props: serde_json::Value,
}

/// Recompute silver and rejected from bronze; with `writes`, replace those tables.
pub async fn recompute(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    seqs: &HashMap<String, i64>,
    writes: Option<Writes<'_>>,
) -> Result<Recomputed> {
    let tables = super::super::SourceTables::new(p);
    let ctx = storage::bounded_session(MEMORY_LIMIT)?;
    let bronze = lake.open(&tables.bronze).await?.ok_or_else(|| {
        MedallionError::Usage(format!(
            "nothing to rebuild: {} does not exist yet",
            tables.bronze
        ))
    })?;
    storage::register(&ctx, "__bronze", &bronze).await?;
    let mut columns: Vec<String> = p
        .source
        .columns
        .iter()
        .map(|c| format!("b.\"{}\"", c.name))
        .collect();
    columns.extend([SOURCE_LINE, SOURCE_FILE, BATCH_ID, RECEIVED_AT].map(|c| format!("b.{c}")));
    let old_rejected = lake.open(&tables.rejected).await?;
    let sql = match &old_rejected {
        // The rows rejected before, to tell what moves.
        Some(r) => {
            storage::register(&ctx, "__rejected", r).await?;
            format!(
                // Rejected (the smaller side) is the hash join's build side; bronze streams.
                "SELECT {}, r.{REJECTION_REASONS} AS __old FROM \
                 (SELECT {BATCH_ID}, {SOURCE_LINE}, {REJECTION_REASONS} FROM __rejected) r \
                 RIGHT JOIN __bronze b \
                 ON b.{BATCH_ID} = r.{BATCH_ID} AND b.{SOURCE_LINE} = r.{SOURCE_LINE}",
                columns.join(", ")
            )
        }
        None => format!(
            "SELECT {}, CAST(NULL AS INT) AS __old FROM __bronze b",
            columns.join(", ")
        ),
    };
    let step = || MedallionError::sql("rebuild: read bronze");
    let mut stream = ctx
        .sql(&sql)
        .await
        .map_err(step())?
        .execute_stream()
        .await
        .map_err(step())?;

    let staged_dir = tempfile::tempdir().map_err(|source| MedallionError::ReadFile {
        path: std::env::temp_dir(),
        source,
    })?;
    let staged_path = staged_dir.path().join("accepted.parquet");
    let mut staged = super::staged::Staged::create(&staged_path, &crate::schema::silver_schema(p))?;
    let (silver_table, rejected_table, txn, props) = match writes {
        Some(w) => (w.silver, w.rejected, Some(w.txn), w.props),
        None => (None, None, None, serde_json::Value::Null),
    };
    let mut rejected_w = match rejected_table.as_deref() {
        Some(t) => Some(AppendWriter::replacing(
            t,
            &tables.rejected,
            &crate::schema::rejected_schema(p),
            &[],
        )?),
        None => None,
    };
    let mut out = Recomputed::default();
    let n = p.source.columns.len();
    while let Some(b) = stream.next().await {
        let b = b.map_err(step())?;
        for (start, len) in runs_of_batch_id(&b, n + 2)? {
            let part = b.slice(start, len);
            let lineage = lineage_of(&part, n)?;
            let seq = *seqs.get(&lineage.batch_id).ok_or_else(|| {
                MedallionError::Internal(format!(
                    "bronze holds rows of batch {} that the ledger does not show as loaded",
                    lineage.batch_id
                ))
            })?;
            let rows = bronze::read_back(&part, n)?;
            let v = validator.validate(&rows, &lineage)?;
            super::moves::count_moves(&mut out, &part, n + 4, &v.accepted, &v.rejected)?;
            let c = out.per_batch.entry(lineage.batch_id.clone()).or_default();
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
        let keys: Vec<String> = p.silver_key.iter().map(|k| format!("\"{k}\"")).collect();
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT {} FROM __staged) __k",
            keys.join(", ")
        );
        let counted = storage::sql_batches(&ctx, &sql, "rebuild: count silver keys").await?;
        out.silver_rows = counted.first().map_or(0, |b| {
            b.column(0)
                .as_primitive::<deltalake::arrow::datatypes::Int64Type>()
                .value(0) as u64
        });
    }
    if let Some(table) = silver_table {
        let mut w = AppendWriter::replacing(
            table,
            &tables.silver,
            &crate::schema::silver_schema(p),
            &[(
                super::super::evolve::SILVER_KEY_PROPERTY,
                &super::super::evolve::silver_key_value(p),
            )],
        )?;
        if staged_rows > 0 {
            let step = || MedallionError::sql("rebuild: last row per key");
            let mut rows = ctx
                .sql(&last_per_key_sql(p))
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
        let info = storage::commit_info("rebuild_silver", with_rows(&props, w.rows()));
        w.commit(table, info, txn).await?;
        super::super::failpoint("after_rebuild_silver");
    }
    if let (Some(w), Some(table)) = (rejected_w, rejected_table) {
        let info = storage::commit_info("rebuild_rejected", with_rows(&props, w.rows()));
        w.commit(table, info, txn).await?;
        super::super::failpoint("after_rebuild_rejected");
    }
    Ok(out)
}

fn with_rows(props: &serde_json::Value, rows: u64) -> serde_json::Value {
    let mut v = props.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("rows".into(), rows.into());
    }
    v
}

/// The last staged row per silver key, in (`seq`, line) order, without the `__seq` column.
fn last_per_key_sql(p: &Pipeline) -> String {
    let q = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let columns: Vec<String> = crate::schema::silver_schema(p)
        .fields()
        .iter()
        .map(|f| q(f.name()))
        .collect();
    let keys: Vec<String> = p.silver_key.iter().map(|k| q(k)).collect();
    format!(
        "SELECT {} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY __seq DESC, {SOURCE_LINE} DESC) AS __rn \
         FROM __staged) __s WHERE __rn = 1",
        columns.join(", "),
        keys.join(", ")
    )
}

/// (start, length) of the runs of equal `_batch_id` in `b` (column `col`).
fn runs_of_batch_id(b: &RecordBatch, col: usize) -> Result<Vec<(usize, usize)>> {
    let ids = deltalake::arrow::compute::cast(b.column(col), &DataType::Utf8)
        .map_err(MedallionError::arrow("rebuild: batch ids"))?;
    let ids = ids.as_string::<i32>();
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=b.num_rows() {
        if i == b.num_rows() || ids.value(i) != ids.value(start) {
            runs.push((start, i - start));
            start = i;
        }
    }
    Ok(runs)
}

/// The lineage of a run of rows of one batch (file, batch id, received at).
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
