//! One batch (one raw file) through every zone, each stage guarded by its application
//! transaction: a stage whose table already holds version `seq` of its app id was
//! committed by an earlier attempt and is skipped.
//!
//! Order: read and validate in bounded chunks while streaming bronze and rejected rows
//! to Parquet; if a `fail` rule breaks, stop before any commit; commit bronze, then
//! rejected; upsert silver; refresh each gold model (for the keys the batch touched,
//! or fully when silver was committed by an earlier, interrupted attempt).

use std::collections::BTreeMap;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::RawFile;
use crate::ingest::lease::Lease;
use crate::ingest::reader::{CsvChunks, RawRow};
use crate::report::FileReport;
use crate::schema;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};
use crate::zones::gold;
use crate::zones::silver::{self, Validator};
use crate::zones::{Lineage, bronze};

use super::failpoint;

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

fn gold_app(model: &str) -> String {
    format!("medallion/gold/{model}")
}

/// Ingest one claimed batch; `fr` is filled as stages complete (also on error).
#[allow(clippy::too_many_arguments)]
pub async fn ingest(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    lease: &Lease,
    file: Option<&RawFile>,
    lineage: &Lineage,
    seq: i64,
    recovering: bool,
    fr: &mut FileReport,
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
    let bronze_done = storage::stage_done(&bronze_table, APP_BRONZE, &tables.bronze, seq).await?;
    let rejected_done =
        storage::stage_done(&rejected_table, APP_REJECTED, &tables.rejected, seq).await?;
    let silver_done = storage::stage_done(&silver_table, APP_SILVER, &tables.silver, seq).await?;
    fr.committed = bronze_done;
    tracing::debug!("tables opened");

    let started = std::time::Instant::now();
    let mut bronze_w = AppendWriter::new(&bronze_table, &tables.bronze)?;
    let mut rejected_w = AppendWriter::new(&rejected_table, &tables.rejected)?;
    let mut staging = silver::Staging::new(&schema::silver_schema(p))?;
    if bronze_done && rejected_done {
        super::replay::stage_from_bronze(lake, p, validator, (lineage, seq), &mut staging, fr)
            .await?;
    } else {
        let file = file.ok_or_else(|| MedallionError::RawFileGone {
            file: lineage.source_file.clone(),
        })?;
        bronze_w = read_file(
            p,
            validator,
            file,
            lineage,
            &bronze_schema,
            (bronze_done, rejected_done),
            (bronze_w, &mut rejected_w),
            &mut staging,
            fr,
        )
        .await?;
    }
    bronze_w.stage().await?;
    rejected_w.stage().await?;
    failpoint("after_data_files");

    let info = |rows: u64| serde_json::json!({ "batch_id": lineage.batch_id, "source_file": lineage.source_file, "rows": rows, "seq": seq });
    if !bronze_done {
        lease.check()?;
        let props = storage::commit_info("bronze_append", info(fr.bronze_rows));
        fr.bronze_version = bronze_w
            .commit(&mut bronze_table, props, Some((APP_BRONZE, seq)))
            .await?
            .version();
        lake.keep(&tables.bronze, &bronze_table);
        fr.committed = true;
        failpoint("after_bronze_commit");
    }
    if !rejected_done {
        lease.check()?;
        let props = storage::commit_info("rejected_append", info(fr.rejected));
        fr.rejected_version = rejected_w
            .commit(&mut rejected_table, props, Some((APP_REJECTED, seq)))
            .await?
            .version();
        lake.keep(&tables.rejected, &rejected_table);
        failpoint("after_rejected_commit");
    }

    // Silver, in slices of bounded size read back from the staged rows. Only the last
    // slice's commit carries the transaction: an interrupted attempt redoes every slice,
    // which is idempotent (a slice already written finds all its keys, so it is MERGEd
    // with the same values, never appended twice). The gold keys a slice touches come
    // from its rows and the silver rows they replace; after an interrupted attempt, the
    // rows replaced by its committed slices are gone, so gold is recomputed in full.
    tracing::debug!(file = %lineage.source_file, ms = started.elapsed().as_millis() as u64, "read, validated, bronze and rejected committed");
    let started = std::time::Instant::now();
    let mut staged = staging.finish(p.silver_batch_rows)?;
    let full = silver_done || recovering;
    let mut affected: Vec<Vec<deltalake::arrow::record_batch::RecordBatch>> =
        vec![Vec::new(); p.gold.len()];
    let mut silver = silver_table;
    let mut touched = false;
    if !silver_done {
        let ctx = storage::session();
        let mut t = std::time::Instant::now();
        while let Some((slice, last)) = staged.next_slice(p.silver_batch_rows)? {
            tracing::debug!(ms = lap(&mut t), "slice read back");
            let rows = silver::dedupe_batch(p, slice)?;
            tracing::debug!(ms = lap(&mut t), "slice deduplicated");
            let replaced = silver::replaced_rows(p, &silver, &rows).await?;
            if !full {
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
            let txn = last.then_some((APP_SILVER, seq));
            let (after, m) =
                silver::upsert_batch(&ctx, p, silver, (&rows, &replaced), lineage, txn).await?;
            tracing::debug!(ms = lap(&mut t), "slice written");
            silver = after;
            lake.keep(&tables.silver, &silver);
            touched = true;
            fr.silver.inserted += m.inserted;
            fr.silver.updated += m.updated;
            fr.silver.version = m.version.or(fr.silver.version);
        }
        if touched {
            failpoint("after_silver_commit");
        }
    }
    if !touched && !full {
        return Ok(());
    }
    tracing::debug!(file = %lineage.source_file, ms = started.elapsed().as_millis() as u64, "silver upserted");
    let started = std::time::Instant::now();
    let affected = (!full).then_some(affected);
    refresh_gold(lake, p, lease, &silver, affected, (lineage, seq), fr).await?;
    tracing::debug!(file = %lineage.source_file, ms = started.elapsed().as_millis() as u64, "gold refreshed");
    Ok(())
}

/// Refresh every gold model whose stage is not done yet: for the keys each model was
/// `affected` in, or fully (`None`).
async fn refresh_gold(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
    silver: &deltalake::DeltaTable,
    affected: Option<Vec<Vec<deltalake::arrow::record_batch::RecordBatch>>>,
    (lineage, seq): (&Lineage, i64),
    fr: &mut FileReport,
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
        fr.gold.push((g.model, g.changes));
        failpoint("after_gold_commit");
    }
    Ok(())
}

