//! The file ledger: a Delta table (`_medallion/files`) with one row per file attempt,
//! queryable as `_medallion.files`. A file is identified by its content (sha256): once
//! a content hash is `loaded`, the same content under another name is recorded once as
//! a `duplicate` and skipped, and a changed file under a loaded name is a new file
//! version and is loaded. Failed attempts are recorded and retried on the next run. A
//! loaded file whose size or mtime changed but not its content (copied or restored) is
//! recorded once as `unchanged` with its new size and mtime, so later runs recognise it
//! again without hashing it.
//!
//! Each attempt first writes a `claimed` row that fixes its batch id and its batch
//! sequence number (`seq`, increasing); the stage commits carry that `seq` as their
//! application transaction version. A claim without a final row (`loaded`/`failed`)
//! is a batch left part-way by a crash, which the next run completes with the same
//! batch id and `seq`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::DataType;

use super::Fingerprint;
use crate::error::{MedallionError, Result};
use crate::schema;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};

/// Table path of the ledger.
pub const LEDGER_TABLE: &str = "_medallion/files";

/// What happened to a file attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Claimed,
    Loaded,
    Failed,
    Duplicate,
    /// Settled content seen again under the same name with a new size or mtime.
    Unchanged,
}

impl FileStatus {
    fn as_str(self) -> &'static str {
        match self {
            FileStatus::Claimed => "claimed",
            FileStatus::Loaded => "loaded",
            FileStatus::Failed => "failed",
            FileStatus::Duplicate => "duplicate",
            FileStatus::Unchanged => "unchanged",
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

/// What the ledger knows, for deciding what to do with each raw file.
#[derive(Debug, Default)]
pub struct LedgerState {
    /// Content hash → the name it was loaded under.
    pub loaded: HashMap<String, String>,
    /// (name, hash) pairs already settled: loaded or recorded as duplicate.
    pub settled: HashSet<(String, String)>,
    /// Names that were loaded with some content.
    pub loaded_names: HashSet<String>,
    /// (name, size, modified µs) of settled file versions: a raw file that still has
    /// them is not hashed again (raw files are never modified in place; a producer
    /// that rewrites one changes its mtime).
    pub settled_stats: HashSet<(String, u64, Option<i64>)>,
    /// Claims without a final row: batches left part-way, oldest first.
    pub unfinished: Vec<LedgerEntry>,
    /// The next batch sequence number.
    pub next_seq: i64,
}

impl LedgerState {
    /// Whether the raw file has the name, size and modification time of a settled file
    /// version, so it needs nothing more (and no hashing).
    pub fn unchanged_since_settled(&self, f: &super::RawFile) -> bool {
        self.settled_stats.contains(&(
            f.name.clone(),
            f.size,
            f.modified.map(|m| m.timestamp_micros()),
        ))
    }

    /// Whether `name` with content `sha256` needs nothing more.
    pub fn is_settled(&self, name: &str, sha256: &str) -> bool {
        self.settled
            .contains(&(name.to_string(), sha256.to_string()))
    }
}

/// Read the ledger.
pub async fn state(lake: &Lakehouse) -> Result<LedgerState> {
    let mut state = LedgerState {
        next_seq: 1,
        ..LedgerState::default()
    };
    let Some(table) = lake.open(LEDGER_TABLE).await? else {
        return Ok(state);
    };
    let ctx = storage::session();
    storage::register(&ctx, "ledger", &table).await?;
    let sql = "SELECT file, sha256, status, _batch_id, seq, size, modified FROM ledger ORDER BY seq, processed_at";
    let batches = storage::sql_batches(&ctx, sql, "read the file ledger").await?;
    let mut finished = HashSet::new();
    let mut claims = Vec::new();
    for b in batches {
        let cast = |i: usize, t: &DataType| {
            deltalake::arrow::compute::cast(b.column(i), t)
                .map_err(MedallionError::arrow("read the file ledger"))
        };
        let (file, sha, status, batch) = (
            cast(0, &DataType::Utf8)?,
            cast(1, &DataType::Utf8)?,
            cast(2, &DataType::Utf8)?,
            cast(3, &DataType::Utf8)?,
        );
        let (file, sha, status, batch) = (
            file.as_string::<i32>(),
            sha.as_string::<i32>(),
            status.as_string::<i32>(),
            batch.as_string::<i32>(),
        );
        let seq = b
            .column(4)
            .as_primitive::<deltalake::arrow::datatypes::Int64Type>();
        let size = b
            .column(5)
            .as_primitive::<deltalake::arrow::datatypes::Int64Type>();
        let modified = b
            .column(6)
            .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            state.next_seq = state.next_seq.max(seq.value(i) + 1);
            let (f, h) = (file.value(i).to_string(), sha.value(i).to_string());
            if matches!(status.value(i), "loaded" | "duplicate" | "unchanged") {
                state.settled_stats.insert((
                    f.clone(),
                    size.value(i) as u64,
                    modified.is_valid(i).then(|| modified.value(i)),
                ));
            }
            match status.value(i) {
                "loaded" => {
                    finished.insert(seq.value(i));
                    state.loaded.entry(h.clone()).or_insert_with(|| f.clone());
                    state.loaded_names.insert(f.clone());
                    state.settled.insert((f, h));
                }
                "duplicate" | "unchanged" => {
                    state.settled.insert((f, h));
                }
                "failed" => {
                    finished.insert(seq.value(i));
                }
                "claimed" => claims.push(LedgerEntry::claim(
                    Fingerprint {
                        sha256: h,
                        size: size.value(i) as u64,
                        modified: modified
                            .is_valid(i)
                            .then(|| DateTime::<Utc>::from_timestamp_micros(modified.value(i)))
                            .flatten(),
                    },
                    f,
                    batch.value(i).to_string(),
                    seq.value(i),
                )),
                _ => {}
            }
        }
    }
    state.unfinished = claims
        .into_iter()
        .filter(|c| !finished.contains(&c.seq))
        .collect();
    Ok(state)
}

/// Append one entry to the ledger.
pub async fn record(lake: &Lakehouse, e: &LedgerEntry) -> Result<()> {
    let schema = schema::ledger_schema();
    let mut table = lake
        .open_or_create(LEDGER_TABLE, &schema, FileSize::Append)
        .await?;
    let now = Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![e.file.as_str()])),
            Arc::new(StringArray::from(vec![e.sha256.as_str()])),
            Arc::new(Int64Array::from(vec![e.size as i64])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![e.modified.map(|m| m.timestamp_micros())])
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![e.batch_id.as_str()])),
            Arc::new(Int64Array::from(vec![e.seq])),
            Arc::new(StringArray::from(vec![e.status.as_str()])),
            Arc::new(Int64Array::from(vec![e.rows_read as i64])),
            Arc::new(Int64Array::from(vec![e.silver_accepted as i64])),
            Arc::new(Int64Array::from(vec![e.rejected as i64])),
            Arc::new(StringArray::from(vec![e.message.as_deref()])),
            Arc::new(StringArray::from(vec![e.table_versions.as_deref()])),
            Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
        ],
    )
    .map_err(MedallionError::arrow("build ledger row"))?;
    let mut writer = AppendWriter::new(&table, LEDGER_TABLE)?;
    writer.write(batch).await?;
    let props = storage::commit_info(
        "ledger",
        serde_json::json!({ "batch_id": e.batch_id, "source_file": e.file, "rows": 1, "status": e.status.as_str() }),
    );
    // Claim and final rows are each written once per batch sequence number.
    let app = match e.status {
        FileStatus::Claimed => "medallion/ledger/claim",
        _ => "medallion/ledger/final",
    };
    let committed = writer.commit(&mut table, props, Some((app, e.seq))).await?;
    // A row fixes which batch owns `seq` (claims) or ends it (final rows): when the
    // transaction was already at `seq`, it must have been this batch's own (ambiguous)
    // commit, not another run's; else this run was overtaken and must stop.
    if matches!(committed, storage::Committed::AlreadyThere(_)) {
        let owner = row_owner(&table, e.seq, e.status == FileStatus::Claimed).await?;
        if owner.as_deref() != Some(e.batch_id.as_str()) {
            return Err(MedallionError::Fenced {
                table: LEDGER_TABLE.to_string(),
                app: app.to_string(),
                seq: e.seq,
                found: e.seq,
            });
        }
    }
    Ok(())
}

