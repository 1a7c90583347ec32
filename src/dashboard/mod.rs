//! `medallion report`: one self-contained HTML page about the lakehouse — rows per zone
//! over the recent runs, rejections by rule per run, each gold model's daily totals,
//! stage durations per run, the latest run's summary, the failed files and every table.
//!
//! Contract: reads only (the status, `_medallion.runs`, time travel, gold); the page
//! holds no URL and loads nothing (SVG drawn here, CSS and a three-line script inline),
//! so it opens anywhere and makes no network request. Every chart mark carries its
//! value and every chart its scale (see `svg`). Before the first run the charts say
//! there is nothing yet.

mod data;
mod page;
mod svg;

use crate::config::Pipeline;
use crate::error::Result;
use crate::storage::Lakehouse;

/// The page for the lakehouse of `p` (`config` is the configuration's path, shown).
pub async fn render(p: &Pipeline, config: &str) -> Result<String> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    let status = crate::status::status(p).await?;
    let data = data::gather(p, &lake).await?;
    let generated = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    Ok(page::render(config, &status, &data, &generated))
}
