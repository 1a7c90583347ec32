//! Column rules on typed values: a regex, inclusive bounds, or a set of allowed values.
//! Messages quote at most 64 characters of the value.

use std::cmp::Ordering;

use regex::Regex;

use crate::values::{Value, excerpt};

/// What a column rule checks.
#[derive(Debug, Clone)]
pub enum ColumnCheck {
    /// The value (as text) must match.
    Pattern(Regex),
    /// Inclusive bounds; `bounds` shows them for messages, e.g. `[0, 500]`.
    Range {
        min: Option<Value>,
        max: Option<Value>,
        bounds: String,
    },
    /// The value (as text) must be one of these.
    Allowed(Vec<String>),
}

impl ColumnCheck {
    /// The failure message for `value` (whose text was `text`), or `None` when it passes.
    pub fn check(&self, value: &Value, text: &str) -> Option<String> {
        let subject = match value {
            Value::Str(s) => s.as_str(),
            _ => text,
        };
        match self {
            ColumnCheck::Range { min, max, bounds } => {
                let below = min
                    .as_ref()
                    .is_some_and(|m| value.compare(m) == Some(Ordering::Less));
                let above = max
                    .as_ref()
                    .is_some_and(|m| value.compare(m) == Some(Ordering::Greater));
                (below || above).then(|| format!("{} is outside {bounds}", excerpt(text)))
            }
            _ => self.check_str(subject),
        }
    }

    /// [`check`](Self::check) for a value of a string column, without building its
    /// [`Value`] (except for a range, which compares values).
    pub fn check_str(&self, s: &str) -> Option<String> {
        match self {
            ColumnCheck::Pattern(re) => {
                (!re.is_match(s)).then(|| format!("{} does not match {}", excerpt(s), re.as_str()))
            }
            ColumnCheck::Range { .. } => self.check(&Value::Str(s.to_string()), s),
            ColumnCheck::Allowed(allowed) => (!allowed.iter().any(|a| a == s))
                .then(|| format!("{} is not one of: {}", excerpt(s), allowed.join(", "))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check() {
        let p = ColumnCheck::Pattern(Regex::new(r"^C\d{6}$").unwrap());
        assert!(p.check(&Value::Str("C000001".into()), "C000001").is_none());
        assert!(
            p.check(&Value::Str("C1".into()), "C1")
                .unwrap()
                .contains("does not match")
        );
        let r = ColumnCheck::Range {
            min: Some(Value::Decimal(0)),
            max: Some(Value::Decimal(500_000)),
            bounds: "[0, 500]".into(),
        };
        assert!(r.check(&Value::Decimal(500_000), "500").is_none());
        assert_eq!(
            r.check(&Value::Decimal(-1), "-0.001").unwrap(),
            "\"-0.001\" is outside [0, 500]"
        );
        let a = ColumnCheck::Allowed(vec!["actual".into(), "estimated".into()]);
        assert!(
            a.check(&Value::Str("guess".into()), "guess")
                .unwrap()
                .contains("not one of")
        );
    }

    #[test]
    fn a_string_is_checked_alike_with_or_without_its_value() {
        let checks = [
            ColumnCheck::Pattern(Regex::new(r"^C\d{6}$").unwrap()),
            ColumnCheck::Range {
                min: Some(Value::Str("b".into())),
                max: Some(Value::Str("m".into())),
                bounds: "[b, m]".into(),
            },
            ColumnCheck::Allowed(vec!["actual".into(), "estimated".into()]),
        ];
        for c in &checks {
            for s in ["C000001", "a", "c", "z", "actual", ""] {
                assert_eq!(c.check_str(s), c.check(&Value::Str(s.into()), s), "{s}");
            }
        }
        assert!(checks[1].check_str("z").unwrap().contains("outside"));
        assert!(checks[1].check_str("c").is_none());
    }
}
