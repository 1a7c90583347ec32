//! Silver: typed rows that passed every `reject` rule, one row per natural key.
//!
//! Contract: `upsert_batch` takes the accepted rows of one batch, keeps the last line
//! per natural key (a file's later line corrects an earlier one), and MERGEs them into
//! silver: an existing key is replaced (newest batch wins), a new key inserted. Running
//! it twice for the same batch leaves silver unchanged the second time (same values).

mod builders;
mod staging;
mod validate;

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};

pub use staging::{StagedRows, Staging};
pub use validate::{ValidatedChunk, Validator};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::schema::{self, SOURCE_LINE};
use crate::storage::{self, UpsertMetrics, UpsertSpec};
use crate::zones::Lineage;

/// Accepted rows of a batch, keeping the last line per natural key.
pub async fn dedupe_batch(
    ctx: &SessionContext,
    p: &Pipeline,
    accepted: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let silver = schema::silver_schema(p);
    let table = MemTable::try_new(silver.clone(), vec![accepted])
        .map_err(MedallionError::sql("stage accepted rows"))?;
    ctx.register_table("__accepted", Arc::new(table))
        .map_err(MedallionError::sql("stage accepted rows"))?;
    let keys = p
        .silver_key
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let cols = silver
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {cols} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY \"{SOURCE_LINE}\" DESC) AS __rn \
         FROM __accepted) WHERE __rn = 1"
    );
    let df = ctx
        .sql(&sql)
        .await
        .map_err(MedallionError::sql("dedupe accepted rows"))?;
    let batches = df
        .collect()
        .await
        .map_err(MedallionError::sql("dedupe accepted rows"))?;
    ctx.deregister_table("__accepted")
        .map_err(MedallionError::sql("stage accepted rows"))?;
    Ok(batches)
}

/// MERGE the batch's rows into silver on the natural key.
pub async fn upsert_batch(
    ctx: &SessionContext,
    p: &Pipeline,
    silver: DeltaTable,
    rows: &[RecordBatch],
    lineage: &Lineage,
    txn: Option<(&str, i64)>,
) -> Result<(DeltaTable, UpsertMetrics)> {
    let silver_schema = schema::silver_schema(p);
    let n_rows: usize = rows.iter().map(|b| b.num_rows()).sum();
    let staged = MemTable::try_new(silver_schema.clone(), vec![rows.to_vec()])
        .map_err(MedallionError::sql("stage silver rows"))?;
    let source: DataFrame = ctx
        .read_table(Arc::new(staged))
        .map_err(MedallionError::sql("stage silver rows"))?;
    let columns: Vec<String> = silver_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let name = format!("silver/{}", p.source.name);
    let spec = UpsertSpec {
        table_name: &name,
        keys: &p.silver_key,
        columns: &columns,
        present_flag: None,
        delete_unmatched: false,
        txn,
    };
    let props = storage::commit_info(
        "silver_upsert",
        serde_json::json!({
            "batch_id": lineage.batch_id,
            "source_file": lineage.source_file,
            "rows": n_rows,
        }),
    );
    storage::upsert(silver, ctx, source, &spec, props).await
}
