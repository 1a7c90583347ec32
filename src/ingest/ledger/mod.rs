//! The file ledger: a Delta table (`_medallion/files`) with one row per file attempt,
//! queryable as `_medallion.files`. A file is identified by its content (sha256): once
//! a content hash is `loaded`, the same content under another name is recorded once as
//! a `duplicate` and skipped, and a changed file under a loaded name is a new file
//! version and is loaded. Failed attempts are recorded and retried on the next run. A
//! loaded file whose size or mtime changed but not its content (copied or restored) is
//! recorded once as `unchanged` with its new size and mtime, so later runs recognise it
//! again without hashing it.
//!
//! A batch takes one or more files. Its claim commit writes a `claimed` row per file,
//! which fixes the batch id and the batch sequence number (`seq`, increasing) they
//! share; the stage commits carry that `seq` as their application transaction version.
//! Its final commit writes a `loaded` or `failed` row per file, each with the file's
//! own counts. Claims without final rows are a batch left part-way by a crash, which
//! the next run completes with the same batch id and `seq`.
//!
//! Every row carries its source: file identity, `seq` and the ledger's application
//! transactions are per source, so sources load independently. A ledger from before
//! sources is labelled once with the source it was written for ([`label_rows`]).

mod label;
mod state;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::DataType;

pub use label::{label_rows, unlabelled_source};
pub use state::{LedgerState, rows_of, state};

use super::Fingerprint;
use crate::error::{MedallionError, Result};
use crate::schema;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};

/// Table path of the ledger.
pub const LEDGER_TABLE: &str = "_medallion/files";

/// The ledger's transaction for the `recounted` rows of a rebuild of `source`.
pub fn app_recount(source: &str) -> String {
    format!("medallion/ledger/recount/{source}")
}

/// What happened to a file attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Claimed,
    Loaded,
    Failed,
    Duplicate,
    /// Settled content seen again under the same name with a new size or mtime.
    Unchanged,
    /// `medallion rebuild` started (its claim: fixes the rebuild's id and `seq`).
    RebuildStarted,
    /// `medallion rebuild` finished (its final row).
    RebuildDone,
    /// A loaded batch's counts after a rebuild, under the rules it was rebuilt with.
    Recounted,
}

impl FileStatus {
    fn as_str(self) -> &'static str {
        match self {
            FileStatus::Claimed => "claimed",
            FileStatus::Loaded => "loaded",
            FileStatus::Failed => "failed",
            FileStatus::Duplicate => "duplicate",
            FileStatus::Unchanged => "unchanged",
            FileStatus::RebuildStarted => "rebuild_started",
            FileStatus::RebuildDone => "rebuild_done",
            FileStatus::Recounted => "recounted",
        }
    }
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    pub batch_id: String,
    pub seq: i64,
    pub status: FileStatus,
    pub rows_read: u64,
    pub silver_accepted: u64,
    pub rejected: u64,
    pub message: Option<String>,
    /// Versions this attempt committed, as JSON (`{"bronze/readings": 3, ...}`).
    pub table_versions: Option<String>,
}

impl LedgerEntry {
    /// The claim of a file version as batch `seq`.
    pub fn claim(print: Fingerprint, file: String, batch_id: String, seq: i64) -> Self {
        LedgerEntry {
            file,
            sha256: print.sha256,
            size: print.size,
            modified: print.modified,
            batch_id,
            seq,
            status: FileStatus::Claimed,
            rows_read: 0,
            silver_accepted: 0,
            rejected: 0,
            message: None,
            table_versions: None,
        }
    }
}

