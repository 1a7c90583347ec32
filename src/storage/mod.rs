//! Every deltalake call lives here: opening and creating tables by URL, streaming
//! appends, MERGE upserts, time travel and history. Stage code asks for what it needs
//! in business terms and never sees delta-rs builders.
//!
//! Guarantees: tables are created at the lowest protocol our readers accept (reader 1,
//! writer 2); every commit carries `medallion` commit info (stage, batch id, source
//! file, row counts); data files never embed Arrow view types (`Utf8View`), which some
//! readers (Sail) cannot read.

mod alter;
mod azure;
mod compact;
mod conform;
mod deletion;
mod keyset;
mod lakehouse;
pub mod location;
mod merge;
mod objects;
mod optimize;
pub mod probe;
mod read;
mod rewrite;
#[cfg(test)]
mod test_store;
mod utc_date;
mod vacuum;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::DeltaSessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::{DeltaTable, DeltaTableError};

pub use alter::{add_columns, rewrite_with_columns, set_properties};
pub use compact::compact_if_fragmented;
pub use conform::conform;
pub use deletion::{
    FileMarks, Lookup, PROPERTY as DELETION_VECTORS_PROPERTY, enabled as deletion_vectors_enabled,
    lookup as lookup_marks,
};
pub use keyset::KeySet;
pub use lakehouse::Lakehouse;
pub use location::{Location, StorageOptions};
pub use merge::{UpsertMetrics, UpsertSpec, key_bounds, upsert, within_key_bounds};
pub use optimize::{FileStats, Layout, OptimizeMetrics, optimize};
pub use read::{
    HistoryEntry, SnapshotSize, TimeTravel, batch_commit_info, history, open_at, row_count,
    snapshot_size,
};
pub use rewrite::{FILE_COLUMN, Replacement, replace_rows, replace_with, split_file_column};
pub use vacuum::{MIN_RETENTION, vacuum};
pub use write::{AppendWriter, Committed};

/// The table's current columns, as Arrow.
pub fn arrow_schema(table: &DeltaTable, name: &str) -> Result<SchemaRef> {
    Ok(table
        .snapshot()
        .map_err(MedallionError::delta("read schema", name))?
        .snapshot()
        .arrow_schema())
}

/// A table property's value, if set.
pub fn table_property(table: &DeltaTable, name: &str, key: &str) -> Result<Option<String>> {
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("read table properties", name))?;
    Ok(snapshot.metadata().configuration().get(key).cloned())
}

use crate::error::{MedallionError, Result};

/// Target size of a table's data files, stored as its `delta.targetFileSize` when
/// medallion creates it (delta-rs defaults to 100 MiB). Appends, MERGE and compaction
/// all follow the table's own setting, so a table keeps the size it was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSize {
    /// Tables that are only appended to (bronze, rejected, the ledger, the lease):
    /// 32 MiB, so readers open few files.
    Append,
    /// Tables that are upserted into (silver, gold): 8 MiB. An upsert (MERGE, or
    /// silver's rewrite) rewrites every file that holds a key it updates, so a batch of
    /// late corrections rewrites a few small files instead of a large one, and each
    /// file's key range stays narrow for pruning.
    Upsert,
}

impl FileSize {
    pub fn bytes(self) -> u64 {
        match self {
            FileSize::Append => 32 << 20,
            FileSize::Upsert => 8 << 20,
        }
    }
}

/// The target file size a table was created with (delta-rs's default when unset).
pub fn target_file_size(table: &DeltaTable, name: &str) -> Result<u64> {
    use deltalake::table::config::TablePropertiesExt;
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("read table properties", name))?;
    Ok(snapshot.table_config().target_file_size().get())
}

/// Whether the table's current version holds no data file (no rows).
pub fn is_empty(table: &DeltaTable, name: &str) -> Result<bool> {
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("read table files", name))?;
    Ok(snapshot.log_data().iter().next().is_none())
}

/// Commits between checkpoints of the tables medallion creates (`delta.checkpointInterval`).
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// The version of application transaction `app` committed in `table`, if any.
pub async fn txn_version(table: &DeltaTable, app: &str, name: &str) -> Result<Option<i64>> {
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("read transactions", name))?;
    snapshot
        .transaction_version(table.log_store().as_ref(), app)
        .await
        .map_err(MedallionError::delta("read transactions", name))
}

/// Whether batch `seq` of application transaction `app` is already committed to `table`.
///
/// Batches commit to every stage table in `seq` order, so the table's transaction
/// version works as a fence: `false` below `seq`, `true` at `seq`, and an error above
/// it (a later batch was committed by another run, which means this run must stop).
pub async fn stage_done(table: &DeltaTable, app: &str, name: &str, seq: i64) -> Result<bool> {
    match txn_version(table, app, name).await?.unwrap_or(0) {
        v if v < seq => Ok(false),
        v if v == seq => Ok(true),
        found => Err(MedallionError::Fenced {
            table: name.to_string(),
            app: app.to_string(),
            seq,
            found,
        }),
    }
}

/// Whether `e` is a commit that lost a race with a concurrent commit (retry or skip).
pub fn is_conflict(e: &MedallionError) -> bool {
    match e {
        MedallionError::Delta { source, .. } => matches!(
            source.as_ref(),
            DeltaTableError::Transaction { .. } | DeltaTableError::VersionAlreadyExists(_)
        ),
        _ => false,
    }
}

