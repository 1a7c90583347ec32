//! The medallion zones. Each stage is a function of (a batch of rows, the tables) that
//! can safely run again for the same batch:
//! - [`bronze`]: raw rows as received, plus lineage; append-only.
//! - [`silver`]: typing, rules and quarantine; accepted rows upserted on the natural key.
//! - [`gold`]: SQL models over silver, refreshed for the keys a batch touched.

pub mod bronze;
pub mod gold;
pub mod silver;

use chrono::{DateTime, Utc};

pub use crate::row::Violation;

/// Where a file's rows came from: the file, its batch, when it was received.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// File name relative to the raw zone.
    pub source_file: String,
    /// uuid v7 of the batch.
    pub batch_id: String,
    /// When medallion received the file.
    pub received_at: DateTime<Utc>,
}
