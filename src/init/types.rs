//! Infers a column's type from the values seen: the narrowest of bool, int, bigint,
//! decimal (with the observed scale), double, date and timestamp (each with the format
//! that reads every value) that takes all of them, else string. Every candidate is
//! checked with the reader's own parser, so the inferred configuration loads the sample.

use chrono_tz::Tz;
use medallion_csv::{ColumnType, ValueParser};

/// Date formats tried, after the default `%Y-%m-%d`.
const DATE_FORMATS: [&str; 5] = ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d"];
/// Timestamp formats tried after the default (RFC 3339 or `YYYY-MM-DD HH:MM[:SS[.f]]`).
const TIMESTAMP_FORMATS: [&str; 9] = [
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y%m%dT%H%M%S",
];
/// Decimal precision written when the values need less (room to grow).
const MIN_PRECISION: usize = 18;
/// A type is taken when at most this share of the values does not read as it (their
/// rows are then rejected, with the rule named): samples are rarely clean.
const MISFIT_SHARE: u64 = 100;

/// The kinds of type a column may be, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    BigInt,
    Decimal,
    Double,
    Date,
    Timestamp,
}

/// One candidate type and how many values did not read as it.
#[derive(Debug, Clone)]
struct Candidate {
    kind: Kind,
    parser: Option<ValueParser>,
    misfits: u64,
}

/// What one column's values allow, updated value by value.
#[derive(Debug, Clone)]
pub struct ColumnStats {
    /// Candidates with more misfits than this are dropped (1 % of the most values).
    limit: u64,
    pub values: u64,
    pub missing: u64,
    candidates: Vec<Candidate>,
    int_digits: usize,
    scale: usize,
}

/// The type inferred for a column, as it is written in `config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inferred {
    pub ty: String,
    pub format: Option<String>,
    /// Something a reviewer should know (values that do not fit, an ambiguous date
    /// order, no values seen).
    pub note: Option<String>,
}

impl ColumnStats {
    /// Statistics for a column of at most `max_values` values.
    pub fn new(tz: Tz, max_values: u64) -> Self {
        let plain = |kind| Candidate {
            kind,
            parser: None,
            misfits: 0,
        };
        let parsed = |kind, ty, format: Option<&str>| Candidate {
            kind,
            parser: Some(ValueParser {
                ty,
                format: format.map(str::to_string),
                tz,
            }),
            misfits: 0,
        };
        let mut candidates: Vec<Candidate> = [
            Kind::Bool,
            Kind::Int,
            Kind::BigInt,
            Kind::Decimal,
            Kind::Double,
        ]
        .into_iter()
        .map(plain)
        .collect();
        candidates.extend(
            DATE_FORMATS
                .iter()
                .map(|f| parsed(Kind::Date, ColumnType::Date, Some(f))),
        );
        candidates.push(parsed(Kind::Timestamp, ColumnType::Timestamp, None));
        candidates.extend(
            TIMESTAMP_FORMATS
                .iter()
                .map(|f| parsed(Kind::Timestamp, ColumnType::Timestamp, Some(f))),
        );
        ColumnStats {
            limit: max_values / MISFIT_SHARE,
            values: 0,
            missing: 0,
            candidates,
            int_digits: 0,
            scale: 0,
        }
    }

    /// Take one value (trimmed; `None` when missing).
    pub fn observe(&mut self, value: Option<&str>) {
        let Some(text) = value else {
            self.missing += 1;
            return;
        };
        self.values += 1;
        let number = plain_number(text);
        if let Some((int_digits, scale)) = number {
            self.int_digits = self.int_digits.max(int_digits);
            self.scale = self.scale.max(scale);
        }
        for c in &mut self.candidates {
            let fits = match (c.kind, &c.parser) {
                (Kind::Bool, _) => matches!(
                    text.to_ascii_lowercase().as_str(),
                    "true" | "false" | "t" | "f" | "yes" | "no" | "y" | "n"
                ),
                (Kind::Int, _) => number.is_some() && text.parse::<i32>().is_ok(),
                (Kind::BigInt, _) => number.is_some() && text.parse::<i64>().is_ok(),
                (Kind::Decimal, _) => number.is_some(),
                (Kind::Double, _) => {
                    !leading_zero(text) && text.parse::<f64>().is_ok_and(f64::is_finite)
                }
                (_, Some(parser)) => parser.parse(text).is_ok(),
                (_, None) => false,
            };
            c.misfits += u64::from(!fits);
        }
        let limit = self.limit;
        self.candidates.retain(|c| c.misfits <= limit);
    }

