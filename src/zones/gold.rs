//! Gold: business aggregates defined as SQL over silver, kept current with MERGE.
//!
//! Contract: after `refresh` for a batch, the gold table equals the model's SQL run over
//! all of silver. Only the model keys the batch touched are recomputed: the keys the
//! model produces from the batch's rows plus the silver rows they replaced. Recomputed
//! rows are updated or inserted; touched keys that no longer produce a row are deleted.
//! A gold table created for the first time is filled from a full recompute.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;

use crate::config::{GoldModel, Pipeline};
use crate::error::{MedallionError, Result};
use crate::schema;
use crate::storage::{self, FileSize, Lakehouse, UpsertMetrics, UpsertSpec};
use crate::zones::Lineage;

const PRESENT: &str = "__present";

/// What one refresh changed.
#[derive(Debug, Clone)]
pub struct GoldMetrics {
    pub model: String,
    pub changes: UpsertMetrics,
}

/// Refresh one model: recompute the `affected` keys (all keys when `None`) from
/// `silver` and MERGE them into gold.
pub async fn refresh(
    lake: &Lakehouse,
    model: &GoldModel,
    silver: &DeltaTable,
    affected: Option<Vec<RecordBatch>>,
    lineage: &Lineage,
    txn: (&str, i64),
) -> Result<GoldMetrics> {
    let relative = format!("gold/{}", model.name);
    let existing = lake.open(&relative).await?;
    let full = existing.is_none() || affected.is_none();
    let table = match existing {
        Some(t) => t,
        None => {
            lake.open_or_create(
                &relative,
                &schema::gold_schema(&model.schema),
                FileSize::Upsert,
            )
            .await?
        }
    };
    let ctx = storage::session();
    let model_sql = model.sql.trim().trim_end_matches(';');
    storage::register(&ctx, "silver", silver).await?;
    let source_sql = match affected {
        Some(affected) if !full => {
            let err = || MedallionError::sql("stage gold keys");
            let table = MemTable::try_new(key_schema(model)?, vec![affected]).map_err(err())?;
            let affected = ctx.read_table(Arc::new(table)).map_err(err())?;
            // The model restricted to the affected keys' literal bounds: DataFusion pushes
            // these below the aggregation to the silver scan, which skips files whose
            // statistics lie outside them. The join below keeps exactly the affected keys.
            let model_df = ctx
                .sql(model_sql)
                .await
                .map_err(MedallionError::sql(format!("gold model {}", model.name)))?;
            let restricted = storage::within_key_bounds(model_df, &affected, &model.keys).await?;
            ctx.register_table("__affected", affected.into_view())
                .map_err(err())?;
            ctx.register_table("__model", restricted.into_view())
                .map_err(err())?;
            recompute_sql(model)
        }
        _ => format!("SELECT *, TRUE AS {PRESENT} FROM ({model_sql}) __m"),
    };
    let rows =
        storage::sql_batches(&ctx, &source_sql, &format!("gold model {}", model.name)).await?;
    let source_schema = match rows.first() {
        Some(b) => b.schema(),
        None => {
            return Ok(GoldMetrics {
                model: model.name.clone(),
                changes: UpsertMetrics::default(),
            });
        }
    };
    let n_rows: usize = rows.iter().map(|b| b.num_rows()).sum();
    let staged = MemTable::try_new(source_schema, vec![rows])
        .map_err(MedallionError::sql("stage gold rows"))?;
    let source = ctx
        .read_table(Arc::new(staged))
        .map_err(MedallionError::sql("stage gold rows"))?;
    let columns: Vec<String> = model
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let spec = UpsertSpec {
        table_name: &relative,
        keys: &model.keys,
        columns: &columns,
        present_flag: Some(PRESENT),
        delete_unmatched: full,
        txn: Some(txn),
    };
    let props = storage::commit_info(
        "gold_merge",
        serde_json::json!({
            "batch_id": lineage.batch_id,
            "source_file": lineage.source_file,
            "model": model.name,
            "rows": n_rows,
            "full_recompute": full,
        }),
    );
    let (_, changes) = storage::upsert(table, &ctx, source, &spec, props).await?;
    Ok(GoldMetrics {
        model: model.name.clone(),
        changes,
    })
}

fn quote(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
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

/// The model over silver, restricted to the affected keys, with deletes for keys gone.
fn recompute_sql(model: &GoldModel) -> String {
    let on = model
        .keys
        .iter()
        .map(|k| format!("__a.{q} = __m.{q}", q = quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let select = model
        .schema
        .fields()
        .iter()
        .map(|f| {
            let side = if model.keys.contains(f.name()) {
                "__a"
            } else {
                "__m"
            };
            format!("{side}.{q} AS {q}", q = quote(f.name()))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {select}, COALESCE(__m.{PRESENT}, FALSE) AS {PRESENT} FROM (SELECT DISTINCT * FROM __affected) __a \
         LEFT JOIN (SELECT *, TRUE AS {PRESENT} FROM __model) __m ON {on}"
    )
}

/// For each model, the keys produced by the `touched` silver rows: a slice's
/// deduplicated rows about to be upserted, plus the silver rows they replace.
pub async fn affected_keys(
    p: &Pipeline,
    touched: Vec<RecordBatch>,
) -> Result<Vec<Vec<RecordBatch>>> {
    let ctx = storage::session();
    let err = || MedallionError::sql("rows touched by the batch");
    let touched = MemTable::try_new(schema::silver_schema(p), vec![touched]).map_err(err())?;
    ctx.register_table("silver", Arc::new(touched))
        .map_err(err())?;
    let mut out = Vec::with_capacity(p.gold.len());
    for model in &p.gold {
        let keys = model
            .keys
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ");
        let model_sql = model.sql.trim().trim_end_matches(';');
        let step = || MedallionError::sql(format!("keys touched in gold model {}", model.name));
        let df = ctx
            .sql(&format!("SELECT DISTINCT {keys} FROM ({model_sql}) __m"))
            .await
            .map_err(step())?;
        out.push(df.collect().await.map_err(step())?);
    }
    Ok(out)
}
