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
mod upsert;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Pipeline;
use crate::error::Result;
use crate::ingest;
use crate::ingest::lease::{Lease, gold_lock, source_lease};
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
/// finishing interrupted batches), source after source in configuration order, each
/// under its own lease (so runs of other sources may proceed meanwhile).
pub async fn run(p: Arc<Pipeline>, opts: RunOptions) -> Result<RunReport> {
    tracing::debug!("run started");
    let lake = Lakehouse::new(p.lakehouse.clone());
    let mut report = RunReport::default();
    let mut pending = Vec::new();
    for source in chosen(&p, &opts.sources)? {
        match settled::still_settled(&lake, &source).await {
            Some(files) => {
                tracing::debug!(source = %source.source.name, "nothing to do: the settled mark holds");
                report.already_loaded += files;
            }
            None => pending.push(source),
        }
    }
    if pending.is_empty() {
        return Ok(report);
    }
    label_old_ledger(&lake, &p, &opts).await?;
    tracing::debug!("ledger labels checked");
    for source in pending {
        let (done, outcome) = run_source(&lake, &source, &opts).await;
        report.absorb(done);
        outcome?;
    }
    Ok(report)
}

/// A ledger from before sources is labelled once, holding every source's lease.
async fn label_old_ledger(lake: &Lakehouse, p: &Pipeline, opts: &RunOptions) -> Result<()> {
    let mut problems = Vec::new();
    if ledger::unlabelled_source(lake, p, &mut problems)
        .await?
        .is_none()
        && problems.is_empty()
    {
        return Ok(());
    }
    let lease =
        Lease::acquire(lake, &all_source_leases(p), opts.lease_ttl, opts.lease_wait).await?;
    let mut problems = Vec::new();
    let labelled = match ledger::unlabelled_source(lake, p, &mut problems).await {
        Ok(Some(source)) if problems.is_empty() => ledger::label_rows(lake, &source).await,
        Ok(_) if problems.is_empty() => Ok(()),
        Ok(_) => Err(crate::MedallionError::SchemaChange { problems }),
        Err(e) => Err(e),
    };
    if let Err(e) = lease.release().await {
        tracing::warn!("cannot release the leases (they will expire): {e}");
    }
    labelled
}

/// Every source's lease: what a change of the whole lakehouse holds.
pub fn all_source_leases(p: &Pipeline) -> Vec<String> {
    p.sources.iter().map(|s| source_lease(&s.name)).collect()
}

