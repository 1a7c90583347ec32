//! `medallion rebuild`: the medallion architecture's full refresh. Bronze keeps every
//! row as received, so silver and rejected are recomputed from bronze with the current
//! columns, rules and key ([`silver`]), and gold from the new silver.
//!
//! Exactly once, like ingest: a rebuild runs under the ingest lease and is a ledger
//! event of its own: a `rebuild_started` row fixes its id and `seq` (after every batch
//! loaded so far), each table gets one overwrite version carrying the application
//! transaction `medallion/rebuild` at that `seq`, the batches' new counts are recorded
//! as `recounted` rows, and a `rebuild_done` row closes it. A rebuild killed at any
//! moment leaves each table in its old or its new state; the next `run` or `rebuild`
//! completes it (skipping the tables already written) before doing anything else. A
//! rebuild left open under another configuration is closed and started again.

mod dry;
mod moves;
mod silver;
mod staged;
mod summary;

use std::collections::HashMap;
use std::sync::Arc;

pub use silver::Recomputed;

use super::{RunOptions, evolve, failpoint};
use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::Fingerprint;
use crate::ingest::lease::Lease;
use crate::ingest::ledger::{self, FileStatus, LedgerEntry, LedgerState};
use crate::storage::{self, Lakehouse};
use crate::zones::gold::rebuild::{self as model_rebuild, Reason};
use crate::zones::silver::Validator;

/// The application transaction of every table a rebuild writes.
const APP_REBUILD: &str = "medallion/rebuild";

/// What to rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Silver and rejected from bronze, then every gold model from the new silver.
    All,
    /// One gold model from silver.
    Gold(String),
}

