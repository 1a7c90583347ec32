//! Running batches: claim, prepare (read the files), commit, and record each file's
//! final ledger row.
//!
//! New batches are pipelined: while one batch commits (bronze, rejected, silver, gold,
//! final rows), the next one is read, validated and encoded on a task of its own. The
//! read commits nothing, so commits stay in `seq` order, batch after batch; its claim is
//! written once the batch before it is closed. At most one batch is read ahead, so
//! memory stays bounded. A file whose content is in the batch being read waits for it
//! (`reading`), so that it can be recognised as a duplicate.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::RawFile;
use crate::ingest::lease::Lease;
use crate::ingest::ledger::{self, FileStatus, LedgerEntry, LedgerState};
use crate::report::{BatchReport, FileReport, RunReport};
use crate::storage::Lakehouse;
use crate::zones::silver::Validator;

use super::assemble::{Batch, Member};
use super::batch::{self, Prepared};
use super::failpoint;
use super::read::Aborting;

/// A new batch being read on a task of its own.
struct Ahead {
    /// Its claim rows (and the rows noted while it was gathered).
    claims: Vec<LedgerEntry>,
    hashes: HashSet<String>,
    /// Aborted when dropped: the run stopped before this batch was claimed.
    task: Aborting<(Batch, Result<Prepared>)>,
}

impl Ahead {
    /// Stop reading (nothing of it is claimed or committed) and wait until the read
    /// has let go of its files and writers.
    async fn abandon(self) {
        if let Some(task) = self.task.into_inner() {
            task.abort();
            let _ = task.await; // Cancelled, or finished first: either way unused.
        }
    }
}

/// What the batches of one run share, and what they did.
pub struct Batches<'a> {
    pub lake: &'a Lakehouse,
    pub p: &'a Arc<Pipeline>,
    pub validator: Arc<Validator>,
    pub lease: &'a Lease,
    pub report: RunReport,
    ahead: Option<Ahead>,
    /// The source's tables exist (created before the first read, not by two at once).
    tables_ready: bool,
}

impl<'a> Batches<'a> {
    pub fn new(lake: &'a Lakehouse, p: &'a Arc<Pipeline>, lease: &'a Lease) -> Result<Self> {
        Ok(Batches {
            lake,
            p,
            validator: Arc::new(Validator::new(p.clone())?),
            lease,
            report: RunReport::default(),
            ahead: None,
            tables_ready: false,
        })
    }

    /// Complete a batch an earlier run left part-way (nothing is read ahead meanwhile).
    /// Returns `false` when it stays open, so the run must stop.
    pub async fn recover(&mut self, mut batch: Batch, state: &mut LedgerState) -> Result<bool> {
        let started = Instant::now();
        let mut br = BatchReport::new(&batch.batch_id, true);
        let (lake, p, v, lease) = (self.lake, self.p.as_ref(), &*self.validator, self.lease);
        let outcome = batch::ingest(lake, p, v, lease, &mut batch, &mut br).await;
        self.close(batch, br, outcome, started, state).await
    }

    /// Start reading a new batch, whose claim rows are written with `noted`; the batch
    /// read before it is committed meanwhile. Returns `false` when that one stays open.
    pub async fn launch(
        &mut self,
        batch: Batch,
        noted: Vec<LedgerEntry>,
        state: &mut LedgerState,
    ) -> Result<bool> {
        let mut claims: Vec<LedgerEntry> = batch.members.iter().map(|m| m.claim.clone()).collect();
        let hashes = claims.iter().map(|c| c.sha256.clone()).collect();
        claims.extend(in_batch(noted, &batch.batch_id, batch.seq));
        if !self.tables_ready {
            batch::source_tables(self.lake, self.p).await?;
            self.tables_ready = true;
        }
        let (lake, p, validator) = (self.lake.clone(), self.p.clone(), self.validator.clone());
        let task = tokio::spawn(async move {
            let mut batch = batch;
            let prepared = batch::prepare(&lake, &p, &validator, &mut batch).await;
            (batch, prepared)
        });
        let ahead = Ahead {
            claims,
            hashes,
            task: Aborting(Some(task)),
        };
        match self.ahead.replace(ahead) {
            Some(previous) => self.finish(previous, state).await,
            None => Ok(true),
        }
    }

    /// The run stops: a batch read ahead and not claimed is abandoned, and awaited (its
    /// bronze encoder is aborted with it; an upload already under way may still leave
    /// an uncommitted data file, which `vacuum` removes).
    pub async fn stop(mut self) -> RunReport {
        if let Some(ahead) = self.ahead.take() {
            ahead.abandon().await;
        }
        self.report
    }

    /// Whether content `sha256` is in the batch being read.
    pub fn reading(&self, sha256: &str) -> bool {
        self.ahead
            .as_ref()
            .is_some_and(|a| a.hashes.contains(sha256))
    }

    /// Commit the batch being read, if any. Returns `false` when it stays open.
    pub async fn drain(&mut self, state: &mut LedgerState) -> Result<bool> {
        match self.ahead.take() {
            Some(ahead) => self.finish(ahead, state).await,
            None => Ok(true),
        }
    }