/// The batch id of the claim (`claim`) or of the final row at `seq`, if any.
async fn row_owner(table: &deltalake::DeltaTable, seq: i64, claim: bool) -> Result<Option<String>> {
    let ctx = storage::session();
    storage::register(&ctx, "ledger", table).await?;
    let op = if claim { "=" } else { "<>" };
    let sql =
        format!("SELECT _batch_id FROM ledger WHERE seq = {seq} AND status {op} 'claimed' LIMIT 1");
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
        let lake = Lakehouse::new(url::Url::from_directory_path(dir.path()).unwrap());
        for (status, batch, seq) in [
            (FileStatus::Claimed, "batch-a", 1),
            (FileStatus::Loaded, "batch-a", 1),
            (FileStatus::Unchanged, "batch-c", 2),
        ] {
            record(&lake, &entry(status, batch, seq)).await.unwrap();
            // The same row again (an ambiguous commit retried): accepted, not written twice.
            record(&lake, &entry(status, batch, seq)).await.unwrap();
            // Another batch at the same seq: this run was overtaken.
            let other = record(&lake, &entry(status, "batch-b", seq)).await;
            assert!(
                matches!(other, Err(MedallionError::Fenced { .. })),
                "{status:?}: {other:?}"
            );
        }
        let state = state(&lake).await.unwrap();
        assert_eq!(state.next_seq, 3);
        assert!(state.unfinished.is_empty());
        assert_eq!(state.settled.len(), 1);
        assert_eq!(state.settled_stats.len(), 1);
    }
}
