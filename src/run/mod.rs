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

mod assemble;
mod batch;
pub mod evolve;
mod execute;
mod hold;
mod modes;
mod read;
pub mod rebuild;
mod replay;
mod settled;
mod tables;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Pipeline;
use crate::error::Result;
use crate::ingest;
use crate::ingest::lease::Lease;
use crate::ingest::ledger::{self, FileStatus, LedgerEntry};
use crate::report::{FileReport, ModelRebuild, RunReport};
use crate::runs;
use crate::storage::Lakehouse;
use crate::zones::gold::rebuild as model_rebuild;

/// How a run coordinates with other runs, and which sources it ingests.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long the ingest lease lasts without renewal (a killed run blocks others at most this long).
    pub lease_ttl: Duration,
    /// How long to wait for another run's lease before giving up.
    pub lease_wait: Duration,
    /// The sources to ingest, by name (`run --source`); empty: every source.
    pub sources: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(300),
            sources: Vec::new(),
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

/// Ingest every file of the chosen sources' landing zones not loaded yet (after
/// finishing interrupted batches), source after source in configuration order.
pub async fn run(p: Arc<Pipeline>, opts: RunOptions) -> Result<RunReport> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    let mut report = RunReport::default();
    let mut pending = Vec::new();
    for source in chosen(&p, &opts.sources)? {
        match settled::still_settled(&lake, &source).await {
            Some(files) => report.already_loaded += files,
            None => pending.push(source),
        }
    }
    if pending.is_empty() {
        tracing::debug!("nothing to do: the settled mark holds");
        return Ok(report);
    }
    // Read before anything else: a writer that starts after this commits a later
    // lease version (see `settled`).
    let released = ingest::lease::released_version(&lake).await?;
    if evolve::check(&lake, &p, false).await?.is_empty() {
        let mut work = Vec::new();
        for source in pending {
            match nothing_to_do(&lake, &source, released).await? {
                Some(files) => report.already_loaded += files,
                None => work.push(source),
            }
        }
        pending = work;
    }
    if pending.is_empty() {
        return Ok(report);
    }
    tracing::debug!("checked for work");
    let lease = Lease::acquire(&lake, opts.lease_ttl, opts.lease_wait).await?;
    tracing::debug!("lease acquired");
    let started = chrono::Utc::now();
    // Planned again under the lease: another run may have evolved the tables meanwhile.
    let evolved = async { evolve::apply(&lake, &p, &evolve::check(&lake, &p, false).await?).await };
    let mut result = evolved.await;
    for source in &pending {
        if result.is_err() {
            break;
        }
        let (done, outcome) = run_holding_lease(&lake, source, &lease).await;
        report.absorb(done);
        result = outcome;
    }
    if result.is_ok() {
        compact_small_files(&lake, &p, &lease).await;
    }
    let error = result.as_ref().err().map(|e| e.to_string());
    if error.is_some() || report.did_something() {
        let record = runs::RunRecord {
            started,
            finished: chrono::Utc::now(),
            report: &report,
            error,
        };
        runs::record(&lake, &p, &record).await;
    }
    failpoint("before_lease_release");
    if let Err(e) = lease.release().await {
        tracing::warn!("cannot release the ingest lease (it will expire): {e}");
    }
    result.map(|()| report)
}

/// The pipeline focused on each chosen source (every source when `names` is empty).
fn chosen(p: &Pipeline, names: &[String]) -> Result<Vec<Arc<Pipeline>>> {
    if let Some(unknown) = names
        .iter()
        .find(|n| !p.sources.iter().any(|s| &s.name == *n))
    {
        let known: Vec<&str> = p.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(crate::MedallionError::Usage(format!(
            "unknown source \"{unknown}\" (known: {})",
            known.join(", ")
        )));
    }
    Ok(p.sources
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .filter_map(|s| p.for_source(&s.name).map(Arc::new))
        .collect())
}

