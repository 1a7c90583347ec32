//! How `medallion rebuild` prints what it did, or with `--dry-run` what it would do.

use std::collections::BTreeMap;
use std::fmt;

use super::RebuildReport;

fn rules(f: &mut fmt::Formatter<'_>, by_rule: &BTreeMap<String, u64>) -> fmt::Result {
    for (rule, n) in by_rule {
        writeln!(f, "    {rule:<22} {n}")?;
    }
    Ok(())
}

impl fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (would, verb) = if self.dry_run {
            ("would ", "would be rebuilt")
        } else {
            ("", "rebuilt")
        };
        if self.resumed {
            writeln!(f, "completing a rebuild an earlier process left part-way")?;
        }
        if let Some(s) = &self.silver {
            let source = &self.source;
            let rows: u64 = s.per_batch.values().map(|c| c.rows).sum();
            let accepted: u64 = s.per_batch.values().map(|c| c.accepted).sum();
            let rejected: u64 = s.per_batch.values().map(|c| c.rejected).sum();
            writeln!(
                f,
                "silver/{source} and rejected/{source} {verb} from {rows} bronze rows of {} files",
                s.per_batch.len()
            )?;
            if self.dry_run {
                writeln!(
                    f,
                    "  silver           {} rows (now {})",
                    s.silver_rows, self.before.0
                )?;
                writeln!(
                    f,
                    "  rejected         {rejected} rows (now {})",
                    self.before.1
                )?;
            } else {
                writeln!(
                    f,
                    "  silver           {} rows ({accepted} accepted)",
                    s.silver_rows
                )?;
                writeln!(f, "  rejected         {rejected} rows")?;
            }
            writeln!(
                f,
                "  {} rows {would}move from silver to rejected, by the rule they break now:",
                s.to_rejected_rows
            )?;
            rules(f, &s.to_rejected)?;
            writeln!(
                f,
                "  {} rows {would}move from rejected to silver, by the rule they broke before:",
                s.to_silver_rows
            )?;
            rules(f, &s.to_silver)?;
            if s.unfinished_rows > 0 {
                writeln!(
                    f,
                    "  {} bronze rows of batches that never completed are left out, as before",
                    s.unfinished_rows
                )?;
            }
        }
        for (model, rows, version) in &self.gold {
            if self.dry_run {
                writeln!(f, "gold.{model} would be rebuilt from silver")?;
            } else {
                let v = version.map_or("-".to_string(), |v| format!("v{v}"));
                writeln!(f, "gold.{model} rebuilt from silver: {rows} rows ({v})")?;
            }
        }
        if self.dry_run {
            writeln!(f, "dry run: nothing was written")?;
        }
        Ok(())
    }
}
