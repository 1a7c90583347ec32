//! Deleting data files no version needs any more: files removed by a commit, and files
//! a crashed run wrote but never committed. Only files older than the retention are
//! deleted, and the retention may not go below a floor that no live reader or writer
//! can reach: an uncommitted file of a live run is younger than the floor (a run that
//! stalls that long has lost its lease and never commits), and readers of the current
//! version never read removed files.

use std::time::Duration;

use deltalake::operations::vacuum::VacuumMode;

use super::Lakehouse;
use crate::error::{MedallionError, Result};

/// The smallest retention `vacuum` accepts.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Vacuum the table at `relative`; returns the files deleted (or that would be).
pub async fn vacuum(
    lake: &Lakehouse,
    relative: &str,
    retention: Duration,
    dry_run: bool,
) -> Result<Vec<String>> {
    if retention < MIN_RETENTION {
        return Err(MedallionError::Usage(format!(
            "a retention below {} hours could delete files a live run or reader still needs",
            MIN_RETENTION.as_secs() / 3600
        )));
    }
    let Some(table) = lake.open(relative).await? else {
        return Ok(Vec::new());
    };
    let retention = chrono::Duration::from_std(retention)
        .map_err(|e| MedallionError::Usage(format!("retention out of range: {e}")))?;
    let (_, metrics) = table
        .vacuum()
        .with_mode(VacuumMode::Full)
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_dry_run(dry_run)
        .with_commit_properties(super::commit_info(
            "vacuum",
            serde_json::json!({ "dry_run": dry_run }),
        ))
        .await
        .map_err(MedallionError::delta("vacuum", relative))?;
    Ok(metrics.files_deleted)
}
