//! Reading a batch's raw files: every file in name order, each through the validator,
//! its bronze rows to the bronze writer, its rejected rows to the rejected writer and
//! its accepted rows to the silver staging file.
//!
//! A file that fails (it cannot be opened or decompressed, its header does not fit, a
//! `fail` rule breaks, it changed while it was read) fails alone. A batch's files
//! stream their rows straight to the writers ([`Mode::Stream`]); when a file fails
//! after some of its rows were handed over, and the batch has other files, the read
//! stops ([`Read::Tainted`]) and the caller reads the others again with
//! [`Mode::Hold`]: each file's rows held until it has been read to its end (in memory,
//! or spilled to a local temporary file past a bound, see `hold`), and only then handed
//! to the writers, so nothing of a failed file is written. Failing part-way is rare
//! (a broken `fail` rule, a corrupt gzip stream, a file rewritten while read); a bad
//! header or an unreadable file fails before any row.
//!
//! One thread parses the files, a couple of chunks ahead of validation; a task encodes
//! bronze Parquet; so reading the next file overlaps validating and encoding this one.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use super::assemble::Batch;
use super::hold::{Held, Rows};
use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::RawFile;
use crate::ingest::reader::CsvChunks;
use crate::report::{FileReport, merge_counts};
use crate::row::RawRow;
use crate::storage::AppendWriter;
use crate::zones::bronze;
use crate::zones::silver::{Staging, Validator};

/// Where a batch's rows go. `bronze` is `None` when bronze is already committed (an
/// interrupted batch whose rejected and silver rows are still to be written).
pub struct Sinks<'a> {
    pub bronze: Option<AppendWriter>,
    pub rejected: &'a mut AppendWriter,
    pub staging: &'a mut Staging,
}

/// What the parsing thread sends: a chunk of file `i`, its end, or why it failed.
enum Parsed {
    Chunk(usize, Vec<RawRow>),
    End(usize),
    Failed(usize, MedallionError),
}

/// How a file's rows reach the writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As they are read.
    Stream,
    /// Once the file has been read to its end.
    Hold,
}

/// How a read ended.
pub enum Read {
    /// Every file was read, or failed alone; the bronze writer, when there was one.
    Whole(Option<Box<AppendWriter>>),
    /// A file failed after some of its rows streamed to the writers (its report says
    /// why): the batch's other files are to be read again, into new writers, held.
    Tainted,
}

