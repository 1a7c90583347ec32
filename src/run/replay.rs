//! Rebuilding a batch's silver input from its committed bronze rows, for a batch that an
//! earlier run left part-way after committing bronze and rejected: the accepted rows
//! are the batch's bronze rows minus its rejected lines, typed and checked again, so
//! the raw file is not read again (it may have been moved away meanwhile).
//!
//! The configuration may have changed since the batch started: a row that the current
//! rules reject is appended to rejected (one more commit, guarded by its own
//! transaction), so every bronze row still lands in silver or in rejected. A `fail`
//! rule cannot stop a batch whose bronze is already committed: its row is kept, with a
//! warning.

use deltalake::arrow::array::AsArray;
use deltalake::arrow::datatypes::Int64Type;
use futures::StreamExt;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::report::FileReport;
use crate::schema::{BATCH_ID, SOURCE_LINE};
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::Lineage;
use crate::zones::silver::{Staging, Validator};

use super::batch::SourceTables;

/// Application transaction of the rows a replay rejects under changed rules.
const APP_REJECTED_REPLAY: &str = "medallion/rejected/replay";

/// Stage the batch's accepted rows from bronze; fills the row counts of `fr`.
pub async fn stage_from_bronze(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    (lineage, seq): (&Lineage, i64),
    staging: &mut Staging,
    fr: &mut FileReport,
) -> Result<()> {
    let tables = SourceTables::new(p);
    let ctx = storage::session();
    for (name, relative) in [
        ("__bronze", &tables.bronze),
        ("__rejected", &tables.rejected),
    ] {
        let table = lake
            .open(relative)
            .await?
            .ok_or_else(|| MedallionError::Internal(format!("table {relative} vanished")))?;
        storage::register(&ctx, name, &table).await?;
    }
    let err = || MedallionError::sql("replay the batch from bronze");
    let batch = lineage.batch_id.replace('\'', "''");
    let count = |sql: String| {
        let ctx = &ctx;
        async move {
            let b = storage::sql_batches(ctx, &sql, "replay the batch from bronze").await?;
            Ok::<u64, MedallionError>(b.first().map_or(0, |b| {
                b.column(0).as_primitive::<Int64Type>().value(0) as u64
            }))
        }
    };
    fr.rows_read = count(format!(
        "SELECT COUNT(*) FROM __bronze WHERE {BATCH_ID} = '{batch}'"
    ))
    .await?;
    fr.bronze_rows = fr.rows_read;
    fr.rejected = count(format!(
        "SELECT COUNT(*) FROM __rejected WHERE {BATCH_ID} = '{batch}'"
    ))
    .await?;
    let columns: Vec<String> = p
        .source
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let sql = format!(
        "SELECT {}, {SOURCE_LINE} FROM __bronze WHERE {BATCH_ID} = '{batch}' AND {SOURCE_LINE} NOT IN \
         (SELECT {SOURCE_LINE} FROM __rejected WHERE {BATCH_ID} = '{batch}') ORDER BY {SOURCE_LINE}",
        columns.join(", ")
    );
    let mut stream = ctx
        .sql(&sql)
        .await
        .map_err(err())?
        .execute_stream()
        .await
        .map_err(err())?;
    let n = p.source.columns.len();
    let mut rejected_table = lake
        .open(&tables.rejected)
        .await?
        .ok_or_else(|| MedallionError::Internal(format!("table {} vanished", tables.rejected)))?;
    let mut newly_rejected = AppendWriter::new(&rejected_table, &tables.rejected)?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(err())?;
        let rows = crate::zones::bronze::read_back(&b, n)?;
        let v = validator.validate(&rows, lineage)?;
        if let Some((line, rule, _)) = &v.failure {
            tracing::warn!(
                file = %lineage.source_file,
                "line {line}: rule `{rule}` (action fail) was added after this batch's bronze \
                 was committed; the row is kept"
            );
        }
        fr.silver_accepted += v.accepted.num_rows() as u64;
        fr.rejected += v.rejected.num_rows() as u64;
        for (rule, k) in v.rejected_by_rule {
            *fr.rejected_by_rule.entry(rule).or_insert(0) += k;
        }
        staging.write(&v.accepted)?;
        newly_rejected.write(v.rejected).await?;
    }
    if newly_rejected.rows() > 0 {
        let rows = newly_rejected.rows();
        let props = storage::commit_info(
            "rejected_append",
            serde_json::json!({
                "batch_id": lineage.batch_id,
                "source_file": lineage.source_file,
                "rows": rows,
                "seq": seq,
                "note": "rejected by rules changed before the batch was completed",
            }),
        );
        newly_rejected
            .commit(&mut rejected_table, props, Some((APP_REJECTED_REPLAY, seq)))
            .await?;
    }
    Ok(())
}
