//! Run metrics: the Delta table `_medallion/runs`, queryable as `_medallion.runs`, with
//! one row per run and file (the data-quality and performance measures of a DLT event
//! log), and the last run read back for `status`.
//!
//! Contract: every run that did something (a batch, a duplicate, a model rebuild, or an
//! error) appends its rows in one commit while it still holds the ingest lease; a run
//! with nothing to do writes nothing. A file row has the file's own counts (rows read,
//! accepted, rejected, per rule as JSON objects) and size. Batch measures — silver rows
//! inserted/updated/deleted, gold keys touched per model, stage times — are on the
//! first file row of each batch and zero on its other rows, so sums over any set of
//! rows are right. Run measures (times, outcome, peak RSS, version, configuration
//! fingerprint) repeat on each of the run's rows. A run without file rows has one row
//! whose `file` is null. Writing the metrics never fails the run: a failure is logged.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::TimestampMicrosecondArray;
use deltalake::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::report::{BatchReport, FileReport, RunReport, StageTimes};
use crate::schema::utc_timestamp_type;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};

mod last;

pub use last::{LastRun, last_run};

/// Table path of the run metrics.
pub const RUNS_TABLE: &str = "_medallion/runs";

/// A run, as it ends.
pub struct RunRecord<'a> {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// What the run did (up to the error, when it ended with one).
    pub report: &'a RunReport,
    /// The error that ended the run.
    pub error: Option<String>,
}

/// The table's columns (see the README's "Run metrics").
pub fn runs_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let int = |name: &str| Field::new(name, DataType::Int64, false);
    let secs = |name: &str| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        text("run_id", false),
        Field::new("started_at", utc_timestamp_type(), false),
        Field::new("finished_at", utc_timestamp_type(), false),
        secs("duration_s"),
        text("outcome", false),
        text("error", true),
        text("medallion_version", false),
        text("config_fingerprint", false),
        int("peak_rss_bytes"),
        text("file", true),
        text("batch_id", true),
        text("status", true),
        text("file_error", true),
        int("bytes_read"),
        int("rows_read"),
        int("accepted"),
        int("rejected"),
        text("rejected_by_rule", false),
        text("warnings_by_rule", false),
        int("silver_inserted"),
        int("silver_updated"),
        int("silver_deleted"),
        text("gold_keys_touched", false),
        secs("read_s"),
        secs("bronze_s"),
        secs("silver_s"),
        secs("gold_s"),
        secs("ledger_s"),
    ]))
}

/// Append the rows of one run; a failure is logged, never returned.
pub async fn record(lake: &Lakehouse, p: &Pipeline, run: &RunRecord<'_>) {
    if let Err(e) = try_record(lake, p, run).await {
        tracing::warn!("cannot record the run's metrics in {RUNS_TABLE}: {e}");
    }
}

async fn try_record(lake: &Lakehouse, p: &Pipeline, run: &RunRecord<'_>) -> Result<()> {
    let rows = rows(p, run)?;
    let mut table = lake
        .open_or_create(RUNS_TABLE, &runs_schema(), FileSize::Append)
        .await?;
    let mut writer = AppendWriter::new(&table, RUNS_TABLE)?;
    let n = rows.num_rows();
    writer.write(rows).await?;
    let props = storage::commit_info("runs", serde_json::json!({ "rows": n }));
    writer.commit(&mut table, props, None).await?;
    lake.keep(RUNS_TABLE, &table);
    Ok(())
}

/// One row in the making.
#[derive(Default)]
struct Row {
    file: Option<String>,
    batch_id: Option<String>,
    status: Option<&'static str>,
    file_error: Option<String>,
    counts: FileReport,
    batch: Option<(crate::storage::UpsertMetrics, serde_json::Value, StageTimes)>,
}

/// The run's rows: per batch its files (batch measures on the first; a batch left open
/// for the next run has its files `open`, with no counts: the run that completes it
/// records them), the unreadable files, the duplicates, the gold models rebuilt before
/// the batches; one bare row when there is none of these.
fn file_rows(r: &RunReport) -> Vec<Row> {
    let mut out = Vec::new();
    for b in &r.batches {
        for (i, f) in b.files.iter().enumerate() {
            let (status, counts, batch) = match (b.left_open, f.loaded()) {
                (true, _) => ("open", FileReport::default(), None),
                (false, true) => ("loaded", f.clone(), (i == 0).then(|| batch_measures(b))),
                (false, false) => ("failed", f.clone(), (i == 0).then(|| batch_measures(b))),
            };
            out.push(Row {
                file: Some(f.file.clone()),
                batch_id: Some(b.batch_id.clone()),
                status: Some(status),
                file_error: f.error.clone(),
                counts,
                batch,
            });
        }
    }
    for f in &r.unreadable {
        out.push(Row {
            file: Some(f.file.clone()),
            status: Some("failed"),
            file_error: f.error.clone(),
            ..Row::default()
        });
    }
    for (file, original) in &r.duplicates {
        out.push(Row {
            file: Some(file.clone()),
            status: Some("duplicate"),
            file_error: Some(format!("same content as {original}")),
            ..Row::default()
        });
    }
    for m in &r.rebuilt {
        let gold = serde_json::json!({ &m.model: m.rows });
        out.push(Row {
            status: Some("gold_rebuilt"),
            file_error: Some(m.note.to_string()),
            batch: Some((Default::default(), gold, StageTimes::default())),
            ..Row::default()
        });
    }
    if out.is_empty() {
        out.push(Row::default());
    }
    out
}

