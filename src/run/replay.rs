//! Rebuilding a batch's silver input from its committed bronze rows, for a batch that an
//! earlier run left part-way after committing bronze and rejected: the accepted rows
//! are the batch's bronze rows minus its rejected lines, typed again (deterministic),
//! so the raw file is not read again (it may have been moved away meanwhile).

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use futures::StreamExt;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::reader::RawRow;
use crate::report::FileReport;
use crate::schema::{BATCH_ID, SOURCE_LINE};
use crate::storage::{self, Lakehouse};
use crate::zones::Lineage;
use crate::zones::silver::{Staging, Validator};

use super::batch::SourceTables;

/// Stage the batch's accepted rows from bronze; fills the row counts of `fr`.
pub async fn stage_from_bronze(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    lineage: &Lineage,
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
            .ok_or_else(|| MedallionError::Usage(format!("table {relative} vanished")))?;
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
    while let Some(b) = stream.next().await {
        let b = b.map_err(err())?;
        let text: Vec<_> = (0..n)
            .map(|i| deltalake::arrow::compute::cast(b.column(i), &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()
            .map_err(MedallionError::arrow("replay the batch from bronze"))?;
        let lines = b.column(n).as_primitive::<Int64Type>();
        let rows: Vec<RawRow> = (0..b.num_rows())
            .map(|r| RawRow {
                line: lines.value(r) as u64,
                fields: text
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        c.is_valid(r).then(|| c.value(r).to_string())
                    })
                    .collect(),
                problems: Vec::new(),
                cut: false,
            })
            .collect();
        let v = validator.validate(&rows, lineage)?;
        fr.silver_accepted += v.accepted.num_rows() as u64;
        staging.write(&v.accepted)?;
    }
    Ok(())
}
