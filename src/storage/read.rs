//! Reading table state: time travel to a version or a timestamp, commit history with
//! medallion's commit info, row counts, and the size of the current snapshot.

use chrono::{DateTime, TimeZone, Utc};
use deltalake::DeltaTable;
use futures::TryStreamExt;

use super::Lakehouse;
use crate::error::{MedallionError, Result};

/// A point in a table's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTravel {
    Version(i64),
    Timestamp(DateTime<Utc>),
}

impl std::str::FromStr for TimeTravel {
    type Err = String;

    /// `3` is a version; `2026-01-05T10:00:00Z` or `2026-01-05 10:00:00` (UTC) a time.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Ok(v) = s.parse::<i64>() {
            return if v >= 0 {
                Ok(TimeTravel::Version(v))
            } else {
                Err(format!("a version is >= 0, got {v}"))
            };
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(TimeTravel::Timestamp(t.with_timezone(&Utc)));
        }
        for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
            if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(TimeTravel::Timestamp(Utc.from_utc_datetime(&n)));
            }
        }
        Err(format!(
            "expected a version number or a timestamp (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC), got {s:?}"
        ))
    }
}

/// Open `relative` as it was at `at` (latest when `None`); `None` if there is no table.
pub async fn open_at(
    lake: &Lakehouse,
    relative: &str,
    at: Option<TimeTravel>,
) -> Result<Option<DeltaTable>> {
    let Some(mut table) = lake.open(relative).await? else {
        return Ok(None);
    };
    match at {
        None => {}
        Some(TimeTravel::Version(v)) => {
            let latest = table.version().map_or(-1, |v| v as i64);
            if v > latest {
                return Err(MedallionError::Usage(format!(
                    "{relative} has no version {v} (latest is {latest})"
                )));
            }
            table
                .load_version(v as u64)
                .await
                .map_err(MedallionError::delta("time travel", relative))?;
        }
        Some(TimeTravel::Timestamp(t)) => {
            table.load_with_datetime(t).await.map_err(|e| {
                MedallionError::Usage(format!("{relative} has no version at or before {t}: {e}"))
            })?;
        }
    }
    Ok(Some(table))
}

/// One commit of a table, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    pub version: i64,
    pub timestamp: Option<DateTime<Utc>>,
    pub operation: String,
    pub stage: Option<String>,
    pub batch_id: Option<String>,
    pub source_file: Option<String>,
    pub rows: Option<u64>,
    /// What a commit outside the batches did ("model changed: rebuilt").
    pub note: Option<String>,
}

/// The commit history of `table`, newest first; the newest `limit` commits only when
/// given.
pub async fn history(
    table: &DeltaTable,
    name: &str,
    limit: Option<usize>,
) -> Result<Vec<HistoryEntry>> {
    let latest = table.version().map_or(-1, |v| v as i64);
    let infos: Vec<_> = table
        .history(limit)
        .try_collect()
        .await
        .map_err(MedallionError::delta("history", name))?;
    Ok(infos
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let m = c.info.get("medallion");
            let text = |k: &str| {
                m.and_then(|m| m.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            HistoryEntry {
                version: latest - i as i64,
                timestamp: c
                    .timestamp
                    .and_then(|t| Utc.timestamp_millis_opt(t).single()),
                operation: c.operation.clone().unwrap_or_default(),
                stage: text("stage"),
                batch_id: text("batch_id"),
                source_file: text("source_file"),
                rows: m.and_then(|m| m.get("rows")).and_then(|v| v.as_u64()),
                note: text("note"),
            }
        })
        .collect())
}

/// medallion's commit info (its `medallion` object) of the newest commit, among the
/// last `within`, that records `stage` for batch `seq`; `None` if there is none.
pub async fn batch_commit_info(
    table: &DeltaTable,
    name: &str,
    stage: &str,
    seq: i64,
    within: usize,
) -> Result<Option<serde_json::Value>> {
    let infos: Vec<_> = table
        .history(Some(within))
        .try_collect()
        .await
        .map_err(MedallionError::delta("history", name))?;
    Ok(infos.into_iter().find_map(|c| {
        let m = c.info.get("medallion")?;
        let matches = m.get("stage").and_then(|v| v.as_str()) == Some(stage)
            && m.get("seq").and_then(|v| v.as_i64()) == Some(seq);
        matches.then(|| m.clone())
    }))
}

/// Number of rows in the table's current snapshot (from file statistics when present).
pub async fn row_count(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    table: &DeltaTable,
    name: &str,
) -> Result<u64> {
    let provider = table
        .table_provider()
        .await
        .map_err(MedallionError::sql(format!("scan {name}")))?;
    let df = ctx
        .read_table(provider)
        .map_err(MedallionError::sql(format!("read {name}")))?;
    let n = df
        .count()
        .await
        .map_err(MedallionError::sql(format!("count {name}")))?;
    Ok(n as u64)
}

/// The data files of a table's current snapshot and when it was last written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotSize {
    pub files: u64,
    pub bytes: u64,
    pub last_commit: Option<DateTime<Utc>>,
}

/// Files and bytes of the current snapshot (from the log held in memory: no data file
/// is read), and the time of the newest commit.
pub async fn snapshot_size(table: &DeltaTable, name: &str) -> Result<SnapshotSize> {
    let Some(version) = table.version() else {
        return Ok(SnapshotSize::default());
    };
    let state = table
        .snapshot()
        .map_err(MedallionError::delta("read the snapshot of", name))?;
    let (mut files, mut bytes) = (0u64, 0u64);
    for f in state.log_data().iter() {
        files += 1;
        bytes += f.size().max(0) as u64;
    }
    // The commit file's time; a version only a checkpoint holds has none: its commit
    // info then says.
    let millis = match state.version_timestamp(version) {
        Some(t) => Some(t),
        None => table
            .history(Some(1))
            .try_collect::<Vec<_>>()
            .await
            .map_err(MedallionError::delta("history", name))?
            .first()
            .and_then(|c| c.timestamp),
    };
    Ok(SnapshotSize {
        files,
        bytes,
        last_commit: millis.and_then(|t| Utc.timestamp_millis_opt(t).single()),
    })
}
