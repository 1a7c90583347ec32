//! Finding the rows to mark: each data file's current vector, and a scan of the file
//! in physical order that sees every row once (checked against the file's metadata).

use std::sync::{Arc, Mutex};

use delta_kernel::Engine;
use deltalake::DeltaTable;
use deltalake::arrow::array::BooleanArray;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::DeletionVectorDescriptor;
use deltalake::logstore::LogStore;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::{
    ArrowPredicate, ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter,
};
use deltalake::{ObjectStore, Path};
use futures::{StreamExt, TryStreamExt};
use roaring::RoaringTreemap;

use super::{Target, kernel_err};
use crate::error::{MedallionError, Result};
use crate::storage::rewrite::Dropping;

/// What marking one data file found.
pub(super) struct Found {
    /// The positions its current vector deletes.
    pub old: RoaringTreemap,
    /// The positions of the rows to mark (none of them in `old`).
    pub positions: Vec<u64>,
    /// Those rows, in the returned columns.
    pub rows: Vec<RecordBatch>,
}

/// [`Found`] for each of `targets`, in order, a few files at a time (one per core).
pub(super) async fn find_all(
    table: &DeltaTable,
    name: &str,
    targets: &[Target],
    dropping: &Arc<Dropping>,
) -> Result<Vec<Found>> {
    let store = table.log_store().object_store(None);
    let engine = table.log_store().engine(None);
    let root = crate::storage::rewrite::table_root(table);
    let schema = returned_schema(table, name, dropping)?;
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tasks = targets.iter().map(|t| {
        let (store, engine, root, old) =
            (store.clone(), engine.clone(), root.clone(), t.old.clone());
        let file = FileScan {
            path: t.add.path.clone(),
            dropping: dropping.clone(),
            schema: schema.clone(),
            name: name.to_string(),
        };
        tokio::spawn(async move {
            let deleted = read_vector(engine, &root, old, &file.name).await?;
            file.run(store, deleted).await
        })
    });
    futures::stream::iter(tasks)
        .buffered(n)
        .map(|joined| {
            joined.map_err(|e| MedallionError::Internal(format!("marking {name} stopped: {e}")))?
        })
        .try_collect()
        .await
}

/// The positions a data file's current deletion vector deletes (none without one).
pub(super) async fn read_vector(
    engine: Arc<dyn Engine>,
    root: &url::Url,
    old: Option<DeletionVectorDescriptor>,
    name: &str,
) -> Result<RoaringTreemap> {
    let Some(old) = old else {
        return Ok(RoaringTreemap::new());
    };
    let descriptor: delta_kernel::actions::deletion_vector::DeletionVectorDescriptor =
        old.try_into().map_err(kernel_err(name))?;
    let root = root.clone();
    // The kernel reads synchronously (on this runtime, through its executor).
    let read =
        tokio::task::spawn_blocking(move || descriptor.read(engine.storage_handler(), &root));
    read.await
        .map_err(|e| MedallionError::Internal(format!("reading a deletion vector stopped: {e}")))?
        .map_err(kernel_err(name))
}

/// The scan of one data file (owned: it moves into a task, then onto a blocking thread).
struct FileScan {
    /// The file's path in the log.
    path: String,
    dropping: Arc<Dropping>,
    /// The columns of the rows returned.
    schema: SchemaRef,
    name: String,
}

impl FileScan {
    /// Scan the file in physical order: the positions of rows whose key `dropping`
    /// holds and `deleted` (its current vector) does not, and those rows in `schema`'s
    /// columns. The file is fetched whole (one request; data files are a few MiB) and
    /// decoded off the runtime.
    async fn run(self, store: Arc<dyn ObjectStore>, deleted: RoaringTreemap) -> Result<Found> {
        let fetch = |e: deltalake::logstore::object_store::Error| {
            MedallionError::Internal(format!("{}: read data file {}: {e}", self.name, self.path))
        };
        let path = Path::from(self.path.as_str());
        let bytes = store
            .get(&path)
            .await
            .map_err(fetch)?
            .bytes()
            .await
            .map_err(fetch)?;
        let scanned = tokio::task::spawn_blocking(move || self.decode(bytes, deleted));
        scanned
            .await
            .map_err(|e| MedallionError::Internal(format!("marking deleted rows stopped: {e}")))?
    }

