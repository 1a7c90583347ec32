//! Run metrics: what happened to each file (rows read, bronze rows, silver inserts and
//! updates, rejections per rule, warnings, gold changes, table versions) and how the
//! run summary prints them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::storage::UpsertMetrics;

/// What happened to one raw file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub file: String,
    pub batch_id: String,
    /// `None` when loaded; the reason otherwise.
    pub error: Option<String>,
    pub rows_read: u64,
    pub bronze_rows: u64,
    pub silver_accepted: u64,
    pub silver: UpsertMetrics,
    pub rejected: u64,
    pub rejected_by_rule: BTreeMap<String, u64>,
    pub warnings: BTreeMap<String, u64>,
    pub gold: Vec<(String, UpsertMetrics)>,
    /// A file of this name was loaded before with other content.
    pub new_version: bool,
    /// This completes a batch that an earlier run left part-way.
    pub recovered: bool,
    /// Some stage of the batch was committed (by this or an earlier attempt).
    pub committed: bool,
    /// The batch failed after a commit and stays open for the next run to complete.
    pub left_open: bool,
    pub bronze_version: Option<i64>,
    pub rejected_version: Option<i64>,
    pub elapsed: Duration,
}

impl FileReport {
    /// A file that could not even be hashed (unreadable, vanished after listing).
    pub fn unreadable(file: &str, e: &crate::error::MedallionError) -> Self {
        FileReport {
            file: file.to_string(),
            error: Some(format!(
                "{e}; nothing was loaded from it, the next run tries again"
            )),
            ..FileReport::default()
        }
    }

    pub fn loaded(&self) -> bool {
        self.error.is_none()
    }

    /// Versions this attempt committed per table (stages done by an earlier attempt are absent).
    pub fn table_versions(&self, p: &crate::config::Pipeline) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let name = &p.source.name;
        let mut put = |table: String, v: Option<i64>| {
            if let Some(v) = v {
                m.insert(table, v.into());
            }
        };
        put(format!("bronze/{name}"), self.bronze_version);
        put(format!("rejected/{name}"), self.rejected_version);
        put(format!("silver/{name}"), self.silver.version);
        for (model, g) in &self.gold {
            put(format!("gold/{model}"), g.version);
        }
        serde_json::Value::Object(m)
    }
}

/// A gold table rebuilt before any batch because its model changed (or was added).
#[derive(Debug, Clone)]
pub struct ModelRebuild {
    pub model: String,
    /// What happened, as `history` shows it ("model changed: rebuilt").
    pub note: &'static str,
    pub rows: u64,
    pub version: Option<i64>,
}

/// What one `run` did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// A rebuild an earlier process left part-way was completed first.
    pub rebuild_completed: bool,
    /// Gold tables rebuilt from silver before any batch.
    pub rebuilt: Vec<ModelRebuild>,
    pub files: Vec<FileReport>,
    /// Files found in the raw zone that were already loaded.
    pub already_loaded: usize,
    /// (file, the file already loaded with the same content): skipped.
    pub duplicates: Vec<(String, String)>,
    /// Files that changed while being read: left for the next run.
    pub unstable: Vec<String>,
    /// A batch was left open (committed in part, then failed): the run stopped there
    /// so that no later batch commits past it; the next run completes it first.
    pub stopped_at: Option<String>,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.files.iter().filter(|f| !f.loaded()).count()
    }
}

fn version(v: Option<i64>) -> String {
    v.map_or("-".to_string(), |v| format!("v{v}"))
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.error {
            writeln!(f, "FAILED {}", self.file)?;
            return writeln!(f, "  {e}");
        }
        let new = match (self.new_version, self.recovered) {
            (true, _) => ", a new version of a file loaded before",
            (_, true) => ", completing a batch an earlier run left part-way",
            _ => "",
        };
        writeln!(
            f,
            "loaded {} (batch {}, {:.2?}{new})",
            self.file, self.batch_id, self.elapsed
        )?;
        writeln!(f, "  rows read        {}", self.rows_read)?;
        writeln!(
            f,
            "  bronze           {} rows appended ({})",
            self.bronze_rows,
            version(self.bronze_version)
        )?;
        writeln!(
            f,
            "  silver           {} accepted: {} inserted, {} updated ({})",
            self.silver_accepted,
            self.silver.inserted,
            self.silver.updated,
            version(self.silver.version)
        )?;
        writeln!(
            f,
            "  rejected         {} rows ({})",
            self.rejected,
            version(self.rejected_version)
        )?;
        for (rule, n) in &self.rejected_by_rule {
            writeln!(f, "    {rule:<22} {n}")?;
        }
        for (rule, n) in &self.warnings {
            writeln!(f, "  warning          {rule}: {n} rows kept")?;
        }
        for (model, m) in &self.gold {
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
        if self.files.is_empty() {
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
        for file in &self.files {
            write!(f, "{file}")?;
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
            self.files.len() - self.failed(),
            self.failed(),
            self.already_loaded
        )
    }
}
