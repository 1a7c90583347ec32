//! Reads one raw file (CSV, or gzip-compressed CSV) as chunks of raw rows, never the
//! whole file at once.
//!
//! Contract: every record after the header comes out exactly once, in order, with the
//! line it starts on, its fields mapped to the configured columns (raw text, untrimmed),
//! and its structural problems (wrong field count, broken quoting, bad encoding, NUL
//! bytes, oversized lines or fields) as violations, so it can be kept in bronze and
//! rejected with reasons. Only problems with the file as a whole are errors: it cannot
//! be opened or decompressed, it is empty or binary, or its header does not match the
//! configuration (missing columns are named, with the closest header as a suggestion).

use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use medallion_csv::{PackedRecord, RecordReader, excerpt};

use super::RawFile;
use crate::config::SourceSpec;
use crate::error::{MedallionError, Result};
use crate::row::{RawRow, Violation};

/// The rules a record's structure breaks (found by the reader, not by the column
/// rules): bronze keeps the record's text, and its rejection names these.
pub const STRUCTURAL_RULES: [&str; 6] = [
    "field_count",
    "line_too_long",
    "unterminated_quote",
    "encoding",
    "nul_byte",
    "field_too_large",
];

/// The structural rules that cut a record: its fields mean nothing more.
pub const CUT_RULES: [&str; 2] = ["line_too_long", "unterminated_quote"];

/// Rows per chunk: bounds memory whatever the file size.
pub const CHUNK_ROWS: usize = 16 * 1024;

/// Reads a file's records chunk by chunk.
pub struct CsvChunks {
    records: RecordReader<Box<dyn BufRead + Send>>,
    /// For each configured column, the index of its field in a record (`None`: an
    /// optional column the file does not have).
    mapping: Vec<Option<usize>>,
    expected_fields: usize,
    names: Vec<String>,
    file: String,
    gzip: bool,
    /// Records read so far (after the header).
    pub rows_read: u64,
}

impl CsvChunks {
    /// Open the raw file (blocking) and check its header.
    pub fn open(raw: &RawFile, spec: &SourceSpec) -> Result<Self> {
        let file = raw.name.as_str();
        let bad = |message: String| MedallionError::BadFile {
            file: file.to_string(),
            message,
        };
        let mut f = raw.open()?;
        // The first two bytes tell gzip from text; a stream may hand them over one by one.
        let mut magic = [0u8; 2];
        let mut n = 0;
        while n < 2 {
            let got = f
                .read(&mut magic[n..])
                .map_err(|source| MedallionError::ReadFile {
                    path: raw.display_path(),
                    source,
                })?;
            if got == 0 {
                break;
            }
            n += got;
        }
        if n == 0 {
            return Err(bad("the file is empty (0 bytes)".into()));
        }
        let f = std::io::Cursor::new(magic[..n].to_vec()).chain(f);
        let gzip = n == 2 && magic == [0x1f, 0x8b];
        let input: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                1 << 20,
                MultiGzDecoder::new(BufReader::new(f)),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, f))
        };
        let records = RecordReader::new(input, spec.csv.dialect.clone());
        let names: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
        let mut chunks = CsvChunks {
            records,
            mapping: (0..spec.columns.len()).map(Some).collect(),
            expected_fields: spec.columns.len(),
            names,
            file: file.to_string(),
            gzip,
            rows_read: 0,
        };
        if spec.csv.header {
            let header = chunks
                .read_record()?
                .ok_or_else(|| bad("the file is empty (no header line)".into()))?;
            if !header.problems.is_empty() || header.fields().any(|f| f.contains('\0')) {
                return Err(bad(format!(
                    "the header line is not readable text ({}); the file looks binary",
                    header
                        .problems
                        .first()
                        .map_or("NUL bytes".into(), |p| p.message())
                )));
            }
            let names: Vec<String> = header.fields().map(str::to_string).collect();
            chunks.mapping = map_header(&names, spec, file)?;
            chunks.expected_fields = header.len();
        }
        Ok(chunks)
    }

    fn read_record(&mut self) -> Result<Option<PackedRecord>> {
        self.records
            .next_packed()
            .map_err(|e| MedallionError::BadFile {
                file: self.file.clone(),
                message: if self.gzip {
                    format!(
                        "cannot decompress (gzip) after {} rows: {e}",
                        self.rows_read
                    )
                } else {
                    format!("cannot read after {} rows: {e}", self.rows_read)
                },
            })
    }

    /// The next chunk of at most `CHUNK_ROWS` records; `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<RawRow>>> {
        let mut rows = Vec::with_capacity(1024);
        while rows.len() < CHUNK_ROWS {
            let Some(record) = self.read_record()? else {
                break;
            };
            self.rows_read += 1;
            rows.push(self.convert(record));
        }
        Ok(if rows.is_empty() { None } else { Some(rows) })
    }

    fn convert(&self, record: PackedRecord) -> RawRow {
        let mut problems: Vec<Violation> = Vec::new();
        let cut = record.problems.iter().any(|p| p.field().is_none());
        for p in &record.problems {
            let column = p
                .field()
                .and_then(|f| self.mapping.iter().position(|&m| m == Some(f)))
                .map(|c| self.names[c].as_str());
            problems.push(Violation::new(p.rule(), column, p.message()));
        }
        let n = record.len();
        if n != self.expected_fields && !cut {
            problems.push(Violation::new(
                "field_count",
                None,
                format!("expected {} fields, found {n}", self.expected_fields),
            ));
        }
        let spans = self
            .mapping
            .iter()
            .map(|&i| i.and_then(|i| record.span(i)))
            .collect();
        RawRow::packed(record.line, record.text, spans, problems, cut)
    }
}