    /// Claim a batch read ahead, wait for its read, commit it.
    async fn finish(&mut self, ahead: Ahead, state: &mut LedgerState) -> Result<bool> {
        self.lease.check()?;
        ledger::record_all(self.lake, &self.p.source.name, &ahead.claims).await?;
        tracing::debug!(files = ahead.hashes.len(), "claimed");
        let started = Instant::now();
        let task = ahead
            .task
            .into_inner()
            .ok_or_else(|| MedallionError::Internal("a batch was read twice".into()))?;
        let (batch, prepared) = task
            .await
            .map_err(|e| MedallionError::Internal(format!("reading a batch stopped: {e}")))?;
        tracing::debug!(
            waited_ms = started.elapsed().as_millis() as u64,
            "batch read"
        );
        let mut br = BatchReport::new(&batch.batch_id, false);
        let outcome = match prepared {
            Ok(prepared) => {
                let (lake, p, lease) = (self.lake, self.p.as_ref(), self.lease);
                batch::commit(lake, p, lease, &batch, prepared, &mut br).await
            }
            Err(e) => Err(e),
        };
        self.close(batch, br, outcome, started, state).await
    }

    /// Record a batch's outcome. A failure before anything was committed fails every
    /// file of the batch (each is retried next run); a failure after a commit leaves the
    /// claim open, and the run stops so that the next run completes it first.
    async fn close(
        &mut self,
        mut batch: Batch,
        mut br: BatchReport,
        outcome: Result<()>,
        started: Instant,
        state: &mut LedgerState,
    ) -> Result<bool> {
        br.elapsed = started.elapsed();
        br.committed |= batch.committed;
        for m in &mut batch.members {
            m.report.bytes = m.claim.size;
        }
        let error = match outcome {
            Ok(()) => None,
            Err(e @ (MedallionError::LeaseLost | MedallionError::Fenced { .. })) => return Err(e),
            Err(e) => {
                tracing::error!(batch = %batch.batch_id, "{e}");
                Some(e)
            }
        };
        if let Some(e) = error.as_ref().filter(|_| br.committed) {
            let message = format!("{e} (the batch is completed by the next run)");
            br.files = batch
                .members
                .iter()
                .map(|m| FileReport {
                    error: Some(message.clone()),
                    ..m.report.clone()
                })
                .collect();
            br.error = Some(message);
            br.left_open = true;
            self.report.stopped_at = batch.members.last().map(|m| m.claim.file.clone());
            self.report.batches.push(br);
            return Ok(false);
        }
        if let Some(e) = &error {
            // Nothing of the batch was committed: no counts either.
            for m in &mut batch.members {
                m.report = FileReport {
                    error: Some(e.to_string()),
                    new_version: m.report.new_version,
                    bytes: m.claim.size,
                    ..FileReport::new(&m.claim.file, &batch.batch_id)
                };
            }
        }
        let versions = br.table_versions(self.p).to_string();
        let finals: Vec<LedgerEntry> = batch
            .members
            .iter()
            .map(|m| final_row(m, &versions))
            .collect();
        br.error = error.map(|e| e.to_string());
        br.files = batch.members.iter().map(|m| m.report.clone()).collect();
        self.lease.check()?;
        failpoint("before_ledger_final");
        let ledger_started = Instant::now();
        crate::progress::stage(Some("ledger"));
        ledger::record_all(self.lake, &self.p.source.name, &finals).await?;
        crate::progress::stage(None);
        br.stages.ledger = ledger_started.elapsed();
        for m in batch.members.iter().filter(|m| m.report.loaded()) {
            let (name, sha) = (m.claim.file.clone(), m.claim.sha256.clone());
            state.last_loaded = Some((name.clone(), sha.clone()));
            state.loaded.insert(sha.clone(), name.clone());
            state.loaded_names.insert(name.clone());
            state.settled.insert((name, sha));
        }
        self.report.batches.push(br);
        Ok(true)
    }
}

/// A member's final ledger row: `loaded` with the batch's table versions, or `failed`
/// with its reason; its own counts either way.
fn final_row(m: &Member, versions: &str) -> LedgerEntry {
    let mut entry = m.claim.clone();
    entry.rows_read = m.report.rows_read;
    entry.silver_accepted = m.report.silver_accepted;
    entry.rejected = m.report.rejected;
    if m.report.loaded() {
        entry.status = FileStatus::Loaded;
        entry.table_versions = Some(versions.to_string());
    } else {
        entry.status = FileStatus::Failed;
        entry.message = m.report.error.clone();
    }
    entry
}

/// `entries` as rows of batch `batch_id` at `seq`.
pub fn in_batch(entries: Vec<LedgerEntry>, batch_id: &str, seq: i64) -> Vec<LedgerEntry> {
    entries
        .into_iter()
        .map(|mut e| {
            e.batch_id = batch_id.to_string();
            e.seq = seq;
            e
        })
        .collect()
}

/// An unfinished batch, to be completed: each claimed file is read again only if it
/// still has the claimed content.
pub async fn recovered_batch(files: &[RawFile], claims: Vec<LedgerEntry>) -> Batch {
    let (batch_id, seq) = (claims[0].batch_id.clone(), claims[0].seq);
    let mut members = Vec::with_capacity(claims.len());
    for claim in claims {
        let mut file = files.iter().find(|f| f.name == claim.file).cloned();
        if let Some(f) = &file {
            let same = match crate::ingest::fingerprint_async(f).await {
                Ok(print) => print.is_some_and(|print| print.sha256 == claim.sha256),
                Err(e) => {
                    tracing::warn!(file = %f.name, "{e}");
                    false
                }
            };
            if !same {
                file = None;
            }
        }
        members.push(Member {
            report: FileReport::new(&claim.file, &batch_id),
            claim,
            file,
        });
    }
    Batch::new(batch_id, seq, members, true)
}
