//! `OPTIMIZE` on demand: one table's data files laid out anew, its rows unchanged.
//! Compaction merges the files smaller than the target size into files of about that
//! size (larger files are left alone); Z-ordering rewrites every file with its rows
//! sorted along a Z-order curve over chosen columns, so that a filter on any of them
//! skips more files. Either is one commit with `dataChange: false` (readers and
//! `history` see an `OPTIMIZE`), carrying medallion's commit info (stage `optimize`);
//! the files it replaces stay for time travel until `vacuum`. A dry run reads only the
//! log and estimates what the rewrite would do. The caller makes sure no other writer
//! commits meanwhile (the ingest lease); this file only talks to delta-rs.

use std::num::NonZeroU64;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::operations::optimize::OptimizeType;
use futures::TryStreamExt;

use super::Lakehouse;
use crate::error::{MedallionError, Result};

/// Memory a Z-order's sort may hold before it spills to local temporary files.
const ZORDER_MEMORY: usize = 256 << 20;

/// How a table's files are laid out anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Files below the target size merged into files of about that size, their rows in
    /// the order they were written.
    Compact,
    /// Every file rewritten with rows in Z-order over these columns.
    ZOrder(Vec<String>),
}

/// Number and total size of a table's data files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    pub files: u64,
    pub bytes: u64,
}

/// What optimizing one table did or, dry, would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptimizeMetrics {
    pub before: FileStats,
    /// After the commit; for a dry run an estimate (rewritten files compress differently).
    pub after: FileStats,
    pub files_removed: u64,
    pub files_added: u64,
    /// Bytes of the files removed and added (dry: both the bytes that would be rewritten).
    pub bytes_removed: u64,
    pub bytes_added: u64,
    /// The version optimized.
    pub version_before: i64,
    /// The version the rewrite committed; `None` when nothing was (or would be) rewritten.
    pub version_after: Option<i64>,
    /// The file size aimed at (the table's `delta.targetFileSize` unless overridden).
    pub target_size: u64,
    /// Z-order skipped: the newest commit is already this Z-order.
    pub already_ordered: bool,
}

impl OptimizeMetrics {
    /// Whether files were (or would be) rewritten.
    pub fn rewrites(&self) -> bool {
        self.files_removed > 0
    }
}

/// Optimize the table at `relative` with `layout`, aiming at `target_size` (default:
/// the table's own). `None` when the table does not exist.
pub async fn optimize(
    lake: &Lakehouse,
    relative: &str,
    layout: &Layout,
    target_size: Option<NonZeroU64>,
    dry_run: bool,
) -> Result<Option<OptimizeMetrics>> {
    let Some(table) = lake.open(relative).await? else {
        return Ok(None);
    };
    let target = match target_size {
        Some(t) => t.get(),
        None => super::target_file_size(&table, relative)?,
    };
    let sizes = file_sizes(&table, relative)?;
    let mut m = OptimizeMetrics {
        before: stats(&sizes),
        after: stats(&sizes),
        version_before: table.version().map_or(-1, |v| v as i64),
        target_size: target,
        ..OptimizeMetrics::default()
    };
    if let Layout::ZOrder(columns) = layout {
        check_columns(&table, relative, columns)?;
        m.already_ordered =
            !sizes.is_empty() && newest_is_zorder(&table, relative, columns, target).await?;
    }
    if m.already_ordered || sizes.is_empty() {
        return Ok(Some(m));
    }
    if dry_run {
        let (removed, added, bytes) = estimate(&sizes, layout, target);
        m.files_removed = removed;
        m.files_added = added;
        m.bytes_removed = bytes;
        m.bytes_added = bytes;
        m.after.files = m.before.files - removed + added;
        return Ok(Some(m));
    }
    let (table, metrics) = rewrite(table, relative, layout, target).await?;
    m.files_removed = metrics.num_files_removed;
    m.files_added = metrics.num_files_added;
    m.bytes_removed = metrics.files_removed.total_size.max(0) as u64;
    m.bytes_added = metrics.files_added.total_size.max(0) as u64;
    m.after = stats(&file_sizes(&table, relative)?);
    let version = table.version().map_or(-1, |v| v as i64);
    m.version_after = (version != m.version_before).then_some(version);
    Ok(Some(m))
}

/// The delta-rs call: one OPTIMIZE commit (none when no file needs rewriting).
async fn rewrite(
    table: DeltaTable,
    relative: &str,
    layout: &Layout,
    target: u64,
) -> Result<(DeltaTable, deltalake::operations::optimize::Metrics)> {
    let props = super::write::table_writer_properties(&table, relative)?;
    let (kind, session, info) = match layout {
        Layout::Compact => (
            OptimizeType::Compact,
            super::session(),
            serde_json::json!({ "note": "compacted", "target_size": target }),
        ),
        Layout::ZOrder(columns) => (
            OptimizeType::ZOrder(columns.clone()),
            // The Z-order sorts the whole table: bounded memory, spilling beyond it.
            super::bounded_session(ZORDER_MEMORY)?,
            serde_json::json!({
                "note": format!("z-ordered by {}", columns.join(", ")),
                "zorder_by": columns,
                "target_size": target,
            }),
        ),
    };
    let target = NonZeroU64::new(target).ok_or_else(|| {
        MedallionError::Usage("the target file size must be at least 1 byte".into())
    })?;
    table
        .optimize()
        .with_type(kind)
        .with_target_size(target)
        .with_session_state(Arc::new(session.state()))
        .with_writer_properties(props)
        .with_commit_properties(super::commit_info("optimize", info))
        .await
        .map_err(MedallionError::delta("optimize", relative))
}

