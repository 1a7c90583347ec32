//! `medallion status`: the state of the lakehouse in one read-only look.
//!
//! Contract: per table its version, rows, data files, bytes and last commit time (rows
//! from file statistics, the rest from the Delta log: no data file is read); the files
//! of the landing zone that are loaded and pending (a settled file is recognised by
//! name, size and modification time, as `run` does, so only new files are hashed);
//! those of them whose latest attempt failed, with the reason, and those whose latest
//! version was a duplicate skipped; the last run that did something (from
//! `_medallion.runs`); and what the next run rebuilds. The shape is the documented
//! `status --json` document.

use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::cells::{micros, text};
use crate::commands::tables;
use crate::config::Pipeline;
use crate::error::Result;
use crate::ingest::{self, ledger};
use crate::storage::{self, Lakehouse};

/// One table.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    /// As SQL names it: `silver.readings`, `_medallion.files`.
    pub name: String,
    /// `None` when the table does not exist yet.
    pub version: Option<i64>,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub last_commit: Option<DateTime<Utc>>,
}

/// A file whose latest attempt failed; the next run tries it again.
#[derive(Debug, Clone, Serialize)]
pub struct FailedFile {
    pub file: String,
    pub batch_id: String,
    pub at: Option<DateTime<Utc>>,
    pub reason: String,
}

/// A file skipped because the same content was loaded under another name.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateFile {
    pub file: String,
    /// The name the content was loaded under.
    pub of: String,
}

/// The landing zone's files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Files {
    /// Files of the landing zone already loaded (or settled as duplicates).
    pub loaded: u64,
    /// Files of the landing zone the next run takes, in name order.
    pub pending: Vec<String>,
    pub failed: Vec<FailedFile>,
    pub duplicates: Vec<DuplicateFile>,
}

/// One source's landing zone.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub name: String,
    /// `upsert`, `append` or `snapshot`.
    pub mode: &'static str,
    pub files: Files,
}

/// A gold table the next run rebuilds, and why.
#[derive(Debug, Clone, Serialize)]
pub struct StaleGold {
    pub table: String,
    pub reason: &'static str,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub lakehouse: String,
    pub tables: Vec<TableStatus>,
    /// Every source's landing-zone files together.
    pub files: Files,
    /// Each source's own.
    pub sources: Vec<SourceStatus>,
    pub last_run: Option<crate::runs::LastRun>,
    pub stale_gold: Vec<StaleGold>,
    /// Gold tables whose model is no longer in the configuration (left alone).
    pub orphaned_gold: Vec<String>,
}

/// Read the state of every table and of the landing zone.
pub async fn status(p: &Pipeline) -> Result<Status> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    let ctx = storage::session();
    let mut out = Vec::new();
    for (name, relative) in tables(p) {
        let t = match lake.open(&relative).await? {
            Some(t) => {
                let size = storage::snapshot_size(&t, &name).await?;
                TableStatus {
                    version: t.version().map(|v| v as i64),
                    rows: storage::row_count(&ctx, &t, &name).await?,
                    files: size.files,
                    bytes: size.bytes,
                    last_commit: size.last_commit,
                    name,
                }
            }
            None => TableStatus {
                name,
                version: None,
                rows: 0,
                files: 0,
                bytes: 0,
                last_commit: None,
            },
        };
        out.push(t);
    }
    let mut files = Files::default();
    let mut sources = Vec::new();
    for source in &p.sources {
        let Some(focused) = p.for_source(&source.name) else {
            continue;
        };
        let own = source_files(&focused, &lake).await?;
        files.loaded += own.loaded;
        files.pending.extend(own.pending.iter().cloned());
        files.failed.extend(own.failed.iter().cloned());
        files.duplicates.extend(own.duplicates.iter().cloned());
        sources.push(SourceStatus {
            name: source.name.clone(),
            mode: crate::config::mode_name(source.mode),
            files: own,
        });
    }
    let configured: Vec<String> = p.gold.iter().map(|m| m.name.clone()).collect();
    let orphaned_gold = lake
        .tables_in("gold")
        .await?
        .into_iter()
        .filter(|name| !configured.contains(name))
        .map(|name| format!("gold.{name}"))
        .collect();
    let stale_gold = crate::zones::gold::rebuild::stale_models(&lake, p)
        .await?
        .into_iter()
        .map(|(m, reason)| StaleGold {
            table: format!("gold.{}", m.name),
            reason: reason.note(),
        })
        .collect();
    Ok(Status {
        lakehouse: p.lakehouse.url.to_string(),
        tables: out,
        files,
        sources,
        last_run: crate::runs::last_run(&lake).await?,
        stale_gold,
        orphaned_gold,
    })
}

