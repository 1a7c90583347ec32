//! The application transactions that make each stage commit
//! exactly once (see the `run` module).

pub const APP_BRONZE: &str = "medallion/bronze";
pub const APP_REJECTED: &str = "medallion/rejected";
pub const APP_SILVER: &str = "medallion/silver";

/// The commit info stage of a batch's bronze commit.
pub const STAGE_BRONZE: &str = "bronze_append";

/// A gold model's transaction for the batches of `source` (each source has its own
/// batch sequence, and a model may read several sources).
pub fn gold_app(model: &str, source: &str) -> String {
    format!("medallion/gold/{model}/{source}")
}
