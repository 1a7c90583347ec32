//! A record's fields as one string and the end of each field in it: two allocations
//! per record instead of one per field, which was most of the reader's own time on
//! files of short fields. [`Record`](crate::Record) is the same record with a string
//! per field.

use crate::records::{Problem, Record};

/// One record, its fields one after the other in `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRecord {
    /// Physical line the record starts on.
    pub line: u64,
    /// The fields' text, concatenated.
    pub text: String,
    /// Where each field ends in `text` (field `i` starts where field `i - 1` ends).
    pub ends: Vec<usize>,
    pub problems: Vec<Problem>,
}

impl PackedRecord {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The byte range of field `i` in `text`.
    pub fn span(&self, i: usize) -> Option<(usize, usize)> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some((start, end))
    }

    /// Field `i`'s text.
    pub fn field(&self, i: usize) -> Option<&str> {
        self.span(i).map(|(s, e)| &self.text[s..e])
    }

    /// Every field's text, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.field(i))
    }

    /// The same record with a string per field.
    pub fn into_record(self) -> Record {
        Record {
            line: self.line,
            fields: self.fields().map(str::to_string).collect(),
            problems: self.problems,
        }
    }
}

/// Fields `raw[..ends[0]]`, `raw[ends[0]..ends[1]]`, ... as text, checking encoding,
/// NUL bytes and size. The common case (valid UTF-8, no NUL, no field too large) is
/// checked on the whole buffer at once and copied in one piece.
pub(crate) fn pack_contiguous(
    raw: &[u8],
    ends: &[usize],
    max_field_bytes: usize,
) -> (String, Vec<usize>, Vec<Problem>) {
    let mut start = 0;
    let sizes_ok = ends.iter().all(|&end| {
        let ok = end - start <= max_field_bytes;
        start = end;
        ok
    });
    if sizes_ok
        && !raw.contains(&0)
        && let Ok(text) = std::str::from_utf8(raw)
        && ends.iter().all(|&e| text.is_char_boundary(e))
    {
        return (text.to_string(), ends.to_vec(), Vec::new());
    }
    let mut start = 0;
    let fields = ends.iter().map(|&end| {
        let f = &raw[start..end];
        start = end;
        f
    });
    pack(fields, max_field_bytes)
}

/// `fields` as text, checking each for encoding, NUL bytes and size (a field too large
/// is cut, invalid UTF-8 replaced).
pub(crate) fn pack<'a>(
    fields: impl Iterator<Item = &'a [u8]>,
    max_field_bytes: usize,
) -> (String, Vec<usize>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut text = String::new();
    let mut ends = Vec::new();
    for (i, f) in fields.enumerate() {
        let mut f = f;
        if f.len() > max_field_bytes {
            problems.push(Problem::FieldTooLarge {
                field: i,
                bytes: f.len(),
                limit: max_field_bytes,
            });
            f = &f[..max_field_bytes];
        }
        if f.contains(&0) {
            problems.push(Problem::NulByte { field: i });
        }
        match std::str::from_utf8(f) {
            Ok(s) => text.push_str(s),
            Err(e) => {
                problems.push(Problem::Encoding {
                    field: i,
                    at: e.valid_up_to(),
                });
                text.push_str(&String::from_utf8_lossy(f));
            }
        }
        ends.push(text.len());
    }
    (text, ends, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str, ends: &[usize]) -> Vec<String> {
        let r = PackedRecord {
            line: 1,
            text: text.into(),
            ends: ends.to_vec(),
            problems: vec![],
        };
        r.fields().map(str::to_string).collect()
    }

    #[test]
    fn the_fast_path_and_the_field_by_field_path_agree() {
        let cases: Vec<(&[u8], Vec<usize>)> = vec![
            (b"abc", vec![1, 1, 3]),
            ("é\u{e9}x".as_bytes(), vec![2, 4, 5]),
            (b"a\0b", vec![1, 3]),
            (b"a\xffb", vec![1, 3]),
            // Valid as a whole, not field by field: a character split between two.
            ("é".as_bytes(), vec![1, 2]),
            (b"abcdefgh", vec![6, 8]),
        ];
        for (raw, ends) in cases {
            let fast = pack_contiguous(raw, &ends, 4);
            let mut start = 0;
            let slow = pack(
                ends.iter().map(|&e| {
                    let f = &raw[start..e];
                    start = e;
                    f
                }),
                4,
            );
            assert_eq!(fast, slow, "{raw:?} {ends:?}");
        }
        let (text, ends, problems) = pack_contiguous(b"ab,c", &[2, 2, 4], 10);
        assert_eq!(fields(&text, &ends), ["ab", "", ",c"]);
        assert!(problems.is_empty());
    }
}
