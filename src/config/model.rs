//! The YAML model of `config.yaml`: plain serde data with documented fields and named
//! defaults. Nothing here is checked beyond its shape; `validate` turns it into a
//! [`super::Pipeline`] and reports every problem at once. Unknown keys are collected by
//! `load` (see `super::load_str`) so that they are reported together with the rest.

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigFile {
    /// Root of the lakehouse: a path (relative to the config file) or a URI
    /// (`s3://bucket/prefix`, `az://container/prefix`, `abfss://…`, `gs://…`, `file://…`).
    pub lakehouse: String,
    /// Options for the lakehouse's store (endpoint, region, credentials as `${VAR}`).
    #[serde(default)]
    pub storage_options: std::collections::BTreeMap<String, String>,
    /// The one CSV source, in the shorthand form (with `silver:`); or use `sources:`.
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// How the shorthand source's silver is kept.
    #[serde(default)]
    pub silver: Option<SilverConfig>,
    /// The sources of the lakehouse, each with its own landing zone, rules, key and mode.
    #[serde(default)]
    pub sources: Option<Vec<SourceConfig>>,
    /// Business aggregates kept current with MERGE.
    #[serde(default)]
    pub gold: Vec<GoldModelConfig>,
    /// How many new files one batch takes.
    #[serde(default)]
    pub batches: BatchesConfig,
}

/// Bounds of a batch: new files are taken in name order into one batch (one commit per
/// table) until either bound is reached.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchesConfig {
    /// Files per batch.
    #[serde(default = "default_batch_files")]
    pub max_files: usize,
    /// Bytes of raw files per batch (`1GiB`, `500MB` or a number of bytes).
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: bytesize::ByteSize,
}

impl Default for BatchesConfig {
    fn default() -> Self {
        BatchesConfig {
            max_files: default_batch_files(),
            max_bytes: default_batch_bytes(),
        }
    }
}

/// A CSV source and the rules its rows must pass.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceConfig {
    /// Logical name; tables are `bronze/<name>`, `silver/<name>`, `rejected/<name>`.
    pub name: String,
    /// The landing zone: a path relative to the lakehouse root, or a URI of its own
    /// (another bucket or container; `file:///…` for a local directory of its own).
    #[serde(default = "default_raw_dir")]
    pub raw_dir: String,
    /// Options for a landing zone at a URI of its own.
    #[serde(default)]
    pub storage_options: std::collections::BTreeMap<String, String>,
    /// Glob of file names to ingest (matched against the name inside `raw_dir`).
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// IANA timezone for timestamps written without an offset.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// CSV dialect.
    #[serde(default)]
    pub csv: CsvConfig,
    /// The columns, in the order silver stores them.
    pub columns: Vec<ColumnConfig>,
    /// Rules over the typed row, as SQL boolean expressions.
    #[serde(default)]
    pub row_rules: Vec<RowRuleConfig>,
    /// Natural key of silver (in the shorthand form: `silver.key`); none for `append`.
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// How accepted rows reach silver: `upsert` (default), `append` or `snapshot`.
    #[serde(default)]
    pub mode: SourceMode,
    /// `upsert`: a row replaces its key's current row only if this column is not lower.
    #[serde(default)]
    pub sequence_by: Option<String>,
    /// `upsert`: SQL predicate over the typed row; a matching row deletes its key.
    #[serde(default)]
    pub delete_when: Option<String>,
    /// `snapshot`: accept a file with no data rows (it empties silver).
    #[serde(default)]
    pub allow_empty_snapshot: bool,
    /// Rows per silver upsert (in the shorthand form: `silver.batch_rows`).
    #[serde(default)]
    pub batch_rows: Option<u64>,
    /// Columns `medallion optimize --zorder` orders silver by (default: the key).
    #[serde(default)]
    pub zorder_by: Option<Vec<String>>,
    /// `upsert`: replace rows by marking them deleted in a deletion vector instead of
    /// rewriting their files (in the shorthand form: `silver.deletion_vectors`).
    #[serde(default)]
    pub deletion_vectors: Option<bool>,
}

/// How a source's accepted rows reach its silver table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    /// A later row of a key replaces it (the last line of a key wins within a batch).
    #[default]
    Upsert,
    /// An event log without a key: every accepted row is appended.
    Append,
    /// Each file is the complete current state: silver becomes it.
    Snapshot,
}

