//! Rebuilding a batch's silver input from its committed bronze rows, for a batch that an
//! earlier run left part-way after committing bronze: the accepted rows are the batch's
//! bronze rows minus its rejected lines, typed and checked again, so the raw files are
//! not read again (they may have been moved away meanwhile).
//!
//! The configuration may have changed since the batch started: a row that the current
//! rules reject is appended to rejected (one commit, guarded by its own transaction;
//! when the batch's rejected stage was never committed, it is that stage's commit), so
//! every bronze row still lands in silver or in rejected. A `fail` rule cannot stop a
//! batch whose bronze is already committed: its row is kept, with a warning.
//!
//! Rows come back ordered by file and line, which is the order the batch applies them
//! in (its files in name order), so the last row of a key still wins.

use std::collections::HashMap;

use deltalake::arrow::array::AsArray;
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::arrow::record_batch::RecordBatch;
use futures::StreamExt;

use super::assemble::Batch;
use super::read::{self, Sinks};
use super::tables::{APP_REJECTED, STAGE_BRONZE};
use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::report::merge_counts;
use crate::schema::{BATCH_ID, SOURCE_FILE, SOURCE_LINE};
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::bronze;
use crate::zones::silver;
use crate::zones::silver::{Staging, Validator};

/// Application transaction of the rows a replay rejects under changed rules.
pub const APP_REJECTED_REPLAY: &str = "medallion/rejected/replay";

/// How far back in bronze's history a batch's own commit is looked for: it is the
/// newest batch commit (batches commit in `seq` order), followed at most by
/// compactions and a vacuum.
const BRONZE_COMMITS_SEARCHED: usize = 64;