/// Read the raw file: bronze and rejected rows stream to their writers (unless those
/// stages are already committed), accepted rows to the staging file. Bronze batches
/// are encoded by a task of their own, in parallel with validation; the bronze writer
/// comes back when the file is read.
#[allow(clippy::too_many_arguments)]
async fn read_file(
    p: &Pipeline,
    validator: &Validator,
    file: &RawFile,
    lineage: &Lineage,
    bronze_schema: &deltalake::arrow::datatypes::SchemaRef,
    (bronze_done, rejected_done): (bool, bool),
    (bronze_w, rejected_w): (AppendWriter, &mut AppendWriter),
    staging: &mut silver::Staging,
    fr: &mut FileReport,
) -> Result<AppendWriter> {
    let mut chunks = read_in_background(file.clone(), p.source.clone());
    let (to_bronze, bronze) = encode_in_background(bronze_w);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        fr.rows_read += chunk.len() as u64;
        let v = validator.validate(&chunk, lineage)?;
        if let Some((line, rule, message)) = v.failure {
            return Err(MedallionError::FailRule {
                file: file.name.clone(),
                line,
                rule,
                message,
            });
        }
        // A send fails only when the encoder stopped on an error, reported below.
        if !bronze_done
            && to_bronze
                .send(bronze::to_batch(bronze_schema, &chunk, lineage)?)
                .await
                .is_err()
        {
            break;
        }
        fr.bronze_rows += chunk.len() as u64;
        fr.rejected += v.rejected.num_rows() as u64;
        fr.silver_accepted += v.accepted.num_rows() as u64;
        merge_counts(&mut fr.rejected_by_rule, v.rejected_by_rule);
        merge_counts(&mut fr.warnings, v.warnings);
        if !rejected_done {
            rejected_w.write(v.rejected).await?;
        }
        staging.write(&v.accepted)?;
    }
    drop(to_bronze);
    let bronze_w = bronze
        .await
        .map_err(|e| MedallionError::Internal(format!("the bronze encoder stopped: {e}")))??;
    // The claim's fingerprint was taken before the read (by the run, possibly while the
    // previous file loaded): a file rewritten since then must not be loaded under it.
    // (An object read with If-Match on its listed ETag cannot have been.)
    let listed = file.clone();
    let unchanged = file.reads_are_conditional()
        || tokio::task::spawn_blocking(move || listed.unchanged_since_listed())
            .await
            .map_err(|e| MedallionError::Internal(format!("checking a raw file stopped: {e}")))??;
    if !unchanged {
        return Err(MedallionError::BadFile {
            file: file.name.clone(),
            message: "the file changed (size or modification time) while it was read; \
                      this attempt stopped before committing what it read"
                .into(),
        });
    }
    Ok(bronze_w)
}

/// Encode bronze batches on a task of their own (bounded queue).
fn encode_in_background(
    mut writer: AppendWriter,
) -> (
    tokio::sync::mpsc::Sender<deltalake::arrow::record_batch::RecordBatch>,
    tokio::task::JoinHandle<Result<AppendWriter>>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let task = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            writer.write(batch).await?;
        }
        Ok(writer)
    });
    (tx, task)
}

/// Open and parse the file on its own thread, a couple of chunks ahead of validation
/// and writing (two cores busy, memory bounded by the channel). A file that cannot be
/// opened, or whose header does not fit, comes out as the first (and only) error.
fn read_in_background(
    file: RawFile,
    spec: crate::config::SourceSpec,
) -> tokio::sync::mpsc::Receiver<Result<Vec<RawRow>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    std::thread::spawn(move || {
        let mut reader = match CsvChunks::open(&file, &spec) {
            Ok(reader) => reader,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let next = reader.next_chunk();
            let stop = !matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    rx
}

/// Milliseconds since `t`, restarting it (phase timings for debug logs).
fn lap(t: &mut std::time::Instant) -> u64 {
    let ms = t.elapsed().as_millis() as u64;
    *t = std::time::Instant::now();
    ms
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}