/// Compact the tables a run leaves with many small files (a feed of small files
/// would otherwise make every later read and MERGE slower). A failure only costs speed.
async fn compact_small_files(lake: &Lakehouse, p: &Pipeline, lease: &Lease) {
    let mut names = vec![
        ledger::LEDGER_TABLE.to_string(),
        runs::RUNS_TABLE.to_string(),
    ];
    for s in &p.sources {
        let tables = s.tables();
        names.extend([tables.bronze, tables.rejected, tables.silver]);
    }
    names.extend(p.gold.iter().map(|m| m.table()));
    for name in names {
        if lease.check().is_err() {
            return;
        }
        let max = if name == ledger::LEDGER_TABLE || name == runs::RUNS_TABLE {
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
) -> Result<Option<usize>> {
    let files = ingest::discover(p).await?;
    let state = ledger::state(lake, &p.source.name).await?;
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
    Ok(Some(files.len()))
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

/// The batches of one run. The report holds what was done also when the run ends
/// with an error (its committed batches are recorded in `_medallion.runs`).
async fn run_holding_lease(
    lake: &Lakehouse,
    p: &Arc<Pipeline>,
    lease: &Lease,
) -> (RunReport, Result<()>) {
    let start = async {
        let files = ingest::discover(p).await?;
        let state = ledger::state(lake, &p.source.name).await?;
        Ok((files, state, execute::Batches::new(lake, p, lease)?))
    };
    let (files, state, mut run) = match start.await {
        Ok(started) => started,
        Err(e) => return (RunReport::default(), Err(e)),
    };
    tracing::debug!("ledger read");
    let outcome = run_batches(lake, p, lease, files, state, &mut run).await;
    (run.stop().await, outcome)
}

/// Recover unfinished batches, then gather, read and commit new ones. Returns early
/// when a batch stays open (the report says so).
async fn run_batches(
    lake: &Lakehouse,
    p: &Arc<Pipeline>,
    lease: &Lease,
    files: Vec<ingest::RawFile>,
    mut state: ledger::LedgerState,
    run: &mut execute::Batches<'_>,
) -> Result<()> {
    if before_batches(lake, p, lease, &state, &mut run.report).await? {
        state = ledger::state(lake, &p.source.name).await?;
    }
    let new: Vec<&ingest::RawFile> = files
        .iter()
        .filter(|f| !state.unchanged_since_settled(f))
        .collect();
    crate::progress::start(new.len() as u64, new.iter().map(|f| f.size).sum());
    // File versions completed by recovery in this run: reported once, as recovered.
    let mut recovered = std::collections::HashSet::new();
    for claims in state.unfinished_batches() {
        lease.check()?;
        let batch = execute::recovered_batch(&files, claims).await;
        let done: Vec<(String, String)> = batch
            .members
            .iter()
            .map(|m| (m.claim.file.clone(), m.claim.sha256.clone()))
            .collect();
        if !run.recover(batch, &mut state).await? {
            return Ok(());
        }
        recovered.extend(done.into_iter().filter(|d| state.settled.contains(d)));
    }
    // New file versions are hashed ahead, on a thread of their own, while the current
    // batches are loaded.
    let mut prints = ingest::FingerprintsAhead::start(
        files
            .iter()
            .filter(|f| !state.unchanged_since_settled(f))
            .cloned()
            .collect(),
    );
    let mut gathering = assemble::Gathering::default();
    // Rows for the ledger found while gathering (duplicates, unchanged files): written
    // with the next claim.
    let mut noted: Vec<LedgerEntry> = Vec::new();
    for file in files {
        lease.check()?;
        if state.unchanged_since_settled(&file) {
            run.report.already_loaded += 1;
            continue;
        }
        let print = match tokio::task::block_in_place(|| prints.next(&file)) {
            Ok(print) => print,
            // Unreadable: this file fails alone (nothing was claimed, so the next run
            // tries it again); the others still load.
            Err(e) => {
                tracing::error!(file = %file.name, "{e}");
                run.report
                    .unreadable
                    .push(FileReport::unreadable(&file.name, &e));
                continue;
            }
        };
        let Some(print) = print else {
            tracing::warn!(file = %file.name, "the file changed while it was read; left for the next run");
            run.report.unstable.push(file.name.clone());
            continue;
        };
        if recovered.contains(&(file.name.clone(), print.sha256.clone())) {
            continue;
        }
        // Content already in a batch not loaded yet: this file waits for its outcome.
        let waits = gathering.holds(&print.sha256);
        if waits || !gathering.fits(&file, p.batch_bounds()) {
            let batch = std::mem::take(&mut gathering).into_batch(state.next_seq);
            state.next_seq += 1;
            if !run
                .launch(batch, std::mem::take(&mut noted), &mut state)
                .await?
            {
                return Ok(());
            }
        }
        if run.reading(&print.sha256) && !run.drain(&mut state).await? {
            return Ok(());
        }
        if state.is_settled(&file.name, &print.sha256) {
            // Same content, new size or mtime (copied or restored): recorded, so later
            // runs recognise the file without hashing it again.
            let mut entry = LedgerEntry::claim(print, file.name.clone(), String::new(), 0);
            entry.status = FileStatus::Unchanged;
            entry.message = Some(
                "already loaded with this content; only its size or modification time changed"
                    .into(),
            );
            noted.push(entry);
            state.settled_stats.insert((
                file.name.clone(),
                file.size,
                file.modified.map(|m| m.timestamp_micros()),
            ));
            run.report.already_loaded += 1;
            crate::progress::file_done(file.size);
            continue;
        }
        // A snapshot is a state, not an event: the same state again under a new name
        // (a customer moved back) must be applied again.
        let repeats = p.source.mode != crate::config::SourceMode::Snapshot;
        if let Some(original) = state.loaded.get(&print.sha256).filter(|_| repeats) {
            crate::progress::file_done(file.size);
            let mut entry = LedgerEntry::claim(print.clone(), file.name.clone(), String::new(), 0);
            entry.status = FileStatus::Duplicate;
            entry.message = Some(format!("same content as {original}"));
            noted.push(entry);
            run.report
                .duplicates
                .push((file.name.clone(), original.clone()));
            state.settled.insert((file.name.clone(), print.sha256));
            continue;
        }
        let new_version = state.loaded_names.contains(&file.name);
        gathering.push(file, print, new_version);
    }
    if !gathering.is_empty() {
        let batch = gathering.into_batch(state.next_seq);
        state.next_seq += 1;
        if !run
            .launch(batch, std::mem::take(&mut noted), &mut state)
            .await?
        {
            return Ok(());
        }
    }
    if run.drain(&mut state).await? && !noted.is_empty() {
        let (batch_id, seq) = (uuid::Uuid::now_v7().to_string(), state.next_seq);
        ledger::record_all(
            lake,
            &p.source.name,
            &execute::in_batch(noted, &batch_id, seq),
        )
        .await?;
    }
    Ok(())
}