/// The focused source's landing zone against its ledger rows.
async fn source_files(p: &Pipeline, lake: &Lakehouse) -> Result<Files> {
    let state = ledger::state(lake, &p.source.name).await?;
    let mut out = Files::default();
    let landing = ingest::discover(p).await?;
    let names: std::collections::HashSet<String> = landing.iter().map(|f| f.name.clone()).collect();
    for f in landing {
        if state.unchanged_since_settled(&f) {
            out.loaded += 1;
            continue;
        }
        match ingest::fingerprint_async(&f).await? {
            Some(print) if state.is_settled(&f.name, &print.sha256) => out.loaded += 1,
            _ => out.pending.push(f.name),
        }
    }
    let Some(table) = lake.open(ledger::LEDGER_TABLE).await? else {
        return Ok(out);
    };
    let ctx = storage::session();
    storage::register(&ctx, "ledger", &table).await?;
    let of_source = ledger::rows_of(&table, &p.source.name)?;
    out.failed = failed_files(&ctx, &of_source).await?;
    out.failed.retain(|f| names.contains(&f.file));
    out.duplicates = duplicate_files(&ctx, &of_source, &state).await?;
    out.duplicates.retain(|f| names.contains(&f.file));
    Ok(out)
}

/// Each file name's newest final ledger row (of any batch) when its status is
/// `status`, among the rows `of_source` selects: `file, _batch_id, processed_at,
/// message, sha256`.
fn newest_when(status: &str, of_source: &str) -> String {
    format!(
        "SELECT file, _batch_id, processed_at, message, sha256 FROM ( \
         SELECT *, ROW_NUMBER() OVER (PARTITION BY file ORDER BY processed_at DESC, seq DESC) AS newest \
         FROM ledger WHERE {of_source} AND status IN ('loaded', 'failed', 'duplicate', 'unchanged')) \
         WHERE newest = 1 AND status = '{status}' ORDER BY file"
    )
}

/// Files whose newest attempt failed.
async fn failed_files(ctx: &SessionContext, of_source: &str) -> Result<Vec<FailedFile>> {
    let sql = newest_when("failed", of_source);
    let batches = storage::sql_batches(ctx, &sql, "read the failed files").await?;
    let mut out = Vec::new();
    for b in &batches {
        let (file, batch, at, message) = (text(b, 0)?, text(b, 1)?, micros(b, 2)?, text(b, 3)?);
        for i in 0..b.num_rows() {
            out.push(FailedFile {
                file: file.value(i).to_string(),
                batch_id: batch.value(i).to_string(),
                at: at.value_as_datetime(i).map(|t| t.and_utc()),
                reason: message.value(i).to_string(),
            });
        }
    }
    Ok(out)
}

/// Files whose newest version was a duplicate, with the name their content was
/// loaded under (a name whose new content loaded since is not one).
async fn duplicate_files(
    ctx: &SessionContext,
    of_source: &str,
    state: &ledger::LedgerState,
) -> Result<Vec<DuplicateFile>> {
    let sql = newest_when("duplicate", of_source);
    let batches = storage::sql_batches(ctx, &sql, "read the duplicates").await?;
    let mut out = Vec::new();
    for b in &batches {
        let (file, sha) = (text(b, 0)?, text(b, 4)?);
        for i in 0..b.num_rows() {
            out.push(DuplicateFile {
                file: file.value(i).to_string(),
                of: state.loaded.get(sha.value(i)).cloned().unwrap_or_default(),
            });
        }
    }
    Ok(out)
}
