//! `medallion optimize [TABLE]`: the tables' data files laid out anew for readers,
//! their rows unchanged. Every batch adds small files to every table; compaction merges
//! the files below a table's target size into files of about that size, and with
//! `--zorder` silver and gold are rewritten whole in Z-order over their keys (or the
//! configured `zorder_by`), so a filter on a key column skips most files. Each table
//! gets one `OPTIMIZE` commit (no data change); time travel still reaches the versions
//! before it until `vacuum` deletes the files they need.
//!
//! Safe against a concurrent run: optimize takes the ingest lease like `run` and
//! `rebuild` (waiting `--lease-wait` for a run to finish), refuses while a batch or a
//! rebuild is open, and checks the lease before each table. No other writer commits to
//! the data tables meanwhile, and the lease commit tells a later `run` that something
//! was written (its settled mark no longer holds). Delta's conflict check would not
//! do instead: in delta-rs 1.1.3 a compaction's `dataChange: false` removes do not
//! conflict with a concurrent MERGE rewriting the same file, so both could commit and
//! the file's rows would be there twice; nor can an OPTIMIZE commit carry the stage
//! transactions that fence `run`'s commits (delta-rs keeps only its commit metadata). The lease table is not optimized:
//! the holder's renewals append to it while optimize runs. A dry run takes no lease and
//! writes nothing: it estimates from the Delta logs.

use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

use crate::commands::{resolve_table, tables};
use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::lease::{LEASES_DIR, Lease};
use crate::ingest::ledger;
use crate::storage::{self, Lakehouse, Layout, OptimizeMetrics};

/// What to optimize, and how.
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// One table (`zone.name`); every table of the lakehouse when `None`.
    pub table: Option<String>,
    /// Z-order silver and gold instead of compacting them.
    pub zorder: bool,
    /// File size to aim at, instead of each table's `delta.targetFileSize`.
    pub target_size: Option<NonZeroU64>,
    /// Estimate only: no lease, no commit.
    pub dry_run: bool,
    pub lease_wait: Duration,
    pub lease_ttl: Duration,
}

/// What happened to one table.
#[derive(Debug, Clone)]
pub enum Outcome {
    Optimized(OptimizeMetrics),
    /// The table does not exist yet.
    Missing,
    /// Left alone on purpose, with the reason.
    Skipped(&'static str),
    Failed(String),
}

/// One table's line of the report.
#[derive(Debug, Clone)]
pub struct TableOutcome {
    /// `zone.name`.
    pub table: String,
    pub layout: Layout,
    pub outcome: Outcome,
    /// Estimated, nothing written.
    pub dry_run: bool,
}

/// What `optimize` did, table by table.
#[derive(Debug, Clone, Default)]
pub struct OptimizeReport {
    pub dry_run: bool,
    pub tables: Vec<TableOutcome>,
}

impl OptimizeReport {
    /// Tables whose optimize failed (the exit status says so).
    pub fn failed(&self) -> usize {
        self.tables
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Failed(_)))
            .count()
    }
}

const LEASE_SKIPPED: &str = "not optimized: the lease holder appends to it meanwhile";