/// Ingest the focused source's new files under its lease (its settled mark was
/// checked by the caller). The report holds what was done also when the run ends with
/// an error.
async fn run_source(
    lake: &Lakehouse,
    p: &Arc<Pipeline>,
    opts: &RunOptions,
) -> (RunReport, Result<()>) {
    let nothing = |files| RunReport {
        already_loaded: files,
        ..RunReport::default()
    };
    let lease_table = source_lease(&p.source.name);
    let checked = async {
        // Read before anything else: a writer that starts after this commits a later
        // lease version (see `settled`).
        let released = ingest::lease::released_version(lake, &lease_table).await?;
        let state = ledger::state(lake, &p.source.name).await?;
        if !evolve::check(lake, p, false).await?.is_empty() {
            return Ok((state, None));
        }
        let settled = nothing_to_do(lake, p, &state, released).await?;
        Ok((state, settled))
    };
    let state = match checked.await {
        Ok((_, Some(files))) => return (nothing(files), Ok(())),
        Ok((state, None)) => state,
        Err(e) => return (RunReport::default(), Err(e)),
    };
    tracing::debug!(source = %p.source.name, "checked for work");
    // Completing a rebuild left open takes every source's lease (in name order).
    let tables = match state.open_rebuild {
        Some(_) => all_source_leases(p),
        None => vec![lease_table],
    };
    let lease = match Lease::acquire(lake, &tables, opts.lease_ttl, opts.lease_wait).await {
        Ok(lease) => lease,
        Err(e) => return (RunReport::default(), Err(e)),
    };
    tracing::debug!("lease acquired");
    let started = chrono::Utc::now();
    // Planned again under the lease: another run may have evolved the tables meanwhile.
    let evolved = async { evolve::apply(lake, p, &evolve::check(lake, p, false).await?).await };
    let (report, result) = match evolved.await {
        Ok(()) => run_holding_lease(lake, p, &lease).await,
        Err(e) => (RunReport::default(), Err(e)),
    };
    if result.is_ok() {
        compact_small_files(lake, p, &lease).await;
        tracing::debug!("small files checked");
    }
    let error = result.as_ref().err().map(|e| e.to_string());
    if error.is_some() || report.did_something() {
        let record = runs::RunRecord {
            started,
            finished: chrono::Utc::now(),
            report: &report,
            error,
        };
        runs::record(lake, p, &record).await;
        tracing::debug!("run recorded");
    }
    failpoint("before_lease_release");
    if let Err(e) = lease.release().await {
        tracing::warn!("cannot release the lease (it will expire): {e}");
    }
    tracing::debug!("lease released");
    (report, result)
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
    let tables = p.source.tables();
    let mut names = vec![
        (ledger::LEDGER_TABLE.to_string(), None),
        (runs::RUNS_TABLE.to_string(), None),
        (tables.bronze, None),
        (tables.rejected, None),
        (tables.silver, None),
    ];
    // A model fed by other sources too is written under its lock.
    for m in p.gold.iter().filter(|m| m.reads(&p.source.name)) {
        let lock = (m.sources.len() > 1).then(|| gold_lock(&m.name));
        names.push((m.table(), lock));
    }
    for (name, lock) in names {
        if lease.check().is_err() {
            return;
        }
        let max = if name == ledger::LEDGER_TABLE || name == runs::RUNS_TABLE {
            MAX_SMALL_LEDGER_FILES
        } else {
            MAX_SMALL_FILES
        };
        // Compaction only saves time: a lock another source holds is not waited for.
        let locks: Vec<String> = lock.into_iter().collect();
        if let Err(e) = lease.hold_more(lake, &locks, true).await {
            tracing::debug!("{name} is not compacted now: {e}");
            continue;
        }
        if let Err(e) = crate::storage::compact_if_fragmented(lake, &name, max).await {
            tracing::warn!("cannot compact {name} (it stays correct, only slower to read): {e}");
        }
        lease.let_go(&locks).await;
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
    state: &ledger::LedgerState,
    released: Option<i64>,
) -> Result<Option<usize>> {
    let files = ingest::discover(p).await?;
    if !state.unfinished.is_empty()
        || state.open_rebuild.is_some()
        || !files.iter().all(|f| state.unchanged_since_settled(f))
    {
        return Ok(None);
    }
    if !stale_models_of(lake, p).await?.is_empty() {
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
    // A rebuild writes gold models other sources feed too: the run that completes one
    // holds every source's lease (taken up front, see `run_source`).
    if state.open_rebuild.is_some() && !lease.covers(&all_source_leases(p)) {
        return Err(crate::MedallionError::Busy(format!(
            "a rebuild of source {} was left open just now: run again to complete it",
            p.source.name
        )));
    }
    report.rebuild_completed = rebuild::resume_or_close(lake, p, lease, state, &mut resumed)
        .await?
        .is_some();
    for (model, reason) in stale_models_of(lake, p).await? {
        lease.check()?;
        let locks: Vec<String> = (model.sources.len() > 1)
            .then(|| gold_lock(&model.name))
            .into_iter()
            .collect();
        lease.hold_more(lake, &locks, false).await?;
        // Another source's run may have rebuilt it meanwhile.
        let rebuilt = match model_rebuild::stale(lake, model, true).await {
            Ok(Some(_)) => model_rebuild::rebuild(lake, p, model, reason, None)
                .await
                .map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        lease.let_go(&locks).await;
        let Some((version, rows)) = rebuilt? else {
            continue;
        };
        report.rebuilt.push(ModelRebuild {
            model: model.name.clone(),
            note: reason.note(),
            rows,
            version,
        });
    }
    Ok(report.rebuild_completed)
}

/// The stale gold models the focused source feeds (a model of other sources only is
/// rebuilt by their runs).
async fn stale_models_of<'p>(
    lake: &Lakehouse,
    p: &'p Pipeline,
) -> Result<Vec<(&'p crate::config::GoldModel, model_rebuild::Reason)>> {
    Ok(model_rebuild::stale_models(lake, p)
        .await?
        .into_iter()
        .filter(|(m, _)| m.reads(&p.source.name))
        .collect())
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
        // A snapshot's name that held another state since (customers.csv: A, B, A
        // again) is a state to apply again.
        let snapshot = p.source.mode == crate::config::SourceMode::Snapshot;
        let reapplied = snapshot
            && (state.last_loaded.as_ref())
                .is_some_and(|(n, h)| *n == file.name && *h != print.sha256);
        if state.is_settled(&file.name, &print.sha256) && !reapplied {
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
        if snapshot
            && let Some((last, _)) = state.last_loaded.as_ref().filter(|(n, _)| file.name < *n)
        {
            // An older state arriving late would undo newer ones: not applied.
            let e = crate::MedallionError::Usage(format!(
                "a snapshot that sorts before {last}, the snapshot silver holds: an older state \
                 is not applied over a newer one (remove it, or name snapshots so that they \
                 sort in time)"
            ));
            tracing::error!(file = %file.name, "{e}");
            run.report
                .unreadable
                .push(FileReport::unreadable(&file.name, &e));
            crate::progress::file_done(file.size);
            continue;
        }
        // A snapshot is a state, not an event: the same state again under a new name
        // (a customer moved back) must be applied again.
        let repeats = !snapshot;
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
