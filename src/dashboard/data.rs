//! What the report shows, read from the tables: rows per zone at the end of each recent
//! run (time travel to the version each table had then), rejections per rule and stage
//! times per run (`_medallion.runs`), and each gold model's daily totals.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::Array;
use deltalake::arrow::datatypes::DataType;

use super::svg::{Bar, Lines};
use crate::cells::{doubles, micros, text};
use crate::config::{GoldModel, Pipeline};
use crate::error::{MedallionError, Result};
use crate::runs::RUNS_TABLE;
use crate::schema::quote_ident;
use crate::storage::{self, Lakehouse, TimeTravel};

/// Runs shown, the most recent.
pub const RUNS_SHOWN: usize = 40;
/// Days of gold totals shown, the most recent.
pub const DAYS_SHOWN: usize = 120;

/// A gold model's total of one measure per day.
pub struct GoldDaily {
    pub model: String,
    /// `SUM(measure)` per `day`, or why the model has no such chart.
    pub chart: std::result::Result<(String, String, Vec<Bar>), String>,
}

/// One recent run: its end, rejections per rule, stage seconds.
struct RunRow {
    label: String,
    finished: DateTime<Utc>,
    rejected: BTreeMap<String, f64>,
    stages: Vec<f64>,
}

/// Rows of a table at a version; `None` when that version is out of reach.
async fn rows_at(lake: &Lakehouse, relative: &str, name: &str, v: i64) -> Option<f64> {
    let counted = async {
        match storage::open_at(lake, relative, Some(TimeTravel::Version(v))).await? {
            Some(t) => Ok(storage::row_count(&storage::session(), &t, name).await? as f64),
            None => Ok(0.0),
        }
    };
    match counted.await {
        Ok(n) => Some(n),
        Err(e) => {
            let e: MedallionError = e;
            tracing::warn!("report: {name} at version {v} is out of reach, left out: {e}");
            None
        }
    }
}

/// Everything the page draws, oldest run first.
pub struct Data {
    pub zone_rows: Lines,
    pub rules: Vec<String>,
    pub rejections: Vec<Bar>,
    pub stages: Vec<Bar>,
    pub gold: Vec<GoldDaily>,
}

/// The stage columns of `_medallion.runs`, in the order the chart stacks them.
pub const STAGES: [&str; 5] = ["read", "bronze", "silver", "gold", "ledger"];

pub async fn gather(p: &Pipeline, lake: &Lakehouse) -> Result<Data> {
    let runs = recent_runs(lake).await?;
    let mut rules: Vec<String> = runs
        .iter()
        .flat_map(|r| r.rejected.keys().cloned())
        .collect();
    rules.sort();
    rules.dedup();
    let rejections = runs
        .iter()
        .map(|r| Bar {
            label: r.label.clone(),
            values: rules
                .iter()
                .map(|k| r.rejected.get(k).copied().unwrap_or(0.0))
                .collect(),
        })
        .collect();
    let stages = runs
        .iter()
        .map(|r| Bar {
            label: r.label.clone(),
            values: r.stages.clone(),
        })
        .collect();
    let mut gold = Vec::new();
    for model in &p.gold {
        gold.push(GoldDaily {
            model: model.name.clone(),
            chart: gold_daily(lake, model).await?,
        });
    }
    Ok(Data {
        zone_rows: zone_rows(p, lake, &runs).await?,
        rules,
        rejections,
        stages,
        gold,
    })
}

/// The last [`RUNS_SHOWN`] runs, oldest first, with their rejections and stage times.
async fn recent_runs(lake: &Lakehouse) -> Result<Vec<RunRow>> {
    let Some(table) = lake.open(RUNS_TABLE).await? else {
        return Ok(Vec::new());
    };
    let ctx = storage::session();
    storage::register(&ctx, "runs", &table).await?;
    let sql = format!(
        "SELECT r.run_id, r.finished_at, r.rejected_by_rule, r.read_s, r.bronze_s, r.silver_s, \
         r.gold_s, r.ledger_s FROM runs r JOIN (SELECT run_id FROM runs GROUP BY run_id \
         ORDER BY MIN(started_at) DESC LIMIT {RUNS_SHOWN}) l ON r.run_id = l.run_id \
         ORDER BY r.finished_at, r.run_id"
    );
    let mut out: Vec<(String, RunRow)> = Vec::new();
    for b in storage::sql_batches(&ctx, &sql, "read the runs").await? {
        let (ids, rules, finished) = (text(&b, 0)?, text(&b, 2)?, micros(&b, 1)?);
        let secs: Vec<_> = (3..8).map(|i| doubles(&b, i)).collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            let id = ids.value(i).to_string();
            if out.last().is_none_or(|(last, _)| *last != id) {
                let t = DateTime::from_timestamp_micros(finished.value(i)).unwrap_or_default();
                let row = RunRow {
                    label: t.format("%m-%d %H:%M:%S%.3f").to_string(),
                    finished: t,
                    rejected: BTreeMap::new(),
                    stages: vec![0.0; STAGES.len()],
                };
                out.push((id, row));
            }
            let Some((_, run)) = out.last_mut() else {
                continue;
            };
            let per_rule: BTreeMap<String, f64> =
                serde_json::from_str(rules.value(i)).unwrap_or_default();
            for (rule, n) in per_rule {
                *run.rejected.entry(rule).or_default() += n;
            }
            for (s, column) in run.stages.iter_mut().zip(&secs) {
                *s += column.value(i);
            }
        }
    }
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// Commits of a table read to place the runs (a run older than those is left out).
const HISTORY_READ: usize = 1000;

