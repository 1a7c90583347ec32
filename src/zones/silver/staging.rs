//! Accepted rows of a batch, parked in a local temporary Arrow IPC file while the file
//! is read, so memory does not grow with the file: silver is upserted only after bronze
//! and rejected are committed (and never when a `fail` rule breaks), in slices of
//! bounded size read back in file order. IPC, not Parquet: the rows are written once
//! and read once, so encoding and decoding them would be pure cost. The temporary file
//! is deleted when dropped.
//!
//! A file's lineage (its name, batch id and time of receipt) is the same on each of
//! its rows, and was nearly half of every staged row: those columns are not written
//! but kept once per staged batch (a batch holding several values is staged in runs of
//! one value each) and put back when the rows are read.

use std::fs::File;
use std::io::BufReader;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use deltalake::arrow::compute::kernels::boolean::or;
use deltalake::arrow::compute::kernels::cmp::distinct;
use deltalake::arrow::compute::take;
use deltalake::arrow::datatypes::{Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::ipc::reader::FileReader;
use deltalake::arrow::ipc::writer::FileWriter;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::file::properties::WriterProperties;

use super::repeats::{RepeatTracker, Repeats};
use crate::error::{MedallionError, Result};
use crate::schema::{BATCH_ID, RECEIVED_AT, SILVER_RECEIVED_AT, SOURCE_FILE};

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

/// The columns that hold one value per file: not staged, kept once per staged batch.
const PER_FILE: [&str; 4] = [SOURCE_FILE, BATCH_ID, RECEIVED_AT, SILVER_RECEIVED_AT];

/// Which columns of the rows are staged, and which are kept aside.
#[derive(Debug, Clone)]
struct Layout {
    /// The rows' schema.
    full: SchemaRef,
    /// The schema of the staged file: `full` without the per-file columns.
    staged: SchemaRef,
    /// Per column of `full`: its index among the staged columns, or among the kept.
    place: Vec<Place>,
    /// Indices in `full` of the staged columns, then of the kept ones.
    staged_columns: Vec<usize>,
    kept_columns: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Staged(usize),
    Kept(usize),
}

impl Layout {
    fn of(full: &SchemaRef) -> Self {
        let (kept_columns, staged_columns): (Vec<usize>, Vec<usize>) = (0..full.fields().len())
            .partition(|&i| {
                let f = full.field(i);
                PER_FILE.contains(&f.name().as_str()) && !f.data_type().is_nested()
            });
        let mut place = vec![Place::Staged(0); full.fields().len()];
        for (j, &i) in staged_columns.iter().enumerate() {
            place[i] = Place::Staged(j);
        }
        for (j, &i) in kept_columns.iter().enumerate() {
            place[i] = Place::Kept(j);
        }
        let staged = Schema::new_with_metadata(
            staged_columns
                .iter()
                .map(|&i| full.field(i).clone())
                .collect::<Vec<_>>(),
            full.metadata().clone(),
        );
        Layout {
            full: full.clone(),
            staged: std::sync::Arc::new(staged),
            place,
            staged_columns,
            kept_columns,
        }
    }

    /// The rows of `batch` in runs whose per-file columns hold one value each: each run
    /// as its staged columns and its kept values (one row per kept column).
    fn split(&self, batch: &RecordBatch) -> Result<Vec<(RecordBatch, Vec<ArrayRef>)>> {
        let n = batch.num_rows();
        let mut changes: Option<BooleanArray> = None;
        for &i in &self.kept_columns {
            let c = batch.column(i);
            let changed = distinct(&c.slice(0, n - 1), &c.slice(1, n - 1))
                .map_err(ipc("stage accepted rows"))?;
            changes = Some(match changes {
                Some(prev) => or(&prev, &changed).map_err(ipc("stage accepted rows"))?,
                None => changed,
            });
        }
        let mut starts = vec![0];
        if let Some(changes) = changes.filter(|c| c.true_count() > 0) {
            starts.extend((0..n - 1).filter(|&i| changes.value(i)).map(|i| i + 1));
        }
        let staged = batch
            .project(&self.staged_columns)
            .map_err(ipc("stage accepted rows"))?;
        let mut runs = Vec::with_capacity(starts.len());
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(n);
            // Copied: a slice would hold on to the whole column's buffers.
            let at = UInt32Array::from(vec![start as u32]);
            let kept = self
                .kept_columns
                .iter()
                .map(|&i| take(batch.column(i), &at, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(ipc("stage accepted rows"))?;
            runs.push((staged.slice(start, end - start), kept));
        }
        Ok(runs)
    }

    /// A staged batch with its kept values put back, in the rows' schema.
    fn join(&self, staged: RecordBatch, kept: &[ArrayRef]) -> Result<RecordBatch> {
        let n = staged.num_rows();
        let zeros = UInt32Array::from(vec![0u32; n]);
        let columns = self
            .place
            .iter()
            .map(|place| match *place {
                Place::Staged(j) => Ok(staged.column(j).clone()),
                Place::Kept(j) => take(&kept[j], &zeros, None).map_err(ipc("read staged rows")),
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.full.clone(), columns).map_err(ipc("read staged rows"))
    }
}

/// The staged file, the kept values of each batch in it (in order), and the keys that
/// repeat (when they were tracked to the end).
type Staged = (File, Vec<Vec<ArrayRef>>, Option<Repeats>);

/// Accepted rows being staged. A thread of its own encodes and writes them, so the
/// task that validates the next chunk does not wait for the encoding and the disk.
pub struct Staging {
    tx: Option<SyncSender<RecordBatch>>,
    writer: Option<JoinHandle<Result<Staged>>>,
    layout: Layout,
    rows: u64,
}

impl Staging {
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        Self::tracking(schema, None)
    }

    /// Staging that also notes which keys repeat, with `tracker` (see `repeats`).
    pub(super) fn tracking(schema: &SchemaRef, tracker: Option<RepeatTracker>) -> Result<Self> {
        let layout = Layout::of(schema);
        let file = tempfile::tempfile().map_err(io)?;
        let mut writer =
            FileWriter::try_new_buffered(file.try_clone().map_err(io)?, &layout.staged)
                .map_err(ipc("stage accepted rows"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(QUEUED);
        let split = layout.clone();
        let thread = std::thread::Builder::new()
            .name("medallion-staging".into())
            .spawn(move || {
                // The kept values of each batch written, in order.
                let mut kept = Vec::new();
                let mut tracker = tracker;
                for batch in rx {
                    if let Some(t) = tracker.as_mut()
                        && !t.observe(&batch)?
                    {
                        tracing::debug!("too many repeated keys to track; slices checked");
                        tracker = None;
                    }
                    for (staged, values) in split.split(&batch)? {
                        writer.write(&staged).map_err(ipc("stage accepted rows"))?;
                        kept.push(values);
                    }
                }
                writer.finish().map_err(ipc("stage accepted rows"))?;
                // Flushes the buffer; the file's handle is shared with `file`.
                writer.into_inner().map_err(ipc("stage accepted rows"))?;
                Ok((file, kept, tracker.map(RepeatTracker::finish)))
            })
            .map_err(io)?;
        Ok(Staging {
            tx: Some(tx),
            writer: Some(thread),
            layout,
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

    /// End the thread's input and wait for it: the file and the kept values of each
    /// batch in it, or the thread's error.
    fn join(&mut self) -> Result<Staged> {
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
        let (file, kept, repeats) = self.join()?;
        let reader = if self.rows == 0 {
            None
        } else {
            Some(FileReader::try_new_buffered(file, None).map_err(ipc("read staged rows"))?)
        };
        Ok(StagedRows {
            reader,
            layout: self.layout,
            kept: kept.into_iter(),
            total: self.rows,
            read: 0,
            repeats,
        })
    }
}

/// Staged rows, read back in file order.
pub struct StagedRows {
    reader: Option<FileReader<BufReader<File>>>,
    layout: Layout,
    /// The kept values of each staged batch, in order.
    kept: std::vec::IntoIter<Vec<ArrayRef>>,
    total: u64,
    read: u64,
    /// The keys that repeat, when tracked: the rows a later row supersedes are dropped.
    repeats: Option<Repeats>,
}

impl StagedRows {
    /// No rows were staged.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many rows were staged (every accepted row of the batch).
    pub fn rows(&self) -> u64 {
        self.total
    }

    /// Whether no two rows read back share a key: repeats were tracked, and every row
    /// but the last of its key is dropped.
    pub fn keys_unique(&self) -> bool {
        self.repeats.is_some()
    }

    /// The next slice of about `rows` rows (fewer when rows of it are superseded), and
    /// whether it is the last; `None` when done.
    pub fn next_slice(&mut self, rows: u64) -> Result<Option<(Vec<RecordBatch>, bool)>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        // Rows kept (a slice all of whose rows are superseded reads on).
        let mut kept_rows = 0;
        while kept_rows < rows {
            let Some(b) = reader.next() else { break };
            let b = b.map_err(MedallionError::arrow("read staged rows"))?;
            let kept = self.kept.next().ok_or_else(|| {
                MedallionError::Internal("a staged batch without its lineage".into())
            })?;
            let first = self.read;
            self.read += b.num_rows() as u64;
            let b = self.layout.join(b, &kept)?;
            let b = match &self.repeats {
                Some(r) => r.drop_superseded(b, first)?,
                None => b,
            };
            kept_rows += b.num_rows() as u64;
            if b.num_rows() > 0 {
                out.push(b);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some((out, self.read >= self.total)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::compute::concat_batches;
    use deltalake::arrow::datatypes::{DataType, Field};

    use super::*;

    fn batch(files: &[&str], from: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new(SOURCE_FILE, DataType::Utf8, false),
            Field::new(BATCH_ID, DataType::Utf8, false),
        ]));
        let n = files.len() as i64;
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n)),
                Arc::new(StringArray::from(files.to_vec())),
                Arc::new(StringArray::from(vec!["b1"; files.len()])),
            ],
        )
        .unwrap()
    }

    /// Rows come back as they went in, also when a batch holds several files, and the
    /// per-file columns are staged once per run.
    #[test]
    fn lineage_is_kept_aside_and_put_back() {
        let batches = [
            batch(&["a.csv", "a.csv", "a.csv"], 0),
            batch(&["a.csv", "b.csv", "b.csv", "c.csv"], 3),
            batch(&["c.csv"], 7),
        ];
        let schema = batches[0].schema();
        let layout = Layout::of(&schema);
        assert_eq!(layout.staged.fields().len(), 1, "only `v` is staged");
        assert_eq!(layout.split(&batches[1]).unwrap().len(), 3, "three runs");
        // The kept values hold nothing of the batch's buffers (10,000 rows here).
        let big = batch(&vec!["a.csv"; 10_000], 0);
        for (_, kept) in layout.split(&big).unwrap() {
            assert!(kept.iter().all(|a| a.get_array_memory_size() < 1024));
        }
        let mut staging = Staging::new(&schema).unwrap();
        for b in &batches {
            staging.write(b).unwrap();
        }
        let mut staged = staging.finish().unwrap();
        let mut back = Vec::new();
        while let Some((slice, _)) = staged.next_slice(2).unwrap() {
            back.extend(slice);
        }
        let expected = concat_batches(&schema, &batches).unwrap();
        assert_eq!(concat_batches(&schema, &back).unwrap(), expected);
    }
}
