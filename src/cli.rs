//! Command-line interface: clap definitions (one subcommand per verb) and the code that
//! runs each verb and prints its result. Errors are returned, not printed: `main` maps
//! them to exit codes in one place.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::util::pretty::pretty_format_batches;

use crate::commands;
use crate::config;
use crate::error::{MedallionError, Result};
use crate::storage::TimeTravel;

/// Write to stdout. A closed pipe (`medallion history | head`) ends the output quietly;
/// any other write error is reported on stderr.
fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("medallion: cannot write to stdout: {e}");
    }
}

macro_rules! out {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

macro_rules! outln {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// medallion: CSV files landing in a folder become a bronze/silver/gold Delta Lake lakehouse.
///
/// Files in the raw zone are ingested exactly once: bronze keeps every row as received,
/// silver keeps typed rows that passed the rules (upserted on the natural key), rejected
/// keeps the rest with every failed rule named, and gold keeps SQL aggregates current
/// with MERGE. Every table is a standard Delta table (DuckDB, Spark, Polars read it).
#[derive(Debug, Parser)]
#[command(name = "medallion", version, about, long_about)]
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
        /// Seconds to wait while another run holds the ingest lease.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        lease_wait: u64,
        /// Seconds the lease lasts without renewal: how long a killed run can block others.
        #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        lease_ttl: u64,
    },

    /// Run SQL over the tables: bronze.<source>, silver.<source>, rejected.<source>,
    /// gold.<model>, _medallion.files.
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
    },

    /// Show every table's version and row count, and the files loaded and pending.
    Status,

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

async fn load(path: &std::path::Path) -> Result<Arc<config::Pipeline>> {
    Ok(Arc::new(config::load(path).await?))
}

fn parse_time_travel(s: &str) -> std::result::Result<TimeTravel, String> {
    s.parse()
}

/// Run a parsed command line; returns the process exit code.
pub async fn execute(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, "medallion", &mut text);
            out!("{}", String::from_utf8_lossy(&text));
            Ok(0)
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut text)
                .map_err(|e| {
                    MedallionError::Internal(format!("cannot render the man page: {e}"))
                })?;
            out!("{}", String::from_utf8_lossy(&text));
            Ok(0)
        }
        Command::Generate(spec) => {
            let g = crate::generate::generate(&spec)?;
            outln!(
                "wrote {} file(s), {} bytes: {} readings ({} bad), {} corrections",
                g.files.len(),
                g.bytes,
                g.rows,
                g.bad_rows,
                g.correction_rows
            );
            Ok(0)
        }
        Command::Init {
            from,
            name,
            force,
            sample_rows,
        } => {
            let opts = crate::init::InitOptions {
                from,
                config: cli.config.clone(),
                name,
                force,
                sample_rows,
            };
            let inf = crate::init::init(&opts).await?;
            print_inference(&inf, &opts);
            Ok(0)
        }
        Command::Validate { files, json } if !files.is_empty() || json => {
            let pipeline = load(&cli.config).await?;
            let checks = crate::dry_run::check_files(pipeline, &files).await?;
            if json {
                let doc = serde_json::json!({
                    "config": cli.config.display().to_string(),
                    "files": checks,
                });
                outln!("{doc:#}");
            } else {
                for c in &checks {
                    print_file_check(c);
                }
            }
            Ok(if checks.iter().any(|c| c.error.is_some()) {
                1
            } else {
                0
            })
        }
        Command::Validate { .. } => {
            let pipeline = load(&cli.config).await?;
            outln!(
                "{}: ok ({} columns, {} row rules, {} gold models; lakehouse {})",
                cli.config.display(),
                pipeline.source.columns.len(),
                pipeline.source.row_rules.len(),
                pipeline.gold.len(),
                pipeline.lakehouse.url
            );
            for model in &pipeline.gold {
                outln!(
                    "  gold.{} [{}]: {}",
                    model.name,
                    model.keys.join(", "),
                    model.maintenance
                );
            }
            // Against the tables already written: what the next run evolves, or refuses.
            let lake = crate::storage::Lakehouse::new(pipeline.lakehouse.clone());
            let plan = crate::run::evolve::check(&lake, &pipeline, false).await?;
            for (table, fields) in &plan.additions {
                let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                outln!(
                    "  {table}: the next run adds column(s) {}",
                    names.join(", ")
                );
            }
            for (model, reason) in
                crate::zones::gold::rebuild::stale_models(&lake, &pipeline).await?
            {
                outln!(
                    "  gold.{}: the next run rebuilds it ({})",
                    model.name,
                    reason.note()
                );
            }
            Ok(0)
        }
        Command::Run {
            lease_wait,
            lease_ttl,
        } => {
            let pipeline = load(&cli.config).await?;
            let opts = crate::run::RunOptions {
                lease_ttl: std::time::Duration::from_secs(lease_ttl),
                lease_wait: std::time::Duration::from_secs(lease_wait),
            };
            let report = crate::run::run(pipeline, opts).await?;
            out!("{report}");
            Ok(if report.failed() > 0 { 1 } else { 0 })
        }
        Command::Query { sql, as_of, format } => {
            let pipeline = load(&cli.config).await?;
            let batches = commands::query(&pipeline, &sql, as_of).await?;
            print_batches(&batches, format)?;
            Ok(0)
        }
        Command::History { table } => {
            let pipeline = load(&cli.config).await?;
            let entries = commands::history(&pipeline, &table).await?;
            outln!(
                "{:>7}  {:<24}  {:<8}  {:<16}  {:<36}  {:>8}  source file / note",
                "version",
                "time (UTC)",
                "op",
                "stage",
                "batch id",
                "rows"
            );
            for e in entries {
                outln!(
                    "{:>7}  {:<24}  {:<8}  {:<16}  {:<36}  {:>8}  {}",
                    e.version,
                    e.timestamp
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                        .unwrap_or_default(),
                    e.operation,
                    e.stage.unwrap_or_default(),
                    e.batch_id.unwrap_or_default(),
                    e.rows.map(|r| r.to_string()).unwrap_or_default(),
                    e.source_file
                        .filter(|f| !f.is_empty())
                        .or(e.note)
                        .unwrap_or_default(),
                );
            }
            Ok(0)
        }
        Command::Rebuild {
            target,
            dry_run,
            lease_wait,
        } => {
            let pipeline = load(&cli.config).await?;
            let target = crate::run::rebuild::Target::parse(&target, &pipeline)?;
            let opts = crate::run::RunOptions {
                lease_wait: std::time::Duration::from_secs(lease_wait),
                ..crate::run::RunOptions::default()
            };
            let report =
                crate::run::rebuild::rebuild(pipeline.clone(), target, dry_run, opts).await?;
            out!("{report}");
            Ok(0)
        }
        Command::Vacuum {
            retain_hours,
            dry_run,
        } => {
            let pipeline = load(&cli.config).await?;
            let retention = std::time::Duration::from_secs(retain_hours.saturating_mul(3600));
            let result = commands::vacuum(&pipeline, retention, dry_run).await?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for (table, files) in result {
                outln!("{table:<28} {verb} {} file(s)", files.len());
            }
            Ok(0)
        }
        Command::Status => {
            let pipeline = load(&cli.config).await?;
            let s = commands::status(&pipeline).await?;
            outln!("{:<28} {:>8} {:>10}", "table", "version", "rows");
            for t in &s.tables {
                let v = t.version.map_or("-".to_string(), |v| v.to_string());
                outln!("{:<28} {:>8} {:>10}", t.name, v, t.rows);
            }
            outln!("files loaded: {}", s.files_loaded.len());
            outln!("files pending: {}", s.files_pending.len());
            for f in &s.files_pending {
                outln!("  {f}");
            }
            for (t, note) in &s.stale_gold {
                outln!("{t}: the next run rebuilds it ({note})");
            }
            for t in &s.orphaned_gold {
                outln!("{t}: its model is no longer in the configuration; the table is left alone");
            }
            Ok(0)
        }
    }
}

