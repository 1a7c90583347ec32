//! The last recorded run, summed over its rows: when it started and ended, how long it
//! took, its outcome, and its files and rows. Read for `status`.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use serde::Serialize;

use super::RUNS_TABLE;
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

const SQL: &str = "SELECT run_id, MIN(started_at) AS started_at, MIN(finished_at) AS finished_at, \
     MIN(duration_s) AS duration_s, MIN(outcome) AS outcome, MIN(error) AS error, \
     CAST(SUM(CASE WHEN status = 'loaded' THEN 1 ELSE 0 END) AS BIGINT) AS loaded, \
     CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed, \
     CAST(SUM(CASE WHEN status = 'duplicate' THEN 1 ELSE 0 END) AS BIGINT) AS duplicates, \
     CAST(SUM(rows_read) AS BIGINT) AS rows_read, CAST(SUM(rejected) AS BIGINT) AS rejected, \
     MAX(peak_rss_bytes) AS peak_rss_bytes \
     FROM runs GROUP BY run_id ORDER BY started_at DESC, run_id DESC LIMIT 1";

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
    let cast = |i: usize, to: &DataType| {
        deltalake::arrow::compute::cast(b.column(i), to)
            .map_err(MedallionError::arrow("read the last run"))
    };
    let text = |i: usize| -> Result<Option<String>> {
        let c = cast(i, &DataType::Utf8)?;
        let s = c.as_string::<i32>();
        Ok(s.is_valid(0).then(|| s.value(0).to_string()))
    };
    let int = |i: usize| -> Result<u64> {
        let c = cast(i, &DataType::Int64)?;
        Ok(c.as_primitive::<Int64Type>().value(0).max(0) as u64)
    };
    let time = |i: usize| -> Result<DateTime<Utc>> {
        let c = cast(i, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let micros = c.as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        DateTime::from_timestamp_micros(micros.value(0))
            .ok_or_else(|| MedallionError::Internal("a run time out of range".into()))
    };
    let duration = cast(3, &DataType::Float64)?;
    Ok(LastRun {
        run_id: text(0)?.unwrap_or_default(),
        started_at: time(1)?,
        finished_at: time(2)?,
        duration_s: duration.as_primitive::<Float64Type>().value(0),
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
