//! Streaming appends: batches are encoded to Parquet as they arrive (bounded memory) and
//! become visible only when `commit` writes one Delta version for all of them. Dropping
//! an `AppendWriter` without committing leaves only unreferenced data files, which no
//! reader sees and `vacuum` removes.

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
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
    pub async fn commit(
        self,
        table: &mut DeltaTable,
        props: CommitProperties,
    ) -> Result<Option<i64>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let mut writer = self.writer.with_commit_properties(props);
        let version = writer
            .flush_and_commit(table)
            .await
            .map_err(MedallionError::delta("commit append", &self.table_name))?;
        Ok(Some(version as i64))
    }
}
