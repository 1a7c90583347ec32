//! Column types and the strict parsing of raw CSV text into typed values.
//!
//! Contract: `parse_value` either returns the exact value the text denotes or an error
//! message saying why not. Nothing is rounded, clamped or guessed: a decimal with more
//! places than its scale, a local time that does not exist in the source timezone, or
//! an out-of-range integer are errors.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A column type as written in `config.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int,
    BigInt,
    Double,
    Decimal { precision: u8, scale: i8 },
    Bool,
    Date,
    Timestamp,
}

impl ColumnType {
    /// Parse `string | int | bigint | double | decimal(p,s) | bool | date | timestamp`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" => ColumnType::String,
            "int" => ColumnType::Int,
            "bigint" => ColumnType::BigInt,
            "double" => ColumnType::Double,
            "bool" => ColumnType::Bool,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            _ => return parse_decimal_type(&t).ok_or_else(|| format!("unknown type \"{text}\"")),
        })
    }

    /// Whether `min`/`max` make sense for this type.
    pub fn is_ordered(&self) -> bool {
        !matches!(self, ColumnType::Bool)
    }
}

fn parse_decimal_type(t: &str) -> Option<ColumnType> {
    let inner = t.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    let precision: u8 = p.trim().parse().ok()?;
    let scale: i8 = s.trim().parse().ok()?;
    if precision == 0 || precision > 38 || scale < 0 || scale as u8 > precision {
        return None;
    }
    Some(ColumnType::Decimal { precision, scale })
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i32),
    BigInt(i64),
    Double(f64),
    /// Unscaled integer at the column's scale.
    Decimal(i128),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
}

impl Value {
    /// Order two values of the same column type; `None` for mixed or unordered types.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::BigInt(a), Value::BigInt(b)) => Some(a.cmp(b)),
            (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
            (Value::Decimal(a), Value::Decimal(b)) => Some(a.cmp(b)),
            (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
            (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// How to read text of one column: its type, optional strftime format and timezone.
#[derive(Debug, Clone)]
pub struct ValueParser {
    pub ty: ColumnType,
    pub format: Option<String>,
    pub tz: Tz,
}

impl ValueParser {
    /// Parse non-missing text into a value of this column's type.
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        match self.ty {
            ColumnType::String => Ok(Value::Str(text.to_string())),
            ColumnType::Int => text
                .parse::<i32>()
                .map(Value::Int)
                .map_err(|_| format!("not an int: {}", excerpt(text))),
            ColumnType::BigInt => text
                .parse::<i64>()
                .map(Value::BigInt)
                .map_err(|_| format!("not a bigint: {}", excerpt(text))),
            ColumnType::Double => parse_double(text),
            ColumnType::Decimal { precision, scale } => {
                parse_decimal(text, precision, scale).map(Value::Decimal)
            }
            ColumnType::Bool => parse_bool(text),
            ColumnType::Date => self.parse_date(text),
            ColumnType::Timestamp => self.parse_timestamp(text).map(Value::Timestamp),
        }
    }

    fn parse_date(&self, text: &str) -> Result<Value, String> {
        let fmt = self.format.as_deref().unwrap_or("%Y-%m-%d");
        let date = NaiveDate::parse_from_str(text, fmt)
            .map_err(|e| format!("not a date ({fmt}): {}: {e}", excerpt(text)))?;
        Ok(Value::Date(days_since_epoch(date)))
    }

    fn parse_timestamp(&self, text: &str) -> Result<i64, String> {
        if let Some(fmt) = self.format.as_deref() {
            if fmt.contains("%z") || fmt.contains("%:z") || fmt.contains("%#z") {
                return DateTime::parse_from_str(text, fmt)
                    .map(|dt| dt.timestamp_micros())
                    .map_err(|e| format!("not a timestamp ({fmt}): {}: {e}", excerpt(text)));
            }
            let naive = NaiveDateTime::parse_from_str(text, fmt)
                .map_err(|e| format!("not a timestamp ({fmt}): {}: {e}", excerpt(text)))?;
            return self.localize(naive);
        }
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Ok(dt.timestamp_micros());
        }
        // chrono alone would also take one-digit fields and runs of spaces: insist on the
        // documented shape `YYYY-MM-DD[ T]HH:MM[:SS[.f]]`.
        if !naive_shape(text) {
            return Err(format!(
                "not a timestamp (RFC 3339 or YYYY-MM-DD HH:MM:SS): {}",
                excerpt(text)
            ));
        }
        for fmt in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
                return self.localize(naive);
            }
        }
        Err(format!(
            "not a timestamp (RFC 3339 or YYYY-MM-DD HH:MM:SS): {}",
            excerpt(text)
        ))
    }

