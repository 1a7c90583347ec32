//! The application transactions that make each stage commit
//! exactly once (see the `run` module).

pub const APP_BRONZE: &str = "medallion/bronze";
pub const APP_REJECTED: &str = "medallion/rejected";
pub const APP_SILVER: &str = "medallion/silver";

/// The commit info stage of a batch's bronze commit.
pub const STAGE_BRONZE: &str = "bronze_append";

pub fn gold_app(model: &str) -> String {
    format!("medallion/gold/{model}")
}