impl Target {
    /// `silver` and `all` (silver and rejected, then every gold table, which depends
    /// on silver), or `gold.<model>`.
    pub fn parse(text: &str, p: &Pipeline) -> Result<Self> {
        match text {
            "all" | "silver" => Ok(Target::All),
            _ => match text
                .strip_prefix("gold.")
                .or_else(|| text.strip_prefix("gold/"))
            {
                Some(m) if p.gold.iter().any(|g| g.name == m) => Ok(Target::Gold(m.to_string())),
                _ => Err(MedallionError::Usage(format!(
                    "cannot rebuild \"{text}\": say silver, all, or gold.<model> with a model of the configuration ({})",
                    p.gold
                        .iter()
                        .map(|g| format!("gold.{}", g.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
        }
    }

    fn label(&self) -> String {
        match self {
            Target::All => "rebuild all".to_string(),
            Target::Gold(m) => format!("rebuild gold.{m}"),
        }
    }
}

/// What a rebuild did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// The source's name (tables `silver/<source>`, ...).
    pub source: String,
    pub dry_run: bool,
    /// Completing a rebuild an earlier process left part-way.
    pub resumed: bool,
    /// Silver and rejected, when rebuilt.
    pub silver: Option<Recomputed>,
    /// Rows silver and rejected held before.
    pub before: (u64, u64),
    /// (model, rows, version) per gold table rebuilt (dry: rows that would change).
    pub gold: Vec<(String, u64, Option<i64>)>,
}

/// Rebuild `target`, or with `dry_run` only say what would change.
pub async fn rebuild(
    p: Arc<Pipeline>,
    target: Target,
    dry_run: bool,
    opts: RunOptions,
) -> Result<RebuildReport> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    let rewrites_silver = target == Target::All;
    // Silver and rejected are replaced: only bronze must fit the configuration.
    evolve::check(&lake, &p, rewrites_silver).await?;
    let tables = p.source.tables();
    if lake.open(&tables.bronze).await?.is_none() {
        return Err(MedallionError::Usage(format!(
            "nothing to rebuild: {} does not exist yet (run `medallion run` first)",
            tables.bronze
        )));
    }
    if dry_run {
        return dry::dry(&lake, &p, &target).await;
    }
    let leases = super::all_source_leases(&p);
    let lease = Lease::acquire(&lake, &leases, opts.lease_ttl, opts.lease_wait).await?;
    let result = async {
        evolve::apply(&lake, &p, &evolve::check(&lake, &p, rewrites_silver).await?).await?;
        let state = ledger::state(&lake, &p.source.name).await?;
        if let Some(open) = state.unfinished.first() {
            return Err(MedallionError::Busy(format!(
                "batch {} ({}) is open: run `medallion run` to complete it, then rebuild",
                open.seq, open.file
            )));
        }
        let mut report = RebuildReport {
            source: p.source.name.clone(),
            ..RebuildReport::default()
        };
        if resume_or_close(&lake, &p, &lease, &state, &mut report).await? == Some(target.clone()) {
            return Ok(report);
        }
        report = RebuildReport {
            source: p.source.name.clone(),
            ..RebuildReport::default()
        };
        let state = ledger::state(&lake, &p.source.name).await?;
        execute(&lake, &p, &lease, None, &target, &state, &mut report).await?;
        Ok(report)
    }
    .await;
    if let Err(e) = lease.release().await {
        tracing::warn!("cannot release the ingest lease (it will expire): {e}");
    }
    result
}

/// Complete a rebuild an earlier process left open; `run` calls this before any
/// batch. One left under another configuration is started again under this one (its
/// tables are each in a consistent state of their own, and all are written anew); one
/// whose model is gone is closed. Returns the target completed, if any.
pub async fn resume_or_close(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
    state: &LedgerState,
    report: &mut RebuildReport,
) -> Result<Option<Target>> {
    let Some(open) = &state.open_rebuild else {
        return Ok(None);
    };
    let target = match open.file.strip_prefix("rebuild gold.") {
        Some(m) if p.gold.iter().any(|g| g.name == m) => Target::Gold(m.to_string()),
        Some(_) => {
            finish(
                lake,
                p,
                open,
                "closed unfinished: its model left the configuration",
            )
            .await?;
            return Ok(None);
        }
        None => Target::All,
    };
    let claim = if open.sha256 == fingerprint(p) {
        open.clone()
    } else {
        // The new claim first: a process killed between the two rows still leaves a
        // rebuild open (the latest claim), never none.
        let claim = start(lake, p, &target, state).await?;
        finish(lake, p, open, "superseded: the configuration changed").await?;
        claim
    };
    report.resumed = true;
    execute(lake, p, lease, Some(&claim), &target, state, report).await?;
    Ok(Some(target))
}

/// The configuration a rebuild of silver runs under: columns, rules, dialect and key
/// (gold models are rebuilt as they are when their turn comes).
fn fingerprint(p: &Pipeline) -> String {
    use sha2::Digest;
    let s = &p.source;
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        s.columns,
        s.row_rules,
        s.csv,
        s.key,
        s.mode,
        s.sequence_by,
        s.delete_when.as_ref().map(|r| &r.sql)
    );
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

async fn start(
    lake: &Lakehouse,
    p: &Pipeline,
    target: &Target,
    state: &LedgerState,
) -> Result<LedgerEntry> {
    let print = Fingerprint {
        sha256: fingerprint(p),
        size: 0,
        modified: None,
    };
    let mut claim = LedgerEntry::claim(
        print,
        target.label(),
        uuid::Uuid::now_v7().to_string(),
        state.next_seq,
    );
    claim.status = FileStatus::RebuildStarted;
    ledger::record(lake, &p.source.name, &claim).await?;
    Ok(claim)
}

async fn finish(lake: &Lakehouse, p: &Pipeline, claim: &LedgerEntry, message: &str) -> Result<()> {
    let mut done = claim.clone();
    done.status = FileStatus::RebuildDone;
    done.message = Some(message.to_string());
    ledger::record(lake, &p.source.name, &done).await
}

/// Write every table of the rebuild not written yet, then close it. A new rebuild
/// (`claim` is `None`) computes silver and rejected first and claims its `seq` only
/// then, right before its first commit: a rebuild that fails while it computes leaves
/// nothing open behind.
async fn execute(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
    claim: Option<&LedgerEntry>,
    target: &Target,
    state: &LedgerState,
    report: &mut RebuildReport,
) -> Result<()> {
    let mut claim = claim.cloned();
    if *target == Target::All {
        let tables = p.source.tables();
        let mut silver = lake.open(&tables.silver).await?;
        let mut rejected = lake.open(&tables.rejected).await?;
        let (silver_pending, rejected_pending, recount_pending) = match &claim {
            Some(c) => (
                pending(&silver, &tables.silver, c.seq).await?,
                pending(&rejected, &tables.rejected, c.seq).await?,
                match lake.open(ledger::LEDGER_TABLE).await? {
                    Some(t) => {
                        storage::txn_version(
                            &t,
                            &ledger::app_recount(&p.source.name),
                            ledger::LEDGER_TABLE,
                        )
                        .await?
                        .unwrap_or(0)
                            < c.seq
                    }
                    None => true,
                },
            ),
            None => (silver.is_some(), rejected.is_some(), true),
        };
        if silver_pending || rejected_pending || recount_pending {
            lease.check()?;
            let validator = Validator::new(Arc::new(p.clone()))?;
            let seqs: HashMap<String, i64> = state
                .loaded_batches
                .iter()
                .map(|b| (b.batch_id.clone(), b.seq))
                .collect();
            let tables_to_write = (
                silver.as_ref().filter(|_| silver_pending),
                rejected.as_ref().filter(|_| rejected_pending),
            );
            let prepared = silver::recompute(lake, p, &validator, &seqs, tables_to_write).await?;
            lease.check()?;
            failpoint("before_rebuild_claim");
            let c = match claim.take() {
                Some(c) => c,
                None => start(lake, p, target, state).await?,
            };
            let txn = Some((APP_REBUILD, c.seq));
            let props = serde_json::json!({ "batch_id": c.batch_id, "seq": c.seq, "note": "rebuilt from bronze (medallion rebuild)" });
            if let (Some(w), Some(t)) = (prepared.silver, silver.as_mut()) {
                let info = storage::commit_info("rebuild_silver", with_rows(&props, w.rows()));
                w.commit(t, info, txn).await?;
                failpoint("after_rebuild_silver");
            }
            if let (Some(w), Some(t)) = (prepared.rejected, rejected.as_mut()) {
                let info = storage::commit_info("rebuild_rejected", with_rows(&props, w.rows()));
                w.commit(t, info, txn).await?;
                failpoint("after_rebuild_rejected");
            }
            if recount_pending {
                ledger::record_recounts(
                    lake,
                    &p.source.name,
                    &recounts(state, &prepared.out, &c),
                    c.seq,
                )
                .await?;
                failpoint("after_rebuild_recount");
            }
            report.silver = Some(prepared.out);
            claim = Some(c);
        }
    }
    let claim = match claim {
        Some(c) => c,
        None => start(lake, p, target, state).await?,
    };
    // Gold tables may be fed by several sources, each numbering its own rebuilds.
    let app = format!("{APP_REBUILD}/{}", p.source.name);
    let txn = (app.as_str(), claim.seq);
    let models: Vec<_> = p
        .gold
        .iter()
        .filter(|m| match target {
            Target::All => m.reads(&p.source.name),
            Target::Gold(name) => m.name == *name,
        })
        .collect();
    for model in models {
        let relative = model.table();
        if let Some(t) = lake.open(&relative).await?
            && storage::stage_done(&t, &app, &relative, claim.seq).await?
        {
            continue;
        }
        lease.check()?;
        let (version, rows) =
            model_rebuild::rebuild(lake, p, model, Reason::Requested, Some(txn)).await?;
        report.gold.push((model.name.clone(), rows, version));
        failpoint("after_rebuild_gold");
    }
    lease.check()?;
    finish(lake, p, &claim, "rebuilt").await
}

/// Whether the rebuild at `seq` has still to write `table`.
async fn pending(table: &Option<deltalake::DeltaTable>, name: &str, seq: i64) -> Result<bool> {
    match table {
        Some(t) => Ok(!storage::stage_done(t, APP_REBUILD, name, seq).await?),
        None => Ok(false),
    }
}

fn with_rows(props: &serde_json::Value, rows: u64) -> serde_json::Value {
    let mut v = props.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("rows".into(), rows.into());
    }
    v
}

/// One `recounted` ledger row per loaded batch, with its counts under the current rules.
fn recounts(state: &LedgerState, out: &Recomputed, claim: &LedgerEntry) -> Vec<LedgerEntry> {
    state
        .loaded_batches
        .iter()
        .map(|b| {
            let c = out
                .per_batch
                .get(&(b.batch_id.clone(), b.file.clone()))
                .copied()
                .unwrap_or_default();
            let mut e = b.clone();
            e.status = FileStatus::Recounted;
            e.rows_read = c.rows;
            e.silver_accepted = c.accepted;
            e.rejected = c.rejected;
            e.message = Some(format!(
                "counts after rebuild {} (seq {})",
                claim.batch_id, claim.seq
            ));
            e
        })
        .collect()
}
