//! The checked configuration that every stage runs from. Only `validate` builds these
//! types, so names exist, regexes compile, defaults parse and SQL plans.

use chrono_tz::Tz;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::logical_expr::Expr;

use crate::schema;
use crate::storage::Location;

use super::model::{RuleAction, SourceMode};
pub use medallion_csv::ColumnCheck;
use medallion_csv::{Dialect, Value, ValueParser};

/// The checked configuration: what every stage runs from.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Root of the lakehouse, as a directory URL (ends with `/`), and its store options.
    pub lakehouse: Location,
    /// Every source, in configuration order.
    pub sources: Vec<SourceSpec>,
    /// The source this value ingests: the first one, or the one [`Pipeline::for_source`]
    /// chose. Everything that concerns all sources reads `sources`.
    pub source: SourceSpec,
    pub gold: Vec<GoldModel>,
    /// How many new files one batch takes.
    pub batches: BatchBounds,
}

/// Checked batch bounds (both at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchBounds {
    pub max_files: usize,
    pub max_bytes: u64,
}

/// A checked CSV source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    /// The landing zone, as a directory URL and its store options.
    pub raw_zone: Location,
    pub pattern: glob::Pattern,
    pub timezone: Tz,
    pub csv: CsvSpec,
    pub columns: Vec<ColumnSpec>,
    pub row_rules: Vec<RowRule>,
    /// Natural key of silver (empty for an `append` source).
    pub key: Vec<String>,
    pub mode: SourceMode,
    /// `upsert`: a row replaces the current one only if this column is not lower.
    pub sequence_by: Option<String>,
    /// `upsert`: rows matching this predicate delete their key.
    pub delete_when: Option<RowRule>,
    /// `snapshot`: a file with no data rows is accepted (it empties silver).
    pub allow_empty_snapshot: bool,
    /// Rows per silver upsert.
    pub batch_rows: u64,
    /// Columns `optimize --zorder` orders silver by: `zorder_by`, else the key.
    pub zorder_by: Vec<String>,
    /// Silver marks replaced rows in deletion vectors instead of rewriting files.
    pub deletion_vectors: bool,
}

/// A checked CSV dialect.
#[derive(Debug, Clone)]
pub struct CsvSpec {
    /// Delimiter, quote and the limits that bound memory.
    pub dialect: Dialect,
    pub header: bool,
    pub trim: bool,
    pub null_values: Vec<String>,
}

/// A checked column: where to read it, how to type it, what it must satisfy.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    /// Header in the file.
    pub header: String,
    pub parser: ValueParser,
    pub required: bool,
    /// Raw default text and its parsed value.
    pub default: Option<(String, Value)>,
    pub rules: Vec<ColumnRule>,
}

/// A named check on a column value.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    pub name: String,
    pub action: RuleAction,
    pub check: ColumnCheck,
}

/// A named SQL check over the typed row.
#[derive(Debug, Clone)]
pub struct RowRule {
    pub name: String,
    pub sql: String,
    pub expr: Expr,
    pub action: RuleAction,
}

/// A gold model.
#[derive(Debug, Clone)]
pub struct GoldModel {
    pub name: String,
    pub keys: Vec<String>,
    pub sql: String,
    /// Columns `optimize --zorder` orders the table by: `zorder_by`, else the keys.
    pub zorder_by: Vec<String>,
    /// Output schema of the model query.
    pub schema: SchemaRef,
    /// How gold is kept equal to the SQL (decided from the model's plan).
    pub maintenance: crate::plan::Maintenance,
    /// Hash of the normalised SQL, the keys and the output schema: a gold table built
    /// under another fingerprint is rebuilt.
    pub fingerprint: String,
    /// The sources whose silver tables the model reads.
    pub sources: Vec<String>,
}

impl GoldModel {
    /// Its table: `gold/<name>`.
    pub fn table(&self) -> String {
        gold_table(&self.name)
    }

    /// Whether the model reads source `name`'s silver table.
    pub fn reads(&self, source: &str) -> bool {
        self.sources.iter().any(|s| s == source)
    }
}

/// The table of gold model `name`.
pub fn gold_table(name: &str) -> String {
    format!("gold/{name}")
}

/// Paths of a source's tables under the lakehouse root (the only place they are built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTables {
    pub bronze: String,
    pub silver: String,
    pub rejected: String,
}

impl SourceSpec {
    /// Its tables: `bronze/<name>`, `silver/<name>`, `rejected/<name>`.
    pub fn tables(&self) -> SourceTables {
        SourceTables {
            bronze: format!("bronze/{}", self.name),
            silver: format!("silver/{}", self.name),
            rejected: format!("rejected/{}", self.name),
        }
    }

    /// The configured columns' names, in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The typed columns, in order.
    pub fn typed_columns(&self) -> impl Iterator<Item = (&str, DataType)> {
        self.columns
            .iter()
            .map(|c| (c.name.as_str(), schema::arrow_type(c.parser.ty)))
    }

    /// The layout of the source's bronze table.
    pub fn bronze_schema(&self) -> SchemaRef {
        schema::bronze_schema(&self.column_names())
    }

    /// The layout of the source's silver table.
    pub fn silver_schema(&self) -> SchemaRef {
        schema::silver_schema(&self.typed_columns().collect::<Vec<_>>())
    }

    /// The layout of the source's rejected table.
    pub fn rejected_schema(&self) -> SchemaRef {
        schema::rejected_schema(&self.column_names())
    }
}

impl Pipeline {
    /// This pipeline focused on source `name` (what `run` ingests for it).
    pub fn for_source(&self, name: &str) -> Option<Pipeline> {
        let source = self.sources.iter().find(|s| s.name == name)?.clone();
        Some(Pipeline {
            source,
            ..self.clone()
        })
    }

    /// The bounds of the focused source's batches: a snapshot source takes one file per
    /// batch (each file is a complete state of its own).
    pub fn batch_bounds(&self) -> BatchBounds {
        match self.source.mode {
            SourceMode::Snapshot => BatchBounds {
                max_files: 1,
                ..self.batches
            },
            _ => self.batches,
        }
    }

    /// Whether there is exactly one source (its silver is also `silver` in gold SQL).
    pub fn single_source(&self) -> bool {
        self.sources.len() == 1
    }

    /// A digest of everything in the configuration that decides what a run does, and of
    /// the medallion version: locations, dialect, columns, rules, key and models. Storage
    /// options are left out (they are credentials, and reach the same data).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let sources: Vec<String> = self.sources.iter().map(SourceSpec::digest_text).collect();
        let gold: Vec<_> = self
            .gold
            .iter()
            .map(|m| (&m.name, &m.keys, &m.fingerprint, &m.maintenance))
            .collect();
        let text = format!(
            "{}|{}|{:?}|{:?}",
            env!("CARGO_PKG_VERSION"),
            self.lakehouse.url,
            sources,
            gold,
        );
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    }
}

impl SourceSpec {
    /// What of the source decides what a run does, as text for [`Pipeline::fingerprint`].
    fn digest_text(&self) -> String {
        let rules: Vec<_> = self
            .row_rules
            .iter()
            .chain(&self.delete_when)
            .map(|r| (&r.name, &r.sql, r.action))
            .collect();
        format!(
            "{}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
            self.name,
            self.raw_zone.url,
            self.pattern.as_str(),
            self.timezone,
            self.csv,
            self.columns,
            rules,
            self.key,
            self.mode,
            self.sequence_by,
            self.allow_empty_snapshot,
            self.batch_rows,
        )
    }
}
