//! Streaming appends: batches are encoded to Parquet as they arrive (bounded memory) and
//! become visible only when `commit` writes one Delta version for all of them. Dropping
//! an `AppendWriter` without committing leaves only unreferenced data files, which no
//! reader sees and `vacuum` removes.

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use crate::error::{MedallionError, Result};

/// An open append to one table.
pub struct AppendWriter {
    table_name: String,
    writer: RecordBatchWriter,
    rows: u64,
}

impl AppendWriter {
    /// Start an append to `table`.
    pub fn new(table: &DeltaTable, table_name: &str) -> Result<Self> {
        let writer = RecordBatchWriter::for_table(table)
            .map_err(MedallionError::delta("open writer", table_name))?;
        Ok(AppendWriter {
            table_name: table_name.to_string(),
            writer,
            rows: 0,
        })
    }

    /// Encode a batch (no commit yet). Empty batches are ignored.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .await
            .map_err(MedallionError::delta("write", &self.table_name))
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Commit everything written as one version; `None` when nothing was written.
    ///
    /// With `txn = Some((app, seq))` the commit carries that application transaction and
    /// is exactly-once: after any commit error the table is re-read, and if `app` already
    /// reached `seq` (an ambiguous commit that did land) nothing is written again;
    /// conflicts are retried with backoff.
    pub async fn commit(
        self,
        table: &mut DeltaTable,
        props: CommitProperties,
        txn: Option<(&str, i64)>,
    ) -> Result<Option<i64>> {
        if self.rows == 0 && txn.is_none() {
            return Ok(None);
        }
        let props = match txn {
            Some((app, seq)) => props.with_application_transaction(Transaction::new(app, seq)),
            None => props,
        };
        let mut writer = self.writer.with_commit_properties(props);
        let mut attempt = 0u32;
        loop {
            let err = match writer.flush_and_commit(table).await {
                Ok(version) => return Ok(Some(version as i64)),
                Err(e) => MedallionError::delta("commit append", &self.table_name)(e),
            };
            let Some((app, seq)) = txn else {
                return Err(err);
            };
            table
                .update_state()
                .await
                .map_err(MedallionError::delta("reload", &self.table_name))?;
            if super::txn_version(table, app, &self.table_name)
                .await?
                .unwrap_or(0)
                >= seq
            {
                return Ok(table.version().map(|v| v as i64));
            }
            attempt += 1;
            if !super::is_conflict(&err) || attempt >= 6 {
                return Err(err);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
        }
    }
}