/// Read every member of `batch` that has not failed and has its raw file; a file that
/// fails gets its error in its report. An error is one of the writers failing, which
/// fails the whole batch.
pub async fn read_files(
    p: &Pipeline,
    validator: &Validator,
    batch: &mut Batch,
    sinks: Sinks<'_>,
    mode: Mode,
) -> Result<Read> {
    let Sinks {
        bronze: bronze_w,
        rejected: rejected_w,
        staging,
    } = sinks;
    let hold = mode == Mode::Hold;
    let files: Vec<(usize, RawFile)> = batch
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.report.loaded())
        .filter_map(|(i, m)| m.file.clone().map(|f| (i, f)))
        .collect();
    let reading: Vec<usize> = files.iter().map(|(i, _)| *i).collect();
    let abandoned = Arc::new(AtomicUsize::new(usize::MAX));
    let mut parsed = parse_in_background(files, p.source.clone(), abandoned.clone());
    let (to_bronze, encoder) = match bronze_w {
        Some(w) => {
            let (tx, task) = encode_in_background(w);
            (Some(tx), Some(Aborting(Some(task))))
        }
        None => (None, None),
    };
    // Bronze rows are built only when bronze is still to be written.
    let bronze_schema = encoder.is_some().then(|| p.source.bronze_schema());
    let mut held = Held::default();
    // Files read to their end: any other (the parser stopped short) fails below.
    let mut ended = HashSet::new();
    // Files some of whose rows streamed to the writers.
    let mut streamed = HashSet::new();
    let mut out = Outlet {
        to_bronze: to_bronze.as_ref(),
        rejected_w,
        staging,
    };
    while let Some(msg) = parsed.recv().await {
        let i = match &msg {
            Parsed::Chunk(i, _) | Parsed::End(i) | Parsed::Failed(i, _) => *i,
        };
        if batch.members[i].report.error.is_some() {
            continue; // Failed already: the rest of it is dropped.
        }
        let outcome = match msg {
            Parsed::Chunk(_, rows) => {
                let lineage = batch.lineage(i);
                let report = &mut batch.members[i].report;
                match checked(validator, &rows, &lineage, bronze_schema.as_ref(), report) {
                    // A spill's error is the file's; a writer's fails the batch.
                    Ok(rows) if hold => held.push(rows),
                    Ok(rows) => {
                        streamed.insert(i);
                        out.write(rows).await?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Parsed::End(_) => match unchanged_while_read(batch.members[i].file.as_ref()).await {
                Ok(()) => {
                    ended.insert(i);
                    crate::progress::file_done(batch.members[i].claim.size);
                    out.write_held(std::mem::take(&mut held)).await?;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Parsed::Failed(_, e) => Err(e),
        };
        // Any error but a writer's (returned above) is this file's alone.
        if let Err(e) = outcome {
            abandoned.store(i, Ordering::Relaxed);
            held = Held::default();
            let member = &mut batch.members[i];
            tracing::error!(file = %member.claim.file, "{e}");
            member.report = FileReport {
                error: Some(e.to_string()),
                ..FileReport::new(&member.claim.file, &batch.batch_id)
            };
            if tainted(&streamed, i, batch) {
                return Ok(Read::Tainted);
            }
        }
    }
    for i in reading {
        if !ended.contains(&i) && batch.members[i].report.loaded() {
            let file = batch.members[i].claim.file.clone();
            tracing::error!(file = %file, "reading stopped before the end of the file");
            batch.fail(
                i,
                format!("{file}: reading stopped before the end of the file"),
            );
            if tainted(&streamed, i, batch) {
                return Ok(Read::Tainted);
            }
        }
    }
    drop(to_bronze);
    match encoder.and_then(Aborting::into_inner) {
        Some(task) => Ok(Read::Whole(Some(Box::new(task.await.map_err(|e| {
            MedallionError::Internal(format!("the bronze encoder stopped: {e}"))
        })??)))),
        None => Ok(Read::Whole(None)),
    }
}

/// Whether file `i`, just failed, leaves the writers with rows of it while other files
/// of the batch are still to be loaded.
fn tainted(streamed: &HashSet<usize>, i: usize, batch: &Batch) -> bool {
    streamed.contains(&i) && batch.loaded().next().is_some()
}

/// A task aborted when dropped: a read cancelled part-way (the run stopped) takes its
/// bronze encoder with it, and a batch read ahead and never claimed takes its read.
pub(super) struct Aborting<T>(pub(super) Option<tokio::task::JoinHandle<T>>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl<T> Aborting<T> {
    /// The task, to be awaited (no longer aborted when dropped).
    pub(super) fn into_inner(mut self) -> Option<tokio::task::JoinHandle<T>> {
        self.0.take()
    }
}

/// The writers a file's rows are handed to.
struct Outlet<'a, 'b> {
    to_bronze: Option<&'a mpsc::Sender<RecordBatch>>,
    rejected_w: &'b mut AppendWriter,
    staging: &'b mut Staging,
}

impl Outlet<'_, '_> {
    async fn write(&mut self, rows: Rows) -> Result<()> {
        if let Some(b) = rows.bronze {
            self.bronze(b).await;
        }
        if let Some(b) = rows.rejected {
            self.rejected_w.write(b).await?;
        }
        match rows.accepted {
            Some(b) => self.staging.write(&b),
            None => Ok(()),
        }
    }

    /// A file's held rows, in the order they came.
    async fn write_held(&mut self, held: Held) -> Result<()> {
        let mut bronze = held.bronze.drain()?;
        while let Some(batches) = bronze.next_batches()? {
            for b in batches {
                self.bronze(b).await;
            }
        }
        let mut rejected = held.rejected.drain()?;
        while let Some(batches) = rejected.next_batches()? {
            for b in batches {
                self.rejected_w.write(b).await?;
            }
        }
        let mut accepted = held.accepted.drain()?;
        while let Some(batches) = accepted.next_batches()? {
            for b in &batches {
                self.staging.write(b)?;
            }
        }
        Ok(())
    }

    async fn bronze(&mut self, batch: RecordBatch) {
        if let Some(tx) = self.to_bronze {
            // A send fails only when the encoder stopped on an error, reported when it
            // is joined.
            let _ = tx.send(batch).await;
        }
    }
}

/// Validate a chunk and count it into the file's report; a broken `fail` rule is the
/// file's error.
fn checked(
    validator: &Validator,
    rows: &[RawRow],
    lineage: &crate::zones::Lineage,
    bronze_schema: Option<&SchemaRef>,
    fr: &mut FileReport,
) -> Result<Rows> {
    let v = validator
        .validate(rows, lineage)?
        .unless_failed(&lineage.source_file)?;
    fr.rows_read += rows.len() as u64;
    fr.bronze_rows += rows.len() as u64;
    crate::progress::rows(rows.len() as u64);
    fr.rejected += v.rejected.num_rows() as u64;
    fr.silver_accepted += v.accepted.num_rows() as u64;
    merge_counts(&mut fr.rejected_by_rule, &v.rejected_by_rule);
    merge_counts(&mut fr.warnings, &v.warnings);
    Ok(Rows {
        bronze: match bronze_schema {
            Some(schema) => Some(bronze::to_batch(schema, rows, lineage)?),
            None => None,
        },
        rejected: Some(v.rejected),
        accepted: Some(v.accepted),
    })
}

/// The claim's fingerprint was taken before the read: a file rewritten since then must
/// not be loaded under it. (An object read with If-Match on its listed ETag cannot
/// have been.)
async fn unchanged_while_read(file: Option<&RawFile>) -> Result<()> {
    let Some(file) = file else {
        return Ok(());
    };
    if file.reads_are_conditional() {
        return Ok(());
    }
    let listed = file.clone();
    let unchanged = tokio::task::spawn_blocking(move || listed.unchanged_since_listed())
        .await
        .map_err(|e| MedallionError::Internal(format!("checking a raw file stopped: {e}")))??;
    if unchanged {
        return Ok(());
    }
    Err(MedallionError::BadFile {
        file: file.name.clone(),
        message: "the file changed (size or modification time) while it was read; \
                  nothing of it was committed, the next run tries again"
            .into(),
    })
}

/// Encode bronze batches on a task of their own (bounded queue).
fn encode_in_background(
    mut writer: AppendWriter,
) -> (
    mpsc::Sender<RecordBatch>,
    tokio::task::JoinHandle<Result<AppendWriter>>,
) {
    let (tx, mut rx) = mpsc::channel(2);
    let task = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            writer.write(batch).await?;
        }
        Ok(writer)
    });
    (tx, task)
}

/// Open and parse the files in order on a thread of their own, a couple of chunks
/// ahead of validation and writing (two cores busy, memory bounded by the channel). A
/// file that cannot be opened, or whose header does not fit, comes out as one
/// `Failed`; a file the consumer `abandoned` is not read further.
fn parse_in_background(
    files: Vec<(usize, RawFile)>,
    spec: crate::config::SourceSpec,
    abandoned: Arc<AtomicUsize>,
) -> mpsc::Receiver<Parsed> {
    let (tx, rx) = mpsc::channel(2);
    std::thread::spawn(move || {
        for (i, file) in files {
            let mut reader = match CsvChunks::open(&file, &spec) {
                Ok(reader) => reader,
                Err(e) => {
                    if tx.blocking_send(Parsed::Failed(i, e)).is_err() {
                        return;
                    }
                    continue;
                }
            };
            loop {
                if abandoned.load(Ordering::Relaxed) == i {
                    break;
                }
                let msg = match reader.next_chunk() {
                    Ok(Some(chunk)) => Parsed::Chunk(i, chunk),
                    Ok(None) => Parsed::End(i),
                    Err(e) => Parsed::Failed(i, e),
                };
                let last = !matches!(msg, Parsed::Chunk(..));
                if tx.blocking_send(msg).is_err() {
                    return;
                }
                if last {
                    break;
                }
            }
        }
    });
    rx
}