fn batch_measures(
    b: &BatchReport,
) -> (crate::storage::UpsertMetrics, serde_json::Value, StageTimes) {
    let gold: serde_json::Map<String, serde_json::Value> = b
        .gold
        .iter()
        .map(|(m, g)| (m.clone(), (g.inserted + g.updated + g.deleted).into()))
        .collect();
    (b.silver, gold.into(), b.stages)
}

fn rows(p: &Pipeline, run: &RunRecord<'_>) -> Result<RecordBatch> {
    let rows = file_rows(run.report);
    let n = rows.len();
    let run_id = uuid::Uuid::now_v7().to_string();
    let duration = (run.finished - run.started).num_microseconds().unwrap_or(0) as f64 / 1e6;
    let error = run.error.clone();
    let outcome = if error.is_some() {
        "error"
    } else {
        run.report.outcome()
    };
    let fingerprint = p.fingerprint();
    let same_text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let time = |t: DateTime<Utc>| {
        Arc::new(
            TimestampMicrosecondArray::from(vec![t.timestamp_micros(); n]).with_timezone("UTC"),
        ) as ArrayRef
    };
    let text = |f: &dyn Fn(&Row) -> Option<String>| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let int = |f: &dyn Fn(&Row) -> u64| {
        Arc::new(Int64Array::from(
            rows.iter().map(|r| f(r) as i64).collect::<Vec<_>>(),
        )) as ArrayRef
    };
    let secs = |f: fn(&StageTimes) -> std::time::Duration| {
        let v = rows
            .iter()
            .map(|r| r.batch.as_ref().map_or(0.0, |b| f(&b.2).as_secs_f64()));
        Arc::new(Float64Array::from(v.collect::<Vec<_>>())) as ArrayRef
    };
    let json = |m: &std::collections::BTreeMap<String, u64>| serde_json::json!(m).to_string();
    let columns: Vec<ArrayRef> = vec![
        same_text(&run_id),
        time(run.started),
        time(run.finished),
        Arc::new(Float64Array::from(vec![duration; n])),
        same_text(outcome),
        Arc::new(StringArray::from(vec![error.as_deref(); n])),
        same_text(env!("CARGO_PKG_VERSION")),
        same_text(&fingerprint),
        Arc::new(Int64Array::from(vec![peak_rss_bytes() as i64; n])),
        text(&|r| r.file.clone()),
        text(&|r| r.batch_id.clone()),
        text(&|r| r.status.map(str::to_string)),
        text(&|r| r.file_error.clone()),
        int(&|r| r.counts.bytes),
        int(&|r| r.counts.rows_read),
        int(&|r| r.counts.silver_accepted),
        int(&|r| r.counts.rejected),
        text(&|r| Some(json(&r.counts.rejected_by_rule))),
        text(&|r| Some(json(&r.counts.warnings))),
        int(&|r| r.batch.as_ref().map_or(0, |b| b.0.inserted)),
        int(&|r| r.batch.as_ref().map_or(0, |b| b.0.updated)),
        int(&|r| r.batch.as_ref().map_or(0, |b| b.0.deleted)),
        text(&|r| Some(r.batch.as_ref().map_or("{}".into(), |b| b.1.to_string()))),
        secs(|s| s.read),
        secs(|s| s.bronze),
        secs(|s| s.silver),
        secs(|s| s.gold),
        secs(|s| s.ledger),
    ];
    RecordBatch::try_new(runs_schema(), columns).map_err(MedallionError::arrow("build run metrics"))
}

/// The process's peak resident set so far, in bytes (0 where unknown).
pub fn peak_rss_bytes() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return 0;
    }
    // SAFETY: getrusage succeeded, so the struct is initialised.
    let usage = unsafe { usage.assume_init() };
    // Linux reports kibibytes.
    (usage.ru_maxrss.max(0) as u64) * 1024
}
