//! The medallion zones. Each stage is a function of (a batch of rows, the tables) that
//! can safely run again for the same batch:
//! - [`bronze`]: raw rows as received, plus lineage; append-only.
//! - [`silver`]: typing, rules and quarantine; accepted rows upserted on the natural key.
//! - [`gold`]: SQL models over silver, refreshed for the keys a batch touched.

pub mod bronze;
pub mod gold;
pub mod silver;

use chrono::{DateTime, Utc};

use crate::config::RuleAction;

/// Where a batch of rows came from. One batch is one raw file.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// File name relative to the raw zone.
    pub source_file: String,
    /// uuid v7 of the batch.
    pub batch_id: String,
    /// When medallion received the file.
    pub received_at: DateTime<Utc>,
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
