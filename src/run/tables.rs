//! The source's tables and the application transactions that make each stage commit
//! exactly once (see the `run` module).

use crate::config::Pipeline;

/// Table paths of the source's zones.
pub struct SourceTables {
    pub bronze: String,
    pub silver: String,
    pub rejected: String,
}

impl SourceTables {
    pub fn new(p: &Pipeline) -> Self {
        SourceTables {
            bronze: format!("bronze/{}", p.source.name),
            silver: format!("silver/{}", p.source.name),
            rejected: format!("rejected/{}", p.source.name),
        }
    }
}

pub const APP_BRONZE: &str = "medallion/bronze";
pub const APP_REJECTED: &str = "medallion/rejected";
pub const APP_SILVER: &str = "medallion/silver";

/// The commit info stage of a batch's bronze commit.
pub const STAGE_BRONZE: &str = "bronze_append";

pub fn gold_app(model: &str) -> String {
    format!("medallion/gold/{model}")
}
