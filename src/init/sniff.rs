//! Sniffs a sample file's dialect from its first 64 KiB: gzip, a UTF-8 byte-order mark,
//! the delimiter (`,` `;` tab `|`: the one that splits the lines into the most equal
//! number of fields) and the quote (`"`, or `'` when only it opens fields).

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use medallion_csv::{Dialect, RecordReader};

use crate::error::{MedallionError, Result};

/// How much of the (decompressed) start of the file the sniffer looks at.
const HEAD_BYTES: usize = 64 << 10;
/// Records per candidate delimiter that are compared.
const HEAD_RECORDS: usize = 50;

/// The dialect found, and the whole text stream to read records from.
pub struct Sniffed {
    pub gzip: bool,
    pub bom: bool,
    pub delimiter: u8,
    pub quote: u8,
    /// The decompressed file from its first byte (the head read back in front).
    pub text: Box<dyn BufRead>,
}

/// Open `path` (gzip or plain) and sniff its dialect.
pub fn sniff(path: &Path) -> Result<Sniffed> {
    let read_err = |source| MedallionError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(std::fs::File::open(path).map_err(read_err)?);
    let gzip = file
        .fill_buf()
        .map_err(read_err)?
        .starts_with(&[0x1f, 0x8b]);
    let mut stream: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut stream)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    if head.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(MedallionError::BadFile {
            file: path.display().to_string(),
            message: "the file is empty: there is nothing to infer a configuration from".into(),
        });
    }
    let bom = head.starts_with(b"\xEF\xBB\xBF");
    // The last line of a full head may be cut in the middle: leave it out.
    let whole = if head.len() == HEAD_BYTES {
        head.iter()
            .rposition(|&b| b == b'\n')
            .map_or(&head[..], |i| &head[..i])
    } else {
        &head[..]
    };
    let quote = sniff_quote(whole);
    let delimiter = sniff_delimiter(whole, quote);
    let text = Box::new(BufReader::new(Cursor::new(head).chain(stream)));
    Ok(Sniffed {
        gzip,
        bom,
        delimiter,
        quote,
        text,
    })
}

/// `'` only when it opens fields and `"` never appears; `"` otherwise.
fn sniff_quote(head: &[u8]) -> u8 {
    let opens = |q: u8| {
        head.windows(2)
            .filter(|w| w[1] == q && matches!(w[0], b',' | b';' | b'\t' | b'|' | b'\n'))
            .count()
    };
    if !head.contains(&b'"') && opens(b'\'') > 0 {
        b'\''
    } else {
        b'"'
    }
}

/// The candidate whose records most often have the same number of fields (more than
/// one), the larger number breaking ties; `,` for a file of one column.
fn sniff_delimiter(head: &[u8], quote: u8) -> u8 {
    let mut best = (0usize, 0usize, b',');
    for delimiter in [b',', b';', b'\t', b'|'] {
        let dialect = Dialect {
            delimiter,
            quote,
            ..Dialect::default()
        };
        let mut reader = RecordReader::new(Cursor::new(head), dialect);
        let mut counts = Vec::new();
        while counts.len() < HEAD_RECORDS {
            match reader.next_record() {
                Ok(Some(r)) => counts.push(r.fields.len()),
                _ => break,
            }
        }
        let Some(modal) = mode(&counts) else { continue };
        let agreeing = counts.iter().filter(|&&n| n == modal).count();
        if modal > 1 && (agreeing, modal) > (best.0, best.1) {
            best = (agreeing, modal, delimiter);
        }
    }
    best.2
}

fn mode(counts: &[usize]) -> Option<usize> {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    sorted
        .chunk_by(|a, b| a == b)
        .max_by_key(|run| (run.len(), run[0]))
        .map(|run| run[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_and_quotes() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1,2,3\n", b'"'), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1,5;2;3\n", b'"'), b';');
        assert_eq!(sniff_delimiter(b"a\tb\n\"x,y\"\t2\n", b'"'), b'\t');
        assert_eq!(sniff_delimiter(b"a|b\n1|2\n", b'"'), b'|');
        assert_eq!(sniff_delimiter(b"only\n1\n", b'"'), b',');
        assert_eq!(sniff_quote(b"a,b\n'x,y',2\n"), b'\'');
        assert_eq!(sniff_quote(b"a,b\n\"it's\",2\n"), b'"');
    }
}
