//! The silver rows an upsert replaces, looked up on silver's current state before the
//! upsert is written: by a join of the new rows' keys with silver (pruned by their
//! bounds), or, with deletion vectors, by the marking scan itself (the rows whole, with
//! their positions).

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::common::JoinType;
use deltalake::datafusion::datasource::MemTable;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::schema;
use crate::storage::{self, FILE_COLUMN};

/// The silver rows an upsert replaces ([`replaced_rows`]), and the data files they are in.
#[derive(Debug, Default)]
pub struct Replaced {
    /// The rows whole, or only their key columns for an upsert that rewrites their
    /// files (no `sequence_by` or `delete_when`, see [`rewrites`]) without deletion
    /// vectors: the rewrite reads them whole.
    pub rows: Vec<RecordBatch>,
    /// URLs of the data files holding `rows`.
    pub files: Vec<String>,
    /// With deletion vectors: the rows' positions in those files (then `rows` are whole).
    pub marks: Vec<storage::FileMarks>,
}

impl Replaced {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn count(&self) -> usize {
        self.rows.iter().map(|b| b.num_rows()).sum()
    }
}

/// Whether an upsert of this source rewrites the files holding the rows it replaces
/// (otherwise it MERGEs: its rows may delete or lose to silver's).
pub fn rewrites(p: &Pipeline) -> bool {
    p.source.sequence_by.is_none() && p.source.delete_when.is_none()
}

/// The rows of `silver` (its current state) whose natural key is among `rows`' keys:
/// the rows an upsert of `rows` replaces (only their keys when it [`rewrites`]). The
/// keys' literal bounds let the scan skip silver files whose statistics lie outside
/// them.
pub async fn replaced_rows(
    p: &Pipeline,
    silver: &DeltaTable,
    rows: &[RecordBatch],
) -> Result<Replaced> {
    if rows.iter().all(|b| b.num_rows() == 0) || silver.version().unwrap_or(0) == 0 {
        return Ok(Replaced::default());
    }
    let t = std::time::Instant::now();
    let name = p.source.tables().silver;
    if rewrites(p) && storage::deletion_vectors_enabled(silver, &name)? {
        let columns = schema::column_names(&p.source.silver_schema());
        let found = storage::lookup_marks(silver, &name, &p.source.key, rows, &columns).await?;
        let found = Replaced {
            rows: found.rows,
            files: found.files,
            marks: found.marks,
        };
        tracing::debug!(
            rows = found.count(),
            files = found.files.len(),
            ms = t.elapsed().as_millis() as u64,
            "silver rows replaced found with their positions"
        );
        return Ok(found);
    }
    let ctx = storage::session();
    let err = || MedallionError::sql("silver rows replaced by the batch");
    let staged = MemTable::try_new(p.source.silver_schema(), vec![rows.to_vec()]).map_err(err())?;
    let batch = ctx.read_table(Arc::new(staged)).map_err(err())?;
    storage::register_with_files(&ctx, "__silver", silver, FILE_COLUMN).await?;
    let keys: Vec<&str> = p.source.key.iter().map(String::as_str).collect();
    let silver_df = ctx.table("__silver").await.map_err(err())?;
    let replaced = storage::within_key_bounds(silver_df, &batch, &p.source.key).await?;
    // The batch's keys are the join's build side (the small one); silver streams by.
    // In the configured layout (the table may also keep columns no longer configured).
    let columns = match rewrites(p) {
        true => p.source.key.clone(),
        false => schema::column_names(&p.source.silver_schema()),
    };
    let mut columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    columns.push(FILE_COLUMN);
    let replaced = batch
        .select_columns(&keys)
        .map_err(err())?
        .join(replaced, JoinType::RightSemi, &keys, &keys, None)
        .map_err(err())?
        .select_columns(&columns)
        .map_err(err())?
        .collect()
        .await
        .map_err(err())?;
    let (rows, files) = storage::split_file_column(replaced)?;
    let found = Replaced {
        rows,
        files,
        marks: Vec::new(),
    };
    tracing::debug!(
        rows = found.count(),
        files = found.files.len(),
        ms = t.elapsed().as_millis() as u64,
        "silver rows replaced looked up"
    );
    Ok(found)
}
