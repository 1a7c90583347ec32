//! Reads one raw CSV file as chunks of raw rows, never the whole file at once.
//!
//! Contract: every physical record after the header comes out exactly once, in order,
//! with the line it starts on and its fields mapped to the configured columns (raw
//! text, untrimmed). A record that is malformed (wrong field count, invalid UTF-8)
//! still comes out, carrying the structural problems found, so it can be kept in
//! bronze and rejected with a reason. Only problems with the file as a whole (cannot
//! be opened, header does not match the configuration) are errors.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::config::SourceSpec;
use crate::error::{MedallionError, Result};
use crate::zones::Violation;

/// Rows per chunk: bounds memory whatever the file size.
pub const CHUNK_ROWS: usize = 16 * 1024;

/// One record of the file.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// Physical line the record starts on (the header is line 1).
    pub line: u64,
    /// Raw text per configured column; `None` when the record has no such field.
    pub fields: Vec<Option<String>>,
    /// Structural problems (wrong field count, bad encoding).
    pub problems: Vec<Violation>,
}

/// Reads a file's records chunk by chunk.
pub struct CsvChunks {
    reader: csv::Reader<Box<dyn Read + Send>>,
    /// For each configured column, the index of its field in a record.
    mapping: Vec<usize>,
    expected_fields: usize,
    names: Vec<String>,
    record: csv::ByteRecord,
    /// Records read so far.
    pub rows_read: u64,
}

impl CsvChunks {
    /// Open `path` (shown as `file` in messages) and check its header.
    pub fn open(path: &Path, file: &str, spec: &SourceSpec) -> Result<Self> {
        let f = File::open(path).map_err(|source| MedallionError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let input: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(1 << 20, f));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(spec.csv.delimiter)
            .quote(spec.csv.quote)
            .from_reader(input);
        let names: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
        let (mapping, expected_fields) = if spec.csv.header {
            let mut header = csv::ByteRecord::new();
            let got =
                reader
                    .read_byte_record(&mut header)
                    .map_err(|e| MedallionError::BadFile {
                        file: file.to_string(),
                        message: format!("cannot read the header: {e}"),
                    })?;
            if !got {
                return Err(MedallionError::BadFile {
                    file: file.to_string(),
                    message: "the file is empty (no header line)".into(),
                });
            }
            let header: Vec<String> = header
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let text = String::from_utf8_lossy(f).into_owned();
                    if i == 0 {
                        text.trim_start_matches('\u{feff}').to_string()
                    } else {
                        text
                    }
                })
                .collect();
            (map_header(&header, spec, file)?, header.len())
        } else {
            ((0..spec.columns.len()).collect(), spec.columns.len())
        };
        Ok(CsvChunks {
            reader,
            mapping,
            expected_fields,
            names,
            record: csv::ByteRecord::new(),
            rows_read: 0,
        })
    }

    /// The next chunk of at most `CHUNK_ROWS` records; `None` at the end of the file.
    pub fn next_chunk(&mut self, file: &str) -> Result<Option<Vec<RawRow>>> {
        let mut rows = Vec::with_capacity(CHUNK_ROWS.min(1024));
        while rows.len() < CHUNK_ROWS {
            let more = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| MedallionError::BadFile {
                    file: file.to_string(),
                    message: format!("unreadable after {} rows: {e}", self.rows_read),
                })?;
            if !more {
                break;
            }
            self.rows_read += 1;
            rows.push(self.convert());
        }
        Ok(if rows.is_empty() { None } else { Some(rows) })
    }

    fn convert(&self) -> RawRow {
        let line = self.record.position().map_or(0, |p| p.line());
        let mut problems = Vec::new();
        let n = self.record.len();
        if n != self.expected_fields {
            problems.push(Violation::new(
                "field_count",
                None,
                format!("expected {} fields, found {n}", self.expected_fields),
            ));
        }
        let fields = self
            .mapping
            .iter()
            .zip(&self.names)
            .map(|(&idx, name)| {
                let bytes = self.record.get(idx)?;
                Some(match std::str::from_utf8(bytes) {
                    Ok(s) => s.to_string(),
                    Err(e) => {
                        problems.push(Violation::new(
                            "encoding",
                            Some(name),
                            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                        ));
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                })
            })
            .collect();
        RawRow {
            line,
            fields,
            problems,
        }
    }
}

/// Find each configured column's header; report every missing column at once.
fn map_header(header: &[String], spec: &SourceSpec, file: &str) -> Result<Vec<usize>> {
    let mut mapping = Vec::new();
    let mut missing = Vec::new();
    for c in &spec.columns {
        let exact = header.iter().position(|h| *h == c.header);
        let loose = || {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(c.header.trim()))
        };
        match exact.or_else(loose) {
            Some(i) => mapping.push(i),
            None => missing.push(c.header.as_str()),
        }
    }
    if missing.is_empty() {
        return Ok(mapping);
    }
    let extra: Vec<&str> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| !mapping.contains(i))
        .map(|(_, h)| h.as_str())
        .collect();
    let mut message = format!(
        "header does not match the configured columns: missing {}",
        quote_list(&missing)
    );
    if !extra.is_empty() {
        message.push_str(&format!("; unexpected {}", quote_list(&extra)));
    }
    if header.len() == 1 && header[0].contains([';', '\t', '|']) {
        message.push_str(" (wrong delimiter?)");
    }
    Err(MedallionError::BadFile {
        file: file.to_string(),
        message,
    })
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("{}", crate::types::excerpt(s)))
        .collect::<Vec<_>>()
        .join(", ")
}
