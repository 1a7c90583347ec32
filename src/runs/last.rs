//! The last recorded run, summed over its rows: when it started and ended, how long it
//! took, its outcome, and its files and rows. Read for `status`.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, RecordBatch};
use serde::Serialize;

use super::RUNS_TABLE;
use crate::cells;
use crate::error::{MedallionError, Result};
use crate::storage::{self, Lakehouse};

/// The newest run that did something.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRun {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_s: f64,
    /// `ok`, `failed` (some file failed), `stopped` (a batch left open) or `error`.
    pub outcome: String,
    pub error: Option<String>,
    pub files_loaded: u64,
    pub files_failed: u64,
    pub duplicates: u64,
    pub rows_read: u64,
    pub rejected: u64,
    pub peak_rss_bytes: u64,
}

impl LastRun {
    /// The run as (label, value) pairs, for people: `status` prints them on a line,
    /// `report` as a table.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "started (UTC)",
                self.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ),
            ("duration", format!("{:.2} s", self.duration_s)),
            ("outcome", self.outcome.clone()),
            ("files loaded", self.files_loaded.to_string()),
            ("files failed", self.files_failed.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("rows read", self.rows_read.to_string()),
            ("rows rejected", self.rejected.to_string()),
            (
                "peak memory",
                bytesize::ByteSize(self.peak_rss_bytes)
                    .display()
                    .iec_short()
                    .to_string(),
            ),
        ]
    }
}

/// The newest run summed: a file counts once (a file that failed and then loaded in
/// the same run, as when a recovered batch loses a changed file that then loads as a
/// new version, counts as loaded only).
const SQL: &str = "WITH last AS (SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1), \
     f AS (SELECT r.file, MAX(CASE WHEN r.status = 'loaded' THEN 1 ELSE 0 END) AS loaded, \
       MAX(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END) AS failed, \
       MAX(CASE WHEN r.status = 'duplicate' THEN 1 ELSE 0 END) AS duplicate \
       FROM runs r JOIN last l ON r.run_id = l.run_id WHERE r.file IS NOT NULL GROUP BY r.file), \
     fc AS (SELECT COALESCE(SUM(loaded), 0) AS loaded, \
       COALESCE(SUM(CASE WHEN failed = 1 AND loaded = 0 THEN 1 ELSE 0 END), 0) AS failed, \
       COALESCE(SUM(duplicate), 0) AS duplicates FROM f) \
     SELECT r.run_id, MIN(r.started_at), MIN(r.finished_at), MIN(r.duration_s), MIN(r.outcome), \
       MIN(r.error), MAX(fc.loaded), MAX(fc.failed), MAX(fc.duplicates), SUM(r.rows_read), \
       SUM(r.rejected), MAX(r.peak_rss_bytes) \
     FROM runs r JOIN last l ON r.run_id = l.run_id CROSS JOIN fc GROUP BY r.run_id";

/// The last run recorded in `_medallion/runs`; `None` before the first.
pub async fn last_run(lake: &Lakehouse) -> Result<Option<LastRun>> {
    let Some(table) = lake.open(RUNS_TABLE).await? else {
        return Ok(None);
    };
    let ctx = storage::session();
    storage::register(&ctx, "runs", &table).await?;
    let batches = storage::sql_batches(&ctx, SQL, "read the last run").await?;
    match batches.iter().find(|b| b.num_rows() > 0) {
        Some(b) => Ok(Some(from_row(b)?)),
        None => Ok(None),
    }
}

fn from_row(b: &RecordBatch) -> Result<LastRun> {
    let text = |i: usize| -> Result<Option<String>> {
        let s = cells::text(b, i)?;
        Ok(s.is_valid(0).then(|| s.value(0).to_string()))
    };
    let int = |i: usize| -> Result<u64> { Ok(cells::ints(b, i)?.value(0).max(0) as u64) };
    let time = |i: usize| -> Result<DateTime<Utc>> {
        DateTime::from_timestamp_micros(cells::micros(b, i)?.value(0))
            .ok_or_else(|| MedallionError::Internal("a run time out of range".into()))
    };
    Ok(LastRun {
        run_id: text(0)?.unwrap_or_default(),
        started_at: time(1)?,
        finished_at: time(2)?,
        duration_s: cells::doubles(b, 3)?.value(0),
        outcome: text(4)?.unwrap_or_default(),
        error: text(5)?,
        files_loaded: int(6)?,
        files_failed: int(7)?,
        duplicates: int(8)?,
        rows_read: int(9)?,
        rejected: int(10)?,
        peak_rss_bytes: int(11)?,
    })
}
