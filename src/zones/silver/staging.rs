//! Accepted rows of a batch, parked in a local temporary Parquet file while the file is
//! read, so memory does not grow with the file: silver is upserted only after bronze
//! and rejected are committed (and never when a `fail` rule breaks), in slices of
//! bounded size read back in file order. The temporary file is deleted when dropped.

use std::fs::File;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use deltalake::parquet::file::properties::WriterProperties;

use crate::error::{MedallionError, Result};

const ROW_GROUP_ROWS: usize = 64 * 1024;

fn io(e: std::io::Error) -> MedallionError {
    MedallionError::ReadFile {
        path: std::env::temp_dir(),
        source: e,
    }
}

fn pq(
    step: &'static str,
) -> impl FnOnce(deltalake::parquet::errors::ParquetError) -> MedallionError {
    move |e| MedallionError::Arrow {
        step,
        source: e.into(),
    }
}

/// Parquet settings of local staging files, written once and read once: no
/// dictionaries to build, no compression, row groups of bounded size.
pub fn staging_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false)
        .build()
}

/// Accepted rows being staged.
pub struct Staging {
    writer: ArrowWriter<File>,
    file: File,
    rows: u64,
}

impl Staging {
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        let file = tempfile::tempfile().map_err(io)?;
        let writer = ArrowWriter::try_new(
            file.try_clone().map_err(io)?,
            schema.clone(),
            Some(staging_properties()),
        )
        .map_err(pq("stage accepted rows"))?;
        Ok(Staging {
            writer,
            file,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).map_err(pq("stage accepted rows"))
    }

    /// Stop writing; read the rows back in batches of at most `batch_rows`.
    pub fn finish(self, batch_rows: u64) -> Result<StagedRows> {
        self.writer.close().map_err(pq("stage accepted rows"))?;
        let reader = if self.rows == 0 {
            None
        } else {
            Some(
                ParquetRecordBatchReaderBuilder::try_new(self.file)
                    .map_err(pq("read staged rows"))?
                    .with_batch_size(ROW_GROUP_ROWS.min(batch_rows.max(1) as usize))
                    .build()
                    .map_err(pq("read staged rows"))?,
            )
        };
        Ok(StagedRows {
            reader,
            total: self.rows,
            read: 0,
        })
    }
}

/// Staged rows, read back in file order.
pub struct StagedRows {
    reader: Option<ParquetRecordBatchReader>,
    total: u64,
    read: u64,
}

impl StagedRows {
    /// The next slice of about `rows` rows, and whether it is the last; `None` when done.
    pub fn next_slice(&mut self, rows: u64) -> Result<Option<(Vec<RecordBatch>, bool)>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut n = 0;
        while n < rows {
            match reader.next() {
                Some(b) => {
                    let b = b.map_err(MedallionError::arrow("read staged rows"))?;
                    n += b.num_rows() as u64;
                    out.push(b);
                }
                None => break,
            }
        }
        self.read += n;
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some((out, self.read >= self.total)))
    }
}
