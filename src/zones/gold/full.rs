//! Full recompute, for models whose rows depend on other keys' rows (and for a gold
//! table's first fill): the whole model over silver, compared with gold, so that only
//! rows that changed are written. A MERGE of just those leaves every unchanged row,
//! and every data file holding only unchanged rows, alone.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use super::{PRESENT, model_sql, quote, same_keys};
use crate::config::GoldModel;
use crate::error::{MedallionError, Result};
use crate::storage;

/// Rows of the model (over the `silver` registered in `ctx`) that gold lacks, flagged
/// present, and gold rows whose key the model no longer produces, flagged absent.
pub(super) async fn changes(
    ctx: &SessionContext,
    model: &GoldModel,
    gold: &DeltaTable,
) -> Result<Vec<RecordBatch>> {
    let step = format!("gold model {}", model.name);
    let df = ctx
        .sql(model_sql(model))
        .await
        .map_err(MedallionError::sql(step.clone()))?;
    collect_checked(ctx, model, df).await?;
    storage::register(ctx, "__gold", gold).await?;
    storage::sql_batches(ctx, &changes_sql(model), &step).await
}

fn changes_sql(model: &GoldModel) -> String {
    let columns = model
        .schema
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let same_key = same_keys(model, "__n", "__g");
    let gone = model
        .schema
        .fields()
        .iter()
        .map(|f| format!("__g.{q} AS {q}", q = quote(f.name())))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, TRUE AS {PRESENT} FROM \
           (SELECT {columns} FROM __new EXCEPT SELECT {columns} FROM __gold) __c \
         UNION ALL \
         SELECT {gone}, FALSE AS {PRESENT} FROM __gold __g \
           WHERE NOT EXISTS (SELECT 1 FROM __new __n WHERE {same_key})"
    )
}

/// The model's rows (`df`), registered in `ctx` as `__new`, after checking that its
/// keys identify them.
pub(super) async fn collect_checked(
    ctx: &SessionContext,
    model: &GoldModel,
    df: deltalake::datafusion::prelude::DataFrame,
) -> Result<Vec<RecordBatch>> {
    let step = || MedallionError::sql(format!("gold model {}", model.name));
    let schema = Arc::new(df.schema().as_arrow().clone());
    let rows = df.collect().await.map_err(step())?;
    let schema = rows.first().map_or(schema, |b| b.schema());
    let new = MemTable::try_new(schema, vec![rows.clone()]).map_err(step())?;
    ctx.register_table("__new", Arc::new(new)).map_err(step())?;
    refuse_repeated_keys(ctx, model).await?;
    Ok(rows)
}

/// A MERGE on keys that repeat would fail (or pick one row): say which key repeats.
async fn refuse_repeated_keys(ctx: &SessionContext, model: &GoldModel) -> Result<()> {
    let keys: Vec<String> = model.keys.iter().map(|k| quote(k)).collect();
    let shown: Vec<String> = keys
        .iter()
        .map(|k| format!("COALESCE(CAST({k} AS VARCHAR), 'NULL')"))
        .collect();
    let sql = format!(
        "SELECT concat_ws(', ', {}) AS k FROM __new GROUP BY {} HAVING COUNT(*) > 1 LIMIT 1",
        shown.join(", "),
        keys.join(", ")
    );
    let repeated = storage::sql_batches(ctx, &sql, "check gold keys").await?;
    let Some(b) = repeated.iter().find(|b| b.num_rows() > 0) else {
        return Ok(());
    };
    let k =
        deltalake::arrow::compute::cast(b.column(0), &deltalake::arrow::datatypes::DataType::Utf8)
            .map_err(MedallionError::arrow("check gold keys"))?;
    let example = deltalake::arrow::array::AsArray::as_string::<i32>(&k).value(0);
    Err(MedallionError::ModelKeys {
        model: model.name.clone(),
        keys: model.keys.join(", "),
        example: medallion_csv::excerpt(example).to_string(),
    })
}