/// CSV dialect options.
#[derive(Debug, Clone, Deserialize)]
pub struct CsvConfig {
    /// One-byte field delimiter.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// One-byte quote character.
    #[serde(default = "default_quote")]
    pub quote: String,
    /// Whether the first line is a header naming the columns.
    #[serde(default = "default_true")]
    pub header: bool,
    /// Trim surrounding whitespace from every value before typing.
    #[serde(default = "default_true")]
    pub trim: bool,
    /// Tokens read as missing (compared after trimming).
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// Largest record in bytes; a longer line is rejected (`line_too_long`).
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Most lines a quoted field may span before the record is cut (`unterminated_quote`).
    #[serde(default = "default_max_record_lines")]
    pub max_record_lines: usize,
    /// Largest field in bytes (`field_too_large`).
    #[serde(default = "default_max_field_bytes")]
    pub max_field_bytes: usize,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            delimiter: default_delimiter(),
            quote: default_quote(),
            header: true,
            trim: true,
            null_values: default_null_values(),
            max_record_bytes: default_max_record_bytes(),
            max_record_lines: default_max_record_lines(),
            max_field_bytes: default_max_field_bytes(),
        }
    }
}

/// One source column.
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnConfig {
    /// Column name in bronze, silver and SQL.
    pub name: String,
    /// Header in the CSV file, when it differs from `name` (matched exactly).
    #[serde(default)]
    pub source: Option<String>,
    /// `string | int | bigint | double | decimal(p,s) | bool | date | timestamp`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// A missing value rejects the row (rule `required`).
    #[serde(default)]
    pub required: bool,
    /// Value used when the field is missing (must parse as the column's type).
    #[serde(default)]
    pub default: Option<String>,
    /// chrono `strftime` format for `date` and `timestamp` columns.
    #[serde(default)]
    pub format: Option<String>,
    /// Checks on the typed value; skipped for missing values.
    #[serde(default)]
    pub rules: Vec<ColumnRuleConfig>,
}

/// A named check on one column's value.
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnRuleConfig {
    /// Name reported in the rejected table and the run summary.
    pub name: String,
    /// Regular expression the value (as text) must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Smallest allowed value (inclusive), in the column's type.
    #[serde(default)]
    pub min: Option<serde_yaml::Value>,
    /// Largest allowed value (inclusive), in the column's type.
    #[serde(default)]
    pub max: Option<serde_yaml::Value>,
    /// The value must be one of these (compared as text).
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
    /// What a failure does: `reject` (default), `warn` or `fail`.
    #[serde(default)]
    pub action: RuleAction,
}

/// A named SQL check over the typed row.
#[derive(Debug, Clone, Deserialize)]
pub struct RowRuleConfig {
    /// Name reported in the rejected table and the run summary.
    pub name: String,
    /// SQL boolean expression over the typed columns; NULL counts as a pass.
    pub check: String,
    /// What a failure does: `reject` (default), `warn` or `fail`.
    #[serde(default)]
    pub action: RuleAction,
}

/// What happens to a row that breaks a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// The row goes to the rejected table with the rule named.
    #[default]
    Reject,
    /// The row is kept and the failure counted in the summary.
    Warn,
    /// The file is not loaded; nothing is committed for it.
    Fail,
}

/// How silver is kept.
#[derive(Debug, Clone, Deserialize)]
pub struct SilverConfig {
    /// Natural key; a later row with the same key replaces the earlier one.
    pub key: Vec<String>,
    /// Rows per silver upsert: a larger file is upserted in slices of this size, which
    /// bounds memory (the last line of a key still wins).
    #[serde(default = "default_silver_batch_rows")]
    pub batch_rows: u64,
    /// Columns `medallion optimize --zorder` orders silver's files by (default: `key`).
    #[serde(default)]
    pub zorder_by: Option<Vec<String>>,
    /// Replace a key's row by marking the old one deleted in a deletion vector (Delta
    /// reader 3 / writer 7) instead of rewriting the data file that holds it.
    #[serde(default)]
    pub deletion_vectors: bool,
}

/// A gold model: a SQL query over `silver` and the keys its rows are merged on.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldModelConfig {
    /// Table name under `gold/`, and in SQL `gold.<name>`.
    pub name: String,
    /// Output columns that identify a row of the model.
    pub keys: Vec<String>,
    /// DataFusion SQL over the table `silver`.
    pub sql: String,
    /// Output columns `medallion optimize --zorder` orders the table's files by
    /// (default: `keys`).
    #[serde(default)]
    pub zorder_by: Option<Vec<String>>,
}

fn default_raw_dir() -> String {
    "raw".into()
}
fn default_pattern() -> String {
    "*.csv".into()
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_delimiter() -> String {
    ",".into()
}
fn default_quote() -> String {
    "\"".into()
}
fn default_true() -> bool {
    true
}
fn default_null_values() -> Vec<String> {
    vec![String::new()]
}
fn default_max_record_bytes() -> usize {
    medallion_csv::Dialect::default().max_record_bytes
}
fn default_max_record_lines() -> usize {
    medallion_csv::Dialect::default().max_record_lines
}
fn default_max_field_bytes() -> usize {
    medallion_csv::Dialect::default().max_field_bytes
}
fn default_batch_files() -> usize {
    1000
}
fn default_batch_bytes() -> bytesize::ByteSize {
    bytesize::ByteSize::gib(1)
}
pub(super) fn default_silver_batch_rows() -> u64 {
    1 << 18
}
