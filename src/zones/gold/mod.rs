//! Gold: business aggregates defined as SQL over silver, kept current with MERGE.
//!
//! Contract: after `refresh` for a batch, the gold table equals the model's SQL run over
//! all of silver. How depends on the model's [`Maintenance`], decided from its plan:
//! - by keys: only the model keys the batch touched are recomputed (the grouping
//!   expressions over the batch's rows and the silver rows they replaced, see
//!   [`affected_keys`]); recomputed rows are updated or inserted, touched keys that no
//!   longer produce a row are deleted ([`incremental`]);
//! - full: the whole model is recomputed and compared with gold; only rows that
//!   changed are written, keys that are gone deleted ([`full`]).
//!
//! A gold table created for the first time is filled from a full recompute (streamed
//! into one append when it is empty and maintained by keys), and carries its model's
//! fingerprint; a table whose fingerprint is not the model's is
//! rebuilt before any batch ([`rebuild`]).

mod apply;
mod full;
mod incremental;
pub mod rebuild;

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use crate::config::{GoldModel, Pipeline};
use crate::error::{MedallionError, Result};
use crate::plan::Maintenance;
use crate::schema;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse, UpsertMetrics};
use crate::zones::Lineage;

/// The source column that marks a recomputed row as present (false: delete its key).
const PRESENT: &str = "__present";

/// Memory a gold refresh may hold in its spilling operators: a model grouping a large
/// silver (2 M groups at 100 M readings) holds every group, whether it fills a new
/// table or recomputes the keys of a batch that touched most of them; its aggregate
/// then spills instead of raising the run's peak memory. A refresh whose operators
/// cannot spill past it (a large hash join) is done again without the cap.
const GOLD_MEMORY: usize = 256 << 20;

