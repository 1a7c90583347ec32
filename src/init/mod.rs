//! `medallion init --from FILE`: a starting `config.yaml` inferred from a sample file,
//! once, for a person to review (instead of a schema guessed on every run).
//!
//! Contract: the file's dialect is sniffed ([`sniff`]), its first `sample_rows` records
//! are read with the reader's own record splitter, and every column gets the narrowest
//! type the reader's own parser accepts for all its values ([`types`]), `required` when
//! no value is missing, and a name (the header made an identifier, the header kept as
//! `source:` when it differs). The silver key is the smallest set of required columns
//! unique over the sample ([`key`]). The rendered YAML ([`render`]) is checked with the
//! configuration loader before anything is written, so what `init` writes passes
//! `validate` and loads the sample it came from. An existing file is never overwritten
//! unless `force` is set.

mod key;
mod render;
pub(crate) mod sniff;
mod types;

use std::path::{Path, PathBuf};

use medallion_csv::{ColumnType, Dialect, Record, RecordReader, ValueParser};

use crate::error::{MedallionError, Result};
use key::KeySample;
use types::{ColumnStats, Inferred};

/// What `init` is asked to do.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The sample file.
    pub from: PathBuf,
    /// The configuration to write.
    pub config: PathBuf,
    /// The source's name; by default the sample's file name made an identifier.
    pub name: Option<String>,
    /// Overwrite an existing configuration.
    pub force: bool,
    /// Data rows read from the sample.
    pub sample_rows: u64,
}

/// One inferred column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The header, when it is not `name` itself.
    pub header: Option<String>,
    pub inferred: Inferred,
    pub required: bool,
    /// Sampled rows without a value.
    pub missing: u64,
}

/// Everything inferred from the sample.
#[derive(Debug, Clone)]
pub struct Inference {
    pub name: String,
    pub pattern: String,
    pub gzip: bool,
    pub bom: bool,
    pub delimiter: u8,
    pub quote: u8,
    pub header: bool,
    /// Data rows read (malformed records excluded).
    pub rows: u64,
    /// Malformed records left out.
    pub skipped: u64,
    pub columns: Vec<Column>,
    /// Positions of the key columns.
    pub key: Vec<usize>,
    /// A YAML comment on how the key was chosen.
    pub key_note: String,
}

/// Infer a configuration from the sample, check it, and write it.
pub async fn init(opts: &InitOptions) -> Result<Inference> {
    if opts.config.exists() && !opts.force {
        return Err(MedallionError::Usage(format!(
            "{} already exists; pass --force to overwrite it",
            opts.config.display()
        )));
    }
    if let Some(name) = &opts.name
        && !crate::config::valid_name(name)
    {
        return Err(MedallionError::Usage(format!(
            "--name \"{name}\" must be a SQL identifier (letters, digits, _)"
        )));
    }
    let from = opts.from.clone();
    let rows = opts.sample_rows;
    let mut inf = tokio::task::spawn_blocking(move || infer(&from, rows))
        .await
        .map_err(|e| MedallionError::Internal(format!("the inference task failed: {e}")))??;
    if let Some(name) = &opts.name {
        name.clone_into(&mut inf.name);
    }
    let text = render::render(&inf, &opts.from.display().to_string());
    let base = opts
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Err(errors) = crate::config::load_str(&text, base).await {
        let errors = crate::error::ConfigErrors {
            file: opts.config.clone(),
            errors,
        };
        return Err(MedallionError::Internal(format!(
            "the inferred configuration does not validate (please report this): {errors}"
        )));
    }
    std::fs::write(&opts.config, text).map_err(|e| {
        MedallionError::Usage(format!("cannot write {}: {e}", opts.config.display()))
    })?;
    Ok(inf)
}

/// Sniff, read and infer (blocking).
fn infer(path: &Path, sample_rows: u64) -> Result<Inference> {
    let sniffed = sniff::sniff(path)?;
    let dialect = Dialect {
        delimiter: sniffed.delimiter,
        quote: sniffed.quote,
        ..Dialect::default()
    };
    let mut records = RecordReader::new(sniffed.text, dialect);
    let read_err = |source| MedallionError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let Some(first) = records.next_record().map_err(read_err)? else {
        return Err(MedallionError::BadFile {
            file: path.display().to_string(),
            message: "no record to infer a configuration from".into(),
        });
    };
    let width = first.fields.len();
    let mut stats = vec![ColumnStats::new(chrono_tz::UTC, sample_rows.saturating_add(1)); width];
    let mut sample = KeySample::new(width);
    let (mut rows, mut skipped) = (0u64, 0u64);
    while rows < sample_rows {
        let Some(r) = records.next_record().map_err(read_err)? else {
            break;
        };
        if observe(&r, &mut stats, &mut sample) {
            rows += 1;
        } else {
            skipped += 1;
        }
    }
    let header = is_header(&first, &stats);
    if !header && observe(&first, &mut stats, &mut sample) {
        rows += 1;
    }
    let columns = name_columns(&first, header, &stats, rows);
    let (key, key_note) = choose_key(&columns, &sample, rows);
    let mut columns = columns;
    for &k in &key {
        columns[k].required = true;
    }
    Ok(Inference {
        name: source_name(path),
        pattern: pattern(path),
        gzip: sniffed.gzip,
        bom: sniffed.bom,
        delimiter: sniffed.delimiter,
        quote: sniffed.quote,
        header,
        rows,
        skipped,
        columns,
        key,
        key_note,
    })
}

