//! A tolerant CSV record reader with bounded memory.
//!
//! Contract: every physical record of the input comes out exactly once, in order, as a
//! [`Record`] with the line it starts on (line 1 is the first line), its fields as text,
//! and the [`Problem`]s found. Malformed input never stops the reader and never makes it
//! buffer more than about `2 × max_record_bytes`:
//! - a line longer than `max_record_bytes` is consumed without being stored past the
//!   limit and reported as [`Problem::LineTooLong`] with no fields;
//! - a quoted field still open after `max_record_lines` lines or `max_record_bytes`
//!   bytes (or at the end of the input) cuts the record at its first line
//!   ([`Problem::UnterminatedQuote`], fields split without quoting) and the lines after
//!   it are read again as records of their own, so one stray quote costs one line;
//! - fields with invalid UTF-8, NUL bytes or over `max_field_bytes` are reported (and
//!   kept lossily / truncated).
//!
//! Only I/O errors (including a corrupt compressed stream) are errors. Line endings may
//! be LF or CRLF; a UTF-8 BOM at the start is skipped; blank lines are skipped.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use csv_core::{ReadRecordResult, Terminator};

use crate::packed::{PackedRecord, pack, pack_contiguous};

/// How to split records, and the limits that bound memory.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    /// Largest record (one or more lines), in bytes.
    pub max_record_bytes: usize,
    /// Most physical lines one record (a quoted field with newlines) may span.
    pub max_record_lines: usize,
    /// Largest field, in bytes.
    pub max_field_bytes: usize,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            delimiter: b',',
            quote: b'"',
            max_record_bytes: 1 << 20,
            max_record_lines: 100,
            max_field_bytes: 256 << 10,
        }
    }
}

/// Something wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The physical line is longer than `max_record_bytes` (it was cut).
    LineTooLong { limit: usize },
    /// A quoted field was not closed within the limits or before the end of input.
    UnterminatedQuote { max_lines: usize, max_bytes: usize },
    /// Field `field` (0-based) is not valid UTF-8 from byte `at`.
    Encoding { field: usize, at: usize },
    /// Field `field` contains a NUL byte.
    NulByte { field: usize },
    /// Field `field` has `bytes` bytes, more than the limit (it was cut).
    FieldTooLarge {
        field: usize,
        bytes: usize,
        limit: usize,
    },
}

impl Problem {
    /// The rule name reported for this problem.
    pub fn rule(&self) -> &'static str {
        match self {
            Problem::LineTooLong { .. } => "line_too_long",
            Problem::UnterminatedQuote { .. } => "unterminated_quote",
            Problem::Encoding { .. } => "encoding",
            Problem::NulByte { .. } => "nul_byte",
            Problem::FieldTooLarge { .. } => "field_too_large",
        }
    }

    /// The field the problem is in, if it is about one field.
    pub fn field(&self) -> Option<usize> {
        match self {
            Problem::Encoding { field, .. }
            | Problem::NulByte { field }
            | Problem::FieldTooLarge { field, .. } => Some(*field),
            _ => None,
        }
    }

    /// A message without any of the record's content.
    pub fn message(&self) -> String {
        match self {
            Problem::LineTooLong { limit } => {
                format!("line longer than {limit} bytes (max_record_bytes); not parsed")
            }
            Problem::UnterminatedQuote {
                max_lines,
                max_bytes,
            } => format!(
                "quoted field not closed within {max_lines} lines / {max_bytes} bytes or before the end of the file; \
                 the record was cut at its first line"
            ),
            Problem::Encoding { at, .. } => format!("invalid UTF-8 at byte {at}"),
            Problem::NulByte { .. } => "contains a NUL byte".to_string(),
            Problem::FieldTooLarge { bytes, limit, .. } => {
                format!("{bytes} bytes, more than {limit} (max_field_bytes); cut")
            }
        }
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Physical line the record starts on.
    pub line: u64,
    pub fields: Vec<String>,
    pub problems: Vec<Problem>,
}

struct Line {
    no: u64,
    bytes: Vec<u8>,
    too_long: bool,
}

/// Reads records from a buffered input.
pub struct RecordReader<R> {
    input: R,
    dialect: Dialect,
    next_no: u64,
    pending: VecDeque<Line>,
    eof: bool,
    /// One parser for the whole input: building csv_core's state machine is costly.
    parser: Parser,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(input: R, dialect: Dialect) -> Self {
        RecordReader {
            input,
            parser: Parser::new(&dialect),
            dialect,
            next_no: 1,
            pending: VecDeque::new(),
            eof: false,
        }
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        Ok(self.next_packed()?.map(PackedRecord::into_record))
    }

