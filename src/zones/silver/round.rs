//! A round: consecutive slices of a batch whose keys are unique across the batch (its
//! repeats were dropped while staged) that replace rows in the same silver files,
//! upserted with one commit and one rewrite of those files.
//!
//! Contract: each slice's rows are written as they come (new data files, not
//! committed) and the silver rows it replaces are looked up on the silver the round
//! replaces (only their keys and files are kept; with deletion vectors, the rows whole
//! and their positions, marked at the commit). A slice joins the round when it
//! shares a data file with it (or one of them replaces nothing), up to four slices'
//! rows; otherwise the round is committed first. So corrections that every slice
//! spreads over the same files (a file sorted by meter, silver laid out by time)
//! rewrite those files once per round instead of once per slice, and slices that
//! replace rows in files of their own (corrections in silver's order) still rewrite
//! them one slice at a time, holding no more. Redoing a round after an interruption
//! is idempotent like a slice: every key is then found, and replaced by the same
//! values.

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;

use super::{Replaced, commit_info, rewrite_replaced};
use crate::config::Pipeline;
use crate::error::Result;
use crate::storage::{AppendWriter, UpsertMetrics};
use crate::zones::Lineage;

/// Slices per round, at most: the keys of the rows they replace are held, and those
/// rows come back whole for gold.
const ROUND_SLICES: u64 = 4;

/// The slices of a round so far.
pub struct Round {
    writer: AppendWriter,
    /// The silver rows the round replaces (their keys, or with deletion vectors the rows
    /// whole and their positions), and their files (sorted).
    found: Replaced,
    limit: u64,
}

impl Round {
    /// A round writing into `silver`.
    pub fn new(p: &Pipeline, silver: &DeltaTable) -> Result<Self> {
        Ok(Round {
            writer: AppendWriter::new(silver, &p.source.tables().silver)?,
            found: Replaced::default(),
            limit: ROUND_SLICES.saturating_mul(p.source.batch_rows),
        })
    }

    /// Whether a slice that replaces `found` joins this round: it is not full, and
    /// they share a data file or one of them replaces nothing.
    pub fn takes(&self, found: &Replaced) -> bool {
        self.writer.rows() < self.limit
            && (self.found.files.is_empty() || found.files.is_empty() || self.shares(found))
    }

    /// Whether `found` is in a data file this round rewrites (then, once the round is
    /// committed, it must be looked up again).
    pub fn shares(&self, found: &Replaced) -> bool {
        found
            .files
            .iter()
            .any(|f| self.found.files.binary_search(f).is_ok())
    }

    /// Write a deduplicated slice that replaces `found` (looked up on the silver this
    /// round replaces).
    pub async fn add(&mut self, rows: &[RecordBatch], found: Replaced) -> Result<()> {
        for b in rows {
            self.writer.write(b.clone()).await?;
        }
        self.found.rows.extend(found.rows);
        self.found.files.extend(found.files);
        self.found.marks.extend(found.marks);
        self.found.files.sort();
        self.found.files.dedup();
        Ok(())
    }

    /// Commit the round (with `txn` when given): an append when it replaces nothing,
    /// otherwise a rewrite of the files holding the rows it replaces. Returns silver,
    /// the counts and the replaced rows whole, in the configured columns.
    pub async fn commit(
        self,
        ctx: &SessionContext,
        p: &Pipeline,
        mut silver: DeltaTable,
        lineage: &Lineage,
        txn: Option<(&str, i64)>,
    ) -> Result<(DeltaTable, UpsertMetrics, Vec<RecordBatch>)> {
        let n_rows = self.writer.rows();
        tracing::debug!(
            rows = n_rows,
            replaced = self.found.count(),
            files = self.found.files.len(),
            "round of slices to commit"
        );
        let props = commit_info(lineage, n_rows as usize);
        if self.found.is_empty() {
            let committed = self.writer.commit(&mut silver, props, txn).await?;
            return Ok((
                silver,
                UpsertMetrics::appended(committed, n_rows),
                Vec::new(),
            ));
        }
        let (found, writer) = (&self.found, self.writer);
        rewrite_replaced(ctx, p, silver, (found, writer), lineage, txn).await
    }
}