/// Rows of bronze, silver, rejected and each gold table at the end of each run. A
/// point the log no longer reaches (Delta deletes commits past the log retention, 30
/// days by default) is left out, not an error.
async fn zone_rows(p: &Pipeline, lake: &Lakehouse, runs: &[RunRow]) -> Result<Lines> {
    let mut tables: Vec<String> = p
        .sources
        .iter()
        .flat_map(|s| {
            let t = s.tables();
            [t.bronze, t.silver, t.rejected]
        })
        .collect();
    tables.extend(p.gold.iter().map(|m| m.table()));
    let mut series = Vec::new();
    for relative in tables {
        let name = relative.replace('/', ".");
        let Some(table) = lake.open(&relative).await? else {
            series.push((name, vec![Some(0.0); runs.len()]));
            continue;
        };
        let history = storage::history(&table, &name, Some(HISTORY_READ))
            .await
            .unwrap_or_default();
        let complete = history.last().is_some_and(|h| h.version == 0);
        let mut counts: BTreeMap<i64, Option<f64>> = BTreeMap::new();
        let mut values = Vec::new();
        for run in runs {
            // The newest version committed by the end of the run.
            let placed = history
                .iter()
                .find(|h| h.timestamp.is_some_and(|ts| ts <= run.finished));
            let v = match placed {
                Some(h) => h.version,
                // The table did not exist yet.
                None if complete => {
                    values.push(Some(0.0));
                    continue;
                }
                // Before the oldest commit read: the log was cleaned up, or the run is
                // older than the commits read. (Time travel by timestamp would answer
                // with the oldest version left, which is not what the table held.)
                None => {
                    values.push(None);
                    continue;
                }
            };
            let rows = match counts.get(&v) {
                Some(rows) => *rows,
                None => {
                    let rows = rows_at(lake, &relative, &name, v).await;
                    counts.insert(v, rows);
                    rows
                }
            };
            values.push(rows);
        }
        series.push((name, values));
    }
    Ok(Lines {
        labels: runs.iter().map(|r| r.label.clone()).collect(),
        series,
    })
}

/// `SUM` of the model's first numeric non-key column per day of its first date or
/// timestamp key, for the last [`DAYS_SHOWN`] days.
async fn gold_daily(
    lake: &Lakehouse,
    model: &GoldModel,
) -> Result<std::result::Result<(String, String, Vec<Bar>), String>> {
    let field = |f: &dyn Fn(&DataType) -> bool, key: bool| {
        model
            .schema
            .fields()
            .iter()
            .find(|c| model.keys.contains(c.name()) == key && f(c.data_type()))
            .map(|c| c.name().clone())
    };
    let day = field(
        &|t| {
            matches!(
                t,
                DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
            )
        },
        true,
    );
    let measure = field(&|t| t.is_numeric(), false);
    let (Some(day), Some(measure)) = (day, measure) else {
        return Ok(Err("no date key and numeric measure to chart".into()));
    };
    let Some(table) = lake.open(&model.table()).await? else {
        return Ok(Err("the table does not exist yet".into()));
    };
    let ctx = storage::session();
    storage::register(&ctx, "g", &table).await?;
    let sql = format!(
        "SELECT CAST(CAST(d AS DATE) AS VARCHAR), v FROM (SELECT CAST({day} AS DATE) AS d, \
         CAST(SUM({measure}) AS DOUBLE) AS v FROM g WHERE {day} IS NOT NULL GROUP BY 1 \
         ORDER BY 1 DESC LIMIT {DAYS_SHOWN}) ORDER BY d",
        day = quote_ident(&day),
        measure = quote_ident(&measure)
    );
    let mut bars = Vec::new();
    for b in storage::sql_batches(&ctx, &sql, "sum gold per day").await? {
        let (days, values) = (text(&b, 0)?, doubles(&b, 1)?);
        for i in 0..b.num_rows() {
            let v = if values.is_valid(i) {
                values.value(i)
            } else {
                0.0
            };
            bars.push(Bar {
                label: days.value(i).to_string(),
                values: vec![v],
            });
        }
    }
    Ok(Ok((day, measure, bars)))
}