/// Sizes of the current snapshot's data files, in the log's order.
fn file_sizes(table: &DeltaTable, relative: &str) -> Result<Vec<u64>> {
    Ok(table
        .snapshot()
        .map_err(MedallionError::delta("read table files", relative))?
        .log_data()
        .iter()
        .map(|f| f.size().max(0) as u64)
        .collect())
}

fn stats(sizes: &[u64]) -> FileStats {
    FileStats {
        files: sizes.len() as u64,
        bytes: sizes.iter().sum(),
    }
}

/// Every Z-order column is a column of the table (a gold table built from an older
/// model may lack one until the next run rebuilds it).
fn check_columns(table: &DeltaTable, relative: &str, columns: &[String]) -> Result<()> {
    let schema = super::arrow_schema(table, relative)?;
    let missing: Vec<&str> = columns
        .iter()
        .filter(|c| schema.field_with_name(c).is_err())
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(MedallionError::Usage(format!(
        "{relative} has no column {} to Z-order by (a gold table whose model changed gets \
         its new columns from the next `medallion run`)",
        missing.join(", ")
    )))
}

/// Whether the newest commit is medallion's Z-order by `columns` at `target`: nothing
/// was written since, so a new one would rewrite the same rows into the same files.
async fn newest_is_zorder(
    table: &DeltaTable,
    relative: &str,
    columns: &[String],
    target: u64,
) -> Result<bool> {
    let newest: Vec<_> = table
        .history(Some(1))
        .try_collect()
        .await
        .map_err(MedallionError::delta("history", relative))?;
    Ok(newest.first().is_some_and(|c| {
        let m = c.info.get("medallion");
        m.and_then(|m| m.get("stage")).and_then(|s| s.as_str()) == Some("optimize")
            && m.and_then(|m| m.get("zorder_by")) == Some(&serde_json::json!(columns))
            && m.and_then(|m| m.get("target_size")) == Some(&serde_json::json!(target))
    }))
}

/// What `layout` would do to files of `sizes` (in the log's order) at `target`: files
/// removed, files added (estimated), bytes removed. Compaction packs runs of adjacent
/// files of at most `target` bytes into bins up to `target` (a larger file ends a run)
/// and leaves bins of one file alone, as delta-rs plans it; Z-order rewrites them all.
pub fn estimate(sizes: &[u64], layout: &Layout, target: u64) -> (u64, u64, u64) {
    let target = target.max(1);
    let files_for = |bytes: u64| bytes.div_ceil(target).max(1);
    match layout {
        Layout::ZOrder(_) if sizes.is_empty() => (0, 0, 0),
        Layout::ZOrder(_) => {
            let bytes: u64 = sizes.iter().sum();
            (sizes.len() as u64, files_for(bytes), bytes)
        }
        Layout::Compact => {
            let mut bins: Vec<(u64, u64)> = Vec::new(); // (files, bytes)
            let mut open = false;
            for &size in sizes {
                if size > target {
                    open = false;
                    continue;
                }
                match bins.last_mut() {
                    Some((n, b)) if open && *b + size <= target => {
                        *n += 1;
                        *b += size;
                    }
                    _ => bins.push((1, size)),
                }
                open = true;
            }
            bins.iter()
                .filter(|(n, _)| *n > 1)
                .fold((0, 0, 0), |(r, a, b), (n, bytes)| (r + n, a + 1, b + bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_packs_adjacent_small_files_up_to_the_target() {
        // Ten 1-byte files at target 4: bins of 4, 4 and 2.
        assert_eq!(estimate(&[1; 10], &Layout::Compact, 4), (10, 3, 10));
    }

    #[test]
    fn compaction_leaves_large_files_and_lone_small_files_alone() {
        // 9 > target ends a run: [1] alone before it, [2, 2] packed after it.
        assert_eq!(estimate(&[1, 9, 2, 2], &Layout::Compact, 8), (2, 1, 4));
        assert_eq!(estimate(&[5, 5], &Layout::Compact, 8), (0, 0, 0));
        assert_eq!(estimate(&[], &Layout::Compact, 8), (0, 0, 0));
    }

    #[test]
    fn zorder_rewrites_every_file() {
        let z = Layout::ZOrder(vec!["k".into()]);
        assert_eq!(estimate(&[3, 20, 1], &z, 8), (3, 3, 24));
        assert_eq!(estimate(&[1], &z, 8), (1, 1, 1));
        assert_eq!(estimate(&[], &z, 8), (0, 0, 0));
    }
}