/// Commit properties carrying medallion's commit info under the key `medallion`.
pub fn commit_info(stage: &str, mut info: serde_json::Value) -> CommitProperties {
    if let Some(obj) = info.as_object_mut() {
        obj.insert("stage".into(), serde_json::Value::from(stage));
    }
    CommitProperties::default().with_metadata(vec![("medallion".to_string(), info)])
}

/// Run `sql` in `ctx` and collect its rows; errors name `step`.
pub async fn sql_batches(
    ctx: &SessionContext,
    sql: &str,
    step: &str,
) -> Result<Vec<deltalake::arrow::record_batch::RecordBatch>> {
    let df = ctx.sql(sql).await.map_err(MedallionError::sql(step))?;
    df.collect().await.map_err(MedallionError::sql(step))
}

/// A DataFusion session with delta-rs' settings, minus view types: files written from
/// plans of this session embed plain `Utf8` (also for `CAST(… AS VARCHAR)` in a gold
/// model), which every reader accepts. Casts of UTC timestamps to dates are integer
/// divisions (see `utc_date`).
pub fn session() -> SessionContext {
    let overrides = HashMap::from([
        (
            "datafusion.execution.parquet.schema_force_view_types".to_string(),
            "false".to_string(),
        ),
        (
            "datafusion.sql_parser.map_string_types_to_utf8view".to_string(),
            "false".to_string(),
        ),
    ]);
    let ctx = match DeltaSessionContext::new_with_session_overrides(&overrides) {
        Ok(ctx) => ctx.into_inner(),
        // The key is a known DataFusion option; this branch is unreachable in practice.
        Err(_) => DeltaSessionContext::new().into_inner(),
    };
    ctx.add_optimizer_rule(Arc::new(utc_date::UtcDateCast));
    ctx
}

/// A [`session`] whose operators may hold at most `memory_limit` bytes: sorts and
/// windows beyond it spill to local temporary files instead of growing memory. One
/// partition: one sort holds the whole budget (two halve it and double the buffers
/// that merging spilled runs needs).
pub fn bounded_session(memory_limit: usize) -> Result<SessionContext> {
    capped_session(memory_limit, Some(1))
}

/// A [`session`] whose spilling operators (sorts, aggregates) share `memory_limit`
/// bytes, with `partitions` partitions (the session's default when `None`). An
/// operator that cannot spill (a hash join's build side) fails past the cap.
pub fn capped_session(memory_limit: usize, partitions: Option<usize>) -> Result<SessionContext> {
    use deltalake::datafusion::execution::memory_pool::FairSpillPool;
    use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
    // Fair: each spilling operator (one per partition) gets its share, instead of the
    // first one taking it all and the others failing.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
        .build_arc()
        .map_err(MedallionError::sql("start a bounded session"))?;
    let state = session().state();
    let mut config = state.config().clone();
    if let Some(n) = partitions {
        config.options_mut().execution.target_partitions = n;
    }
    let state = deltalake::datafusion::execution::SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .with_runtime_env(runtime)
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// Register `table` in `ctx` under `name` (e.g. `silver.readings`).
pub async fn register(ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<()> {
    register_scan(ctx, name, table, None).await
}

/// [`register`], with one more column, `file_column`: the URL of the data file each
/// row is in (what [`replace_rows`] takes).
pub async fn register_with_files(
    ctx: &SessionContext,
    name: &str,
    table: &DeltaTable,
    file_column: &str,
) -> Result<()> {
    register_scan(ctx, name, table, Some(file_column)).await
}

async fn register_scan(
    ctx: &SessionContext,
    name: &str,
    table: &DeltaTable,
    file_column: Option<&str>,
) -> Result<()> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(MedallionError::delta("register", name))?;
    let state = Arc::new(ctx.state());
    let mut builder = table.table_provider().with_session(state);
    if let Some(column) = file_column {
        builder = builder.with_file_column(column);
    }
    let provider = builder
        .await
        .map_err(MedallionError::sql(format!("scan {name}")))?;
    let provider = deletion::provider(table, name, provider, file_column).await?;
    ctx.register_table(name, provider)
        .map_err(MedallionError::sql(format!("register {name}")))?;
    Ok(())
}

/// Register `provider` as source `name`'s silver table, `silver.<name>` (the schema
/// `silver` is created when missing), and also as `silver` when `also_bare` (a
/// lakehouse with one source). The gold models read silver under these names.
pub fn register_silver_provider(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn deltalake::datafusion::catalog::TableProvider>,
    also_bare: bool,
) -> deltalake::datafusion::error::Result<()> {
    use deltalake::datafusion::catalog::MemorySchemaProvider;
    if let Some(catalog) = ctx.catalog("datafusion")
        && catalog.schema("silver").is_none()
    {
        catalog.register_schema("silver", Arc::new(MemorySchemaProvider::new()))?;
    }
    // Registered again (the focused source's touched rows over its table): replaced.
    let qualified = format!("silver.{name}");
    ctx.deregister_table(qualified.as_str())?;
    ctx.register_table(qualified, provider.clone())?;
    if also_bare {
        ctx.deregister_table("silver")?;
        ctx.register_table("silver", provider)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
