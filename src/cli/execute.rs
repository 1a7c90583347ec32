//! Runs each verb of a parsed command line and returns the process exit code.

use std::sync::Arc;

use super::print::{
    print_batches, print_failures, print_file_check, print_history, print_inference,
    print_reconciliation, print_status,
};
use super::{Cli, Command};
use crate::commands;
use crate::config;
use crate::error::{MedallionError, Result};

async fn load(path: &std::path::Path) -> Result<Arc<config::Pipeline>> {
    Ok(Arc::new(config::load(path).await?))
}

/// Run a parsed command line; returns the process exit code. A command asked for
/// `--json` that fails prints `{"error": message, "exit_code": n}`, so its stdout is
/// still one JSON document (the error also goes to stderr, as for every command).
pub async fn execute(cli: Cli) -> Result<i32> {
    let json = cli.command.json();
    let result = run(cli).await;
    if json && let Err(e) = &result {
        outln!(
            "{:#}",
            serde_json::json!({ "error": e.to_string(), "exit_code": e.exit_code() })
        );
    }
    result
}

impl Command {
    /// Whether the command prints one JSON document.
    fn json(&self) -> bool {
        match self {
            Command::Run { json, .. }
            | Command::History { json, .. }
            | Command::Status { json }
            | Command::Validate { json, .. }
            | Command::Reconcile { json, .. } => *json,
            _ => false,
        }
    }
}

async fn run(cli: Cli) -> Result<i32> {
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
        Command::Validate {
            files,
            source,
            json,
        } if !files.is_empty() || json => {
            let pipeline = load(&cli.config).await?;
            let checks = crate::dry_run::check_files(pipeline, &files, source.as_deref()).await?;
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
                "{}: ok ({} sources, {} gold models; lakehouse {})",
                cli.config.display(),
                pipeline.sources.len(),
                pipeline.gold.len(),
                pipeline.lakehouse.url
            );
            for s in &pipeline.sources {
                outln!(
                    "  source {} ({}{}): {} columns, {} row rules",
                    s.name,
                    crate::config::mode_name(s.mode),
                    if s.key.is_empty() {
                        String::new()
                    } else {
                        format!(", key [{}]", s.key.join(", "))
                    },
                    s.columns.len(),
                    s.row_rules.len()
                );
            }
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
            for (table, on) in &plan.deletion_vectors {
                outln!(
                    "  {table}: the next run turns deletion vectors {}",
                    match on {
                        true => "on (the table becomes Delta reader 3 / writer 7)",
                        false => "off (later upserts rewrite files again)",
                    }
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
            sources,
            lease_wait,
            lease_ttl,
            json,
            quiet,
        } => {
            let pipeline = load(&cli.config).await?;
            let opts = crate::run::RunOptions {
                lease_ttl: std::time::Duration::from_secs(lease_ttl),
                lease_wait: std::time::Duration::from_secs(lease_wait),
                sources,
            };
            if !json && !quiet {
                crate::progress::install(crate::progress::Mode::for_stderr());
            }
            let report = crate::run::run(pipeline, opts).await;
            crate::progress::finish();
            let report = report?;
            if json {
                outln!("{:#}", report.to_json());
            } else if quiet {
                print_failures(&report);
            } else {
                out!("{report}");
            }
            Ok(if report.failed() > 0 { 1 } else { 0 })
        }
        Command::Query { sql, as_of, format } => {
            let pipeline = load(&cli.config).await?;
            let batches = commands::query(&pipeline, &sql, as_of).await?;
            print_batches(&batches, format)?;
            Ok(0)
        }
        Command::History { table, json } => {
            let pipeline = load(&cli.config).await?;
            let (name, entries) = commands::history(&pipeline, &table).await?;
            if json {
                outln!(
                    "{:#}",
                    serde_json::json!({ "table": name, "commits": entries })
                );
            } else {
                print_history(&entries);
            }
            Ok(0)
        }
        Command::Rebuild {
            target,
            source,
            dry_run,
            lease_wait,
        } => {
            let pipeline = load(&cli.config).await?;
            let pipeline = match source {
                Some(name) => std::sync::Arc::new(pipeline.for_source(&name).ok_or_else(|| {
                    crate::MedallionError::Usage(format!("unknown source \"{name}\""))
                })?),
                None if !pipeline.single_source() && !target.starts_with("gold.") => {
                    return Err(crate::MedallionError::Usage(
                        "there are several sources: name the one to rebuild with --source".into(),
                    ));
                }
                None => pipeline,
            };
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
        Command::Optimize {
            table,
            zorder,
            target_size,
            dry_run,
            lease_wait,
        } => {
            let pipeline = load(&cli.config).await?;
            let opts = crate::optimize::OptimizeOptions {
                table,
                zorder,
                target_size,
                dry_run,
                lease_wait: std::time::Duration::from_secs(lease_wait),
                lease_ttl: crate::run::RunOptions::default().lease_ttl,
            };
            let report = crate::optimize::optimize(&pipeline, &opts).await?;
            out!("{report}");
            Ok(if report.failed() > 0 { 1 } else { 0 })
        }
        Command::Report { out } => {
            let pipeline = load(&cli.config).await?;
            let page =
                crate::dashboard::render(&pipeline, &cli.config.display().to_string()).await?;
            if out.as_os_str() == "-" {
                out!("{page}");
            } else {
                std::fs::write(&out, &page).map_err(|e| {
                    MedallionError::Usage(format!("cannot write {}: {e}", out.display()))
                })?;
                outln!(
                    "wrote {} ({})",
                    out.display(),
                    bytesize::ByteSize(page.len() as u64).display().iec_short()
                );
            }
            Ok(0)
        }
        Command::Reconcile {
            reference,
            model,
            tolerance,
            json,
        } => {
            let pipeline = load(&cli.config).await?;
            let r = crate::reconcile::reconcile(&pipeline, &reference, model.as_deref(), tolerance)
                .await?;
            if json {
                outln!("{:#}", serde_json::json!(r));
            } else {
                print_reconciliation(&r);
            }
            Ok(if r.clean() { 0 } else { 1 })
        }
        Command::Status { json } => {
            let pipeline = load(&cli.config).await?;
            let s = crate::status::status(&pipeline).await?;
            if json {
                outln!("{:#}", serde_json::json!(s));
            } else {
                print_status(&s);
            }
            Ok(0)
        }
    }
}