    /// Of the types that all but at most 1 % of the values read as, the one with the
    /// fewest misfits, the narrowest on a tie.
    pub fn infer(&self) -> Inferred {
        let string = |note: Option<String>| Inferred {
            ty: "string".into(),
            format: None,
            note,
        };
        if self.values == 0 {
            return string(Some("no value in the sample: typed as string".into()));
        }
        let tolerated = self.values / MISFIT_SHARE;
        let digits = self.int_digits + self.scale;
        let fitting = self.candidates.iter().filter(|c| c.misfits <= tolerated);
        let Some(c) = fitting
            .filter(|c| c.kind != Kind::Decimal || digits <= 38)
            .min_by_key(|c| (c.misfits, c.kind as u8))
        else {
            return string(None);
        };
        let format = c.parser.as_ref().and_then(|p| p.format.clone());
        let ty = match c.kind {
            Kind::Bool => "bool".to_string(),
            Kind::Int => "int".into(),
            Kind::BigInt => "bigint".into(),
            Kind::Decimal => format!(
                "decimal({},{})",
                digits.clamp(MIN_PRECISION, 38),
                self.scale
            ),
            Kind::Double => "double".into(),
            Kind::Date => "date".into(),
            Kind::Timestamp => "timestamp".into(),
        };
        let misfit = (c.misfits > 0).then(|| {
            format!(
                "{} of {} values do not read as {ty}: their rows are rejected (rule `type`)",
                c.misfits, self.values
            )
        });
        let same: Vec<Option<&str>> = self
            .candidates
            .iter()
            .filter(|o| o.kind == c.kind && o.misfits == c.misfits)
            .map(|o| o.parser.as_ref().and_then(|p| p.format.as_deref()))
            .collect();
        let note = [misfit, ambiguous(&same)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        Inferred {
            // The reader's default date format needs no `format:`.
            format: format.filter(|f| !(c.kind == Kind::Date && f == "%Y-%m-%d")),
            note: (!note.is_empty()).then(|| note.join("; ")),
            ty,
        }
    }
}

/// A note when a day-first and a month-first format both read every value.
fn ambiguous(formats: &[Option<&str>]) -> Option<String> {
    let day_first = formats.iter().flatten().find(|f| f.starts_with("%d/"));
    let month_first = formats.iter().flatten().find(|f| f.starts_with("%m/"));
    match (day_first, month_first) {
        (Some(d), Some(m)) => Some(format!(
            "every value reads both as {d} and as {m}: check the day/month order"
        )),
        _ => None,
    }
}

/// `[+-]digits[.digits]`, without a leading zero that would make it an identifier:
/// (integer digits, fraction digits).
fn plain_number(text: &str) -> Option<(usize, usize)> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = !int.is_empty()
        && all_digits(int)
        && all_digits(frac)
        && !unsigned.ends_with('.')
        && !leading_zero(text);
    ok.then(|| (int.trim_start_matches('0').len().max(1), frac.len()))
}

/// `007` or `-01.5`: digits kept as text (codes, not quantities).
fn leading_zero(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let b = unsigned.as_bytes();
    b.len() > 1 && b[0] == b'0' && b[1].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> Inferred {
        let mut s = ColumnStats::new(chrono_tz::UTC, 1000);
        for v in values {
            s.observe((!v.is_empty()).then_some(*v));
        }
        s.infer()
    }

    fn ty(values: &[&str]) -> (String, Option<String>) {
        let i = infer(values);
        (i.ty, i.format)
    }

    #[test]
    fn the_narrowest_type_that_takes_every_value() {
        let t = |s: &str| (s.to_string(), None);
        assert_eq!(ty(&["true", "no", "Y"]), t("bool"));
        assert_eq!(ty(&["1", "-7", "0"]), t("int"));
        assert_eq!(ty(&["1", "3000000000"]), t("bigint"));
        assert_eq!(ty(&["1.5", "20.125", "3"]), t("decimal(18,3)"));
        assert_eq!(ty(&["1e5", "2.5"]), t("double"));
        assert_eq!(ty(&["007", "12"]), t("string"));
        assert_eq!(ty(&["2024-01-31", "2024-02-01"]), t("date"));
        assert_eq!(
            ty(&["31.01.2024", "01.02.2024"]),
            ("date".into(), Some("%d.%m.%Y".into()))
        );
        assert_eq!(
            ty(&["2024-01-01 00:00:00", "2024-01-01T01:00:00+01:00"]),
            t("timestamp")
        );
        assert_eq!(
            ty(&["13/01/2024 10:00", "01/02/2024 11:30"]),
            ("timestamp".into(), Some("%d/%m/%Y %H:%M".into()))
        );
        assert_eq!(ty(&["C000001", "C000002"]), t("string"));
    }

    #[test]
    fn missing_values_and_ambiguity_are_noted() {
        let i = infer(&["", ""]);
        assert_eq!(i.ty, "string");
        assert!(i.note.is_some());
        let i = infer(&["01/02/2024", "03/04/2024"]);
        assert_eq!(i.format.as_deref(), Some("%d/%m/%Y"));
        assert!(i.note.unwrap().contains("day/month"));
        assert_eq!(infer(&["1", "", "2"]).ty, "int");
    }

    #[test]
    fn a_little_dirt_does_not_make_a_column_text() {
        let mut values = vec!["1.25"; 150];
        values.push("abc");
        values.push("2.5");
        let i = infer(&values);
        assert_eq!(i.ty, "decimal(18,2)");
        assert!(
            i.note
                .unwrap()
                .starts_with("1 of 152 values do not read as decimal(18,2)")
        );
        // Values that read as a wider number are not dirt: the wider type is taken.
        let mut values = vec!["3"; 150];
        values.push("2.5");
        assert_eq!(infer(&values).ty, "decimal(18,1)");
    }
}
