//! How results are laid out for a person (and `query`'s CSV and JSON lines).

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::util::pretty::pretty_format_batches;

use super::OutputFormat;
use crate::error::{MedallionError, Result};

/// What `init` inferred and wrote, and what to do next.
pub(super) fn print_inference(inf: &crate::init::Inference, opts: &crate::init::InitOptions) {
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

/// A reconciliation: the counts, then the examples of each kind.
pub(super) fn print_reconciliation(r: &crate::reconcile::Reconciliation) {
    use std::collections::BTreeMap;
    let key = |k: &BTreeMap<String, Option<String>>| {
        let parts: Vec<String> = k
            .iter()
            .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("null")))
            .collect();
        parts.join(", ")
    };
    outln!(
        "gold.{} against {} (keys {}; compared {}; tolerance {}):",
        r.model,
        r.reference,
        r.keys.join(", "),
        r.columns.join(", "),
        r.tolerance
    );
    outln!("  gold rows:             {}", r.gold_rows);
    outln!("  reference rows:        {}", r.reference_rows);
    outln!("  matches:               {}", r.matches);
    outln!("  differences:           {}", r.differences);
    outln!("  missing in gold:       {}", r.missing_in_gold);
    outln!("  missing in reference:  {}", r.missing_in_reference);
    for d in &r.examples.differences {
        let cols: Vec<String> = d
            .columns
            .iter()
            .map(|(c, p)| {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
                format!(
                    "{c}: gold {} reference {}",
                    show(&p.gold),
                    show(&p.reference)
                )
            })
            .collect();
        outln!("  differs: {} | {}", key(&d.key), cols.join("; "));
    }
    for k in &r.examples.missing_in_gold {
        outln!("  missing in gold: {}", key(k));
    }
    for k in &r.examples.missing_in_reference {
        outln!("  missing in reference: {}", key(k));
    }
    let shown = r.examples.differences.len()
        + r.examples.missing_in_gold.len()
        + r.examples.missing_in_reference.len();
    let total = r.differences + r.missing_in_gold + r.missing_in_reference;
    if (shown as u64) < total {
        outln!("  ({shown} of {total} discrepancies shown; --json lists the same examples)");
    }
    outln!(
        "{}",
        if r.clean() {
            "reconciled: every key matches"
        } else {
            "NOT reconciled"
        }
    );
}

/// A table's commits, newest first.
pub(super) fn print_history(entries: &[crate::storage::HistoryEntry]) {
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
        let time = e
            .timestamp
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
        let what = e
            .source_file
            .as_deref()
            .filter(|f| !f.is_empty())
            .or(e.note.as_deref());
        outln!(
            "{:>7}  {:<24}  {:<8}  {:<16}  {:<36}  {:>8}  {}",
            e.version,
            time.unwrap_or_default(),
            e.operation,
            e.stage.as_deref().unwrap_or_default(),
            e.batch_id.as_deref().unwrap_or_default(),
            e.rows.map(|r| r.to_string()).unwrap_or_default(),
            what.unwrap_or_default(),
        );
    }
}

/// Pending files listed by name; `status --json` lists them all.
const PENDING_LISTED: usize = 20;

/// The lakehouse at a glance.
pub(super) fn print_status(s: &crate::status::Status) {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_string(), |t| {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        })
    };
    outln!("lakehouse {}", s.lakehouse);
    outln!(
        "{:<28} {:>8} {:>10} {:>6} {:>10}  last commit (UTC)",
        "table",
        "version",
        "rows",
        "files",
        "size"
    );
    for t in &s.tables {
        let v = t.version.map_or("-".to_string(), |v| v.to_string());
        let size = bytesize::ByteSize(t.bytes)
            .display()
            .iec_short()
            .to_string();
        outln!(
            "{:<28} {:>8} {:>10} {:>6} {:>10}  {}",
            t.name,
            v,
            t.rows,
            t.files,
            size,
            time(t.last_commit)
        );
    }
    let f = &s.files;
    outln!("files loaded: {}", f.loaded);
    outln!("files pending: {}", f.pending.len());
    if s.sources.len() > 1 {
        for src in &s.sources {
            outln!(
                "  source {} ({}): {} loaded, {} pending, {} failed",
                src.name,
                src.mode,
                src.files.loaded,
                src.files.pending.len(),
                src.files.failed.len()
            );
        }
    }
    for name in f.pending.iter().take(PENDING_LISTED) {
        outln!("  {name}");
    }
    if f.pending.len() > PENDING_LISTED {
        outln!(
            "  ... and {} more (status --json lists them all)",
            f.pending.len() - PENDING_LISTED
        );
    }
    if !f.failed.is_empty() {
        outln!(
            "files failed: {} (the next run tries them again)",
            f.failed.len()
        );
        for x in &f.failed {
            outln!(
                "  {} (batch {}, {}): {}",
                x.file,
                x.batch_id,
                time(x.at),
                x.reason
            );
        }
    }
    if !f.duplicates.is_empty() {
        outln!("duplicates skipped: {}", f.duplicates.len());
        for d in &f.duplicates {
            outln!("  {}: same content as {}", d.file, d.of);
        }
    }
    match &s.last_run {
        None => outln!("last run: none recorded"),
        Some(r) => {
            let facts: Vec<String> = r.facts().iter().map(|(k, v)| format!("{k} {v}")).collect();
            outln!("last run: {}", facts.join(", "));
            if let Some(e) = &r.error {
                outln!("  error: {e}");
            }
        }
    }
    for g in &s.stale_gold {
        outln!("{}: the next run rebuilds it ({})", g.table, g.reason);
    }
    for t in &s.orphaned_gold {
        outln!("{t}: its model is no longer in the configuration; the table is left alone");
    }
}

/// `run --quiet`: only the files that failed, and a batch left open.
pub(super) fn print_failures(r: &crate::report::RunReport) {
    for f in r.files().filter(|f| !f.loaded()) {
        outln!(
            "FAILED {}: {}",
            f.file,
            f.error.as_deref().unwrap_or_default()
        );
    }
    if let Some(file) = &r.stopped_at {
        outln!("stopped at {file}: its batch is completed by the next run");
    }
}

/// One file's dry run, for a person.
pub(super) fn print_file_check(c: &crate::dry_run::FileCheck) {
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

pub(super) fn print_batches(batches: &[RecordBatch], format: OutputFormat) -> Result<()> {
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
