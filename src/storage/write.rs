//! Streaming appends: batches are encoded to Parquet as they arrive (bounded memory);
//! `stage` uploads the data files, and `commit` makes them visible as one Delta version.
//! A process that dies between the two leaves only unreferenced data files, which no
//! reader sees and `vacuum` removes.

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Metadata, MetadataExt, StructType, Transaction};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, MergePredicate, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::conform::conform;
use crate::error::{MedallionError, Result};

/// Parquet settings of every data file medallion writes: Snappy, and row groups of
/// 128 Ki rows (the default is 1 Mi): an open row group is held in memory, and peak
/// memory must not follow the size of a file or of a MERGE's rewrite. Dictionary
/// encoding is off for columns whose values are (nearly) all distinct (see
/// [`dictionary_pays`]).
pub fn writer_properties(schema: &Schema) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024));
    for field in schema.fields() {
        if !dictionary_pays(field) {
            props =
                props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    props.build()
}

/// Whether a column is worth dictionary-encoding. Not for line numbers (unique per
/// row) nor for measures (decimals and floats, mostly distinct): the writer would
/// hash every value into a dictionary until it overflows and then fall back to plain
/// encoding anyway; that hashing was ~9% of the CPU of a 10 M-row load. Identifiers,
/// timestamps and categories repeat and keep their dictionaries.
pub fn dictionary_pays(field: &Field) -> bool {
    field.name() != crate::schema::SOURCE_LINE
        && !matches!(
            field.data_type(),
            DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Float32
                | DataType::Float64
        )
}

/// The Parquet settings for appends and rewrites of `table`.
pub fn table_writer_properties(table: &DeltaTable, name: &str) -> Result<WriterProperties> {
    let schema = super::arrow_schema(table, name)?;
    Ok(writer_properties(&schema))
}

/// An open append to one table (or, from [`AppendWriter::replacing`], a replacement
/// of its whole content and schema).
pub struct AppendWriter {
    table_name: String,
    /// The table's columns: every batch is conformed to them before it is encoded.
    schema: SchemaRef,
    writer: RecordBatchWriter,
    rows: u64,
    staged: Vec<Add>,
    /// The table's new metadata when this write replaces every current file.
    replacing: Option<Metadata>,
    /// Data files the commit removes (their rows rewritten by this writer), as a scan's
    /// file column names them.
    removing: Vec<String>,
    /// Data files the commit re-adds with new deletion vectors.
    marking: Vec<super::deletion::Marked>,
}

impl AppendWriter {
    /// Start an append to `table`.
    pub fn new(table: &DeltaTable, table_name: &str) -> Result<Self> {
        let props = table_writer_properties(table, table_name)?;
        let schema = super::arrow_schema(table, table_name)?;
        let writer = RecordBatchWriter::for_table(table)
            .map_err(MedallionError::delta("open writer", table_name))?
            .with_writer_properties(props)
            .with_target_file_size(super::target_file_size(table, table_name)?);
        Ok(AppendWriter {
            table_name: table_name.to_string(),
            schema,
            writer,
            rows: 0,
            staged: Vec::new(),
            replacing: None,
            removing: Vec::new(),
            marking: Vec::new(),
        })
    }

    /// Start writing the whole new content of `table`, with `schema` and the table
    /// properties `config` set: the commit removes every current file and writes the
    /// new metadata in the same version (an overwrite: time travel keeps the old state).
    pub fn replacing(
        table: &DeltaTable,
        table_name: &str,
        schema: &SchemaRef,
        config: &[(&str, &str)],
    ) -> Result<Self> {
        let err = || MedallionError::delta("replace", table_name);
        let kernel: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| err()(e.into()))?;
        let snapshot = table.snapshot().map_err(err())?;
        let mut metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&kernel)
            .map_err(|e| err()(e.into()))?;
        for (k, v) in config {
            metadata = metadata
                .add_config_key(k.to_string(), v.to_string())
                .map_err(|e| err()(e.into()))?;
        }
        // The table's own store options: on an object store the writer needs the same
        // endpoint and credentials as the table.
        let options = table.log_store().config().options().raw.clone();
        let writer = RecordBatchWriter::try_new(
            table.table_url().as_str(),
            schema.clone(),
            None,
            Some(options),
        )
        .map_err(err())?
        .with_writer_properties(writer_properties(schema))
        .with_target_file_size(super::target_file_size(table, table_name)?);
        Ok(AppendWriter {
            table_name: table_name.to_string(),
            schema: schema.clone(),
            writer,
            rows: 0,
            staged: Vec::new(),
            replacing: Some(metadata),
            removing: Vec::new(),
            marking: Vec::new(),
        })
    }

    /// Make the commit also remove the data files `file_ids` (URLs, as a scan's file
    /// column names them) whose rows this writer rewrote: a copy-on-write MERGE. The
    /// commit fails if one of them is no longer in the table.
    pub fn removing(mut self, file_ids: Vec<String>) -> Self {
        self.removing = file_ids;
        self
    }

    /// Make the commit also give data files new deletion vectors (rows of them this
    /// writer replaces; see `deletion::mark`). The commit fails if one of them is no
    /// longer in the table with the vector it was marked from.
    pub(super) fn marking(mut self, marked: Vec<super::deletion::Marked>) -> Self {
        self.marking = marked;
        self
    }

    /// Encode a batch (no commit yet), conformed to the table's columns (see
    /// [`conform`]). Empty batches are ignored.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, &self.schema, &self.table_name)?;
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .await
            .map_err(MedallionError::delta("write", &self.table_name))
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Take over what `other` (a writer to the same table) wrote, its data files
    /// uploaded, to commit them with this writer's.
    pub async fn absorb(&mut self, mut other: AppendWriter) -> Result<()> {
        other.stage().await?;
        self.rows += other.rows;
        self.staged.extend(other.staged);
        Ok(())
    }

    /// Upload every data file written so far (still invisible until `commit`).
    pub async fn stage(&mut self) -> Result<()> {
        let adds = self
            .writer
            .flush()
            .await
            .map_err(MedallionError::delta("upload data files", &self.table_name))?;
        self.staged.extend(adds);
        Ok(())
    }

    /// Commit everything written as one version.
    ///
    /// With `txn = Some((app, seq))` the commit carries that application transaction
    /// (even with no rows, to mark the stage done) and is exactly-once: if `app` is
    /// already at `seq` nothing is written, and after any commit error the table is
    /// re-read, so an ambiguous commit that did land is not written again. A table
    /// already past `seq` is an error (see [`super::stage_done`]). Conflicts are retried
    /// with backoff.
    pub async fn commit(
        mut self,
        table: &mut DeltaTable,
        props: CommitProperties,
        txn: Option<(&str, i64)>,
    ) -> Result<Committed> {
        self.stage().await?;
        if self.staged.is_empty()
            && txn.is_none()
            && self.replacing.is_none()
            && self.removing.is_empty()
            && self.marking.is_empty()
        {
            return Ok(Committed::Nothing);
        }
        let already =
            |table: &DeltaTable| Committed::AlreadyThere(table.version().unwrap_or(0) as i64);
        let props = match txn {
            Some((app, seq)) => {
                if super::stage_done(table, app, &self.table_name, seq).await? {
                    return Ok(already(table));
                }
                props.with_application_transaction(Transaction::new(app, seq))
            }
            None => props,
        };
        let mut attempt = 0u32;
        loop {
            let actions = self.actions(table)?;
            let err = match try_commit(
                &self.table_name,
                table,
                props.clone(),
                actions,
                self.operation(),
            )
            .await
            {
                Ok(version) => return Ok(Committed::Wrote(version)),
                Err(e) => e,
            };
            let Some((app, seq)) = txn else {
                return Err(err);
            };
            // A rewrite read the table before the commit that won: rows it added (a key
            // the rewrite also inserts) would go unnoticed by a retry. The batch is
            // redone instead (unless that commit was this rewrite's own).
            let rewrite = !self.removing.is_empty() || !self.marking.is_empty();
            table
                .update_state()
                .await
                .map_err(MedallionError::delta("reload", &self.table_name))?;
            if super::stage_done(table, app, &self.table_name, seq).await? {
                return Ok(already(table));
            }
            attempt += 1;
            if rewrite || !super::is_conflict(&err) || attempt >= 6 {
                return Err(err);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
        }
    }
}

