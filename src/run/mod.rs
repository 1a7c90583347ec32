//! `medallion run`: every new raw file through bronze, silver/rejected and gold,
//! exactly once, even across crashes and concurrent runs.
//!
//! How exactly-once holds:
//! 1. One run ingests at a time: it takes the ingest lease (`ingest::lease`) and waits
//!    while another live run holds it; a killed holder's lease expires.
//! 2. Each file attempt is a batch with a sequence number `seq`, fixed by a `claimed`
//!    ledger row before anything else is written.
//! 3. Every stage commit (bronze, rejected, silver, each gold model, the ledger rows)
//!    carries the application transaction `medallion/<stage>` at version `seq`,
//!    atomically with its data. A stage whose table already has `seq` is skipped, and
//!    after a commit error the version is re-read, so an ambiguous commit is never
//!    written twice.
//! 4. Batches commit to every table in `seq` order, so a table's transaction version is
//!    also a fence: a run that finds a later `seq` than its own in a table stops
//!    without writing (`MedallionError::Fenced`): another run took over.
//! 5. A run first completes batches that a previous run left part-way (a claim without
//!    a final ledger row), with the same batch id and `seq`, then takes new files. A
//!    batch that fails after a commit stays open and the run stops there, so no later
//!    batch commits past it.

mod batch;
pub mod evolve;
pub mod rebuild;
mod replay;
mod settled;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::lease::Lease;
use crate::ingest::ledger::{self, FileStatus, LedgerEntry};
use crate::ingest::{self, RawFile};
use crate::report::{FileReport, ModelRebuild, RunReport};
use crate::storage::Lakehouse;
use crate::zones::Lineage;
use crate::zones::gold::rebuild as model_rebuild;
use crate::zones::silver::Validator;

pub use batch::SourceTables;

/// How a run coordinates with other runs.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// How long the ingest lease lasts without renewal (a killed run blocks others at most this long).
    pub lease_ttl: Duration,
    /// How long to wait for another run's lease before giving up.
    pub lease_wait: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(300),
        }
    }
}

/// A table is compacted when a run leaves it with more small data files than this.
const MAX_SMALL_FILES: usize = 64;

/// The ledger is read whole by every run, even one with nothing to do: on an object
/// store each of its files costs requests, so it is compacted sooner (BENCHMARKS.md).
const MAX_SMALL_LEDGER_FILES: usize = 8;