    fn localize(&self, naive: NaiveDateTime) -> Result<i64, String> {
        match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(dt) => Ok(dt.with_timezone(&Utc).timestamp_micros()),
            LocalResult::Ambiguous(_, _) => Err(format!(
                "local time {naive} is ambiguous in {} (clocks go back)",
                self.tz
            )),
            LocalResult::None => Err(format!(
                "local time {naive} does not exist in {} (clocks go forward)",
                self.tz
            )),
        }
    }
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.fraction]]`, digits exactly where the shape has them.
fn naive_shape(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let base = b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b' ' || b[10] == b'T')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16);
    match &b.get(16..) {
        _ if !base => false,
        Some([]) => true,
        Some([b':', rest @ ..]) => {
            rest.len() >= 2
                && rest[..2].iter().all(u8::is_ascii_digit)
                && match &rest[2..] {
                    [] => true,
                    [b'.', frac @ ..] => !frac.is_empty() && frac.iter().all(u8::is_ascii_digit),
                    _ => false,
                }
        }
        _ => false,
    }
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a valid date");
    (date - epoch).num_days() as i32
}

fn parse_double(text: &str) -> Result<Value, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Value::Double(v)),
        _ => Err(format!("not a finite double: {}", excerpt(text))),
    }
}

fn parse_bool(text: &str) -> Result<Value, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
        "false" | "f" | "no" | "n" | "0" => Ok(Value::Bool(false)),
        _ => Err(format!("not a bool: {}", excerpt(text))),
    }
}

/// Parse a plain decimal (`-12.345`, `+0.5`, `7`) into its unscaled value at `scale`.
/// More fractional digits than `scale`, or more integer digits than `precision - scale`,
/// is an error: values are never rounded.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let scale = scale as usize;
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        let hint = if text.contains(['e', 'E']) {
            " (exponent notation is not accepted)"
        } else {
            ""
        };
        return Err(format!("not a decimal: {}{hint}", excerpt(text)));
    }
    if frac_part.len() > scale {
        return Err(format!(
            "{} has {} decimal places, at most {scale} allowed (values are never rounded)",
            excerpt(text),
            frac_part.len()
        ));
    }
    let int_trimmed = int_part.trim_start_matches('0');
    if int_trimmed.len() > precision as usize - scale {
        return Err(format!(
            "{} does not fit decimal({precision},{scale})",
            excerpt(text)
        ));
    }
    let mut unscaled: i128 = 0;
    for b in int_trimmed.bytes().chain(frac_part.bytes()) {
        unscaled = unscaled * 10 + i128::from(b - b'0');
    }
    for _ in frac_part.len()..scale {
        unscaled *= 10;
    }
    Ok(if negative { -unscaled } else { unscaled })
}

/// At most 64 characters of raw input, for messages (raw rows can hold personal data).
pub fn excerpt(text: &str) -> Excerpt<'_> {
    Excerpt(text)
}

/// Display wrapper that quotes and truncates raw text.
pub struct Excerpt<'a>(&'a str);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LIMIT: usize = 64;
        match self.0.char_indices().nth(LIMIT) {
            Some((cut, _)) => write!(f, "\"{}…\"", &self.0[..cut]),
            None => write!(f, "\"{}\"", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(ty: &str, format: Option<&str>, tz: &str) -> ValueParser {
        ValueParser {
            ty: ColumnType::parse(ty).unwrap(),
            format: format.map(str::to_string),
            tz: tz.parse().unwrap(),
        }
    }

    fn ts(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn parses_type_names() {
        assert_eq!(
            ColumnType::parse("decimal(12, 3)").unwrap(),
            ColumnType::Decimal {
                precision: 12,
                scale: 3
            }
        );
        assert_eq!(ColumnType::parse("BIGINT").unwrap(), ColumnType::BigInt);
        assert_eq!(
            ColumnType::parse("decmal(12,3)").unwrap_err(),
            "unknown type \"decmal(12,3)\""
        );
        assert!(ColumnType::parse("decimal(3,4)").is_err());
        assert!(ColumnType::parse("decimal(39,0)").is_err());
    }

    #[test]
    fn timestamps_with_and_without_offsets() {
        let p = parser("timestamp", None, "UTC");
        assert_eq!(
            p.parse("2026-01-01T00:00:00Z"),
            Ok(Value::Timestamp(ts("2026-01-01T00:00:00Z")))
        );
        assert_eq!(
            p.parse("2026-01-01T02:00:00+02:00"),
            Ok(Value::Timestamp(ts("2026-01-01T00:00:00Z")))
        );
        assert_eq!(
            p.parse("2026-01-01 00:00:00"),
            Ok(Value::Timestamp(ts("2026-01-01T00:00:00Z")))
        );
        let berlin = parser("timestamp", None, "Europe/Berlin");
        assert_eq!(
            berlin.parse("2026-01-01 01:00:00"),
            Ok(Value::Timestamp(ts("2026-01-01T00:00:00Z")))
        );
        assert!(
            p.parse("2026-13-45 99:00")
                .unwrap_err()
                .contains("not a timestamp")
        );
    }

    #[test]
    fn dst_gaps_and_overlaps_are_errors() {
        let p = parser("timestamp", None, "Europe/Berlin");
        assert!(
            p.parse("2026-03-29 02:30:00")
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(
            p.parse("2026-10-25 02:30:00")
                .unwrap_err()
                .contains("ambiguous")
        );
    }

    #[test]
    fn timestamp_with_declared_format() {
        let p = parser("timestamp", Some("%Y-%m-%d %H:%M:%S%.f"), "UTC");
        assert_eq!(
            p.parse("2012-10-12 00:30:00.0000000"),
            Ok(Value::Timestamp(ts("2012-10-12T00:30:00Z")))
        );
    }

    #[test]
    fn decimals_are_exact_or_rejected() {
        assert_eq!(parse_decimal("1.5", 12, 3), Ok(1500));
        assert_eq!(parse_decimal("-0.125", 12, 3), Ok(-125));
        assert_eq!(parse_decimal("+7", 12, 3), Ok(7000));
        assert_eq!(parse_decimal(".5", 12, 3), Ok(500));
        assert!(
            parse_decimal("1.2345", 12, 3)
                .unwrap_err()
                .contains("4 decimal places")
        );
        assert!(
            parse_decimal("1234567890", 12, 3)
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(parse_decimal("1e3", 12, 3).is_err());
        assert!(parse_decimal("abc", 12, 3).is_err());
        assert!(parse_decimal("-", 12, 3).is_err());
        assert!(parse_decimal("1.2.3", 12, 3).is_err());
    }

    #[test]
    fn other_scalars() {
        assert_eq!(parser("int", None, "UTC").parse("42"), Ok(Value::Int(42)));
        assert!(parser("int", None, "UTC").parse("3000000000").is_err());
        assert_eq!(
            parser("bool", None, "UTC").parse("Yes"),
            Ok(Value::Bool(true))
        );
        assert!(parser("double", None, "UTC").parse("NaN").is_err());
        assert_eq!(
            parser("date", None, "UTC").parse("2024-02-29"),
            Ok(Value::Date(19782))
        );
        assert!(parser("date", None, "UTC").parse("2023-02-29").is_err());
    }

    #[test]
    fn excerpts_are_truncated() {
        let long = "x".repeat(200);
        let shown = excerpt(&long).to_string();
        assert!(shown.chars().count() <= 67);
        assert!(shown.ends_with("…\""));
    }
}
