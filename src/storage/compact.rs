//! Compaction of small-file tables. The ledger gains a one-row data file per commit;
//! reading it on every run would slow down as the lakehouse ages, so a run that leaves
//! it with many files rewrites them into one (`OPTIMIZE`, no data change). The removed
//! files stay readable for time travel until `vacuum`.

use super::Lakehouse;
use crate::error::{MedallionError, Result};

/// Compact the table at `relative` when it has more than `max_files` data files;
/// returns the new version when it did.
pub async fn compact_if_fragmented(
    lake: &Lakehouse,
    relative: &str,
    max_files: usize,
) -> Result<Option<i64>> {
    let Some(table) = lake.open(relative).await? else {
        return Ok(None);
    };
    let files = table
        .snapshot()
        .map_err(MedallionError::delta("compact", relative))?
        .log_data()
        .num_files();
    if files <= max_files {
        return Ok(None);
    }
    // medallion's session: compacted files keep plain string columns (no Utf8View).
    let session = super::session();
    let (table, metrics) = table
        .optimize()
        .with_session_state(std::sync::Arc::new(session.state()))
        .with_commit_properties(super::commit_info(
            "compact",
            serde_json::json!({ "files_removed": files }),
        ))
        .await
        .map_err(MedallionError::delta("compact", relative))?;
    tracing::debug!(
        table = relative,
        removed = metrics.num_files_removed,
        added = metrics.num_files_added,
        "compacted"
    );
    Ok(table.version().map(|v| v as i64))
}
