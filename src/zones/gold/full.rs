//! Full recompute, for models whose rows depend on other keys' rows (and for a gold
//! table's first fill): the whole model over silver, compared with gold, so that only
//! rows that changed are written. A MERGE of just those leaves every unchanged row,
//! and every data file holding only unchanged rows, alone.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use super::{PRESENT, model_sql, quote};
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
    let schema = Arc::new(df.schema().as_arrow().clone());
    let rows = df
        .collect()
        .await
        .map_err(MedallionError::sql(step.clone()))?;
    let schema = rows.first().map_or(schema, |b| b.schema());
    let new = MemTable::try_new(schema, vec![rows]).map_err(MedallionError::sql(step.clone()))?;
    ctx.register_table("__new", Arc::new(new))
        .map_err(MedallionError::sql(step.clone()))?;
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
    let same_key = model
        .keys
        .iter()
        .map(|k| format!("__n.{q} = __g.{q}", q = quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
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