/// A table to optimize: (SQL name, path, its layout or the reason it is left alone).
type Target = (String, String, std::result::Result<Layout, &'static str>);

/// The tables to optimize, each with its layout.
fn targets(p: &Pipeline, opts: &OptimizeOptions) -> Result<Vec<Target>> {
    let chosen = match &opts.table {
        Some(name) => vec![resolve_table(p, name)?],
        None => tables(p),
    };
    let mut out = Vec::new();
    for (sql, relative) in chosen {
        let zorder_by = match p.sources.iter().find(|s| s.tables().silver == relative) {
            Some(source) => Some(&source.zorder_by),
            None => p
                .gold
                .iter()
                .find(|m| m.table() == relative)
                .map(|m| &m.zorder_by),
        }
        // An append source without `zorder_by` has no key to order by.
        .filter(|columns| !columns.is_empty());
        let layout = match zorder_by {
            Some(columns) if opts.zorder => Ok(Layout::ZOrder(columns.clone())),
            None if opts.zorder && opts.table.is_some() => {
                return Err(MedallionError::Usage(format!(
                    "{sql} has no Z-order columns (only silver and gold tables are Z-ordered, \
                     by their keys or `zorder_by`); leave out --zorder to compact it"
                )));
            }
            _ if relative.starts_with(LEASES_DIR) => Err(LEASE_SKIPPED),
            _ => Ok(Layout::Compact),
        };
        out.push((sql, relative, layout));
    }
    Ok(out)
}

/// Optimize the chosen tables under the ingest lease (or, dry, estimate it).
pub async fn optimize(p: &Pipeline, opts: &OptimizeOptions) -> Result<OptimizeReport> {
    let targets = targets(p, opts)?;
    let lake = Lakehouse::new(p.lakehouse.clone());
    if opts.dry_run || !any_table_exists(&lake, &targets).await? {
        // Nothing is written, so no lease (nor a lease table in an empty lakehouse).
        return optimize_tables(&lake, targets, opts, None).await;
    }
    let leases = crate::run::all_source_leases(p);
    let lease = Lease::acquire(&lake, &leases, opts.lease_ttl, opts.lease_wait).await?;
    let result = async {
        for source in &p.sources {
            let state = ledger::state(&lake, &source.name).await?;
            if let Some(open) = state.unfinished.first() {
                return Err(MedallionError::Busy(format!(
                    "batch {} ({}) of source {} is open: run `medallion run` to complete it, \
                     then optimize",
                    open.seq, open.file, source.name
                )));
            }
            if state.open_rebuild.is_some() {
                return Err(MedallionError::Busy(format!(
                    "a rebuild of source {} is open: run `medallion run` or `medallion \
                     rebuild` to complete it, then optimize",
                    source.name
                )));
            }
        }
        optimize_tables(&lake, targets, opts, Some(&lease)).await
    }
    .await;
    if let Err(e) = lease.release().await {
        tracing::warn!("cannot release the ingest lease (it will expire): {e}");
    }
    result
}

/// Whether any table to optimize exists yet.
async fn any_table_exists(lake: &Lakehouse, targets: &[Target]) -> Result<bool> {
    for (_, relative, layout) in targets {
        if layout.is_ok() && lake.open(relative).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Each table in turn; one that fails is reported and the others go on, unless the
/// lease is lost (then nothing more is written).
async fn optimize_tables(
    lake: &Lakehouse,
    targets: Vec<Target>,
    opts: &OptimizeOptions,
    lease: Option<&Lease>,
) -> Result<OptimizeReport> {
    let mut report = OptimizeReport {
        dry_run: opts.dry_run,
        tables: Vec::new(),
    };
    for (table, relative, layout) in targets {
        let layout = match layout {
            Ok(layout) => layout,
            Err(reason) => {
                report.tables.push(TableOutcome {
                    table,
                    layout: Layout::Compact,
                    outcome: Outcome::Skipped(reason),
                    dry_run: opts.dry_run,
                });
                continue;
            }
        };
        if let Some(lease) = lease {
            lease.check()?;
        }
        let outcome =
            match storage::optimize(lake, &relative, &layout, opts.target_size, opts.dry_run).await
            {
                Ok(Some(m)) => Outcome::Optimized(m),
                Ok(None) => Outcome::Missing,
                Err(e) => Outcome::Failed(e.to_string()),
            };
        report.tables.push(TableOutcome {
            table,
            layout,
            outcome,
            dry_run: opts.dry_run,
        });
    }
    Ok(report)
}

/// `--target-size`: a size such as `128MiB`, `64MB` or a number of bytes, at least 1 MiB
/// (smaller targets make more files, not fewer).
pub fn parse_target_size(s: &str) -> std::result::Result<NonZeroU64, String> {
    let size: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| format!("not a size (e.g. 128MiB, 64MB or bytes): {e}"))?;
    match NonZeroU64::new(size.as_u64()) {
        Some(n) if n.get() >= 1 << 20 => Ok(n),
        _ => Err(format!("{s}: the target file size must be at least 1MiB")),
    }
}

/// `1.5 MiB`: sizes for people.
fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

impl fmt::Display for TableOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.table;
        let m = match &self.outcome {
            Outcome::Missing => return writeln!(f, "{name:<28} does not exist yet"),
            Outcome::Skipped(reason) => return writeln!(f, "{name:<28} {reason}"),
            Outcome::Failed(e) => return writeln!(f, "{name:<28} FAILED: {e}"),
            Outcome::Optimized(m) => m,
        };
        let files = format!("{} → {}", m.before.files, m.after.files);
        let bytes = format!("{} → {}", human(m.before.bytes), human(m.after.bytes));
        let version = match m.version_after {
            Some(v) => format!("v{} → v{v}", m.version_before),
            None => format!("v{}", m.version_before),
        };
        let (compact, zorder, into) = if self.dry_run {
            ("would compact", "would Z-order by", "into about")
        } else {
            ("compacted", "Z-ordered by", "into")
        };
        let what = match (&self.layout, m.rewrites(), m.already_ordered) {
            (Layout::ZOrder(c), _, true) => {
                format!(
                    "already Z-ordered by {} (nothing written since)",
                    c.join(", ")
                )
            }
            (_, false, _) => "nothing to rewrite".to_string(),
            (Layout::Compact, true, _) => format!(
                "{compact} {} files ({}) {into} {}",
                m.files_removed,
                human(m.bytes_removed),
                m.files_added
            ),
            (Layout::ZOrder(c), true, _) => format!(
                "{zorder} {}: {} files ({}) {into} {}",
                c.join(", "),
                m.files_removed,
                human(m.bytes_removed),
                m.files_added
            ),
        };
        writeln!(
            f,
            "{name:<28} {files:>13}  {bytes:>23}  {version:>12}  {what}"
        )
    }
}

