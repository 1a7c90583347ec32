//! Accepted rows of a batch, parked in a local temporary Arrow IPC file while the file
//! is read, so memory does not grow with the file: silver is upserted only after bronze
//! and rejected are committed (and never when a `fail` rule breaks), in slices of
//! bounded size read back in file order. IPC, not Parquet: the rows are written once
//! and read once, so encoding and decoding them would be pure cost. The temporary file
//! is deleted when dropped.

use std::fs::File;
use std::io::BufReader;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::ipc::reader::FileReader;
use deltalake::arrow::ipc::writer::FileWriter;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::file::properties::WriterProperties;

use crate::error::{MedallionError, Result};

const ROW_GROUP_ROWS: usize = 64 * 1024;

fn io(e: std::io::Error) -> MedallionError {
    MedallionError::ReadFile {
        path: std::env::temp_dir(),
        source: e,
    }
}

fn ipc(step: &'static str) -> impl FnOnce(ArrowError) -> MedallionError {
    move |e| MedallionError::Arrow { step, source: e }
}

/// Parquet settings of local staging files that other stages write once and read once
/// (a rebuild's staged silver): no dictionaries to build, no compression, row groups
/// of bounded size.
pub fn staging_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false)
        .build()
}

/// Batches queued for the staging thread: a couple of chunks, so memory stays bounded.
const QUEUED: usize = 4;

/// Accepted rows being staged. A thread of its own encodes and writes them, so the
/// task that validates the next chunk does not wait for the encoding and the disk.
pub struct Staging {
    tx: Option<SyncSender<RecordBatch>>,
    writer: Option<JoinHandle<Result<File>>>,
    rows: u64,
}

impl Staging {
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        let file = tempfile::tempfile().map_err(io)?;
        let mut writer = FileWriter::try_new_buffered(file.try_clone().map_err(io)?, schema)
            .map_err(ipc("stage accepted rows"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("medallion-staging".into())
            .spawn(move || {
                for batch in rx {
                    writer.write(&batch).map_err(ipc("stage accepted rows"))?;
                }
                writer.finish().map_err(ipc("stage accepted rows"))?;
                // Flushes the buffer; the file's handle is shared with `file`.
                writer.into_inner().map_err(ipc("stage accepted rows"))?;
                Ok(file)
            })
            .map_err(io)?;
        Ok(Staging {
            tx: Some(tx),
            writer: Some(thread),
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(batch.clone()).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its error.
        self.join()?;
        Err(MedallionError::Internal(
            "the staging thread stopped before the end of the rows".into(),
        ))
    }

    /// End the thread's input and wait for it: the file, or the thread's error.
    fn join(&mut self) -> Result<File> {
        self.tx.take();
        let stopped = || MedallionError::Internal("the staging thread stopped".into());
        self.writer
            .take()
            .ok_or_else(stopped)?
            .join()
            .map_err(|_| stopped())?
    }

    /// Stop writing; the rows can then be read back in slices.
    pub fn finish(mut self) -> Result<StagedRows> {
        let file = self.join()?;
        let reader = if self.rows == 0 {
            None
        } else {
            Some(FileReader::try_new_buffered(file, None).map_err(ipc("read staged rows"))?)
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
    reader: Option<FileReader<BufReader<File>>>,
    total: u64,
    read: u64,
}

impl StagedRows {
    /// No rows were staged.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

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