/// Feed one well-formed record to the statistics; `false` for a malformed one.
fn observe(r: &Record, stats: &mut [ColumnStats], sample: &mut KeySample) -> bool {
    if !r.problems.is_empty() || r.fields.len() != stats.len() {
        return false;
    }
    let values: Vec<Option<&str>> = r
        .fields
        .iter()
        .map(|f| Some(f.trim()).filter(|v| !render::NULL_VALUES.contains(v)))
        .collect();
    for (s, v) in stats.iter_mut().zip(&values) {
        s.observe(*v);
    }
    sample.push(&values);
    true
}

/// The first record is a header when its fields are distinct and non-empty, and none
/// of them reads as the (non-string) type the rows below give its column.
fn is_header(first: &Record, stats: &[ColumnStats]) -> bool {
    let fields: Vec<&str> = first.fields.iter().map(|f| f.trim()).collect();
    let distinct = fields
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len()
        == fields.len();
    if !first.problems.is_empty() || !distinct || fields.iter().any(|f| f.is_empty()) {
        return false;
    }
    fields.iter().zip(stats).all(|(f, s)| {
        let inferred = s.infer();
        let ty = ColumnType::parse(&inferred.ty).expect("inferred types parse");
        let parser = ValueParser {
            ty,
            format: inferred.format,
            tz: chrono_tz::UTC,
        };
        ty == ColumnType::String || parser.parse(f).is_err()
    })
}

/// Names (the header as identifiers, or `column_N`), types and `required`.
fn name_columns(first: &Record, header: bool, stats: &[ColumnStats], rows: u64) -> Vec<Column> {
    let mut taken = std::collections::HashSet::new();
    stats
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let raw = header.then(|| first.fields[i].trim().to_string());
            let mut name = raw
                .as_deref()
                .map(identifier)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("column_{}", i + 1));
            let base = name.clone();
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = format!("{base}_{n}");
                n += 1;
            }
            Column {
                header: raw.filter(|h| *h != name),
                name,
                inferred: s.infer(),
                required: rows > 0 && s.missing == 0,
                missing: s.missing,
            }
        })
        .collect()
}

/// The smallest unique set of columns present in all but at most 1 % of the rows; all
/// of those, or the first column, when no set of up to four is unique.
fn choose_key(columns: &[Column], sample: &KeySample, rows: u64) -> (Vec<usize>, String) {
    let required: Vec<usize> = (0..columns.len())
        .filter(|&i| {
            let c = &columns[i];
            rows > 0 && c.missing <= rows / 100 && c.inferred.ty != "double"
        })
        .collect();
    let (others, preferred): (Vec<usize>, Vec<usize>) = required
        .iter()
        .partition(|&&i| columns[i].inferred.ty.starts_with("decimal"));
    if let Some(key) = sample.smallest_unique(&preferred, &others) {
        let note = format!(
            "# Natural key: the smallest set of columns unique over the {rows} sampled rows."
        );
        return (key, note);
    }
    if required.is_empty() {
        let note =
            "# No column is present in every sampled row: the key below is the first column,\n  \
                    # made required. Choose the real key."
                .to_string();
        return (vec![0], note);
    }
    let note = format!(
        "# No set of up to {} columns is unique over the sample: the key below takes every\n  \
         # column present in (nearly) every row, so equal rows are kept once. Choose the real key.",
        key::MAX_KEY_COLUMNS
    );
    (required, note)
}

/// `Start Time (UTC)` → `start_time_utc`; a leading digit gets a `c_` prefix.
fn identifier(header: &str) -> String {
    let mut out = String::new();
    for ch in header.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("c_{out}")
    } else {
        out
    }
}

/// The file's name without `.gz` and its extension, as an identifier.
fn source_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    // A date or sequence number in the name is the file's, not the source's.
    let id = identifier(stem);
    let mut parts: Vec<&str> = id.split('_').collect();
    while parts.len() > 1
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        parts.pop();
    }
    let id = parts.join("_");
    // A name that starts with a digit (`2026-01-01.csv`) names no source.
    if id.is_empty() || stem.starts_with(|c: char| c.is_ascii_digit()) {
        "source".into()
    } else {
        id
    }
}

/// `*.<extension>` of the file (without `.gz`; compressed files match too), or `*`.
fn pattern(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => format!("*.{ext}"),
        _ => "*".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_headers_and_files() {
        assert_eq!(identifier("Start Time (UTC)"), "start_time_utc");
        assert_eq!(identifier("2nd-reading"), "c_2nd_reading");
        assert_eq!(identifier("kWh"), "kwh");
        assert_eq!(
            source_name(Path::new("/x/Meter Readings.csv.gz")),
            "meter_readings"
        );
        assert_eq!(
            source_name(Path::new("readings_2026-01-01.csv")),
            "readings"
        );
        assert_eq!(source_name(Path::new("2026-01-01.csv")), "source");
        assert_eq!(pattern(Path::new("/x/readings-2024.tsv.gz")), "*.tsv");
        assert_eq!(pattern(Path::new("export")), "*");
    }
}
