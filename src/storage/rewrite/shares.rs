//! A copy-on-write rewrite's reading and encoding spread over the cores: one scan of
//! the files split into byte ranges of whole row groups (shares of at least
//! [`SHARE_BYTES`], at most two per core), taken by one task per core until none is
//! left, so that the cores finish together (whole files per task left a core idle:
//! three files on two cores). Each share's kept rows are written to files of their
//! own, a contiguous run of the old files' rows; a file rewritten again and again is
//! not cut below a share's size. Every row of the files is accounted for: the rows
//! kept and dropped must add up to the rows the log says the files hold.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::prelude::SessionContext;
use futures::StreamExt;
use tokio::task::JoinSet;

use super::Dropping;
use crate::error::{MedallionError, Result};
use crate::storage::AppendWriter;

/// The least bytes of data files a share reads (a few row groups).
const SHARE_BYTES: u64 = 4 << 20;

/// Rewrite `files` (URLs, as a scan's file column names them) of `table` without the
/// rows `dropping` holds, their other rows into `writer`; returns the rows dropped.
pub(super) async fn rewrite_files(
    table: &DeltaTable,
    ctx: &SessionContext,
    (name, files): (&str, &[String]),
    dropping: &Arc<Dropping>,
    writer: &mut AppendWriter,
) -> Result<Vec<RecordBatch>> {
    let (bytes, rows) = size_of(table, name, files)?;
    let before = writer.rows();
    // Dropped (an error, or this future cancelled), the set stops the tasks still
    // running, since what they write would never be committed. The first task to fail
    // stops the rewrite, whichever it is.
    let mut tasks = spawn(table, ctx, (name, files), dropping, bytes).await?;
    let mut dropped = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (part, rows) =
            done.map_err(|e| MedallionError::Internal(format!("rewriting {name} stopped: {e}")))??;
        writer.absorb(part).await?;
        dropped.extend(rows);
    }
    let n_dropped: u64 = dropped.iter().map(|b| b.num_rows() as u64).sum();
    let read = writer.rows() - before + n_dropped;
    match rows {
        Some(rows) if rows != read => Err(MedallionError::Internal(format!(
            "{name}: {read} row(s) read from data files that hold {rows}; nothing was committed"
        ))),
        _ => Ok(dropped),
    }
}

/// A rewrite task's writer (its files staged) and the rows it dropped.
type Part = Result<(AppendWriter, Vec<RecordBatch>)>;

/// One task per core (at most one per share), each taking the next share of the scan
/// until none is left, with a writer of its own (staged after each share).
async fn spawn(
    table: &DeltaTable,
    ctx: &SessionContext,
    (name, files): (&str, &[String]),
    dropping: &Arc<Dropping>,
    bytes: u64,
) -> Result<JoinSet<Part>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = (bytes / SHARE_BYTES).clamp(1, 2 * cores as u64) as usize;
    let (plan, ctx) = scan(table, ctx, files, wanted).await?;
    let shares = plan.properties().output_partitioning().partition_count();
    let next = Arc::new(AtomicUsize::new(0));
    Ok((0..cores.min(shares))
        .map(|_| {
            let (plan, task, dropping) = (plan.clone(), ctx.task_ctx(), dropping.clone());
            let (table, name, next) = (table.clone(), name.to_string(), next.clone());
            async move {
                let step = || MedallionError::sql("read the data files to rewrite");
                let mut writer = AppendWriter::new(&table, &name)?;
                let mut dropped = Vec::new();
                loop {
                    let share = next.fetch_add(1, Ordering::Relaxed);
                    if share >= shares {
                        return Ok((writer, dropped));
                    }
                    let mut stream = plan.execute(share, task.clone()).map_err(step())?;
                    while let Some(batch) = stream.next().await {
                        let (kept, replaced) = dropping.split(&batch.map_err(step())?)?;
                        dropped.extend(replaced);
                        writer.write(kept).await?;
                    }
                    writer.stage().await?;
                }
            }
        })
        .collect())
}

/// The scan of `files` in `shares` byte ranges (fewer when the files are too small to
/// split; never mixed round-robin), with the session it runs in.
async fn scan(
    table: &DeltaTable,
    ctx: &SessionContext,
    files: &[String],
    shares: usize,
) -> Result<(Arc<dyn ExecutionPlan>, SessionContext)> {
    let step = || MedallionError::sql("read the data files to rewrite");
    let mut state = ctx.state();
    let options = state.config_mut().options_mut();
    options.execution.target_partitions = shares;
    options.optimizer.repartition_file_min_size = SHARE_BYTES as usize;
    options.optimizer.enable_round_robin_repartition = false;
    let state = Arc::new(state);
    let provider = table
        .table_provider()
        .with_session(state.clone())
        .with_file_paths(files.to_vec())
        .await
        .map_err(step())?;
    let ctx = SessionContext::new_with_state((*state).clone());
    let df = ctx.read_table(provider).map_err(step())?;
    let plan = df.create_physical_plan().await.map_err(step())?;
    Ok((plan, ctx))
}

/// The bytes of the data files `ids` and, when the log counts them all, their rows
/// (less those their deletion vectors delete).
fn size_of(table: &DeltaTable, name: &str, ids: &[String]) -> Result<(u64, Option<u64>)> {
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("rewrite", name))?;
    let wanted: HashSet<String> = super::log_paths(table, name, ids)?.into_iter().collect();
    let (mut bytes, mut rows) = (0u64, Some(0u64));
    for file in snapshot.log_data().iter() {
        if !wanted.contains(file.path().as_ref()) {
            continue;
        }
        bytes += file.size().max(0) as u64;
        let deleted = file
            .deletion_vector_descriptor()
            .map_or(0, |dv| dv.cardinality.max(0) as u64);
        rows = rows
            .zip(file.num_records())
            .map(|(r, n)| r + (n as u64).saturating_sub(deleted));
    }
    Ok((bytes, rows))
}
