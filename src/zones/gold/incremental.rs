//! Recompute of the model keys a batch affected, for models maintained by keys: the
//! model over silver, restricted to the affected keys, left-joined from those keys so
//! that a key whose recompute yields no row (its last silver row is gone, or a
//! `HAVING` now filters it) comes out with `PRESENT = false` and is deleted.

use std::sync::Arc;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use super::{PRESENT, key_schema, model_sql, quote, same_keys};
use crate::config::GoldModel;
use crate::error::{MedallionError, Result};
use crate::storage;

/// The recomputed rows of the `affected` keys, with their `PRESENT` flag (`silver` is
/// registered in `ctx`).
pub(super) async fn recompute(
    ctx: &SessionContext,
    model: &GoldModel,
    affected: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let err = || MedallionError::sql("stage gold keys");
    let table = MemTable::try_new(key_schema(model)?, vec![affected]).map_err(err())?;
    let affected = ctx.read_table(Arc::new(table)).map_err(err())?;
    // The model restricted to the affected keys' literal bounds: DataFusion pushes these
    // below the aggregation to the silver scan, which skips files whose statistics lie
    // outside them. The join below keeps exactly the affected keys.
    let model_df = ctx
        .sql(model_sql(model))
        .await
        .map_err(MedallionError::sql(format!("gold model {}", model.name)))?;
    let restricted = storage::within_key_bounds(model_df, &affected, &model.keys).await?;
    ctx.register_table("__affected", affected.into_view())
        .map_err(err())?;
    ctx.register_table("__model", restricted.into_view())
        .map_err(err())?;
    storage::sql_batches(
        ctx,
        &recompute_sql(model),
        &format!("gold model {}", model.name),
    )
    .await
}

/// The model over silver, restricted to the affected keys, with deletes for keys gone.
fn recompute_sql(model: &GoldModel) -> String {
    let on = same_keys(model, "__a", "__m");
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
