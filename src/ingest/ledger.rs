//! The file ledger: a Delta table (`_medallion/files`) with one row per processed file
//! attempt, queryable as `_medallion.files`. A file counts as done once a row with
//! status `loaded` exists for its name; failed attempts are recorded and retried on
//! the next run.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};

use crate::error::{MedallionError, Result};
use crate::schema;
use crate::storage::{self, AppendWriter, Lakehouse};

/// Table path of the ledger.
pub const LEDGER_TABLE: &str = "_medallion/files";

/// One ledger row.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub file: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    pub batch_id: String,
    pub loaded: bool,
    pub rows_read: u64,
    pub silver_accepted: u64,
    pub rejected: u64,
    pub message: Option<String>,
}

/// Names of files already loaded.
pub async fn loaded_files(lake: &Lakehouse) -> Result<HashSet<String>> {
    let Some(table) = lake.open(LEDGER_TABLE).await? else {
        return Ok(HashSet::new());
    };
    let ctx = storage::session();
    storage::register(&ctx, "ledger", &table).await?;
    let batches = ctx
        .sql("SELECT DISTINCT file FROM ledger WHERE status = 'loaded'")
        .await
        .map_err(MedallionError::sql("read the file ledger"))?
        .collect()
        .await
        .map_err(MedallionError::sql("read the file ledger"))?;
    let mut out = HashSet::new();
    for b in batches {
        let col = deltalake::arrow::compute::cast(
            b.column(0),
            &deltalake::arrow::datatypes::DataType::Utf8,
        )
        .map_err(MedallionError::arrow("read the file ledger"))?;
        let col = col.as_string::<i32>();
        for i in 0..col.len() {
            if col.is_valid(i) {
                out.insert(col.value(i).to_string());
            }
        }
    }
    Ok(out)
}

/// Append one entry to the ledger.
pub async fn record(lake: &Lakehouse, e: &LedgerEntry) -> Result<()> {
    let schema = schema::ledger_schema();
    let mut table = lake.open_or_create(LEDGER_TABLE, &schema, &[]).await?;
    let now = Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![e.file.as_str()])),
            Arc::new(Int64Array::from(vec![e.size as i64])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![e.modified.map(|m| m.timestamp_micros())])
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![e.batch_id.as_str()])),
            Arc::new(StringArray::from(vec![if e.loaded {
                "loaded"
            } else {
                "failed"
            }])),
            Arc::new(Int64Array::from(vec![e.rows_read as i64])),
            Arc::new(Int64Array::from(vec![e.silver_accepted as i64])),
            Arc::new(Int64Array::from(vec![e.rejected as i64])),
            Arc::new(StringArray::from(vec![e.message.as_deref()])),
            Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
        ],
    )
    .map_err(MedallionError::arrow("build ledger row"))?;
    let mut writer = AppendWriter::new(&table, LEDGER_TABLE)?;
    writer.write(batch).await?;
    let props = storage::commit_info(
        "ledger",
        serde_json::json!({ "batch_id": e.batch_id, "source_file": e.file, "rows": 1 }),
    );
    writer.commit(&mut table, props).await?;
    Ok(())
}
