//! `medallion validate FILE…`: a dry run of the reader and the validator over files
//! anywhere on the local disk (inside the landing zone or not). Nothing is written:
//! no table, no ledger row, no lease. Per file it counts the rows that would be
//! accepted and rejected, the rejections per rule and the warnings per rule, and keeps
//! the first few offending lines per rule with at most [`SHOWN_CHARS`] characters of
//! their content (rows can hold personal data). A file that would fail as a whole (it
//! cannot be opened, its header does not fit, a `fail` rule breaks) gets its error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::Int64Type;
use deltalake::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::RawFile;
use crate::ingest::reader::CsvChunks;
use crate::report::merge_counts;
use crate::row::RawRow;
use crate::schema::{REJECTION_REASONS, SOURCE_LINE};
use crate::zones::Lineage;
use crate::zones::silver::Validator;

/// Offending lines kept per rule.
pub const EXAMPLES_PER_RULE: usize = 3;
/// Characters of a row's content shown at most.
pub const SHOWN_CHARS: usize = 64;

/// What loading one file would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileCheck {
    pub file: String,
    pub rows_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Rejected rows per rule (a row failing two rules counts under both).
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Rows that broke each `warn` rule (they are still accepted).
    pub warnings: BTreeMap<String, u64>,
    /// The first few rejected lines per rule.
    pub examples: BTreeMap<String, Vec<Example>>,
    /// Why the whole file would fail: nothing of it would load.
    pub error: Option<String>,
}

/// One offending line.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub line: u64,
    pub message: String,
    /// The row's fields joined by the delimiter, cut to [`SHOWN_CHARS`] characters.
    pub content: String,
}

/// Check every file against the rules of `source`, or else of the source whose
/// pattern matches the file's name (the only source, when there is one); a file's
/// problems are its own, so every file is checked.
pub async fn check_files(
    p: Arc<Pipeline>,
    paths: &[PathBuf],
    source: Option<&str>,
) -> Result<Vec<FileCheck>> {
    if let Some(name) = source.filter(|n| !p.sources.iter().any(|s| s.name == *n)) {
        return Err(MedallionError::Usage(format!("unknown source \"{name}\"")));
    }
    let mut validators: HashMap<String, (Arc<Pipeline>, Arc<Validator>)> = HashMap::new();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let Some(name) = source_of(&p, path, source) else {
            out.push(FileCheck {
                file: path.display().to_string(),
                error: Some(
                    "no source's pattern matches the file's name: name one with --source".into(),
                ),
                ..FileCheck::default()
            });
            continue;
        };
        if !validators.contains_key(&name) {
            let focused = Arc::new(p.for_source(&name).unwrap_or_else(|| (*p).clone()));
            let v = Arc::new(Validator::new(focused.clone())?);
            validators.insert(name.clone(), (focused, v));
        }
        let (p, v) = validators[&name].clone();
        let path = path.clone();
        let check = tokio::task::spawn_blocking(move || check_file(&p, &v, &path))
            .await
            .map_err(|e| MedallionError::Internal(format!("checking a file stopped: {e}")))?;
        out.push(check);
    }
    Ok(out)
}

/// The source a file is checked against.
fn source_of(p: &Pipeline, path: &Path, chosen: Option<&str>) -> Option<String> {
    if let Some(name) = chosen {
        return Some(name.to_string());
    }
    if p.single_source() {
        return Some(p.source.name.clone());
    }
    let name = path.file_name()?.to_string_lossy();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    p.sources
        .iter()
        .find(|s| s.pattern.matches(name))
        .map(|s| s.name.clone())
}

fn check_file(p: &Pipeline, validator: &Validator, path: &Path) -> FileCheck {
    let mut check = FileCheck {
        file: path.display().to_string(),
        ..FileCheck::default()
    };
    if let Err(e) = read_into(p, validator, path, &mut check) {
        let file = std::mem::take(&mut check.file);
        check = FileCheck {
            file,
            error: Some(e.to_string()),
            ..FileCheck::default()
        };
    }
    check
}