impl AppendWriter {
    /// The commit's actions against the table's current state.
    fn actions(&self, table: &DeltaTable) -> Result<Vec<Action>> {
        let mut actions = Vec::new();
        if let Some(metadata) = &self.replacing {
            actions.push(Action::Metadata(metadata.clone()));
            let snapshot = table
                .snapshot()
                .map_err(MedallionError::delta("replace", &self.table_name))?;
            actions.extend(
                snapshot
                    .log_data()
                    .iter()
                    .map(|f| Action::Remove(f.remove_action(true))),
            );
        }
        actions.extend(super::rewrite::removes(
            table,
            &self.table_name,
            &self.removing,
        )?);
        actions.extend(super::deletion::actions(
            table,
            &self.table_name,
            &self.marking,
        )?);
        actions.extend(self.staged.iter().cloned().map(Action::Add));
        Ok(actions)
    }

    /// The operation the commit records: an append, an overwrite ([`Self::replacing`])
    /// or a copy-on-write MERGE ([`Self::removing`]).
    fn operation(&self) -> DeltaOperation {
        if !self.removing.is_empty() || !self.marking.is_empty() {
            let clause = |action: &str| MergePredicate {
                action_type: action.to_string(),
                predicate: None,
            };
            return DeltaOperation::Merge {
                predicate: None,
                merge_predicate: None,
                matched_predicates: vec![clause("update")],
                not_matched_predicates: vec![clause("insert")],
                not_matched_by_source_predicates: Vec::new(),
            };
        }
        let mode = match self.replacing {
            Some(_) => SaveMode::Overwrite,
            None => SaveMode::Append,
        };
        DeltaOperation::Write {
            mode,
            partition_by: None,
            predicate: None,
        }
    }
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// There was nothing to commit (no rows and no transaction).
    Nothing,
    /// This call wrote table version `.0`.
    Wrote(i64),
    /// The transaction was already at its `seq` (written by an earlier attempt, or by
    /// this one in an ambiguous commit); nothing was written; the table is at `.0`.
    AlreadyThere(i64),
}

