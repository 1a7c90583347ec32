//! Silver: typed rows that passed every `reject` rule, one row per natural key.
//!
//! Contract: `upsert_batch` takes the accepted rows of one batch, keeps the last line
//! per natural key (a file's later line corrects an earlier one), and MERGEs them into
//! silver: an existing key is replaced (newest batch wins), a new key inserted. Running
//! it twice for the same batch leaves silver unchanged the second time (same values).

mod builders;
mod dedupe;
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
use crate::schema;
use crate::storage::{self, UpsertMetrics, UpsertSpec};
use crate::zones::Lineage;

/// Accepted rows of a batch, keeping the last line per natural key.
pub fn dedupe_batch(p: &Pipeline, accepted: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    dedupe::last_line_per_key(&schema::silver_schema(p), &p.silver_key, &accepted)
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
