//! The crate's error type. Each variant names the step that failed and carries the
//! file, table or rule it failed on, so a message alone tells the user where to look.
//! Rejected *rows* are not errors: they are data for the rejected table.

use std::fmt;
use std::path::PathBuf;

use deltalake::DeltaTableError;
use deltalake::arrow::error::ArrowError;
use deltalake::datafusion::error::DataFusionError;

/// Everything that can stop a command or a file.
#[derive(Debug, thiserror::Error)]
pub enum MedallionError {
    /// The configuration file could not be read or is invalid; every problem is listed.
    #[error("{0}")]
    Config(#[from] ConfigErrors),

    /// A raw file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A raw file is unusable as a whole (bad header, not CSV, ...).
    #[error("{file}: {message}")]
    BadFile { file: String, message: String },

    /// An interrupted batch needs its raw file again, but the file changed or vanished.
    #[error(
        "{file}: the raw file changed or vanished before its interrupted batch committed \
         anything of it; nothing of it is loaded (a new version is loaded as a new file)"
    )]
    RawFileGone { file: String },

    /// A rule with action `fail` was broken: nothing is committed for the file.
    #[error("{file}:{line}: rule `{rule}` failed ({message}); the file is not loaded")]
    FailRule {
        file: String,
        line: u64,
        rule: String,
        message: String,
    },

    /// A Delta operation on a table failed.
    #[error("{step} on table {table}: {source}")]
    Delta {
        step: &'static str,
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },

    /// Building or evaluating an in-memory batch failed (an internal fault).
    #[error("{step}: {source}")]
    Arrow {
        step: &'static str,
        #[source]
        source: ArrowError,
    },

    /// A SQL query or expression failed to plan or run.
    #[error("{step}: {source}")]
    Sql {
        step: String,
        #[source]
        source: Box<DataFusionError>,
    },

    /// Another `medallion run` holds the ingest lease.
    #[error(
        "another medallion run holds the ingest lease ({holder}, until {expires_at}); try again later"
    )]
    LeaseHeld {
        holder: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    },

    /// This run lost the ingest lease (it stalled past its expiry and another run took over).
    #[error("this run lost the ingest lease to another run; stopped before committing more")]
    LeaseLost,

    /// A stage table already holds a later batch than the one being written: another
    /// run went past this one (its lease lapsed), so this run must not write.
    #[error(
        "{table}: batch {found} of {app} was written by another run while this run was at batch {seq} (this run's ingest lease lapsed); stopped without writing"
    )]
    Fenced {
        table: String,
        app: String,
        seq: i64,
        found: i64,
    },

    /// The user asked for something that does not exist (an unknown table, a bad version).
    #[error("{0}")]
    Usage(String),

    /// The configuration does not fit the tables already written (a changed column type,
    /// a changed silver key, ...): a configuration error, found before anything is written.
    #[error(
        "the configuration does not fit the existing tables (nothing was written):{}",
        problems.iter().map(|p| format!("\n  - {p}")).collect::<String>()
    )]
    SchemaChange { problems: Vec<String> },

    /// A gold model's output repeats a key: its keys do not identify its rows.
    #[error(
        "gold model {model}: its keys [{keys}] do not identify a row: {example} appears more than once in its output; add the columns that tell those rows apart to `keys`"
    )]
    ModelKeys {
        model: String,
        keys: String,
        example: String,
    },

    /// An object store (or local directory) could not be reached or used.
    #[error("{step} {location}: {message}")]
    Store {
        location: String,
        step: &'static str,
        message: String,
    },

    /// The lakehouse's store does not refuse a second conditional create of the same
    /// key: concurrent Delta commits would silently overwrite each other.
    #[error(
        "the store at {location} does not honour conditional creates (If-None-Match): {found}. \
         Delta commits on it could silently overwrite each other, so medallion will not write \
         there. Use a store or endpoint that refuses a PUT with `If-None-Match: *` on an \
         existing key (AWS S3, Azure Blob, GCS, MinIO, Cloudflare R2 all do), or remove \
         an option that disables it (`aws_conditional_put`)"
    )]
    UnsafeStore { location: String, found: String },

    /// The lakehouse is not in a state where the command can run (an open batch).
    #[error("{0}")]
    Busy(String),

    /// Something medallion relies on did not hold (a table vanished mid-run, a worker
    /// stopped): a fault to report, not the user's input.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = MedallionError> = std::result::Result<T, E>;

impl MedallionError {
    pub(crate) fn delta(
        step: &'static str,
        table: impl Into<String>,
    ) -> impl FnOnce(DeltaTableError) -> Self {
        let table = table.into();
        move |source| MedallionError::Delta {
            step,
            table,
            source: Box::new(source),
        }
    }

    /// An object store (or local directory) error at `location`, while doing `step`.
    pub(crate) fn store<E: std::fmt::Display>(
        step: &'static str,
        location: impl std::fmt::Display,
    ) -> impl FnOnce(E) -> Self {
        let location = location.to_string();
        move |e| MedallionError::Store {
            location,
            step,
            message: e.to_string(),
        }
    }

    pub(crate) fn arrow(step: &'static str) -> impl FnOnce(ArrowError) -> Self {
        move |source| MedallionError::Arrow { step, source }
    }

    pub(crate) fn sql(step: impl Into<String>) -> impl FnOnce(DataFusionError) -> Self {
        let step = step.into();
        move |source| MedallionError::Sql {
            step,
            source: Box::new(source),
        }
    }

    /// A query stopped because its operators reached their session's memory cap (and
    /// could not spill).
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            MedallionError::Sql { source, .. } => {
                matches!(source.find_root(), DataFusionError::ResourcesExhausted(_))
            }
            _ => false,
        }
    }

    /// The process exit code for this error: 2 when the configuration or the command
    /// line is wrong (nothing was attempted), 1 for every data or runtime failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            MedallionError::Config(_)
            | MedallionError::SchemaChange { .. }
            | MedallionError::Usage(_)
            | MedallionError::UnsafeStore { .. } => 2,
            _ => 1,
        }
    }
}

/// One problem in the configuration, with its place (`source.columns[3].type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub place: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(place: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            place: place.into(),
            message: message.into(),
        }
    }
}

/// All problems found in one configuration file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid configuration {} ({n} problem{}):",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            if e.place.is_empty() {
                write!(f, "\n  - {}", e.message)?;
            } else {
                write!(f, "\n  - {}: {}", e.place, e.message)?;
            }
        }
        Ok(())
    }
}
