//! One batch (one or more raw files, claimed together) through every zone, each stage
//! guarded by its application transaction: a stage whose table already holds version
//! `seq` of its app id was committed by an earlier attempt and is skipped.
//!
//! Order: read and validate the files in name order in bounded chunks while streaming
//! bronze and rejected rows to Parquet (a file that fails drops out alone, see `read`);
//! commit bronze, then rejected, each once for the whole batch; upsert silver (files
//! apply in name order, the last row of a key wins); refresh each gold model (for the
//! keys the batch touched, or fully when silver was committed by an earlier,
//! interrupted attempt, or was empty before the batch).
//!
//! The bronze commit names the files it holds: a batch completed after a crash takes
//! exactly those files, and the others failed in the interrupted attempt.

use deltalake::arrow::record_batch::RecordBatch;

use crate::config::{Pipeline, SourceMode};
use crate::error::{MedallionError, Result};
use crate::ingest::lease::Lease;
use crate::report::{BatchReport, FileReport};
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};
use crate::zones::Lineage;
use crate::zones::gold;
use crate::zones::silver::{self, Validator};

use super::assemble::Batch;
use super::failpoint;
use super::modes::SilverStage;
use super::read::{self, Sinks};
use super::tables::{APP_BRONZE, APP_REJECTED, APP_SILVER, STAGE_BRONZE, gold_app};

/// A batch read: its data files uploaded and its accepted rows staged, with nothing
/// committed by this step, except the rows a replay from bronze rejects.
pub struct Prepared {
    /// `None` when bronze was committed by an earlier attempt.
    bronze_w: Option<AppendWriter>,
    rejected_w: AppendWriter,
    staging: silver::Staging,
    /// Rejected was committed: by an earlier attempt, or by the replay just now.
    rejected_done: bool,
    /// The replay's rejected commit.
    rejected_version: Option<i64>,
    /// How long the read took.
    read_time: std::time::Duration,
}

/// The source's tables, created when missing.
pub async fn source_tables(
    lake: &Lakehouse,
    p: &Pipeline,
) -> Result<(
    deltalake::DeltaTable,
    deltalake::DeltaTable,
    deltalake::DeltaTable,
)> {
    let tables = p.source.tables();
    let bronze = lake
        .open_or_create(&tables.bronze, &p.source.bronze_schema(), FileSize::Append)
        .await?;
    let rejected = lake
        .open_or_create(
            &tables.rejected,
            &p.source.rejected_schema(),
            FileSize::Append,
        )
        .await?;
    let properties = super::evolve::silver_properties(&p.source);
    let properties: Vec<(&str, &str)> = properties.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let silver = lake
        .open_or_create_with(
            &tables.silver,
            &p.source.silver_schema(),
            FileSize::Upsert,
            &properties,
        )
        .await?;
    Ok((bronze, rejected, silver))
}

/// Ingest one claimed batch: [`prepare`], then [`commit`].
pub async fn ingest(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    lease: &Lease,
    batch: &mut Batch,
    br: &mut BatchReport,
) -> Result<()> {
    let prepared = prepare(lake, p, validator, batch).await?;
    commit(lake, p, lease, batch, prepared, br).await
}

/// Read the batch's files, or for a batch whose bronze an earlier attempt committed,
/// stage its rows from there; each member's report is filled as its file is read.
/// Needs no lease for a new batch: it commits nothing (so it may run while the batch
/// before it commits).
pub async fn prepare(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    batch: &mut Batch,
) -> Result<Prepared> {
    let started = std::time::Instant::now();
    let tables = p.source.tables();
    let (bronze_table, rejected_table, _) = source_tables(lake, p).await?;
    let seq = batch.seq;
    let bronze_done = storage::stage_done(&bronze_table, APP_BRONZE, &tables.bronze, seq).await?;
    // Known before anything else can fail: a batch with a committed stage must stay
    // open on any error, never be closed as failed (its files would load again).
    batch.committed = bronze_done;
    let rejected_done =
        storage::stage_done(&rejected_table, APP_REJECTED, &tables.rejected, seq).await?;
    let mut prepared = Prepared {
        bronze_w: None,
        rejected_w: AppendWriter::new(&rejected_table, &tables.rejected)?,
        staging: silver::staging_for(p, batch.text_bytes())?,
        rejected_done,
        rejected_version: None,
        read_time: Default::default(),
    };
    if bronze_done {
        super::replay::keep_bronze_members(&bronze_table, &tables.bronze, batch).await?;
        let outlet = (&mut prepared.rejected_w, &mut prepared.staging);
        if let Some(version) =
            super::replay::from_committed_bronze(lake, p, validator, batch, rejected_done, outlet)
                .await?
        {
            prepared.rejected_version = version;
            prepared.rejected_done = true;
        }
    } else {
        // Nothing of the batch is committed yet: a claimed file that changed or
        // vanished since its claim fails alone (its new version is a new file).
        for i in 0..batch.members.len() {
            if batch.members[i].file.is_none() {
                let file = batch.members[i].claim.file.clone();
                batch.fail(i, MedallionError::RawFileGone { file }.to_string());
            }
        }
        let mut mode = read::Mode::Stream;
        prepared.bronze_w = loop {
            let sinks = Sinks {
                bronze: Some(AppendWriter::new(&bronze_table, &tables.bronze)?),
                rejected: &mut prepared.rejected_w,
                staging: &mut prepared.staging,
            };
            match read::read_files(p, validator, batch, sinks, mode).await? {
                read::Read::Whole(bronze_w) => break bronze_w.map(|w| *w),
                read::Read::Tainted => {
                    // A file failed part-way: the others again, each held to its end,
                    // into new writers (what the first read uploaded is never
                    // committed; `vacuum` removes it).
                    let others: Vec<usize> = (0..batch.members.len())
                        .filter(|&i| batch.members[i].report.loaded())
                        .collect();
                    tracing::info!(
                        files = others.len(),
                        "a file failed part-way; reading the batch's other files again"
                    );
                    batch.reset(&others);
                    prepared.rejected_w = AppendWriter::new(&rejected_table, &tables.rejected)?;
                    prepared.staging = silver::staging_for(p, batch.text_bytes())?;
                    mode = read::Mode::Hold;
                }
            }
        };
        super::modes::refuse_empty_snapshots(p, batch);
    }
    if let Some(w) = prepared.bronze_w.as_mut() {
        w.stage().await?;
    }
    prepared.rejected_w.stage().await?;
    prepared.read_time = started.elapsed();
    Ok(prepared)
}