/// [`GOLD_MEMORY`], or `MEDALLION_GOLD_MEMORY` bytes (tests only: a tiny cap makes the
/// refreshes fail under it and be done again).
fn gold_memory() -> usize {
    std::env::var("MEDALLION_GOLD_MEMORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(GOLD_MEMORY)
}

/// The gold table property holding the fingerprint of the model it was built from.
pub const FINGERPRINT_PROPERTY: &str = "medallion.model.fingerprint";

/// What one refresh changed.
#[derive(Debug, Clone)]
pub struct GoldMetrics {
    pub model: String,
    pub changes: UpsertMetrics,
}

/// Open a model's gold table, creating it (with the model's fingerprint) if needed.
async fn open_or_create(lake: &Lakehouse, model: &GoldModel) -> Result<(DeltaTable, bool)> {
    let relative = model.table();
    if let Some(t) = lake.open(&relative).await? {
        return Ok((t, false));
    }
    let created = lake
        .open_or_create_with(
            &relative,
            &schema::gold_schema(&model.schema),
            FileSize::Upsert,
            &[(FINGERPRINT_PROPERTY, &model.fingerprint)],
        )
        .await?;
    Ok((created, true))
}

/// Refresh one model: recompute the `affected` keys (everything when `None`, or when
/// the model is maintained in full) from `silver` and MERGE what changed into gold.
/// Under the [`GOLD_MEMORY`] cap first, again without it when that is not enough.
pub async fn refresh(
    lake: &Lakehouse,
    p: &Pipeline,
    model: &GoldModel,
    silver: &DeltaTable,
    affected: Option<Vec<RecordBatch>>,
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<GoldMetrics> {
    let (table, created) = open_or_create(lake, model).await?;
    let refresh = Refresh {
        lake,
        p,
        model,
        silver,
        created,
        lineage,
        txn,
    };
    let capped = storage::capped_session(gold_memory(), None)?;
    match refresh.run(&capped, table.clone(), affected.clone()).await {
        Err(e) if e.is_out_of_memory() => {
            tracing::debug!(model = %model.name, "refreshing again without a memory cap: {e}");
            refresh.run(&storage::session(), table, affected).await
        }
        done => done,
    }
}

/// One model's refresh for a batch, as [`refresh`] was asked for it.
struct Refresh<'a> {
    lake: &'a Lakehouse,
    p: &'a Pipeline,
    model: &'a GoldModel,
    silver: &'a DeltaTable,
    /// The gold table was created by this refresh.
    created: bool,
    lineage: &'a Lineage,
    txn: Option<(&'a str, i64)>,
}

impl Refresh<'_> {
    /// The refresh in session `ctx` (nothing committed when it fails).
    async fn run(
        &self,
        ctx: &SessionContext,
        table: DeltaTable,
        affected: Option<Vec<RecordBatch>>,
    ) -> Result<GoldMetrics> {
        let model = self.model;
        register_silver(ctx, self.lake, self.p, Some(self.silver)).await?;
        let by_keys = model.maintenance == Maintenance::ByKeys;
        let whole = affected.is_none() || self.created;
        if whole && by_keys && storage::is_empty(&table, &model.table())? {
            return fill(table, ctx, model, self.lineage, self.txn).await;
        }
        let t = std::time::Instant::now();
        let (rows, full) = match affected {
            Some(keys) if by_keys && !self.created => {
                (incremental::recompute(ctx, model, keys).await?, false)
            }
            _ => (full::changes(ctx, model, &table).await?, true),
        };
        tracing::debug!(
            model = %model.name,
            rows = rows.iter().map(|b| b.num_rows()).sum::<usize>(),
            ms = t.elapsed().as_millis() as u64,
            "gold rows recomputed"
        );
        let changes = merge_changes(table, ctx, model, rows, self.lineage, self.txn, full).await?;
        Ok(GoldMetrics {
            model: model.name.clone(),
            changes,
        })
    }
}

/// Fill an empty gold table with its model over silver: the rows streamed into one
/// append (no MERGE, nothing held in memory but the model's own state). Only for models
/// maintained by keys, whose keys are unique by construction (they cover the groups, or
/// silver's key).
async fn fill(
    mut table: DeltaTable,
    ctx: &SessionContext,
    model: &GoldModel,
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<GoldMetrics> {
    use futures::StreamExt;
    let relative = model.table();
    let step = || MedallionError::sql(format!("gold model {}", model.name));
    let df = ctx.sql(model_sql(model)).await.map_err(step())?;
    let mut writer = AppendWriter::new(&table, &relative)?;
    let mut rows = df.execute_stream().await.map_err(step())?;
    while let Some(batch) = rows.next().await {
        writer.write(batch.map_err(step())?).await?;
    }
    let n = writer.rows();
    let props = commit_info(lineage, model, n as usize, true);
    let committed = writer.commit(&mut table, props, txn).await?;
    Ok(GoldMetrics {
        model: model.name.clone(),
        changes: UpsertMetrics::appended(committed, n),
    })
}

/// Write recomputed rows (with their `PRESENT` flag) into the gold table.
async fn merge_changes(
    table: DeltaTable,
    ctx: &SessionContext,
    model: &GoldModel,
    rows: Vec<RecordBatch>,
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
    full: bool,
) -> Result<UpsertMetrics> {
    let n_rows: usize = rows.iter().map(|b| b.num_rows()).sum();
    let props = commit_info(lineage, model, n_rows, full);
    apply::apply(table, ctx, model, rows, props, txn).await
}

/// The commit info of a batch's gold refresh.
fn commit_info(
    lineage: &Lineage,
    model: &GoldModel,
    rows: usize,
    full: bool,
) -> deltalake::kernel::transaction::CommitProperties {
    storage::commit_info(
        "gold_merge",
        serde_json::json!({
            "batch_id": lineage.batch_id,
            "source_file": lineage.source_file,
            "model": model.name,
            "rows": rows,
            "full_recompute": full,
        }),
    )
}

/// Register every source's silver table in `ctx` as the models see it (`silver.<name>`,
/// and `silver` when there is one source): the configured columns, in the configured
/// order (a table may also keep columns no longer configured), so that a model means
/// at run time what it meant when the configuration was checked. `current` is the
/// focused source's silver, as just committed; the others are read as they are now
/// (a source without a silver table yet reads as empty).
pub(crate) async fn register_silver(
    ctx: &SessionContext,
    lake: &Lakehouse,
    p: &Pipeline,
    current: Option<&DeltaTable>,
) -> Result<()> {
    let err = || MedallionError::sql("register silver for the gold models");
    for source in &p.sources {
        let relative = source.tables().silver;
        let opened;
        let table = match current.filter(|_| source.name == p.source.name) {
            Some(t) => Some(t),
            None => {
                opened = lake.open(&relative).await?;
                opened.as_ref()
            }
        };
        let schema = source.silver_schema();
        let view: Arc<dyn deltalake::datafusion::catalog::TableProvider> = match table {
            Some(t) => {
                let scan = format!("__scan_{}", source.name);
                storage::register(ctx, &scan, t).await?;
                let columns = schema::column_names(&schema);
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                let df = ctx.table(scan.as_str()).await.map_err(err())?;
                df.select_columns(&columns).map_err(err())?.into_view()
            }
            None => Arc::new(MemTable::try_new(schema, vec![vec![]]).map_err(err())?),
        };
        storage::register_silver_provider(ctx, &source.name, view, p.single_source())
            .map_err(err())?;
    }
    Ok(())
}

fn quote(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

/// SQL: the model keys of `left` and `right` are equal, a null key equal to a null key
/// (a group may have a null key).
fn same_keys(model: &GoldModel, left: &str, right: &str) -> String {
    model
        .keys
        .iter()
        .map(|k| {
            format!(
                "({left}.{q} IS NOT DISTINCT FROM {right}.{q})",
                q = quote(k)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn model_sql(model: &GoldModel) -> &str {
    model.sql.trim().trim_end_matches(';')
}

fn key_schema(model: &GoldModel) -> Result<deltalake::arrow::datatypes::SchemaRef> {
    let indices = model
        .keys
        .iter()
        .map(|k| {
            model
                .schema
                .index_of(k)
                .map_err(MedallionError::arrow("gold key"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(
        model
            .schema
            .project(&indices)
            .map_err(MedallionError::arrow("gold key"))?,
    ))
}

/// For each model, the keys that the `touched` silver rows of the focused source
/// affect (a slice's deduplicated rows about to be upserted, plus the silver rows they
/// replace): the model's grouping expressions evaluated over those rows, joined with
/// the other sources' silver tables as they are (Δ(R ⋈ S) = ΔR ⋈ S). Empty for models
/// that are recomputed in full or do not read the source.
pub async fn affected_keys(
    lake: &Lakehouse,
    p: &Pipeline,
    touched: Vec<RecordBatch>,
) -> Result<Vec<Vec<RecordBatch>>> {
    let ctx = storage::session();
    let err = || MedallionError::sql("rows touched by the batch");
    let reads = |m: &GoldModel| m.maintenance == Maintenance::ByKeys && m.reads(&p.source.name);
    if p.gold.iter().any(|m| reads(m) && m.sources.len() > 1) {
        register_silver(&ctx, lake, p, None).await?;
    }
    let touched = MemTable::try_new(p.source.silver_schema(), vec![touched]).map_err(err())?;
    storage::register_silver_provider(&ctx, &p.source.name, Arc::new(touched), p.single_source())
        .map_err(err())?;
    let mut out = Vec::with_capacity(p.gold.len());
    for model in &p.gold {
        if !reads(model) {
            out.push(Vec::new());
            continue;
        }
        let step = || MedallionError::sql(format!("keys touched in gold model {}", model.name));
        let df = ctx.sql(model_sql(model)).await.map_err(step())?;
        let plan = crate::plan::affected_keys_plan(
            df.logical_plan(),
            &model.keys,
            &p.source.key,
            &key_schema(model)?,
        )
        .map_err(step())?
        .ok_or_else(|| {
            MedallionError::Internal(format!(
                "gold model {}: its plan over the touched rows is not incremental",
                model.name
            ))
        })?;
        let keys = ctx.execute_logical_plan(plan).await.map_err(step())?;
        out.push(keys.collect().await.map_err(step())?);
    }
    Ok(out)
}