impl Committed {
    /// The table version after the commit, if there was one.
    pub fn version(self) -> Option<i64> {
        match self {
            Committed::Nothing => None,
            Committed::Wrote(v) | Committed::AlreadyThere(v) => Some(v),
        }
    }
}

async fn try_commit(
    table_name: &str,
    table: &mut DeltaTable,
    props: CommitProperties,
    actions: Vec<Action>,
    operation: DeltaOperation,
) -> Result<i64> {
    use deltalake::table::config::TablePropertiesExt;
    let err = || MedallionError::delta("commit append", table_name);
    let snapshot = table.snapshot().map_err(err())?;
    // Expired log files are cleaned up with each checkpoint, not after every commit
    // (each cleanup lists the whole log: a request on an object store); those expiring
    // in between, or with a commit retried onto another version, wait for the next.
    let next = snapshot.version() + 1;
    let interval = snapshot.table_config().checkpoint_interval().get();
    let due = (next + 1).is_multiple_of(interval);
    let props = props.with_cleanup_expired_logs(Some(
        due && snapshot.table_config().enable_expired_log_cleanup(),
    ));
    let landed = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .into_prepared_commit_future()
        .await
        .map_err(err())?
        .await
        .map_err(err())?;
    // The version is written: a failed checkpoint or log cleanup must not report it
    // failed (a commit without an application transaction would not be found again; a
    // failed read-back still does). Else the commit's own snapshot is kept: no reread.
    let version = landed.version;
    match landed.await {
        Ok(finalized) => table.state = Some(finalized.snapshot()),
        Err(e) => {
            let msg = "committed, but its checkpoint or log cleanup failed (the next covers it)";
            tracing::warn!(table = table_name, version, error = %e, "{msg}");
            let reread = MedallionError::delta("read back a commit", table_name);
            table
                .update_incremental(Some(version))
                .await
                .map_err(reread)?;
        }
    }
    Ok(version as i64)
}