    /// [`Self::run`] on the file's bytes.
    fn decode(self, bytes: bytes::Bytes, deleted: RoaringTreemap) -> Result<Found> {
        let (path, name, schema) = (self.path.as_str(), self.name.as_str(), &self.schema);
        let dropping = &self.dropping;
        let deleted = Arc::new(deleted);
        let err = |what: &'static str| {
            move |e: deltalake::parquet::errors::ParquetError| {
                MedallionError::Internal(format!("{name}: {what} {path}: {e}"))
            }
        };
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(err("open data file"))?;
        let physical = builder.metadata().file_metadata().num_rows() as u64;
        let parquet = builder.parquet_schema().clone();
        let roots = |names: &mut dyn Iterator<Item = &str>| {
            let fields = parquet.root_schema().get_fields();
            let wanted: Vec<&str> = names.collect();
            let indices: Vec<usize> = (0..fields.len())
                .filter(|i| wanted.contains(&fields[*i].name()))
                .collect();
            (
                ProjectionMask::roots(&parquet, indices.clone()),
                indices.len(),
            )
        };
        let keys = dropping.keys.columns();
        let (key_mask, found_keys) = roots(&mut keys.iter().map(String::as_str));
        if found_keys != keys.len() {
            return Err(MedallionError::Internal(format!(
                "{name}: data file {path} lacks a key column"
            )));
        }
        let (mask, _) = roots(&mut schema.fields().iter().map(|f| f.name().as_str()));
        let state = Arc::new(Mutex::new((0u64, Vec::new())));
        let filter = marking_filter(key_mask, dropping.clone(), deleted.clone(), state.clone());
        let reader = builder
            .with_projection(mask)
            .with_row_filter(RowFilter::new(vec![filter]))
            .build()
            .map_err(err("read data file"))?;
        let batches = reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| MedallionError::Internal(format!("{name}: read data file {path}: {e}")))?;
        let (seen, positions) = std::mem::take(
            &mut *state
                .lock()
                .map_err(|_| MedallionError::Internal("deletion scan state poisoned".into()))?,
        );
        let n_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if seen != physical || n_rows != positions.len() {
            return Err(MedallionError::Internal(format!(
                "{name}: data file {path}: {seen} of its {physical} rows read, {n_rows} rows for {} \
                 positions; nothing was committed",
                positions.len()
            )));
        }
        let rows = batches
            .into_iter()
            .map(|b| crate::storage::conform(b, schema, name))
            .collect::<Result<_>>()?;
        Ok(Found {
            old: Arc::unwrap_or_clone(deleted),
            positions,
            rows,
        })
    }
}

/// The row filter of a marking scan: it keeps the rows whose key `dropping` holds and
/// `deleted` does not, and records their positions (`state`: rows seen, positions).
fn marking_filter(
    key_mask: ProjectionMask,
    dropping: Arc<Dropping>,
    deleted: Arc<RoaringTreemap>,
    state: Arc<Mutex<(u64, Vec<u64>)>>,
) -> Box<dyn ArrowPredicate> {
    Box::new(ArrowPredicateFn::new(
        key_mask,
        move |batch: RecordBatch| {
            let found = dropping
                .keys
                .contains(&batch)
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            let mut guard = state
                .lock()
                .map_err(|_| ArrowError::ComputeError("deletion scan state poisoned".into()))?;
            let (seen, positions) = &mut *guard;
            let start = *seen;
            let hits: BooleanArray = (0..batch.num_rows())
                .map(|i| {
                    let pos = start + i as u64;
                    let hit = found.value(i) && !deleted.contains(pos);
                    if hit {
                        positions.push(pos);
                    }
                    Some(hit)
                })
                .collect();
            *seen += batch.num_rows() as u64;
            Ok(hits)
        },
    ))
}

/// The columns of the rows [`mark`] returns: `dropping`'s returned ones (in that
/// order), else all of the table's.
fn returned_schema(table: &DeltaTable, name: &str, dropping: &Dropping) -> Result<SchemaRef> {
    let schema = crate::storage::arrow_schema(table, name)?;
    let Some(columns) = &dropping.returned else {
        return Ok(schema);
    };
    let fields = columns
        .iter()
        .map(|c| schema.field_with_name(c).cloned())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(MedallionError::arrow("keep the replaced rows"))?;
    Ok(Arc::new(deltalake::arrow::datatypes::Schema::new(fields)))
}
