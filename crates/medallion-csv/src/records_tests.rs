//! Unit tests of the record reader: line numbers, quoting, limits and recovery.

use super::*;

fn read_all(input: &[u8], d: Dialect) -> Vec<Record> {
    let mut r = RecordReader::new(input, d);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec);
    }
    out
}

fn small() -> Dialect {
    Dialect {
        max_record_bytes: 64,
        max_record_lines: 3,
        max_field_bytes: 16,
        ..Dialect::default()
    }
}

fn rules(r: &Record) -> Vec<&'static str> {
    r.problems.iter().map(Problem::rule).collect()
}

#[test]
fn plain_records_with_line_numbers() {
    let recs = read_all(b"a,b\n1,2\r\n\n3,\"x,y\"\n", Dialect::default());
    assert_eq!(recs.len(), 3);
    assert_eq!(
        (recs[1].line, recs[1].fields.clone()),
        (2, vec!["1".to_string(), "2".to_string()])
    );
    assert_eq!(
        (recs[2].line, recs[2].fields.clone()),
        (4, vec!["3".to_string(), "x,y".to_string()])
    );
    assert!(recs.iter().all(|r| r.problems.is_empty()));
}

#[test]
fn bom_and_missing_final_newline() {
    let recs = read_all(b"\xEF\xBB\xBFa,b\n1,2", Dialect::default());
    assert_eq!(recs[0].fields, ["a", "b"]);
    assert_eq!(recs[1].fields, ["1", "2"]);
}

#[test]
fn quoted_newlines_make_one_record() {
    let recs = read_all(b"1,\"two\n\nlines\"\n2,x\n", Dialect::default());
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].fields[1], "two\n\nlines");
    assert_eq!(recs[1].line, 4);
}

#[test]
fn unterminated_quote_costs_one_line() {
    let recs = read_all(b"1,\"open\n2,b\n3,c\n4,d\n5,e\n", small());
    assert_eq!(rules(&recs[0]), ["unterminated_quote"]);
    assert_eq!(recs[0].line, 1);
    let rest: Vec<u64> = recs[1..].iter().map(|r| r.line).collect();
    assert_eq!(rest, [2, 3, 4, 5]);
    assert!(recs[1..].iter().all(|r| r.problems.is_empty()));
}

#[test]
fn unterminated_quote_at_end_of_input() {
    let recs = read_all(b"1,a\n2,\"b\n", Dialect::default());
    assert_eq!(recs.len(), 2);
    assert_eq!(rules(&recs[1]), ["unterminated_quote"]);
}

#[test]
fn long_lines_and_fields_are_cut() {
    let long = format!("1,{}\n2,b\n", "x".repeat(100));
    let recs = read_all(long.as_bytes(), small());
    assert_eq!(rules(&recs[0]), ["line_too_long"]);
    assert!(recs[0].fields.is_empty());
    assert_eq!(recs[1].fields, ["2", "b"]);
    let recs = read_all(format!("1,{}\n", "y".repeat(20)).as_bytes(), small());
    assert_eq!(rules(&recs[0]), ["field_too_large"]);
    assert_eq!(recs[0].fields[1].len(), 16);
}

#[test]
fn encoding_and_nul() {
    let recs = read_all(b"a\xFFb,c\x00d\n", Dialect::default());
    assert_eq!(rules(&recs[0]), ["encoding", "nul_byte"]);
    assert_eq!(recs[0].problems[0].field(), Some(0));
}

#[test]
fn tiny_output_buffers_grow() {
    let wide: Vec<String> = (0..100).map(|i| format!("field{i}")).collect();
    let line = format!("{}\n", wide.join(","));
    let recs = read_all(line.as_bytes(), Dialect::default());
    assert_eq!(recs[0].fields, wide);
}
