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
use crate::ingest::reader::CsvChunks;
use crate::report::FileReport;
use crate::schema;
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::gold::{self, SilverVersions};
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

async fn done(table: &deltalake::DeltaTable, app: &str, name: &str, seq: i64) -> Result<bool> {
    Ok(storage::txn_version(table, app, name).await?.unwrap_or(0) >= seq)
}

/// Ingest one claimed batch; `fr` is filled as stages complete (also on error).
#[allow(clippy::too_many_arguments)]
pub async fn ingest(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    lease: &Lease,
    file: &RawFile,
    lineage: &Lineage,
    seq: i64,
    recovering: bool,
    fr: &mut FileReport,
) -> Result<()> {
    let tables = SourceTables::new(p);
    let bronze_schema = schema::bronze_schema(p);
    let mut bronze_table = lake
        .open_or_create(&tables.bronze, &bronze_schema, &[])
        .await?;
    let mut rejected_table = lake
        .open_or_create(&tables.rejected, &schema::rejected_schema(p), &[])
        .await?;
    let silver_table = lake
        .open_or_create(&tables.silver, &schema::silver_schema(p), &[])
        .await?;
    let bronze_done = done(&bronze_table, APP_BRONZE, &tables.bronze, seq).await?;
    let rejected_done = done(&rejected_table, APP_REJECTED, &tables.rejected, seq).await?;
    let silver_done = done(&silver_table, APP_SILVER, &tables.silver, seq).await?;
    fr.committed = bronze_done;

    let mut reader = CsvChunks::open(&file.path, &file.name, &p.source)?;
    let mut bronze_w = AppendWriter::new(&bronze_table, &tables.bronze)?;
    let mut rejected_w = AppendWriter::new(&rejected_table, &tables.rejected)?;
    let mut accepted = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
        let v = validator.validate(&chunk, lineage)?;
        if let Some((line, rule, message)) = v.failure {
            return Err(MedallionError::FailRule {
                file: file.name.clone(),
                line,
                rule,
                message,
            });
        }
        if !bronze_done {
            bronze_w
                .write(bronze::to_batch(&bronze_schema, &chunk, lineage)?)
                .await?;
        }
        fr.bronze_rows += chunk.len() as u64;
        fr.rejected += v.rejected.num_rows() as u64;
        fr.silver_accepted += v.accepted.num_rows() as u64;
        merge_counts(&mut fr.rejected_by_rule, v.rejected_by_rule);
        merge_counts(&mut fr.warnings, v.warnings);
        if !rejected_done {
            rejected_w.write(v.rejected).await?;
        }
        if v.accepted.num_rows() > 0 {
            accepted.push(v.accepted);
        }
    }
    fr.rows_read = reader.rows_read;
    bronze_w.stage().await?;
    rejected_w.stage().await?;
    failpoint("after_data_files");

    let info = |rows: u64| serde_json::json!({ "batch_id": lineage.batch_id, "source_file": lineage.source_file, "rows": rows, "seq": seq });
    if !bronze_done {
        lease.check()?;
        let props = storage::commit_info("bronze_append", info(fr.bronze_rows));
        fr.bronze_version = bronze_w
            .commit(&mut bronze_table, props, Some((APP_BRONZE, seq)))
            .await?;
        fr.committed = true;
        failpoint("after_bronze_commit");
    }
    if !rejected_done {
        lease.check()?;
        let props = storage::commit_info("rejected_append", info(fr.rejected));
        fr.rejected_version = rejected_w
            .commit(&mut rejected_table, props, Some((APP_REJECTED, seq)))
            .await?;
        failpoint("after_rejected_commit");
    }

    let ctx = storage::session();
    let rows = if accepted.is_empty() {
        Vec::new()
    } else {
        silver::dedupe_batch(&ctx, p, accepted).await?
    };
    // Gold can be refreshed incrementally only from the silver state this attempt saw
    // before its own upsert; after an interrupted attempt, gold is recomputed in full.
    let (after, before) = if silver_done || rows.is_empty() {
        (silver_table, None)
    } else {
        lease.check()?;
        let before = silver_table.clone();
        let (after, metrics) =
            silver::upsert_batch(&ctx, p, silver_table, &rows, lineage, seq, APP_SILVER).await?;
        fr.silver = metrics;
        failpoint("after_silver_commit");
        (after, Some(before))
    };
    let full = silver_done || recovering;
    if rows.is_empty() && !full {
        return Ok(());
    }
    for model in &p.gold {
        let app = gold_app(&model.name);
        let relative = format!("gold/{}", model.name);
        if let Some(t) = lake.open(&relative).await?
            && done(&t, &app, &relative, seq).await?
        {
            continue;
        }
        lease.check()?;
        let versions = SilverVersions {
            before: if full { None } else { before.as_ref() },
            after: &after,
        };
        let g = gold::refresh(lake, p, model, &versions, &rows, lineage, (&app, seq)).await?;
        fr.gold.push((g.model, g.changes));
        failpoint("after_gold_commit");
    }
    Ok(())
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}
