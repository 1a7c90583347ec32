//! How the run summary prints: a block per batch, then one line of totals.

use std::fmt;

use super::{BatchReport, FILES_LISTED, FileReport, RunReport};

fn version(v: Option<i64>) -> String {
    v.map_or("-".to_string(), |v| format!("v{v}"))
}

fn failed(f: &mut fmt::Formatter<'_>, file: &FileReport) -> fmt::Result {
    writeln!(f, "FAILED {}", file.file)?;
    writeln!(f, "  {}", file.error.as_deref().unwrap_or_default())
}

/// The counts of a batch (`totals`: its loaded files added up) and its stage versions.
fn counts(f: &mut fmt::Formatter<'_>, b: &BatchReport, totals: &FileReport) -> fmt::Result {
    writeln!(f, "  rows read        {}", totals.rows_read)?;
    writeln!(
        f,
        "  bronze           {} rows appended ({})",
        totals.bronze_rows,
        version(b.bronze_version)
    )?;
    let mut more = String::new();
    if b.silver.deleted > 0 {
        more.push_str(&format!(", {} deleted", b.silver.deleted));
    }
    if b.repeated > 0 {
        more.push_str(&format!(", {} replaced within the batch", b.repeated));
    }
    if b.superseded > 0 {
        more.push_str(&format!(", {} superseded by newer rows", b.superseded));
    }
    writeln!(
        f,
        "  silver           {} accepted: {} inserted, {} updated{more} ({})",
        totals.silver_accepted,
        b.silver.inserted,
        b.silver.updated,
        version(b.silver.version)
    )?;
    writeln!(
        f,
        "  rejected         {} rows ({})",
        totals.rejected,
        version(b.rejected_version)
    )?;
    for (rule, n) in &totals.rejected_by_rule {
        writeln!(f, "    {rule:<22} {n}")?;
    }
    for (rule, n) in &totals.warnings {
        writeln!(f, "  warning          {rule}: {n} rows kept")?;
    }
    for (model, m) in &b.gold {
        writeln!(
            f,
            "  gold {model:<11} {} inserted, {} updated, {} deleted ({})",
            m.inserted,
            m.updated,
            m.deleted,
            version(m.version)
        )?;
    }
    Ok(())
}

impl fmt::Display for BatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded: Vec<&FileReport> = self.files.iter().filter(|x| x.loaded()).collect();
        if loaded.is_empty() {
            return self.files.iter().try_for_each(|x| failed(f, x));
        }
        let recovered = if self.recovered {
            ", completing a batch an earlier run left part-way"
        } else {
            ""
        };
        if let [file] = self.files.as_slice() {
            let new = if file.new_version {
                ", a new version of a file loaded before"
            } else {
                recovered
            };
            writeln!(
                f,
                "loaded {} (batch {}, {:.2?}{new})",
                file.file, self.batch_id, self.elapsed
            )?;
            return counts(f, self, file);
        }
        writeln!(
            f,
            "batch {}: {} files loaded, {} failed ({:.2?}{recovered})",
            self.batch_id,
            loaded.len(),
            self.files.len() - loaded.len(),
            self.elapsed
        )?;
        counts(f, self, &self.totals())?;
        for file in loaded.iter().take(FILES_LISTED) {
            let new = if file.new_version {
                ", a new version"
            } else {
                ""
            };
            writeln!(
                f,
                "  loaded {}: {} rows read, {} accepted, {} rejected{new}",
                file.file, file.rows_read, file.silver_accepted, file.rejected
            )?;
        }
        if loaded.len() > FILES_LISTED {
            writeln!(
                f,
                "  … and {} more loaded files (each in _medallion.files)",
                loaded.len() - FILES_LISTED
            )?;
        }
        self.files
            .iter()
            .filter(|x| !x.loaded())
            .try_for_each(|x| failed(f, x))
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (file, original) in &self.duplicates {
            writeln!(f, "duplicate {file}: same content as {original}, skipped")?;
        }
        for file in &self.unstable {
            writeln!(
                f,
                "skipped {file}: it changed while being read (still being written?); next run"
            )?;
        }
        if self.rebuild_completed {
            writeln!(f, "completed a rebuild an earlier process left part-way")?;
        }
        for r in &self.rebuilt {
            writeln!(
                f,
                "gold.{}: {} ({} rows, {})",
                r.model,
                r.note,
                r.rows,
                version(r.version)
            )?;
        }
        let attempted = self.files().count();
        if attempted == 0 {
            if !self.rebuilt.is_empty() || self.rebuild_completed {
                return writeln!(
                    f,
                    "no new files in the raw zone ({} already loaded)",
                    self.already_loaded
                );
            }
            return writeln!(
                f,
                "nothing to do: no new files in the raw zone ({} already loaded)",
                self.already_loaded
            );
        }
        for b in &self.batches {
            write!(f, "{b}")?;
        }
        for file in &self.unreadable {
            failed(f, file)?;
        }
        if let Some(file) = &self.stopped_at {
            writeln!(
                f,
                "stopped after {file}: its batch is committed in part; the next run completes it before taking new files"
            )?;
        }
        writeln!(
            f,
            "{} file(s) loaded, {} failed, {} already loaded before",
            self.loaded(),
            self.failed(),
            self.already_loaded
        )
    }
}