fn read_into(p: &Pipeline, validator: &Validator, path: &Path, c: &mut FileCheck) -> Result<()> {
    let raw = local_file(path, &c.file)?;
    let lineage = Lineage {
        source_file: c.file.clone(),
        batch_id: "dry-run".into(),
        received_at: chrono::Utc::now(),
    };
    let delimiter = char::from(p.source.csv.dialect.delimiter);
    let mut reader = CsvChunks::open(&raw, &p.source)?;
    while let Some(rows) = reader.next_chunk()? {
        let v = validator
            .validate(&rows, &lineage)?
            .unless_failed(&c.file)?;
        c.rows_read += rows.len() as u64;
        c.accepted += v.accepted.num_rows() as u64;
        c.rejected += v.rejected.num_rows() as u64;
        merge_counts(&mut c.rejected_by_rule, &v.rejected_by_rule);
        merge_counts(&mut c.warnings, &v.warnings);
        collect_examples(&v.rejected, &rows, delimiter, &mut c.examples)?;
    }
    Ok(())
}

/// A local file, named by the path given.
fn local_file(path: &Path, name: &str) -> Result<RawFile> {
    let meta = std::fs::metadata(path).map_err(|e| MedallionError::BadFile {
        file: name.to_string(),
        message: format!("cannot read it: {e}"),
    })?;
    if !meta.is_file() {
        return Err(MedallionError::BadFile {
            file: name.to_string(),
            message: "not a file".into(),
        });
    }
    Ok(RawFile::local(name.to_string(), path.to_path_buf(), &meta))
}

/// Keep the first rejected lines of each rule, from the rejected rows of a chunk.
fn collect_examples(
    rejected: &RecordBatch,
    rows: &[RawRow],
    delimiter: char,
    examples: &mut BTreeMap<String, Vec<Example>>,
) -> Result<()> {
    if rejected.num_rows() == 0 {
        return Ok(());
    }
    let missing = |name: &str| MedallionError::Internal(format!("rejected rows lack {name}"));
    let lines = rejected
        .column_by_name(SOURCE_LINE)
        .and_then(|a| a.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| missing(SOURCE_LINE))?;
    let reasons = rejected
        .column_by_name(REJECTION_REASONS)
        .and_then(|a| a.as_list_opt::<i32>())
        .ok_or_else(|| missing(REJECTION_REASONS))?;
    let by_line: HashMap<u64, &RawRow> = rows.iter().map(|r| (r.line, r)).collect();
    for i in 0..rejected.num_rows() {
        let line = lines.value(i) as u64;
        let list = reasons.value(i);
        let Some(items) = list.as_struct_opt() else {
            continue;
        };
        let (Some(rule), Some(message)) = (
            items
                .column_by_name("rule")
                .and_then(|a| a.as_string_opt::<i32>()),
            items
                .column_by_name("message")
                .and_then(|a| a.as_string_opt::<i32>()),
        ) else {
            continue;
        };
        for j in 0..items.len() {
            let kept = examples.entry(rule.value(j).to_string()).or_default();
            if kept.len() < EXAMPLES_PER_RULE {
                kept.push(Example {
                    line,
                    message: message.value(j).to_string(),
                    content: by_line
                        .get(&line)
                        .map(|r| shown(r, delimiter))
                        .unwrap_or_default(),
                });
            }
        }
    }
    Ok(())
}

/// A row's content, cut to [`SHOWN_CHARS`] characters (with `…` when cut).
fn shown(row: &RawRow, delimiter: char) -> String {
    let text: Vec<&str> = row.fields().map(|f| f.unwrap_or("")).collect();
    truncate(&text.join(&delimiter.to_string()), SHOWN_CHARS)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_cut_to_the_shown_length_on_a_character_boundary() {
        assert_eq!(truncate("abc", 64), "abc");
        let long = "é".repeat(100);
        let cut = truncate(&long, SHOWN_CHARS);
        assert_eq!(cut.chars().count(), SHOWN_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_row_shows_its_fields_joined_by_the_delimiter() {
        let row = RawRow::new(
            2,
            vec![Some("a".into()), None, Some("c".into())],
            vec![],
            false,
        );
        assert_eq!(shown(&row, ';'), "a;;c");
    }
}