/// Find each configured column's header; report every missing column at once. A
/// column that is optional (not required, or with a default) may be absent: its values
/// are missing (null, or the default), unless the header has a close misspelling of it.
fn map_header(header: &[String], spec: &SourceSpec, file: &str) -> Result<Vec<Option<usize>>> {
    let mapping: Vec<Option<usize>> = spec
        .columns
        .iter()
        .map(|c| {
            let exact = header.iter().position(|h| *h == c.header);
            exact.or_else(|| {
                header
                    .iter()
                    .position(|h| h.trim().eq_ignore_ascii_case(c.header.trim()))
            })
        })
        .collect();
    let extra: Vec<&str> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| !mapping.contains(&Some(*i)))
        .map(|(_, h)| h.as_str())
        .collect();
    let missing: Vec<&str> = spec
        .columns
        .iter()
        .zip(&mapping)
        .filter(|(c, m)| {
            let optional = !c.required || c.default.is_some();
            m.is_none() && (!optional || closest(&c.header, &extra).is_some())
        })
        .map(|(c, _)| c.header.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(mapping);
    }
    let mut message = format!(
        "header does not match the configured columns: missing {}",
        quote_list(&missing)
    );
    if !extra.is_empty() {
        message.push_str(&format!("; unexpected {}", quote_list(&extra)));
    }
    let hints: Vec<String> = missing
        .iter()
        .filter_map(|m| closest(m, &extra).map(|e| format!("{} for {}", excerpt(e), excerpt(m))))
        .collect();
    if !hints.is_empty() {
        message.push_str(&format!(" (did you mean {}?)", hints.join(", ")));
    }
    let delim = spec.csv.dialect.delimiter;
    if header.len() == 1
        && [b';', b'\t', b'|', b',']
            .iter()
            .any(|d| *d != delim && header[0].as_bytes().contains(d))
    {
        message.push_str(" (wrong delimiter?)");
    }
    Err(MedallionError::BadFile {
        file: file.to_string(),
        message,
    })
}

/// The header among `extra` that looks like a misspelling of `wanted` (at most 3 edits).
fn closest<'a>(wanted: &str, extra: &[&'a str]) -> Option<&'a str> {
    extra
        .iter()
        .map(|e| {
            let d = strsim::levenshtein(&wanted.to_lowercase(), &e.trim().to_lowercase());
            (d, *e)
        })
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| excerpt(s).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
