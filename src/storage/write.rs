//! Streaming appends: batches are encoded to Parquet as they arrive (bounded memory);
//! `stage` uploads the data files, and `commit` makes them visible as one Delta version.
//! A process that dies between the two leaves only unreferenced data files, which no
//! reader sees and `vacuum` removes.

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

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
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("read schema", name))?;
    Ok(writer_properties(&snapshot.snapshot().arrow_schema()))
}

/// An open append to one table.
pub struct AppendWriter {
    table_name: String,
    writer: RecordBatchWriter,
    rows: u64,
    staged: Vec<Add>,
}

impl AppendWriter {
    /// Start an append to `table`.
    pub fn new(table: &DeltaTable, table_name: &str) -> Result<Self> {
        let props = table_writer_properties(table, table_name)?;
        let writer = RecordBatchWriter::for_table(table)
            .map_err(MedallionError::delta("open writer", table_name))?
            .with_writer_properties(props)
            .with_target_file_size(super::target_file_size(table, table_name)?);
        Ok(AppendWriter {
            table_name: table_name.to_string(),
            writer,
            rows: 0,
            staged: Vec::new(),
        })
    }

    /// Encode a batch (no commit yet). Empty batches are ignored.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
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
        if self.staged.is_empty() && txn.is_none() {
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
        let actions: Vec<Action> = self.staged.iter().cloned().map(Action::Add).collect();
        let mut attempt = 0u32;
        loop {
            let err =
                match try_commit(&self.table_name, table, props.clone(), actions.clone()).await {
                    Ok(version) => return Ok(Committed::Wrote(version)),
                    Err(e) => e,
                };
            let Some((app, seq)) = txn else {
                return Err(err);
            };
            table
                .update_state()
                .await
                .map_err(MedallionError::delta("reload", &self.table_name))?;
            if super::stage_done(table, app, &self.table_name, seq).await? {
                return Ok(already(table));
            }
            attempt += 1;
            if !super::is_conflict(&err) || attempt >= 6 {
                return Err(err);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
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
) -> Result<i64> {
    let err = || MedallionError::delta("commit append", table_name);
    let snapshot = table.snapshot().map_err(err())?;
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    let finalized = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(err())?;
    let version = finalized.version() as i64;
    table.update_state().await.map_err(err())?;
    Ok(version)
}
