//! One batch (one or more raw files, claimed together) through every zone, each stage
//! guarded by its application transaction: a stage whose table already holds version
//! `seq` of its app id was committed by an earlier attempt and is skipped.
//!
//! Order: read and validate the files in name order in bounded chunks while streaming
//! bronze and rejected rows to Parquet (a file that fails drops out alone, see `read`);
//! commit bronze, then rejected, each once for the whole batch; upsert silver (files
//! apply in name order, the last row of a key wins); refresh each gold model (for the
//! keys the batch touched, or fully when silver was committed by an earlier,
//! interrupted attempt).
//!
//! The bronze commit names the files it holds: a batch completed after a crash takes
//! exactly those files, and the others failed in the interrupted attempt.

use deltalake::arrow::record_batch::RecordBatch;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::lease::Lease;
use crate::report::{BatchReport, FileReport};
use crate::schema;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};
use crate::zones::Lineage;
use crate::zones::gold;
use crate::zones::silver::{self, Validator};

use super::assemble::Batch;
use super::failpoint;
use super::read::{self, Sinks};

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

const APP_BRONZE: &str = "medallion/bronze";
const APP_REJECTED: &str = "medallion/rejected";
const APP_SILVER: &str = "medallion/silver";

/// The commit info stage of a batch's bronze commit.
const STAGE_BRONZE: &str = "bronze_append";

/// How far back in bronze's history a batch's own commit is looked for: it is the
/// newest batch commit (batches commit in `seq` order), followed at most by
/// compactions and a vacuum.
const BRONZE_COMMITS_SEARCHED: usize = 64;

fn gold_app(model: &str) -> String {
    format!("medallion/gold/{model}")
}

/// Ingest one claimed batch; `br` is filled as stages complete (also on error), each
/// member's report as its file is read.
pub async fn ingest(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    lease: &Lease,
    batch: &mut Batch,
    br: &mut BatchReport,
) -> Result<()> {
    let tables = SourceTables::new(p);
    let bronze_schema = schema::bronze_schema(p);
    let mut bronze_table = lake
        .open_or_create(&tables.bronze, &bronze_schema, FileSize::Append)
        .await?;
    let mut rejected_table = lake
        .open_or_create(
            &tables.rejected,
            &schema::rejected_schema(p),
            FileSize::Append,
        )
        .await?;
    let silver_table = lake
        .open_or_create_with(
            &tables.silver,
            &schema::silver_schema(p),
            FileSize::Upsert,
            &[(
                super::evolve::SILVER_KEY_PROPERTY,
                &super::evolve::silver_key_value(p),
            )],
        )
        .await?;
    let seq = batch.seq;
    let bronze_done = storage::stage_done(&bronze_table, APP_BRONZE, &tables.bronze, seq).await?;
    let mut rejected_done =
        storage::stage_done(&rejected_table, APP_REJECTED, &tables.rejected, seq).await?;
    let silver_done = storage::stage_done(&silver_table, APP_SILVER, &tables.silver, seq).await?;
    br.committed = bronze_done;
    tracing::debug!("tables opened");

    let started = std::time::Instant::now();
    let mut rejected_w = AppendWriter::new(&rejected_table, &tables.rejected)?;
    let mut staging = silver::Staging::new(&schema::silver_schema(p))?;
    let bronze_w = if bronze_done {
        keep_bronze_members(&bronze_table, &tables.bronze, batch).await?;
        let outlet = (&mut rejected_w, &mut staging);
        if let Some(version) =
            from_committed_bronze(lake, p, validator, batch, rejected_done, outlet).await?
        {
            br.rejected_version = version;
            rejected_done = true;
        }
        None
    } else {
        let sinks = Sinks {
            bronze: Some(AppendWriter::new(&bronze_table, &tables.bronze)?),
            rejected: &mut rejected_w,
            staging: &mut staging,
        };
        let w = read::read_files(p, validator, batch, &bronze_schema, sinks).await?;
        if batch.loaded().next().is_none() {
            return Ok(()); // Every file failed: there is nothing to commit.
        }
        w
    };
    let mut bronze_w = bronze_w;
    if let Some(w) = bronze_w.as_mut() {
        w.stage().await?;
    }
    rejected_w.stage().await?;
    failpoint("after_data_files");

    let lineage = batch.commit_lineage();
    let files: Vec<&str> = batch.loaded().map(|m| m.claim.file.as_str()).collect();
    let totals = |f: fn(&FileReport) -> u64| batch.loaded().map(|m| f(&m.report)).sum::<u64>();
    let info = |rows: u64| serde_json::json!({ "batch_id": lineage.batch_id, "source_file": lineage.source_file, "rows": rows, "seq": seq, "files": files });
    if let Some(w) = bronze_w {
        lease.check()?;
        let props = storage::commit_info(STAGE_BRONZE, info(totals(|r| r.bronze_rows)));
        br.bronze_version = w
            .commit(&mut bronze_table, props, Some((APP_BRONZE, seq)))
            .await?
            .version();
        lake.keep(&tables.bronze, &bronze_table);
        br.committed = true;
        failpoint("after_bronze_commit");
    }
    if !rejected_done {
        lease.check()?;
        let props = storage::commit_info("rejected_append", info(totals(|r| r.rejected)));
        br.rejected_version = rejected_w
            .commit(&mut rejected_table, props, Some((APP_REJECTED, seq)))
            .await?
            .version();
        lake.keep(&tables.rejected, &rejected_table);
        failpoint("after_rejected_commit");
    }
    tracing::debug!(batch = %lineage.batch_id, ms = started.elapsed().as_millis() as u64, "read, validated, bronze and rejected committed");
    let full = silver_done || batch.recovering;
    let staged = staging.finish(p.silver_batch_rows)?;
    let stage = SilverStage {
        done: silver_done,
        full,
        lineage: &lineage,
        seq,
    };
    let Some((silver, affected)) =
        upsert_silver(lake, p, lease, silver_table, staged, stage, br).await?
    else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let affected = (!full).then_some(affected);
    refresh_gold(lake, p, lease, &silver, affected, (&lineage, seq), br).await?;
    tracing::debug!(batch = %lineage.batch_id, ms = started.elapsed().as_millis() as u64, "gold refreshed");
    Ok(())
}