/// Abort the process at a named point when `MEDALLION_FAILPOINT` names it (tests only).
pub(crate) fn failpoint(name: &str) {
    if std::env::var("MEDALLION_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Ingest every file of the raw zone not loaded yet (after finishing interrupted batches).
pub async fn run(p: Arc<Pipeline>, opts: RunOptions) -> Result<RunReport> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    if let Some(files) = settled::still_settled(&lake, &p).await {
        tracing::debug!("nothing to do: the settled mark holds");
        return Ok(RunReport {
            already_loaded: files,
            ..RunReport::default()
        });
    }
    // Read before anything else: a writer that starts after this commits a later
    // lease version (see `settled`).
    let released = ingest::lease::released_version(&lake).await?;
    let schema_plan = evolve::check(&lake, &p, false).await?;
    if schema_plan.is_empty()
        && let Some(report) = nothing_to_do(&lake, &p, released).await?
    {
        return Ok(report);
    }
    tracing::debug!("checked for work");
    let lease = Lease::acquire(&lake, opts.lease_ttl, opts.lease_wait).await?;
    tracing::debug!("lease acquired");
    // Planned again under the lease: another run may have evolved the tables meanwhile.
    let evolved = async { evolve::apply(&lake, &p, &evolve::check(&lake, &p, false).await?).await };
    let result = match evolved.await {
        Ok(()) => run_holding_lease(&lake, &p, &lease).await,
        Err(e) => Err(e),
    };
    if result.is_ok() {
        compact_small_files(&lake, &p, &lease).await;
    }
    failpoint("before_lease_release");
    if let Err(e) = lease.release().await {
        tracing::warn!("cannot release the ingest lease (it will expire): {e}");
    }
    result
}

/// Compact the tables a run leaves with many small files (a feed of small files
/// would otherwise make every later read and MERGE slower). A failure only costs speed.
async fn compact_small_files(lake: &Lakehouse, p: &Pipeline, lease: &Lease) {
    let tables = SourceTables::new(p);
    let mut names = vec![
        ledger::LEDGER_TABLE.to_string(),
        tables.bronze,
        tables.rejected,
        tables.silver,
    ];
    names.extend(p.gold.iter().map(|m| format!("gold/{}", m.name)));
    for name in names {
        if lease.check().is_err() {
            return;
        }
        let max = if name == ledger::LEDGER_TABLE {
            MAX_SMALL_LEDGER_FILES
        } else {
            MAX_SMALL_FILES
        };
        if let Err(e) = crate::storage::compact_if_fragmented(lake, &name, max).await {
            tracing::warn!("cannot compact {name} (it stays correct, only slower to read): {e}");
        }
    }
}

/// When every raw file is a settled file version (same name, size and mtime) and no
/// batch is open, there is nothing to do, and no need for the lease: this only reads.
/// Anything that appears meanwhile is for the next run (or a concurrent one). Found
/// while no run held the lease (`released`: the lease table's version then, read
/// before anything else), it is remembered for the next run (`settled`).
async fn nothing_to_do(
    lake: &Lakehouse,
    p: &Pipeline,
    released: Option<i64>,
) -> Result<Option<RunReport>> {
    let files = ingest::discover(p).await?;
    let state = ledger::state(lake).await?;
    if !state.unfinished.is_empty()
        || state.open_rebuild.is_some()
        || !files.iter().all(|f| state.unchanged_since_settled(f))
    {
        return Ok(None);
    }
    if !model_rebuild::stale_models(lake, p).await?.is_empty() {
        return Ok(None);
    }
    if let Some(version) = released {
        settled::remember(lake, p, &files, version).await;
    }
    Ok(Some(RunReport {
        already_loaded: files.len(),
        ..RunReport::default()
    }))
}

/// What comes before any batch: a rebuild a killed process left part-way is completed,
/// and gold tables built from another model are rebuilt. Returns whether the ledger
/// changed.
async fn before_batches(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
    state: &ledger::LedgerState,
    report: &mut RunReport,
) -> Result<bool> {
    let mut resumed = rebuild::RebuildReport::default();
    report.rebuild_completed = rebuild::resume_or_close(lake, p, lease, state, &mut resumed)
        .await?
        .is_some();
    for (model, reason) in model_rebuild::stale_models(lake, p).await? {
        lease.check()?;
        let (version, rows) = model_rebuild::rebuild(lake, p, model, reason, None).await?;
        report.rebuilt.push(ModelRebuild {
            model: model.name.clone(),
            note: reason.note(),
            rows,
            version,
        });
    }
    Ok(report.rebuild_completed)
}

async fn run_holding_lease(
    lake: &Lakehouse,
    p: &Arc<Pipeline>,
    lease: &Lease,
) -> Result<RunReport> {
    let files = ingest::discover(p).await?;
    let mut state = ledger::state(lake).await?;
    let validator = Validator::new(p.clone())?;
    tracing::debug!("ledger read");
    let mut report = RunReport::default();
    if before_batches(lake, p, lease, &state, &mut report).await? {
        state = ledger::state(lake).await?;
    }
    // File versions completed by recovery in this run: reported once, as recovered.
    let mut recovered = std::collections::HashSet::new();

    for claim in std::mem::take(&mut state.unfinished) {
        lease.check()?;
        // The raw file is read again only if it still has the claimed content.
        let mut file = files.iter().find(|f| f.name == claim.file);
        if let Some(f) = file {
            let same = match ingest::fingerprint_async(f).await {
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
        let fr = attempt(lake, p, &validator, lease, file, claim.clone(), true).await?;
        if fr.left_open {
            report.stopped_at = Some(fr.file.clone());
            report.files.push(fr);
            return Ok(report);
        }
        if fr.loaded() {
            state
                .loaded
                .insert(claim.sha256.clone(), claim.file.clone());
            state.loaded_names.insert(claim.file.clone());
            state
                .settled
                .insert((claim.file.clone(), claim.sha256.clone()));
            recovered.insert((claim.file.clone(), claim.sha256.clone()));
        }
        report.files.push(fr);
    }

    // New file versions are hashed one ahead, on a thread of their own, while the
    // current one is loaded.
    let mut prints = ingest::FingerprintsAhead::start(
        files
            .iter()
            .filter(|f| !state.unchanged_since_settled(f))
            .cloned()
            .collect(),
    );
    for file in files {
        lease.check()?;
        if state.unchanged_since_settled(&file) {
            report.already_loaded += 1;
            continue;
        }
        let print = match tokio::task::block_in_place(|| prints.next(&file)) {
            Ok(print) => print,
            // Unreadable: this file fails alone (nothing was claimed, so the next run
            // tries it again); the others still load.
            Err(e) => {
                tracing::error!(file = %file.name, "{e}");
                report.files.push(FileReport::unreadable(&file.name, &e));
                continue;
            }
        };
        let Some(print) = print else {
            tracing::warn!(file = %file.name, "the file changed while it was read; left for the next run");
            report.unstable.push(file.name.clone());
            continue;
        };
        if recovered.contains(&(file.name.clone(), print.sha256.clone())) {
            continue;
        }
        if state.is_settled(&file.name, &print.sha256) {
            // Same content, new size or mtime (copied or restored): recorded, so later
            // runs recognise the file without hashing it again.
            let mut entry = LedgerEntry::claim(
                print,
                file.name.clone(),
                uuid::Uuid::now_v7().to_string(),
                state.next_seq,
            );
            state.next_seq += 1;
            entry.status = FileStatus::Unchanged;
            entry.message = Some(
                "already loaded with this content; only its size or modification time changed"
                    .into(),
            );
            ledger::record(lake, &entry).await?;
            state.settled_stats.insert((
                file.name.clone(),
                file.size,
                file.modified.map(|m| m.timestamp_micros()),
            ));
            report.already_loaded += 1;
            continue;
        }
        tracing::debug!(file = %file.name, "fingerprinted");
        let batch_id = uuid::Uuid::now_v7().to_string();
        let mut entry =
            LedgerEntry::claim(print.clone(), file.name.clone(), batch_id, state.next_seq);
        state.next_seq += 1;
        if let Some(original) = state.loaded.get(&print.sha256) {
            entry.status = FileStatus::Duplicate;
            entry.message = Some(format!("same content as {original}"));
            ledger::record(lake, &entry).await?;
            report
                .duplicates
                .push((file.name.clone(), original.clone()));
            state
                .settled
                .insert((file.name.clone(), print.sha256.clone()));
            continue;
        }
        ledger::record(lake, &entry).await?;
        tracing::debug!(file = %file.name, "claimed");
        let mut fr = attempt(lake, p, &validator, lease, Some(&file), entry, false).await?;
        fr.new_version = state.loaded_names.contains(&file.name);
        if fr.left_open {
            report.stopped_at = Some(fr.file.clone());
            report.files.push(fr);
            return Ok(report);
        }
        if fr.loaded() {
            state.loaded.insert(print.sha256.clone(), file.name.clone());
            state.loaded_names.insert(file.name.clone());
            state.settled.insert((file.name.clone(), print.sha256));
        }
        report.files.push(fr);
    }
    Ok(report)
}

/// Run one claimed batch and record its outcome. A failure before anything was
/// committed is final (`failed`; the file is retried as a new batch next run); a
/// failure after a commit leaves the claim open so the next run completes it.
async fn attempt(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    lease: &Lease,
    file: Option<&RawFile>,
    mut entry: LedgerEntry,
    recovering: bool,
) -> Result<FileReport> {
    let lineage = Lineage {
        source_file: entry.file.clone(),
        batch_id: entry.batch_id.clone(),
        received_at: Utc::now().trunc_subsecs(6),
    };
    let started = Instant::now();
    let mut fr = FileReport {
        file: entry.file.clone(),
        batch_id: entry.batch_id.clone(),
        recovered: recovering,
        ..FileReport::default()
    };
    let outcome = batch::ingest(
        lake, p, validator, lease, file, &lineage, entry.seq, recovering, &mut fr,
    )
    .await;
    fr.elapsed = started.elapsed();
    match outcome {
        Ok(()) => entry.status = FileStatus::Loaded,
        Err(e @ (MedallionError::LeaseLost | MedallionError::Fenced { .. })) => return Err(e),
        // Stages were committed: the next run completes the batch (unless the raw file it
        // still needs is gone, which no run can mend). Batches commit in `seq` order, so
        // this run takes no more files.
        Err(e) if fr.committed && !matches!(e, MedallionError::RawFileGone { .. }) => {
            tracing::error!(file = %entry.file, "{e}");
            fr.error = Some(format!("{e} (the batch is completed by the next run)"));
            fr.left_open = true;
            return Ok(fr);
        }
        Err(e) => {
            tracing::error!(file = %entry.file, "{e}");
            fr.error = Some(e.to_string());
            entry.status = FileStatus::Failed;
            entry.message = fr.error.clone();
        }
    }
    entry.rows_read = fr.rows_read;
    entry.silver_accepted = fr.silver_accepted;
    entry.rejected = fr.rejected;
    entry.table_versions = Some(fr.table_versions(p).to_string());
    lease.check()?;
    failpoint("before_ledger_final");
    ledger::record(lake, &entry).await?;
    Ok(fr)
}
