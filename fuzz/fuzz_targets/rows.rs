//! Fuzz the row reader and the value-level validator: arbitrary bytes go through the
//! record reader (small limits, so the limit paths run often), then every field through
//! every column type's parser and the column checks. Must never panic, hang or grow
//! memory beyond the limits.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use medallion_csv::{ColumnCheck, ColumnType, Dialect, RecordReader, Value, ValueParser};

fn parsers() -> &'static Vec<(ValueParser, Vec<ColumnCheck>)> {
    static P: OnceLock<Vec<(ValueParser, Vec<ColumnCheck>)>> = OnceLock::new();
    P.get_or_init(|| {
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let types = ["string", "int", "bigint", "double", "decimal(12,3)", "decimal(38,10)", "bool", "date", "timestamp"];
        let mut out: Vec<(ValueParser, Vec<ColumnCheck>)> = types
            .iter()
            .map(|t| {
                let ty = ColumnType::parse(t).unwrap();
                let p = ValueParser { ty, format: None, tz };
                let mut checks = vec![ColumnCheck::Pattern(regex::Regex::new(r"^[A-Z]\d{3,8}$").unwrap())];
                if let (Ok(min), Ok(max)) = (p.parse("0"), p.parse("100")) {
                    checks.push(ColumnCheck::Range { min: Some(min), max: Some(max), bounds: "[0, 100]".into() });
                }
                (p, checks)
            })
            .collect();
        out.push((
            ValueParser { ty: ColumnType::Timestamp, format: Some("%Y-%m-%d %H:%M:%S%.f".into()), tz },
            vec![ColumnCheck::Allowed(vec!["a".into()])],
        ));
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let (dialect_byte, input) = data.split_first().map_or((0, data), |(b, rest)| (*b, rest));
    let dialect = Dialect {
        delimiter: if dialect_byte & 1 == 0 { b',' } else { b';' },
        quote: b'"',
        max_record_bytes: 256,
        max_record_lines: 1 + (dialect_byte as usize >> 4),
        max_field_bytes: 64,
    };
    let mut reader = RecordReader::new(input, dialect);
    let mut last_line = 0;
    while let Ok(Some(record)) = reader.next_record() {
        assert!(record.line > last_line, "line numbers increase");
        last_line = record.line;
        for field in &record.fields {
            assert!(field.len() <= 64 * 3, "fields are cut to the limit (lossy text may grow)");
            for (parser, checks) in parsers() {
                if let Ok(value) = parser.parse(field.trim()) {
                    for c in checks {
                        let _ = c.check(&value, field);
                    }
                    if let Value::Str(s) = value {
                        assert_eq!(s, field.trim());
                    }
                }
            }
        }
    }
});
