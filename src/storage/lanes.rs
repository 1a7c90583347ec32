//! An append encoded by several writers at once: batches go round robin to writers
//! that each run as a task of their own, so Parquet encoding (one core per writer)
//! overlaps instead of queueing behind one writer. Their data files are committed
//! together as one version, as one [`AppendWriter`] would: the order of rows across
//! files means nothing to a Delta table. A small append (a few new readings) stays
//! with one writer, so it adds one file, not one per writer.

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;

use super::{AppendWriter, Committed};
use crate::error::{MedallionError, Result};

/// Batches queued per writer: one being encoded, one waiting.
const QUEUED: usize = 1;

/// Rows the first writer takes before the others join in (a silver slice).
const SPREAD_AFTER: u64 = 1 << 18;

/// One writer and its queue.
struct Lane {
    tx: Sender<RecordBatch>,
    task: JoinHandle<Result<AppendWriter>>,
}

impl Lane {
    fn start(mut writer: AppendWriter) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(QUEUED);
        let task = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                writer.write(batch).await?;
            }
            writer.stage().await?;
            Ok(writer)
        });
        Lane { tx, task }
    }

    /// End its input and wait for its writer (its files uploaded), or its error.
    async fn finish(self) -> Result<AppendWriter> {
        drop(self.tx);
        self.task
            .await
            .map_err(|e| MedallionError::Internal(format!("a writer task stopped: {e}")))?
    }
}

/// An open append to one table, encoded by [`ParallelAppend::lanes`] writers.
pub struct ParallelAppend {
    lanes: Vec<Lane>,
    /// Writers not started yet (they start once [`SPREAD_AFTER`] rows went to the first).
    idle: Vec<AppendWriter>,
    spread_after: u64,
    next: usize,
    rows: u64,
}

impl ParallelAppend {
    /// Writers per append: one per core, at most two (the stage that feeds them needs
    /// a core as well, and each writer holds an open row group and file in memory).
    pub fn lanes() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 2))
    }

    /// Start an append to `table` with `lanes` writers (at least one).
    pub fn new(table: &DeltaTable, table_name: &str, lanes: usize) -> Result<Self> {
        let mut idle = (0..lanes.max(1))
            .map(|_| AppendWriter::new(table, table_name))
            .collect::<Result<Vec<_>>>()?;
        let first = idle.pop().map(Lane::start);
        Ok(ParallelAppend {
            lanes: first.into_iter().collect(),
            idle,
            spread_after: SPREAD_AFTER,
            next: 0,
            rows: 0,
        })
    }

    /// Hand a batch to the next writer; it waits only while that writer's queue is
    /// full. An error of that writer is returned here or by [`Self::commit`].
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        if self.rows >= self.spread_after {
            self.lanes.extend(self.idle.drain(..).map(Lane::start));
        }
        if self.lanes.is_empty() {
            return Err(MedallionError::Internal("every writer task stopped".into()));
        }
        let i = self.next % self.lanes.len();
        self.next = i + 1;
        if self.lanes[i].tx.send(batch).await.is_ok() {
            self.rows += rows;
            return Ok(());
        }
        // The writer stopped: its error.
        let lane = self.lanes.remove(i);
        lane.finish().await?;
        Err(MedallionError::Internal(
            "a writer task stopped early".into(),
        ))
    }

    /// The other writers join in after `rows` rows (instead of [`SPREAD_AFTER`]).
    #[cfg(test)]
    pub fn spreading_after(mut self, rows: u64) -> Self {
        self.spread_after = rows;
        self
    }

    /// Rows handed over so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Wait for every writer and commit all their files as one version (see
    /// [`AppendWriter::commit`] for `txn`).
    pub async fn commit(
        mut self,
        table: &mut DeltaTable,
        props: CommitProperties,
        txn: Option<(&str, i64)>,
    ) -> Result<Committed> {
        let mut writers = Vec::with_capacity(self.lanes.len());
        for lane in std::mem::take(&mut self.lanes) {
            writers.push(lane.finish().await);
        }
        let mut writers = writers.into_iter().collect::<Result<Vec<_>>>()?.into_iter();
        let mut first = writers
            .next()
            .ok_or_else(|| MedallionError::Internal("an append without writers".into()))?;
        for other in writers {
            first.absorb(other).await?;
        }
        first.commit(table, props, txn).await
    }
}

impl Drop for ParallelAppend {
    /// An append given up (its batch failed) stops its writers: nothing of it is
    /// committed, and they need not finish their files.
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.task.abort();
        }
    }
}