/// Ledger rows of `source` as one batch.
fn rows(source: &str, entries: &[LedgerEntry]) -> Result<RecordBatch> {
    let now = Utc::now().timestamp_micros();
    let col = |f: fn(&LedgerEntry) -> Option<&str>| {
        Arc::new(StringArray::from(entries.iter().map(f).collect::<Vec<_>>()))
    };
    let int = |f: fn(&LedgerEntry) -> i64| {
        Arc::new(Int64Array::from(entries.iter().map(f).collect::<Vec<_>>()))
    };
    RecordBatch::try_new(
        schema::ledger_schema(),
        vec![
            col(|e| Some(e.file.as_str())),
            col(|e| Some(e.sha256.as_str())),
            int(|e| e.size as i64),
            Arc::new(
                TimestampMicrosecondArray::from(
                    entries
                        .iter()
                        .map(|e| e.modified.map(|m| m.timestamp_micros()))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            col(|e| Some(e.batch_id.as_str())),
            int(|e| e.seq),
            col(|e| Some(e.status.as_str())),
            int(|e| e.rows_read as i64),
            int(|e| e.silver_accepted as i64),
            int(|e| e.rejected as i64),
            col(|e| e.message.as_deref()),
            col(|e| e.table_versions.as_deref()),
            Arc::new(
                TimestampMicrosecondArray::from(vec![now; entries.len()]).with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![source; entries.len()])),
        ],
    )
    .map_err(MedallionError::arrow("build ledger rows"))
}

/// Append the `recounted` rows of `source`'s rebuild `seq` in one commit (once per
/// rebuild; the commit carries the transaction even when there are no rows).
pub async fn record_recounts(
    lake: &Lakehouse,
    source: &str,
    entries: &[LedgerEntry],
    seq: i64,
) -> Result<()> {
    let mut table = lake
        .open_or_create(LEDGER_TABLE, &schema::ledger_schema(), FileSize::Append)
        .await?;
    let mut writer = AppendWriter::new(&table, LEDGER_TABLE)?;
    writer.write(rows(source, entries)?).await?;
    let props = storage::commit_info(
        "ledger",
        serde_json::json!({ "rows": entries.len(), "status": "recounted", "seq": seq, "source": source }),
    );
    writer
        .commit(&mut table, props, Some((&app_recount(source), seq)))
        .await?;
    Ok(())
}

/// Append one entry of `source` to the ledger.
pub async fn record(lake: &Lakehouse, source: &str, e: &LedgerEntry) -> Result<()> {
    record_all(lake, source, std::slice::from_ref(e)).await
}

/// Append the rows of one batch to the ledger in one commit: its claims (with any
/// `duplicate` or `unchanged` rows found while it was assembled), or its final rows.
/// Every entry carries the same batch id and `seq`; the first one's status says which
/// of the two commits this is.
pub async fn record_all(lake: &Lakehouse, source: &str, entries: &[LedgerEntry]) -> Result<()> {
    let Some(e) = entries.first() else {
        return Ok(());
    };
    debug_assert!(
        entries
            .iter()
            .all(|x| x.seq == e.seq && x.batch_id == e.batch_id)
    );
    let mut table = lake
        .open_or_create(LEDGER_TABLE, &schema::ledger_schema(), FileSize::Append)
        .await?;
    let mut writer = AppendWriter::new(&table, LEDGER_TABLE)?;
    writer.write(rows(source, entries)?).await?;
    let source_file = match entries {
        [one] => serde_json::Value::from(one.file.as_str()),
        _ => serde_json::Value::Null,
    };
    let props = storage::commit_info(
        "ledger",
        serde_json::json!({ "batch_id": e.batch_id, "source_file": source_file, "rows": entries.len(), "status": e.status.as_str(), "seq": e.seq, "source": source }),
    );
    // Claim and final rows are each written once per batch sequence number.
    let claim = matches!(e.status, FileStatus::Claimed | FileStatus::RebuildStarted);
    let app = format!(
        "medallion/ledger/{}/{source}",
        if claim { "claim" } else { "final" }
    );
    let committed = writer
        .commit(&mut table, props, Some((&app, e.seq)))
        .await?;
    lake.keep(LEDGER_TABLE, &table);
    // A row fixes which batch owns `seq` (claims) or ends it (final rows): when the
    // transaction was already at `seq`, it must have been this batch's own (ambiguous)
    // commit, not another run's; else this run was overtaken and must stop.
    if matches!(committed, storage::Committed::AlreadyThere(_)) {
        let owner = row_owner(&table, source, e.seq, claim).await?;
        if owner.as_deref() != Some(e.batch_id.as_str()) {
            return Err(MedallionError::Fenced {
                table: LEDGER_TABLE.to_string(),
                app,
                seq: e.seq,
                found: e.seq,
            });
        }
    }
    Ok(())
}

/// SQL: the ledger row belongs to `source`.
pub(crate) fn of_source(source: &str) -> String {
    format!(
        "{} = {}",
        schema::LEDGER_SOURCE,
        schema::quote_literal(source)
    )
}

/// The batch id of the claim (`claim`) or of the final row at `seq`, if any.
async fn row_owner(
    table: &deltalake::DeltaTable,
    source: &str,
    seq: i64,
    claim: bool,
) -> Result<Option<String>> {
    let ctx = storage::session();
    storage::register(&ctx, "ledger", table).await?;
    let statuses = if claim {
        "IN ('claimed', 'rebuild_started')"
    } else {
        "NOT IN ('claimed', 'rebuild_started', 'recounted')"
    };
    let sql = format!(
        "SELECT _batch_id FROM ledger WHERE {} AND seq = {seq} AND status {statuses} LIMIT 1",
        of_source(source)
    );
    let batches = storage::sql_batches(&ctx, &sql, "read the file ledger").await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let id = deltalake::arrow::compute::cast(b.column(0), &DataType::Utf8)
        .map_err(MedallionError::arrow("read the file ledger"))?;
    Ok(Some(id.as_string::<i32>().value(0).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: FileStatus, batch: &str, seq: i64) -> LedgerEntry {
        let print = Fingerprint {
            sha256: "ab".repeat(32),
            size: 1,
            modified: None,
        };
        let mut e = LedgerEntry::claim(print, "f.csv".into(), batch.into(), seq);
        e.status = status;
        e
    }

    #[tokio::test]
    async fn a_row_at_a_taken_seq_is_fenced_unless_it_is_our_own() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lakehouse::local(url::Url::from_directory_path(dir.path()).unwrap());
        for (status, batch, seq) in [
            (FileStatus::Claimed, "batch-a", 1),
            (FileStatus::Loaded, "batch-a", 1),
            (FileStatus::Unchanged, "batch-c", 2),
        ] {
            record(&lake, "s", &entry(status, batch, seq))
                .await
                .unwrap();
            // The same row again (an ambiguous commit retried): accepted, not written twice.
            record(&lake, "s", &entry(status, batch, seq))
                .await
                .unwrap();
            // Another batch at the same seq: this run was overtaken.
            let other = record(&lake, "s", &entry(status, "batch-b", seq)).await;
            assert!(
                matches!(other, Err(MedallionError::Fenced { .. })),
                "{status:?}: {other:?}"
            );
        }
        // Another source's batches are its own: the same seq is not taken there.
        record(&lake, "t", &entry(FileStatus::Claimed, "batch-t", 1))
            .await
            .unwrap();
        assert_eq!(state(&lake, "t").await.unwrap().next_seq, 2);
        let state = state(&lake, "s").await.unwrap();
        assert_eq!(state.next_seq, 3);
        assert!(state.unfinished.is_empty());
        assert_eq!(state.settled.len(), 1);
        assert_eq!(state.settled_stats.len(), 1);
    }
}
