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
use crate::storage::{self, Lakehouse, UpsertMetrics, UpsertSpec};
use crate::zones::Lineage;

const PRESENT: &str = "__present";

/// What one refresh changed.
#[derive(Debug, Clone)]
pub struct GoldMetrics {
    pub model: String,
    pub changes: UpsertMetrics,
}

/// Silver as the batch saw it: before and after its upsert. Without `before` the
/// model is recomputed in full (and gold rows the recompute lacks are deleted).
pub struct SilverVersions<'a> {
    pub before: Option<&'a DeltaTable>,
    pub after: &'a DeltaTable,
}

/// Refresh one model for a batch whose deduplicated silver rows are `batch`.
pub async fn refresh(
    lake: &Lakehouse,
    p: &Pipeline,
    model: &GoldModel,
    silver: &SilverVersions<'_>,
    batch: &[RecordBatch],
    lineage: &Lineage,
    txn: (&str, i64),
) -> Result<GoldMetrics> {
    let relative = format!("gold/{}", model.name);
    let existing = lake.open(&relative).await?;
    let full = existing.is_none() || silver.before.is_none();
    let table = match existing {
        Some(t) => t,
        None => {
            lake.open_or_create(&relative, &schema::gold_schema(&model.schema), &[])
                .await?
        }
    };
    let ctx = storage::session();
    let model_sql = model.sql.trim().trim_end_matches(';');
    let source_sql = if full {
        format!("SELECT *, TRUE AS {PRESENT} FROM ({model_sql}) __m")
    } else {
        let affected = affected_keys(p, model, silver.before, batch).await?;
        let table = MemTable::try_new(key_schema(model)?, vec![affected])
            .map_err(MedallionError::sql("stage gold keys"))?;
        ctx.register_table("__affected", Arc::new(table))
            .map_err(MedallionError::sql("stage gold keys"))?;
        recompute_sql(model, model_sql)
    };
    storage::register(&ctx, "silver", silver.after).await?;
    let df = ctx
        .sql(&source_sql)
        .await
        .map_err(MedallionError::sql(format!("gold model {}", model.name)))?;
    let rows = df
        .collect()
        .await
        .map_err(MedallionError::sql(format!("gold model {}", model.name)))?;
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
fn recompute_sql(model: &GoldModel, model_sql: &str) -> String {
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
        "SELECT {select}, COALESCE(__m.{PRESENT}, FALSE) AS {PRESENT} FROM __affected __a \
         LEFT JOIN (SELECT *, TRUE AS {PRESENT} FROM ({model_sql}) __inner) __m ON {on}"
    )
}

/// Model keys produced by the batch rows and by the silver rows they replaced.
async fn affected_keys(
    p: &Pipeline,
    model: &GoldModel,
    before: Option<&DeltaTable>,
    batch: &[RecordBatch],
) -> Result<Vec<RecordBatch>> {
    let ctx = storage::session();
    let silver_schema = schema::silver_schema(p);
    let staged = MemTable::try_new(silver_schema.clone(), vec![batch.to_vec()])
        .map_err(MedallionError::sql("stage batch rows"))?;
    ctx.register_table("__batch", Arc::new(staged))
        .map_err(MedallionError::sql("stage batch rows"))?;
    let cols = silver_schema
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let touched = match before {
        Some(t) => {
            storage::register(&ctx, "__silver_before", t).await?;
            let on = p
                .silver_key
                .iter()
                .map(|k| format!("__b.{q} = __s.{q}", q = quote(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(
                "SELECT {cols} FROM __batch UNION ALL SELECT {scols} FROM __silver_before __s \
                 WHERE EXISTS (SELECT 1 FROM __batch __b WHERE {on})",
                scols = silver_schema
                    .fields()
                    .iter()
                    .map(|f| format!("__s.{}", quote(f.name())))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        None => format!("SELECT {cols} FROM __batch"),
    };
    let touched_df = ctx
        .sql(&touched)
        .await
        .map_err(MedallionError::sql("rows touched by the batch"))?;
    ctx.register_table("silver", touched_df.into_view())
        .map_err(MedallionError::sql("rows touched by the batch"))?;
    let keys = model
        .keys
        .iter()
        .map(|k| quote(k))
        .collect::<Vec<_>>()
        .join(", ");
    let model_sql = model.sql.trim().trim_end_matches(';');
    let df = ctx
        .sql(&format!("SELECT DISTINCT {keys} FROM ({model_sql}) __m"))
        .await
        .map_err(MedallionError::sql(format!(
            "keys touched in gold model {}",
            model.name
        )))?;
    df.collect().await.map_err(MedallionError::sql(format!(
        "keys touched in gold model {}",
        model.name
    )))
}
