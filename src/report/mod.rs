//! Run metrics: what happened to each batch (silver inserts and updates, gold changes,
//! table versions) and to each of its files (rows read, bronze rows, rejections per
//! rule, warnings), and how the run summary prints them. A batch of one file prints as
//! one block; a batch of many prints its totals, then a line per file (the first
//! [`FILES_LISTED`] loaded ones, and every failed one).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::storage::UpsertMetrics;

/// Loaded files listed by name per batch; the rest are counted (`_medallion.files` has all).
pub const FILES_LISTED: usize = 10;

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
    pub rejected: u64,
    pub rejected_by_rule: BTreeMap<String, u64>,
    pub warnings: BTreeMap<String, u64>,
    /// A file of this name was loaded before with other content.
    pub new_version: bool,
    /// Its size in bytes (compressed, as stored).
    pub bytes: u64,
}

impl FileReport {
    pub fn new(file: &str, batch_id: &str) -> Self {
        FileReport {
            file: file.to_string(),
            batch_id: batch_id.to_string(),
            ..FileReport::default()
        }
    }

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

    /// Add another part's counts (the same file read in parts).
    pub fn add_counts(&mut self, other: &FileReport) {
        self.rows_read += other.rows_read;
        self.bronze_rows += other.bronze_rows;
        self.silver_accepted += other.silver_accepted;
        self.rejected += other.rejected;
        merge_counts(&mut self.rejected_by_rule, &other.rejected_by_rule);
        merge_counts(&mut self.warnings, &other.warnings);
    }
}

/// Add `from`'s counts per name into `into`.
pub fn merge_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// What happened to one batch: one claim of one or more files, committed together.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub batch_id: String,
    /// Its files, in name order (the order they apply in).
    pub files: Vec<FileReport>,
    pub silver: UpsertMetrics,
    /// Accepted rows not written to silver because it holds a newer version of their
    /// key (`sequence_by`); they stay in bronze.
    pub superseded: u64,
    /// Accepted rows of an upsert that another row of the same batch with their key
    /// replaced before silver (the last line of a key wins; with `sequence_by`, the
    /// highest): they stay in bronze. With `inserted`, `updated`, `deleted` and
    /// `superseded` they add up to the batch's accepted rows.
    pub repeated: u64,
    pub gold: Vec<(String, UpsertMetrics)>,
    /// This completes a batch that an earlier run left part-way.
    pub recovered: bool,
    /// Some stage of the batch was committed (by this or an earlier attempt).
    pub committed: bool,
    /// The batch failed after a commit and stays open for the next run to complete.
    pub left_open: bool,
    /// Why the whole batch failed or stays open (each file's own failure is its own).
    pub error: Option<String>,
    pub bronze_version: Option<i64>,
    pub rejected_version: Option<i64>,
    pub elapsed: Duration,
    /// Where the time went.
    pub stages: StageTimes,
}

/// Wall time of a batch's stages. Reading overlaps the commits of the batch before
/// it, so the stages may add up to more than the batch's own elapsed time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Read, validate and encode the files (or replay committed bronze).
    pub read: Duration,
    /// Commit bronze and rejected.
    pub bronze: Duration,
    /// Upsert silver.
    pub silver: Duration,
    /// Refresh the gold models.
    pub gold: Duration,
    /// Write the ledger's final rows.
    pub ledger: Duration,
}

impl BatchReport {
    pub fn new(batch_id: &str, recovered: bool) -> Self {
        BatchReport {
            batch_id: batch_id.to_string(),
            recovered,
            ..BatchReport::default()
        }
    }

    /// Versions this attempt committed per table (stages done by an earlier attempt are absent).
    pub fn table_versions(&self, p: &crate::config::Pipeline) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let tables = p.source.tables();
        let mut put = |table: String, v: Option<i64>| {
            if let Some(v) = v {
                m.insert(table, v.into());
            }
        };
        put(tables.bronze, self.bronze_version);
        put(tables.rejected, self.rejected_version);
        put(tables.silver, self.silver.version);
        for (model, g) in &self.gold {
            put(crate::config::gold_table(model), g.version);
        }
        serde_json::Value::Object(m)
    }

    /// The files' counts added up.
    pub fn totals(&self) -> FileReport {
        let mut total = FileReport::new("", &self.batch_id);
        for f in self.files.iter().filter(|f| f.loaded()) {
            total.add_counts(f);
        }
        total
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
    pub batches: Vec<BatchReport>,
    /// Files that could not be hashed, so were never claimed.
    pub unreadable: Vec<FileReport>,
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
    /// Every file attempted: those of the batches, then the unreadable ones.
    pub fn files(&self) -> impl Iterator<Item = &FileReport> {
        self.batches
            .iter()
            .flat_map(|b| &b.files)
            .chain(&self.unreadable)
    }

    /// Add what a run of another source did.
    pub fn absorb(&mut self, other: RunReport) {
        self.rebuild_completed |= other.rebuild_completed;
        self.rebuilt.extend(other.rebuilt);
        self.batches.extend(other.batches);
        self.unreadable.extend(other.unreadable);
        self.already_loaded += other.already_loaded;
        self.duplicates.extend(other.duplicates);
        self.unstable.extend(other.unstable);
        self.stopped_at = self.stopped_at.take().or(other.stopped_at);
    }

    /// Whether the run did anything: a batch, an unreadable file, a duplicate skipped,
    /// a gold model rebuilt or a rebuild completed.
    pub fn did_something(&self) -> bool {
        !self.batches.is_empty()
            || !self.unreadable.is_empty()
            || !self.duplicates.is_empty()
            || !self.rebuilt.is_empty()
            || self.rebuild_completed
    }

    /// `stopped` (a batch was left open for the next run), `failed` (a file failed),
    /// `ok`, or `nothing_to_do`.
    pub fn outcome(&self) -> &'static str {
        if self.stopped_at.is_some() {
            "stopped"
        } else if self.failed() > 0 {
            "failed"
        } else if self.did_something() {
            "ok"
        } else {
            "nothing_to_do"
        }
    }

    /// Files loaded by this run.
    pub fn loaded(&self) -> usize {
        self.files().filter(|f| f.loaded()).count()
    }

    /// Files that failed and were not loaded later in the run (a file left out of a
    /// batch completed after a crash is tried again in the same run).
    pub fn failed(&self) -> usize {
        let loaded: std::collections::HashSet<&str> = self
            .files()
            .filter(|f| f.loaded())
            .map(|f| f.file.as_str())
            .collect();
        self.files()
            .filter(|f| !f.loaded() && !loaded.contains(f.file.as_str()))
            .count()
    }
}

mod display;
mod json;