/// Drop from an interrupted batch the files its bronze commit does not hold: they
/// failed in that attempt (the next run tries them again).
pub async fn keep_bronze_members(
    table: &deltalake::DeltaTable,
    name: &str,
    batch: &mut Batch,
) -> Result<()> {
    let info = storage::batch_commit_info(
        table,
        name,
        STAGE_BRONZE,
        batch.seq,
        BRONZE_COMMITS_SEARCHED,
    )
    .await?;
    let files = info
        .as_ref()
        .and_then(|i| i.get("files")?.as_array().cloned());
    let Some(files) = files else {
        // A batch of one file (so the commit holds it), or one from before batches
        // named their files.
        if batch.members.len() > 1 {
            return Err(MedallionError::Internal(format!(
                "{name}: the commit of batch {} (seq {}) is not among the last {BRONZE_COMMITS_SEARCHED}",
                batch.batch_id, batch.seq
            )));
        }
        return Ok(());
    };
    let held: std::collections::HashSet<&str> = files.iter().filter_map(|f| f.as_str()).collect();
    for i in 0..batch.members.len() {
        if !held.contains(batch.members[i].claim.file.as_str()) {
            batch.fail(
                i,
                "it failed in an interrupted attempt, before its batch's bronze commit; \
                 the next run tries it again"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Stage the silver rows (and write the rejected ones) of a batch whose bronze is
/// committed. While rejected is not committed and every file still has its claimed
/// content, the files are read again: that repeats the structural checks (field
/// counts, quoting) that bronze's text alone cannot. Otherwise the rows are replayed
/// from bronze, which also commits the rejected rows; its version is returned then.
pub async fn from_committed_bronze(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    batch: &mut Batch,
    rejected_done: bool,
    (rejected_w, staging): (&mut AppendWriter, &mut silver::Staging),
) -> Result<Option<Option<i64>>> {
    if !rejected_done && batch.loaded().all(|m| m.file.is_some()) {
        let sinks = Sinks {
            bronze: None,
            rejected: rejected_w,
            staging,
        };
        let held: Vec<usize> = (0..batch.members.len())
            .filter(|&i| batch.members[i].report.loaded())
            .collect();
        // A file that fails is replayed from bronze instead: in a batch of many, each
        // file's rows are held to its end, so nothing of it reaches the writers.
        let mode = match batch.members.len() {
            1 => read::Mode::Stream,
            _ => read::Mode::Hold,
        };
        read::read_files(p, validator, batch, sinks, mode).await?;
        if batch.loaded().count() == held.len() {
            return Ok(None);
        }
        // A file no longer reads as it did (a `fail` rule added since): its bronze
        // rows are committed, so they are replayed instead.
        batch.reset(&held);
        *staging = silver::staging_for(p, batch.text_bytes())?;
    }
    let app = if rejected_done {
        APP_REJECTED_REPLAY
    } else {
        APP_REJECTED
    };
    let version = stage_from_bronze(lake, p, validator, batch, app, staging).await?;
    Ok(Some(version))
}

/// Stage the batch's accepted rows from bronze, filling each member's counts; the rows
/// the current rules reject are committed to rejected under transaction `app`
/// (returns that commit's version).
pub async fn stage_from_bronze(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    batch: &mut Batch,
    app: &str,
    staging: &mut Staging,
) -> Result<Option<i64>> {
    let tables = p.source.tables();
    let ctx = storage::session();
    for (name, relative) in [
        ("__bronze", &tables.bronze),
        ("__rejected", &tables.rejected),
    ] {
        let table = lake
            .open(relative)
            .await?
            .ok_or_else(|| MedallionError::Internal(format!("table {relative} vanished")))?;
        storage::register(&ctx, name, &table).await?;
    }
    let step = "replay the batch from bronze";
    let id = batch.batch_id.replace('\'', "''");
    let members: HashMap<String, usize> = (0..batch.members.len())
        .filter(|&i| batch.members[i].report.loaded())
        .map(|i| (batch.members[i].claim.file.clone(), i))
        .collect();
    for (table, rejected) in [("__bronze", false), ("__rejected", true)] {
        let sql = format!(
            "SELECT {SOURCE_FILE}, COUNT(*) FROM {table} WHERE {BATCH_ID} = '{id}' GROUP BY {SOURCE_FILE}"
        );
        for b in storage::sql_batches(&ctx, &sql, step).await? {
            let files = text(&b, 0)?;
            let counts = b.column(1).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                let Some(&i) = members.get(files.value(r)) else {
                    continue;
                };
                let report = &mut batch.members[i].report;
                let n = counts.value(r) as u64;
                if rejected {
                    report.rejected += n;
                } else {
                    report.rows_read += n;
                    report.bronze_rows += n;
                }
            }
        }
    }
    let columns: Vec<String> = p
        .source
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let sql = format!(
        "SELECT {}, {SOURCE_LINE}, {SOURCE_FILE} FROM __bronze b WHERE {BATCH_ID} = '{id}' AND NOT EXISTS \
         (SELECT 1 FROM __rejected r WHERE r.{BATCH_ID} = '{id}' AND r.{SOURCE_FILE} = b.{SOURCE_FILE} \
         AND r.{SOURCE_LINE} = b.{SOURCE_LINE}) ORDER BY {SOURCE_FILE}, {SOURCE_LINE}",
        columns.join(", ")
    );
    let err = || MedallionError::sql(step);
    let mut stream = ctx
        .sql(&sql)
        .await
        .map_err(err())?
        .execute_stream()
        .await
        .map_err(err())?;
    let n = p.source.columns.len();
    let mut rejected_table = lake
        .open(&tables.rejected)
        .await?
        .ok_or_else(|| MedallionError::Internal(format!("table {} vanished", tables.rejected)))?;
    let mut newly_rejected = AppendWriter::new(&rejected_table, &tables.rejected)?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(err())?;
        for (file, part) in bronze::file_runs(&b, n + 1)? {
            let Some(&i) = members.get(&file) else {
                continue;
            };
            let lineage = batch.lineage(i);
            let rows = bronze::read_back(&part, n)?;
            let v = validator.validate(&rows, &lineage)?;
            if let Some((line, rule, _)) = &v.failure {
                tracing::warn!(
                    file = %lineage.source_file,
                    "line {line}: rule `{rule}` (action fail) was added after this batch's bronze \
                     was committed; the row is kept"
                );
            }
            let report = &mut batch.members[i].report;
            report.silver_accepted += v.accepted.num_rows() as u64;
            report.rejected += v.rejected.num_rows() as u64;
            merge_counts(&mut report.rejected_by_rule, &v.rejected_by_rule);
            merge_counts(&mut report.warnings, &v.warnings);
            staging.write(&v.accepted)?;
            newly_rejected.write(v.rejected).await?;
        }
    }
    if newly_rejected.rows() == 0 && app == APP_REJECTED_REPLAY {
        return Ok(None);
    }
    let rows = newly_rejected.rows();
    let props = storage::commit_info(
        "rejected_append",
        serde_json::json!({
            "batch_id": batch.batch_id,
            "rows": rows,
            "seq": batch.seq,
            "note": "rejected when the batch was completed from bronze",
        }),
    );
    let committed = newly_rejected
        .commit(&mut rejected_table, props, Some((app, batch.seq)))
        .await?;
    lake.keep(&tables.rejected, &rejected_table);
    Ok(committed.version())
}

/// Column `i` of `b` as text.
fn text(b: &RecordBatch, i: usize) -> Result<deltalake::arrow::array::StringArray> {
    let c = deltalake::arrow::compute::cast(b.column(i), &DataType::Utf8)
        .map_err(MedallionError::arrow("replay the batch from bronze"))?;
    Ok(c.as_string::<i32>().clone())
}