/// What `init` inferred and wrote, and what to do next.
fn print_inference(inf: &crate::init::Inference, opts: &crate::init::InitOptions) {
    outln!(
        "wrote {} from {} ({} data rows read, {}):",
        opts.config.display(),
        opts.from.display(),
        inf.rows,
        if inf.header {
            "with a header"
        } else {
            "no header"
        }
    );
    for (i, c) in inf.columns.iter().enumerate() {
        let key = if inf.key.contains(&i) { ", key" } else { "" };
        let req = if c.required { ", required" } else { "" };
        let fmt = c
            .inferred
            .format
            .as_deref()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        outln!("  {}: {}{fmt}{req}{key}", c.name, c.inferred.ty);
        if let Some(note) = &c.inferred.note {
            outln!("    note: {note}");
        }
    }
    outln!(
        "next: review it, put files into lakehouse/raw/, then `medallion validate` and `medallion run`"
    );
}

/// One file's dry run, for a person.
fn print_file_check(c: &crate::dry_run::FileCheck) {
    if let Some(e) = &c.error {
        outln!("{}: would fail: {e}", c.file);
        return;
    }
    outln!(
        "{}: {} rows read, {} would be accepted, {} rejected",
        c.file,
        c.rows_read,
        c.accepted,
        c.rejected
    );
    for (rule, n) in &c.rejected_by_rule {
        outln!("  rejected by {rule}: {n}");
        for e in c.examples.get(rule).into_iter().flatten() {
            outln!("    line {}: {} | {}", e.line, e.message, e.content);
        }
    }
    for (rule, n) in &c.warnings {
        outln!("  warned by {rule}: {n} (still accepted)");
    }
}

fn print_batches(batches: &[RecordBatch], format: OutputFormat) -> Result<()> {
    let err = || MedallionError::arrow("format the result");
    let stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            let table = pretty_format_batches(batches).map_err(err())?;
            outln!("{table}");
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            outln!("{n} row{}", if n == 1 { "" } else { "s" });
        }
        OutputFormat::Csv => {
            let mut w = deltalake::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(stdout);
            for b in batches {
                w.write(b).map_err(err())?;
            }
        }
        OutputFormat::Json => {
            let mut w = deltalake::arrow::json::LineDelimitedWriter::new(stdout);
            for b in batches {
                w.write(b).map_err(err())?;
            }
            w.finish().map_err(err())?;
        }
    }
    Ok(())
}