/// Commit a prepared batch: bronze, then rejected, each once for the whole batch; then
/// silver and gold. A batch whose every file failed commits nothing.
pub async fn commit(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
    batch: &Batch,
    prepared: Prepared,
    br: &mut BatchReport,
) -> Result<()> {
    let Prepared {
        bronze_w,
        rejected_w,
        staging,
        rejected_done,
        rejected_version,
        read_time,
    } = prepared;
    br.stages.read = read_time;
    let committed = batch.committed;
    br.committed = committed;
    br.rejected_version = rejected_version;
    if !committed && batch.loaded().next().is_none() {
        return Ok(()); // Every file failed: there is nothing to commit.
    }
    failpoint("after_data_files");
    let tables = p.source.tables();
    let (mut bronze_table, mut rejected_table, silver_table) = source_tables(lake, p).await?;
    let seq = batch.seq;
    let silver_done = storage::stage_done(&silver_table, APP_SILVER, &tables.silver, seq).await?;
    let started = std::time::Instant::now();
    crate::progress::stage(Some("bronze"));
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
    br.stages.bronze = started.elapsed();
    tracing::debug!(batch = %lineage.batch_id, ms = br.stages.bronze.as_millis() as u64, "bronze and rejected committed");
    // Gold is recomputed in full when the batch's rows are all of silver anyway (silver
    // was empty): collecting each slice's keys would only name every group.
    let staged = staging.finish()?;
    let fresh =
        !silver_done && !staged.is_empty() && storage::is_empty(&silver_table, &tables.silver)?;
    let full = silver_done || batch.recovering || fresh;
    let stage = SilverStage {
        done: silver_done,
        full,
        fresh,
        lineage: &lineage,
        seq,
    };
    crate::progress::stage(Some("silver"));
    // Models other sources feed too are locked from before this batch's rows are
    // joined with those sources until they are refreshed: two sources' batches then
    // never miss the groups where their changes meet (ΔR ⋈ ΔS).
    let locks = super::modes::lock_shared_models(lake, p, lease).await?;
    let done = async {
        let Some((silver, affected)) =
            upsert_silver(lake, p, lease, silver_table, staged, stage, br).await?
        else {
            return Ok::<(), crate::MedallionError>(());
        };
        let started = std::time::Instant::now();
        let affected = (!full).then_some(affected);
        crate::progress::stage(Some("gold"));
        refresh_gold(lake, p, lease, &silver, affected, (&lineage, seq), br).await?;
        br.stages.gold = started.elapsed();
        Ok(())
    }
    .await;
    lease.let_go(&locks).await;
    done?;
    tracing::debug!(batch = %lineage.batch_id, ms = br.stages.gold.as_millis() as u64, "gold refreshed");
    Ok(())
}

/// Write the staged rows into silver (by the source's mode: `modes`, `upsert`).
/// Returns silver and the affected keys per model, or `None` when gold has nothing to
/// do.
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
    let name = p.source.tables().silver;
    let ctx = (lake, lease);
    if !stage.done && p.source.mode != SourceMode::Upsert {
        silver =
            super::modes::write(ctx, p, silver, &mut staged, &stage, &mut affected, br).await?;
        lake.keep(&name, &silver);
        touched = true;
    } else if !stage.done {
        (silver, touched) =
            super::upsert::slices(ctx, p, silver, staged, &stage, &mut affected, br).await?;
    }
    if touched {
        failpoint("after_silver_commit");
    }
    br.stages.silver = started.elapsed();
    if !touched && !stage.full {
        return Ok(None);
    }
    tracing::debug!(batch = %stage.lineage.batch_id, ms = br.stages.silver.as_millis() as u64, "silver upserted");
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
        if !model.reads(&p.source.name) {
            continue;
        }
        let app = gold_app(&model.name, &p.source.name);
        let relative = model.table();
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
