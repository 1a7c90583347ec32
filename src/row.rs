//! The rows that pass from one stage to the next: a raw record as the reader hands it
//! over (its text per configured column, the line it starts on, its structural
//! problems), and one failed rule of a row. Both the reader (`ingest`) and the zones
//! use them, so they live below both.

use crate::config::RuleAction;

/// One record of a raw file.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// Physical line the record starts on (the header is line 1).
    pub line: u64,
    /// Raw text per configured column; `None` when the record has no such field.
    pub fields: Vec<Option<String>>,
    /// Structural problems (wrong field count, bad encoding, ...).
    pub problems: Vec<Violation>,
    /// The record was cut (unclosed quote, line too long): its fields are not checked.
    pub cut: bool,
}

/// One failed rule for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: String,
    pub column: Option<String>,
    pub message: String,
    pub action: RuleAction,
}

impl Violation {
    /// A structural or typing violation: always rejects the row.
    pub fn new(rule: &str, column: Option<&str>, message: impl Into<String>) -> Self {
        Violation {
            rule: rule.to_string(),
            column: column.map(str::to_string),
            message: message.into(),
            action: RuleAction::Reject,
        }
    }

    pub fn with_action(mut self, action: RuleAction) -> Self {
        self.action = action;
        self
    }
}
