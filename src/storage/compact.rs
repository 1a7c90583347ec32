//! Compaction of small files. Every batch adds at least one data file to each table
//! (the ledger a one-row file per event); a lakehouse fed many small files would read
//! and MERGE ever more slowly, so a run that leaves a table with many small files
//! rewrites them into files of the target size (`OPTIMIZE`, no data change). The
//! removed files stay readable for time travel until `vacuum`.

use super::Lakehouse;
use crate::error::{MedallionError, Result};

/// Compact the table at `relative` when it has more than `max_small` data files
/// smaller than a quarter of the target file size; returns the new version when it did.
pub async fn compact_if_fragmented(
    lake: &Lakehouse,
    relative: &str,
    max_small: usize,
) -> Result<Option<i64>> {
    let Some(table) = lake.open(relative).await? else {
        return Ok(None);
    };
    let small = (super::target_file_size(&table, relative)? / 4) as i64;
    let files = table
        .snapshot()
        .map_err(MedallionError::delta("compact", relative))?
        .log_data()
        .iter()
        .filter(|f| f.size() < small)
        .count();
    if files <= max_small {
        return Ok(None);
    }
    // medallion's session: compacted files keep plain string columns (no Utf8View).
    let session = super::session();
    let props = super::write::table_writer_properties(&table, relative)?;
    let (table, metrics) = table
        .optimize()
        .with_session_state(std::sync::Arc::new(session.state()))
        .with_writer_properties(props)
        .with_commit_properties(super::commit_info(
            "compact",
            serde_json::json!({ "small_files": files }),
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
