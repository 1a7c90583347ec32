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
    /// The record's text, its fields one after the other (one allocation per row).
    text: String,
    /// Per configured column, the byte range of its raw text in `text`; `None` when the
    /// record has no such field.
    spans: Vec<Option<(usize, usize)>>,
    /// Structural problems (wrong field count, bad encoding, ...).
    pub problems: Vec<Violation>,
    /// The record was cut (unclosed quote, line too long): its fields are not checked.
    pub cut: bool,
}

impl RawRow {
    /// A row with the raw text of each configured column (`None`: no such field).
    pub fn new(
        line: u64,
        fields: Vec<Option<String>>,
        problems: Vec<Violation>,
        cut: bool,
    ) -> Self {
        let mut text = String::new();
        let spans = fields
            .iter()
            .map(|f| {
                f.as_deref().map(|f| {
                    let start = text.len();
                    text.push_str(f);
                    (start, text.len())
                })
            })
            .collect();
        RawRow::packed(line, text, spans, problems, cut)
    }

    /// A row over `text`, each configured column's field at its span in it.
    pub fn packed(
        line: u64,
        text: String,
        spans: Vec<Option<(usize, usize)>>,
        problems: Vec<Violation>,
        cut: bool,
    ) -> Self {
        RawRow {
            line,
            text,
            spans,
            problems,
            cut,
        }
    }

    /// Configured column `i`'s raw text; `None` when the record has no such field.
    pub fn field(&self, i: usize) -> Option<&str> {
        let (start, end) = (*self.spans.get(i)?)?;
        self.text.get(start..end)
    }

    /// Every configured column's raw text, in order.
    pub fn fields(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.spans.len()).map(|i| self.field(i))
    }
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