/// Drop from an interrupted batch the files its bronze commit does not hold: they
/// failed in that attempt (the next run tries them again).
async fn keep_bronze_members(
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
async fn from_committed_bronze(
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
        read::read_files(p, validator, batch, &schema::bronze_schema(p), sinks).await?;
        if batch.loaded().count() == held.len() {
            return Ok(None);
        }
        // A file no longer reads as it did (a `fail` rule added since): its bronze
        // rows are committed, so they are replayed instead.
        for &i in &held {
            let m = &mut batch.members[i];
            m.report = FileReport::new(&m.claim.file, &batch.batch_id);
        }
        *staging = silver::Staging::new(&schema::silver_schema(p))?;
    }
    batch.reset_counts();
    let app = if rejected_done {
        super::replay::APP_REJECTED_REPLAY
    } else {
        APP_REJECTED
    };
    let version = super::replay::stage_from_bronze(lake, p, validator, batch, app, staging).await?;
    Ok(Some(version))
}

/// How the silver stage of a batch runs.
struct SilverStage<'a> {
    /// Committed by an earlier attempt.
    done: bool,
    /// Gold is recomputed in full (so no affected keys are collected).
    full: bool,
    lineage: &'a Lineage,
    seq: i64,
}

/// Upsert the staged rows into silver, in slices of bounded size read back from the
/// staging file. Only the last slice's commit carries the transaction: an interrupted
/// attempt redoes every slice, which is idempotent (a slice already written finds all
/// its keys, so it is MERGEd with the same values, never appended twice). The gold keys
/// a slice touches come from its rows and the silver rows they replace; after an
/// interrupted attempt, the rows replaced by its committed slices are gone, so gold is
/// recomputed in full. Returns silver and the affected keys per model, or `None` when
/// gold has nothing to do.
async fn upsert_silver(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
    mut silver: deltalake::DeltaTable,
    mut staged: silver::StagedRows,
    stage: SilverStage<'_>,
    br: &mut BatchReport,
) -> Result<Option<(deltalake::DeltaTable, Vec<Vec<RecordBatch>>)>> {
    let started = std::time::Instant::now();
    let mut affected: Vec<Vec<RecordBatch>> = vec![Vec::new(); p.gold.len()];
    let mut touched = false;
    let name = SourceTables::new(p).silver;
    if !stage.done {
        let ctx = storage::session();
        let mut t = std::time::Instant::now();
        while let Some((slice, last)) = staged.next_slice(p.silver_batch_rows)? {
            let rows = silver::dedupe_batch(p, slice)?;
            tracing::debug!(ms = lap(&mut t), "slice read back and deduplicated");
            let replaced = silver::replaced_rows(p, &silver, &rows).await?;
            if !stage.full {
                let touched = rows.iter().chain(&replaced).cloned().collect();
                let per_model = gold::affected_keys(p, touched).await?;
                for (keys, more) in affected.iter_mut().zip(per_model) {
                    keys.extend(more);
                }
            }
            tracing::debug!(
                ms = lap(&mut t),
                replaced = replaced.iter().map(|b| b.num_rows()).sum::<usize>(),
                "silver rows and gold keys the slice touches"
            );
            lease.check()?;
            let txn = last.then_some((APP_SILVER, stage.seq));
            let (after, m) =
                silver::upsert_batch(&ctx, p, silver, (&rows, &replaced), stage.lineage, txn)
                    .await?;
            tracing::debug!(ms = lap(&mut t), "slice written");
            silver = after;
            lake.keep(&name, &silver);
            touched = true;
            br.silver.inserted += m.inserted;
            br.silver.updated += m.updated;
            br.silver.version = m.version.or(br.silver.version);
        }
        if touched {
            failpoint("after_silver_commit");
        }
    }
    if !touched && !stage.full {
        return Ok(None);
    }
    tracing::debug!(batch = %stage.lineage.batch_id, ms = started.elapsed().as_millis() as u64, "silver upserted");
    Ok(Some((silver, affected)))
}

/// Refresh every gold model whose stage is not done yet: for the keys each model was
/// `affected` in, or fully (`None`).
async fn refresh_gold(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
    silver: &deltalake::DeltaTable,
    affected: Option<Vec<Vec<RecordBatch>>>,
    (lineage, seq): (&Lineage, i64),
    br: &mut BatchReport,
) -> Result<()> {
    let mut affected = affected.map(Vec::into_iter);
    for model in &p.gold {
        let keys = affected.as_mut().and_then(Iterator::next);
        let app = gold_app(&model.name);
        let relative = format!("gold/{}", model.name);
        if let Some(t) = lake.open(&relative).await?
            && storage::stage_done(&t, &app, &relative, seq).await?
        {
            continue;
        }
        lease.check()?;
        let g = gold::refresh(lake, p, model, silver, keys, lineage, Some((&app, seq))).await?;
        br.gold.push((g.model, g.changes));
        failpoint("after_gold_commit");
    }
    Ok(())
}

/// Milliseconds since `t`, restarting it (phase timings for debug logs).
fn lap(t: &mut std::time::Instant) -> u64 {
    let ms = t.elapsed().as_millis() as u64;
    *t = std::time::Instant::now();
    ms
}
