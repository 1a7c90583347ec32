//! Command-line interface: the clap definitions, one subcommand per verb. `execute`
//! runs a parsed command line and `print` lays results out for a person. Errors are
//! returned, not printed: `main` maps them to exit codes in one place.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::storage::TimeTravel;

/// Write to stdout. A closed pipe (`medallion history | head`) ends the output quietly;
/// any other write error is reported on stderr.
pub(crate) fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("medallion: cannot write to stdout: {e}");
    }
}

macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::emit(format_args!($($arg)*)) };
}

macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

mod execute;
mod print;

pub use execute::execute;

/// What `--version` prints: the package version, and "(debug build)" after it for an
/// unoptimised build (the benchmark harness labels its numbers by it).
pub const VERSION: &str = if cfg!(debug_assertions) {
    concat!(env!("CARGO_PKG_VERSION"), " (debug build)")
} else {
    env!("CARGO_PKG_VERSION")
};

/// medallion: CSV files landing in a folder become a bronze/silver/gold Delta Lake lakehouse.
///
/// Files in the raw zone are ingested exactly once: bronze keeps every row as received,
/// silver keeps typed rows that passed the rules (upserted on the natural key), rejected
/// keeps the rest with every failed rule named, and gold keeps SQL aggregates current
/// with MERGE. Every table is a standard Delta table (DuckDB, Spark, Polars read it).
#[derive(Debug, Parser)]
#[command(name = "medallion", version = VERSION, about, long_about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config.yaml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest every new file of the raw zone through bronze, silver/rejected and gold.
    ///
    /// Prints a summary per file. Exits 0 when every file loaded, 1 when any failed (the
    /// others still load). With no new files it does nothing and says so. One run
    /// ingests at a time: others wait for its lease (see --lease-wait).
    Run {
        /// Ingest only this source (repeat for several); by default every source.
        #[arg(long = "source", value_name = "NAME")]
        sources: Vec<String>,
        /// Seconds to wait while another run holds the ingest lease.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        lease_wait: u64,
        /// Seconds the lease lasts without renewal: how long a killed run can block others.
        #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        lease_ttl: u64,
        /// Print one JSON document instead of the summary: {"outcome", "files_loaded",
        /// "files_failed", "already_loaded", "batches": [{"batch_id", "files": [{"file",
        /// "loaded", "error", "rows_read", "accepted", "rejected", "rejected_by_rule",
        /// "warnings", ...}], "silver", "gold", "stages", ...}], "duplicates", ...}
        /// (README, "Machine-readable output").
        #[arg(long, conflicts_with = "quiet")]
        json: bool,
        /// Print nothing but the files that failed and why (the exit code still says).
        #[arg(long, short)]
        quiet: bool,
    },

    /// Run SQL over the tables: bronze.<source>, silver.<source>, rejected.<source>,
    /// gold.<model>, _medallion.files (the ledger), _medallion.runs (run metrics),
    /// _medallion.lease_<source> (each source's lease).
    ///
    /// Example: medallion query "SELECT customer_id, SUM(total_kwh) FROM gold.daily_usage GROUP BY 1"
    Query {
        /// The SQL query (DataFusion dialect).
        sql: String,
        /// Time travel: a table version (e.g. 3) or a timestamp (RFC 3339, or
        /// "YYYY-MM-DD HH:MM:SS" in UTC). Applies to every table the query names.
        #[arg(long, value_name = "VERSION|TIMESTAMP", value_parser = parse_time_travel)]
        as_of: Option<TimeTravel>,
        /// Output format: an aligned table, CSV with a header, or JSON lines.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },

    /// Show a table's commits: version, time, operation, stage, batch id, rows written.
    History {
        /// Table as zone.name (e.g. gold.daily_usage or silver.readings).
        table: String,
        /// Print one JSON document: {"table", "commits": [{"version", "timestamp",
        /// "operation", "stage", "batch_id", "source_file", "rows", "note"}]}.
        #[arg(long)]
        json: bool,
    },

    /// Show every table (version, rows, data files, size, last commit), the landing
    /// zone's files (loaded, pending, failed with the reason, duplicates) and the last
    /// run (when, how long, outcome). Only reads.
    Status {
        /// Print one JSON document: {"lakehouse", "tables": [{"name", "version", "rows",
        /// "files", "bytes", "last_commit"}], "files": {"loaded", "pending", "failed":
        /// [{"file", "batch_id", "at", "reason"}], "duplicates": [{"file", "of"}]},
        /// "last_run", "stale_gold", "orphaned_gold"}.
        #[arg(long)]
        json: bool,
    },

    /// Check the configuration and list every problem found; with files, also a dry run
    /// of loading them. Writes nothing.
    ///
    /// Without FILE: checks config.yaml, lists each gold model with how it is kept
    /// current, and what the next run would evolve or rebuild. With FILE…: reads each
    /// file (it may lie outside the landing zone) through the configured dialect,
    /// columns and rules, and prints the rows that would be accepted and rejected, the
    /// rejections and warnings per rule, and the first few offending lines per rule
    /// (at most 64 characters of their content). Exits 1 when a file would fail as a
    /// whole (unreadable, a header that does not fit, a broken `fail` rule).
    Validate {
        /// Files to dry-run (local paths).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Check the files against this source's rules (by default the source whose
        /// pattern matches each file's name).
        #[arg(long = "source", value_name = "NAME")]
        source: Option<String>,
        /// Print one JSON document: {"config", "files": [{"file", "rows_read",
        /// "accepted", "rejected", "rejected_by_rule", "warnings", "examples", "error"}]}.
        #[arg(long)]
        json: bool,
    },

    /// Write a starting configuration (the --config path, config.yaml by default)
    /// inferred from a sample file, for you to review.
    ///
    /// Sniffs the dialect (delimiter, quote, header, byte-order mark, gzip), types every
    /// column with the narrowest type all its values read as (int, bigint, decimal with
    /// the observed scale, double, bool, date or timestamp with its format, else
    /// string), marks columns without a missing value `required`, suggests the smallest
    /// set of required columns unique in the sample as the silver key, and adds a
    /// commented gold model skeleton. The result passes `validate` and loads the
    /// sample. Refuses to overwrite an existing configuration unless --force.
    Init {
        /// The sample file (CSV, or gzip-compressed CSV).
        #[arg(long, value_name = "FILE.csv")]
        from: PathBuf,
        /// The source's name (tables bronze/<name>, silver/<name>, ...); by default the
        /// sample's file name.
        #[arg(long)]
        name: Option<String>,
        /// Overwrite an existing configuration file.
        #[arg(long)]
        force: bool,
        /// Data rows of the sample to read.
        #[arg(long, default_value_t = 1_000_000, value_name = "ROWS", value_parser = clap::value_parser!(u64).range(1..))]
        sample_rows: u64,
    },

    /// Write realistic hourly meter readings (the sample schema) for benchmarks and
    /// demos; deterministic for a seed. Does not read the configuration.
    Generate(crate::generate::GenerateSpec),

    /// Recompute tables from the zone below: silver and rejected from bronze with the
    /// current columns, rules and key, then every gold table from the new silver
    /// (`silver` or `all`); or one gold table from silver (`gold.<model>`).
    ///
    /// Each table gets one overwrite version, so time travel keeps the old state. Runs
    /// under the ingest lease, streams bronze in bounded memory, and is safe to kill:
    /// the next `run` or `rebuild` completes it. This is the way out of a changed
    /// column type or silver key.
    Rebuild {
        /// silver | all | gold.<model>
        #[arg(default_value = "all", value_name = "TARGET")]
        target: String,
        /// The source whose silver and rejected tables to rebuild (needed for silver
        /// and all when there are several sources).
        #[arg(long = "source", value_name = "NAME")]
        source: Option<String>,
        /// Write nothing; print how many rows would move between silver and rejected, per rule.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait while another run holds the ingest lease.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        lease_wait: u64,
    },

    /// Delete data files that no table version needs any more: files removed by a
    /// commit, and files a crashed run wrote but never committed. Only files older than
    /// the retention are deleted (at least 24 hours, so no live run or reader is hurt);
    /// time travel to versions older than the retention may stop working.
    Vacuum {
        /// Keep files younger than this many hours.
        #[arg(long, default_value_t = 168, value_name = "HOURS")]
        retain_hours: u64,
        /// List what would be deleted without deleting it.
        #[arg(long)]
        dry_run: bool,
    },

    /// Rewrite tables' small data files into fewer, larger ones (compaction), or with
    /// --zorder lay silver and gold out in Z-order over their keys, so readers open
    /// fewer files and a filter on a key column skips most of them.
    ///
    /// Compaction merges the files smaller than the table's target size
    /// (delta.targetFileSize: 8 MiB for silver and gold, 32 MiB for bronze, rejected and
    /// the ledger) into files of about that size; larger files are left alone. --zorder
    /// rewrites every file of silver (by silver.key, or silver.zorder_by) and of each
    /// gold table (by the model's keys, or its zorder_by); bronze, rejected and the
    /// ledger are compacted. Rows never change: each table gets one OPTIMIZE commit
    /// without data change, and time travel reaches the versions before it until
    /// `vacuum` deletes the files they need. Runs under the ingest lease, so it waits
    /// for a running `medallion run` (--lease-wait) and a run started meanwhile waits for
    /// it; it refuses while a batch is open. The lease table is not optimized.
    ///
    /// Example: medallion optimize gold.daily_usage --zorder
    Optimize {
        /// One table as zone.name (e.g. gold.daily_usage); every table when left out.
        #[arg(value_name = "TABLE")]
        table: Option<String>,
        /// Z-order silver and gold tables (by their keys, or their configured
        /// zorder_by) instead of compacting them. Rewrites all their files (unless the
        /// table's newest commit already is the same Z-order).
        #[arg(long)]
        zorder: bool,
        /// File size to aim at instead of each table's own (e.g. 128MiB, 64MB; at least 1MiB).
        #[arg(long, value_name = "SIZE", value_parser = crate::optimize::parse_target_size)]
        target_size: Option<std::num::NonZeroU64>,
        /// Write nothing; estimate from the Delta logs what would be rewritten.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait while another run holds the ingest lease.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        lease_wait: u64,
    },

    /// Compare a gold model with a reference table of expected values, for example the
    /// billing system's kWh per customer and day.
    ///
    /// The reference is a CSV file (delimiter, quote and gzip sniffed) whose header names
    /// every key of the model and one or more of its other columns. Its values are read
    /// as the model's column types. Reports the keys that match, those whose values
    /// differ (numbers by more than the tolerance, anything else at all), and keys
    /// missing on either side, with up to 100 examples of each. Writes nothing. Exits 0
    /// when everything matches, 1 when anything differs or is missing.
    ///
    /// Example: medallion reconcile --reference billing.csv --model daily_usage
    Reconcile {
        /// The reference CSV file (plain or gzip), with a header.
        #[arg(long, value_name = "FILE.csv")]
        reference: PathBuf,
        /// The gold model to compare; may be left out when the configuration has one.
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Largest absolute difference between two numbers that still counts as equal.
        #[arg(long, default_value_t = 0.001, value_name = "X", value_parser = parse_tolerance)]
        tolerance: f64,
        /// Print one JSON document: {"model", "reference", "tolerance", "keys",
        /// "columns", "reference_rows", "gold_rows", "matches", "differences",
        /// "missing_in_gold", "missing_in_reference", "examples": {"differences":
        /// [{"key", "columns": {col: {"gold", "reference"}}}], "missing_in_gold": [key],
        /// "missing_in_reference": [key]}}.
        #[arg(long)]
        json: bool,
    },

    /// Write an HTML report on the lakehouse: rows per zone over the recent runs,
    /// rejections by rule per run, each gold model's daily totals, stage durations per
    /// run, the latest run and the failed files.
    ///
    /// One self-contained page (inline SVG and CSS, no URL): it opens from a file and
    /// makes no network request. Only reads.
    Report {
        /// Where to write the page; `-` writes it to stdout.
        #[arg(long, default_value = "report.html", value_name = "FILE.html")]
        out: PathBuf,
    },

    /// Print a shell completion script.
    ///
    /// Examples: medallion completions bash > ~/.local/share/bash-completion/completions/medallion;
    /// medallion completions zsh > "${fpath[1]}/_medallion"; medallion completions fish >
    /// ~/.config/fish/completions/medallion.fish
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), e.g. medallion man > medallion.1 && man ./medallion.1
    Man,
}

/// How `query` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

fn parse_time_travel(s: &str) -> std::result::Result<TimeTravel, String> {
    s.parse()
}

fn parse_tolerance(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("a number ≥ 0 is expected, not \"{s}\"")),
    }
}