    /// The next record with its fields in one string, or `None` at the end of the input.
    pub fn next_packed(&mut self) -> io::Result<Option<PackedRecord>> {
        let first = loop {
            match self.next_line()? {
                None => return Ok(None),
                Some(l) if l.bytes.is_empty() && !l.too_long => continue,
                Some(l) => break l,
            }
        };
        if first.too_long {
            // Not parsed: its fields would be cut at an arbitrary place.
            let problems = vec![Problem::LineTooLong {
                limit: self.dialect.max_record_bytes,
            }];
            return Ok(Some(PackedRecord {
                line: first.no,
                text: String::new(),
                ends: Vec::new(),
                problems,
            }));
        }
        self.parser.begin();
        let mut continuation: Vec<Line> = Vec::new();
        let mut bytes = first.bytes.len();
        let mut done = self.parser.feed(&first.bytes);
        while !done {
            let within = continuation.len() + 1 < self.dialect.max_record_lines
                && bytes <= self.dialect.max_record_bytes;
            let next = if within { self.next_line()? } else { None };
            match next {
                Some(l) if !l.too_long => {
                    bytes += l.bytes.len() + 1;
                    done = self.parser.feed(&l.bytes);
                    continuation.push(l);
                }
                other => {
                    // Limits reached, a too-long line, or the end of input: cut the record at
                    // its first line and read the rest again.
                    if let Some(l) = other {
                        continuation.push(l);
                    }
                    for l in continuation.into_iter().rev() {
                        self.pending.push_front(l);
                    }
                    let fields = first.bytes.split(|&b| b == self.dialect.delimiter);
                    let (text, ends, mut problems) = pack(fields, self.dialect.max_field_bytes);
                    problems.insert(
                        0,
                        Problem::UnterminatedQuote {
                            max_lines: self.dialect.max_record_lines,
                            max_bytes: self.dialect.max_record_bytes,
                        },
                    );
                    return Ok(Some(PackedRecord {
                        line: first.no,
                        text,
                        ends,
                        problems,
                    }));
                }
            }
        }
        let (text, ends, problems) = pack_contiguous(
            &self.parser.out[..self.parser.outlen],
            &self.parser.ends[..self.parser.endlen],
            self.dialect.max_field_bytes,
        );
        Ok(Some(PackedRecord {
            line: first.no,
            text,
            ends,
            problems,
        }))
    }

    /// The next physical line (without its terminator), stored up to the record limit.
    fn next_line(&mut self) -> io::Result<Option<Line>> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        if self.eof {
            return Ok(None);
        }
        let limit = self.dialect.max_record_bytes;
        let mut bytes = Vec::new();
        let mut too_long = false;
        let mut seen_any = false;
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                self.eof = true;
                if !seen_any {
                    return Ok(None);
                }
                break;
            }
            seen_any = true;
            let (chunk, used, newline) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            let room = (limit + 1).saturating_sub(bytes.len());
            if chunk.len() > room {
                too_long = true;
            }
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.input.consume(used);
            if newline {
                break;
            }
        }
        if bytes.last() == Some(&b'\r') && !too_long {
            bytes.pop();
        }
        if bytes.len() > limit {
            too_long = true;
            bytes.truncate(limit);
        }
        let no = self.next_no;
        self.next_no += 1;
        if no == 1 && bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
            bytes.drain(..3);
        }
        Ok(Some(Line {
            no,
            bytes,
            too_long,
        }))
    }
}

/// Incremental csv_core parsing of one record, fed line by line.
struct Parser {
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    outlen: usize,
    endlen: usize,
    complete: bool,
}

impl Parser {
    fn new(d: &Dialect) -> Self {
        let core = csv_core::ReaderBuilder::new()
            .delimiter(d.delimiter)
            .quote(d.quote)
            .terminator(Terminator::Any(b'\n'))
            .build();
        Parser {
            core,
            out: vec![0; 256],
            ends: vec![0; 16],
            outlen: 0,
            endlen: 0,
            complete: true,
        }
    }

    /// Start a record. After a complete record csv_core is already at the start of the
    /// next one; only a record cut mid-quote leaves state behind, which `reset` clears.
    fn begin(&mut self) {
        if !self.complete {
            self.core.reset();
        }
        self.outlen = 0;
        self.endlen = 0;
        self.complete = false;
    }

    /// Feed one line (its newline is added); true once the record is complete.
    fn feed(&mut self, line: &[u8]) -> bool {
        // An empty slice means "end of input" to csv_core: never pass one.
        (!line.is_empty() && self.run(line)) || self.run(b"\n")
    }

    fn run(&mut self, mut input: &[u8]) -> bool {
        loop {
            let (res, nin, nout, nend) = self.core.read_record(
                input,
                &mut self.out[self.outlen..],
                &mut self.ends[self.endlen..],
            );
            input = &input[nin..];
            self.outlen += nout;
            self.endlen += nend;
            match res {
                ReadRecordResult::InputEmpty => return false,
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record | ReadRecordResult::End => {
                    self.complete = true;
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