impl fmt::Display for OptimizeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(
                f,
                "dry run: nothing written; file counts after are estimates (about one file per target size)"
            )?;
        }
        writeln!(
            f,
            "{:<28} {:>13}  {:>23}  {:>12}  result",
            "table", "files", "size", "version"
        )?;
        for t in &self.tables {
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sizes_parse_with_units_and_refuse_tiny_ones() {
        assert_eq!(parse_target_size("128MiB").map(u64::from), Ok(128 << 20));
        assert_eq!(parse_target_size("1048576").map(u64::from), Ok(1 << 20));
        assert!(parse_target_size("1KiB").is_err());
        assert!(parse_target_size("0").is_err());
        assert!(parse_target_size("lots").is_err());
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(8 << 20), "8.0 MiB");
    }

    #[test]
    fn a_dry_run_line_says_what_would_be_rewritten() {
        let line = TableOutcome {
            table: "gold.daily_usage".into(),
            layout: Layout::ZOrder(vec!["customer_id".into(), "usage_date".into()]),
            outcome: Outcome::Optimized(OptimizeMetrics {
                before: storage::FileStats {
                    files: 40,
                    bytes: 40 << 10,
                },
                after: storage::FileStats {
                    files: 1,
                    bytes: 40 << 10,
                },
                files_removed: 40,
                files_added: 1,
                bytes_removed: 40 << 10,
                bytes_added: 40 << 10,
                version_before: 7,
                ..OptimizeMetrics::default()
            }),
            dry_run: true,
        }
        .to_string();
        assert!(line.starts_with("gold.daily_usage"), "{line}");
        assert!(line.contains("40 → 1"), "{line}");
        assert!(
            line.contains(
                "would Z-order by customer_id, usage_date: 40 files (40.0 KiB) into about 1"
            ),
            "{line}"
        );
    }
}
