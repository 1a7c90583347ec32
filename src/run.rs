//! `medallion run`: every new raw file through bronze, silver/rejected and gold.
//!
//! Per file, in order: read and validate in bounded chunks while streaming bronze and
//! rejected rows to Parquet; if a `fail` rule breaks, stop and commit nothing; commit
//! bronze, then rejected; upsert silver; refresh each gold model for the keys touched;
//! record the file in the ledger. A failing file is reported and recorded, and the
//! other files still load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{SubsecRound, Utc};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::ledger::{self, FileStatus, LedgerEntry};
use crate::ingest::reader::CsvChunks;
use crate::ingest::{self, RawFile};
use crate::report::{FileReport, RunReport};
use crate::schema;
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::gold::{self, SilverVersions};
use crate::zones::silver::{self, Validator};
use crate::zones::{Lineage, bronze};

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

/// Ingest every file of the raw zone not loaded yet.
pub async fn run(p: Arc<Pipeline>) -> Result<RunReport> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    let files = ingest::discover(&p)?;
    let mut ledger_state = ledger::state(&lake).await?;
    let validator = Validator::new(p.clone())?;
    let mut report = RunReport::default();
    for file in files {
        let Some(print) = ingest::fingerprint(&file)? else {
            tracing::warn!(file = %file.name, "the file changed while it was read; left for the next run");
            report.unstable.push(file.name.clone());
            continue;
        };
        if ledger_state.is_settled(&file.name, &print.sha256) {
            report.already_loaded += 1;
            continue;
        }
        let mut entry = LedgerEntry {
            file: file.name.clone(),
            sha256: print.sha256.clone(),
            size: print.size,
            modified: print.modified,
            batch_id: uuid::Uuid::now_v7().to_string(),
            status: FileStatus::Loaded,
            rows_read: 0,
            silver_accepted: 0,
            rejected: 0,
            message: None,
        };
        if let Some(original) = ledger_state.loaded.get(&print.sha256) {
            entry.status = FileStatus::Duplicate;
            entry.message = Some(format!("same content as {original}"));
            ledger::record(&lake, &entry).await?;
            report
                .duplicates
                .push((file.name.clone(), original.clone()));
            ledger_state
                .settled
                .insert((file.name.clone(), print.sha256.clone()));
            continue;
        }
        let lineage = Lineage {
            source_file: file.name.clone(),
            batch_id: entry.batch_id.clone(),
            received_at: Utc::now().trunc_subsecs(6),
        };
        let started = Instant::now();
        let mut fr = match ingest_file(&lake, &p, &validator, &file, &lineage).await {
            Ok(fr) => fr,
            Err(e) => {
                tracing::error!(file = %file.name, "{e}");
                FileReport {
                    file: file.name.clone(),
                    batch_id: lineage.batch_id.clone(),
                    error: Some(e.to_string()),
                    ..FileReport::default()
                }
            }
        };
        fr.elapsed = started.elapsed();
        fr.new_version = ledger_state.loaded_names.contains(&file.name);
        entry.status = if fr.loaded() {
            FileStatus::Loaded
        } else {
            FileStatus::Failed
        };
        entry.rows_read = fr.rows_read;
        entry.silver_accepted = fr.silver_accepted;
        entry.rejected = fr.rejected;
        entry.message = fr.error.clone();
        if let Err(e) = ledger::record(&lake, &entry).await {
            tracing::error!(file = %file.name, "cannot record the file in the ledger: {e}");
            fr.error
                .get_or_insert_with(|| format!("cannot record the file in the ledger: {e}"));
        } else if fr.loaded() {
            ledger_state
                .loaded
                .insert(print.sha256.clone(), file.name.clone());
            ledger_state.loaded_names.insert(file.name.clone());
            ledger_state
                .settled
                .insert((file.name.clone(), print.sha256));
        }
        report.files.push(fr);
    }
    Ok(report)
}

/// One file through every zone.
async fn ingest_file(
    lake: &Lakehouse,
    p: &Pipeline,
    validator: &Validator,
    file: &RawFile,
    lineage: &Lineage,
) -> Result<FileReport> {
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

    let mut reader = CsvChunks::open(&file.path, &file.name, &p.source)?;
    let mut bronze_w = AppendWriter::new(&bronze_table, &tables.bronze)?;
    let mut rejected_w = AppendWriter::new(&rejected_table, &tables.rejected)?;
    let mut accepted = Vec::new();
    let mut fr = FileReport {
        file: file.name.clone(),
        batch_id: lineage.batch_id.clone(),
        ..FileReport::default()
    };
    while let Some(chunk) = reader.next_chunk()? {
        bronze_w
            .write(bronze::to_batch(&bronze_schema, &chunk, lineage)?)
            .await?;
        let v = validator.validate(&chunk, lineage)?;
        if let Some((line, rule, message)) = v.failure {
            return Err(MedallionError::FailRule {
                file: file.name.clone(),
                line,
                rule,
                message,
            });
        }
        fr.rejected += v.rejected.num_rows() as u64;
        fr.silver_accepted += v.accepted.num_rows() as u64;
        merge_counts(&mut fr.rejected_by_rule, v.rejected_by_rule);
        merge_counts(&mut fr.warnings, v.warnings);
        rejected_w.write(v.rejected).await?;
        if v.accepted.num_rows() > 0 {
            accepted.push(v.accepted);
        }
    }
    fr.rows_read = reader.rows_read;
    fr.bronze_rows = bronze_w.rows();

    let info = |rows: u64| serde_json::json!({ "batch_id": lineage.batch_id, "source_file": lineage.source_file, "rows": rows });
    fr.bronze_version = bronze_w
        .commit(
            &mut bronze_table,
            storage::commit_info("bronze_append", info(fr.bronze_rows)),
        )
        .await?;
    fr.rejected_version = rejected_w
        .commit(
            &mut rejected_table,
            storage::commit_info("rejected_append", info(fr.rejected)),
        )
        .await?;

    if accepted.is_empty() {
        return Ok(fr);
    }
    let ctx = storage::session();
    let rows = silver::dedupe_batch(&ctx, p, accepted).await?;
    let before = silver_table.clone();
    let (after, metrics) = silver::upsert_batch(&ctx, p, silver_table, &rows, lineage).await?;
    fr.silver = metrics;
    let versions = SilverVersions {
        before: Some(&before),
        after: &after,
    };
    for model in &p.gold {
        let g = gold::refresh(lake, p, model, &versions, &rows, lineage).await?;
        fr.gold.push((g.model, g.changes));
    }
    Ok(fr)
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}
