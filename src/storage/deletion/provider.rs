//! Reading a table whose data files carry deletion vectors.
//!
//! delta-rs (1.1.3) scans such a table with no predicate in the Parquet scan and in one
//! partition: it applies each vector above the scan by row position, so nothing below
//! may skip or split rows (delta-rs PR 4692). Every scan of the table then decodes each
//! candidate file whole, on one core. Here each file's vector becomes a row selection of
//! DataFusion's own Parquet scan ([`ParquetRowSelection`]: deleted rows are never
//! decoded), so file statistics, row-group and page-index pruning and the session's
//! partitions work as for any Parquet file. The selection must cover exactly the
//! file's rows (DataFusion checks it against the footer), so a position is never
//! guessed. Tables without vectors keep delta-rs' scan.

use std::sync::Arc;

use async_trait::async_trait;
use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::stats::Precision;
use deltalake::datafusion::common::{ColumnStatistics, ScalarValue, Statistics, ToDFSchema};
use deltalake::datafusion::datasource::TableType;
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::object_store::ObjectStoreUrl;
use deltalake::datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetRowSelection,
};
use deltalake::datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetSource,
};
use deltalake::datafusion::datasource::source::DataSourceExec;
use deltalake::datafusion::datasource::table_schema::TableSchema;
use deltalake::datafusion::error::Result as DfResult;
use deltalake::datafusion::logical_expr::utils::conjunction;
use deltalake::datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use deltalake::datafusion::physical_expr_adapter::DefaultPhysicalExprAdapterFactory;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::kernel::LogicalFileView;
use deltalake::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use roaring::RoaringTreemap;

use crate::error::{MedallionError, Result};

/// `delta` (delta-rs' provider for `table`, with `file_column` when given) when no
/// data file of `table` has a deletion vector; otherwise a provider with the same
/// schema that reads the files with their vectors as row selections.
pub(crate) async fn provider(
    table: &DeltaTable,
    name: &str,
    delta: Arc<dyn TableProvider>,
    file_column: Option<&str>,
) -> Result<Arc<dyn TableProvider>> {
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("scan", name))?;
    // Vectors need reader version 3: older tables are never walked.
    if snapshot.protocol().min_reader_version() < 3 {
        return Ok(delta);
    }
    let files: Vec<LogicalFileView> = snapshot.log_data().iter().collect();
    if files
        .iter()
        .all(|f| f.deletion_vector_descriptor().is_none())
    {
        return Ok(delta);
    }
    // The tables medallion writes have no partition columns, no column mapping and
    // plain file names; any other table keeps delta-rs' scan.
    let mapping = crate::storage::table_property(table, name, "delta.columnMapping.mode")?;
    if !snapshot.metadata().partition_columns().is_empty()
        || mapping.is_some_and(|m| m != "none")
        || files.iter().any(|f| f.path().contains(['#', '?', '%']))
    {
        return Ok(delta);
    }
    let schema = delta.schema();
    let (file_schema, file_field) = split_file_column(&schema, file_column)?;
    let root = crate::storage::rewrite::table_root(table);
    let store = store_url(&root, name)?;
    let deleted = vectors(table, name, &root, &files).await?;
    let files = files
        .iter()
        .zip(deleted)
        .map(|(f, deleted)| scan_file(f, deleted, &root, &file_schema, file_field.as_ref(), name))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(VectorScan {
        schema,
        file_schema,
        file_field,
        store,
        files,
    }))
}

/// A table read with its deletion vectors as Parquet row selections.
#[derive(Debug)]
struct VectorScan {
    /// delta-rs' schema for the table (the file column last, when asked for).
    schema: SchemaRef,
    /// The columns read from the data files.
    file_schema: SchemaRef,
    /// The column naming each row's data file (a partition value per file).
    file_field: Option<FieldRef>,
    store: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
}

#[async_trait]
impl TableProvider for VectorScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters prune files, row groups and pages; the rows are filtered above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let partitions: Vec<FieldRef> = self.file_field.iter().cloned().collect();
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(partitions)
            .build();
        let store = state.runtime_env().object_store(&self.store)?;
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        let mut source = ParquetSource::new(table_schema)
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                store, cache,
            )));
        if let Some(predicate) = conjunction(filters.to_vec()) {
            let df_schema = self.schema.clone().to_dfschema()?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let groups = file_groups(&self.files, state.config().target_partitions());
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            // A limit counts rows after the filters (Inexact: applied above the scan).
            .with_limit(if filters.is_empty() { limit } else { None })
            .with_expr_adapter(Some(Arc::new(DefaultPhysicalExprAdapterFactory)))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// The table's columns without `file_column`, and that column's field.
fn split_file_column(
    schema: &SchemaRef,
    file_column: Option<&str>,
) -> Result<(SchemaRef, Option<FieldRef>)> {
    let Some(column) = file_column else {
        return Ok((schema.clone(), None));
    };
    let field = schema
        .field_with_name(column)
        .map_err(MedallionError::arrow("scan a table's data files"))?;
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != column)
        .cloned()
        .collect();
    Ok((Arc::new(Schema::new(fields)), Some(Arc::new(field.clone()))))
}

/// The object store DataFusion reads the table's files from (its scheme and host, as
/// delta-rs registers it in the session).
fn store_url(root: &url::Url, name: &str) -> Result<ObjectStoreUrl> {
    let host = &root[url::Position::BeforeHost..url::Position::AfterPort];
    ObjectStoreUrl::parse(format!("{}://{host}", root.scheme()))
        .map_err(|e| MedallionError::Internal(format!("{name}: table location: {e}")))
}

/// The positions each file's vector deletes (empty without one), in order.
async fn vectors(
    table: &DeltaTable,
    name: &str,
    root: &url::Url,
    files: &[LogicalFileView],
) -> Result<Vec<RoaringTreemap>> {
    let engine = table.log_store().engine(None);
    // A few at a time (one per core): a vector in a file of its own is read on a
    // blocking thread that waits for the read (see `scan::read_vector`).
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut deleted = Vec::with_capacity(files.len());
    for chunk in files.chunks(n) {
        let reads: Vec<_> = chunk
            .iter()
            .map(|f| {
                let dv = f.deletion_vector_descriptor()?;
                let (engine, root, name) = (engine.clone(), root.clone(), name.to_string());
                Some(tokio::spawn(async move {
                    super::scan::read_vector(engine, &root, Some(dv), &name).await
                }))
            })
            .collect();
        for read in reads {
            deleted.push(match read {
                None => RoaringTreemap::new(),
                Some(read) => read.await.map_err(|e| {
                    MedallionError::Internal(format!(
                        "{name}: reading deletion vectors stopped: {e}"
                    ))
                })??,
            });
        }
    }
    Ok(deleted)
}

/// One data file to scan: its location, its file column value, its statistics (what
/// DataFusion prunes files with) and, when rows are deleted, its row selection.
fn scan_file(
    f: &LogicalFileView,
    deleted: RoaringTreemap,
    root: &url::Url,
    file_schema: &Schema,
    file_field: Option<&FieldRef>,
    name: &str,
) -> Result<PartitionedFile> {
    let path = f.path();
    let url = crate::storage::rewrite::file_url(root, &path, name)?;
    let location = deltalake::Path::from_url_path(url.path())
        .map_err(|e| MedallionError::Internal(format!("{name}: data file {path}: {e}")))?;
    let mut file = PartitionedFile::new(location.to_string(), f.size().max(0) as u64);
    // The object store path is already decoded; `new` takes it as is.
    file.object_meta.location = location;
    if let Some(field) = file_field {
        let value = ScalarValue::Utf8(Some(url.to_string()))
            .cast_to(field.data_type())
            .map_err(|e| MedallionError::Internal(format!("{name}: file column: {e}")))?;
        file.partition_values = vec![value];
    }
    let physical = f.num_records().map(|n| n as u64);
    if !deleted.is_empty() {
        let Some(rows) = physical else {
            return Err(MedallionError::Internal(format!(
                "{name}: data file {path} has a deletion vector but no row count"
            )));
        };
        file = file.with_extension(ParquetRowSelection::new(selection(&deleted, rows, &path)?));
    }
    let stats = statistics(f, deleted.len(), file_schema);
    Ok(file.with_statistics(Arc::new(stats)))
}

/// The rows of a file of `rows` rows that `deleted` does not delete.
pub(super) fn selection(deleted: &RoaringTreemap, rows: u64, path: &str) -> Result<RowSelection> {
    if deleted.max().is_some_and(|last| last >= rows) {
        return Err(MedallionError::Internal(format!(
            "data file {path}: its deletion vector deletes a row past its {rows} rows"
        )));
    }
    let mut selectors = Vec::new();
    let mut next = 0u64;
    for position in deleted.iter() {
        if position > next {
            selectors.push(RowSelector::select((position - next) as usize));
        }
        selectors.push(RowSelector::skip(1));
        next = position + 1;
    }
    if next < rows {
        selectors.push(RowSelector::select((rows - next) as usize));
    }
    // Collecting merges adjacent skips.
    Ok(selectors.into_iter().collect())
}

/// A file's statistics from the log, what DataFusion prunes files with (it trusts only
/// exact ones): its rows and each column's bounds. Once rows of a file are deleted these
/// describe rows no longer there, so they are given as inexact (the file is then pruned
/// by its row groups' statistics, after its footer is read). Null counts are left out:
/// with an exact null count of 0 and equal exact bounds, DataFusion fills the column
/// from the statistics instead of reading it, and the log's bounds are not always the
/// values themselves (see [`trusted_bounds`]).
pub(super) fn statistics(f: &LogicalFileView, deleted: u64, file_schema: &Schema) -> Statistics {
    let (min, max) = (as_array(f.min_values()), as_array(f.max_values()));
    let precision = |value| match deleted {
        0 => Precision::Exact(value),
        _ => Precision::Inexact(value),
    };
    let columns = file_schema
        .fields()
        .iter()
        .map(|field| {
            let bound = |array| {
                let value = trusted_bounds(field).then(|| bound(array, field))??;
                Some(precision(value))
            };
            ColumnStatistics {
                min_value: bound(&min).unwrap_or_default(),
                max_value: bound(&max).unwrap_or_default(),
                ..ColumnStatistics::new_unknown()
            }
        })
        .collect();
    let rows = f.num_records().map(|n| n.saturating_sub(deleted as usize));
    Statistics {
        num_rows: match (rows, deleted) {
            (Some(n), 0) => Precision::Exact(n),
            (Some(n), _) => Precision::Inexact(n),
            (None, _) => Precision::Absent,
        },
        total_byte_size: Precision::Absent,
        column_statistics: columns,
    }
}

/// Whether the log's bounds of `field` are its values: not for floats (Parquet's
/// statistics leave NaN out) nor for decimals of more than 15 digits (delta-rs writes
/// their statistics through an `f64`, which rounds them).
fn trusted_bounds(field: &FieldRef) -> bool {
    use deltalake::arrow::datatypes::DataType;
    match field.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => false,
        DataType::Decimal128(p, _) | DataType::Decimal256(p, _) => *p <= 15,
        _ => true,
    }
}

/// A kernel statistics struct (`minValues`, `maxValues`) as a one-row Arrow array.
fn as_array(
    scalar: Option<delta_kernel::expressions::Scalar>,
) -> Option<deltalake::arrow::array::ArrayRef> {
    scalar.and_then(|s| s.to_array(1).ok())
}

/// `field`'s value in a one-row statistics struct, in the field's type.
fn bound(
    array: &Option<deltalake::arrow::array::ArrayRef>,
    field: &FieldRef,
) -> Option<ScalarValue> {
    use deltalake::arrow::array::{Array, AsArray};
    let column = array
        .as_ref()?
        .as_struct_opt()?
        .column_by_name(field.name())?;
    if !column.is_valid(0) {
        return None;
    }
    ScalarValue::try_from_array(column, 0)
        .ok()?
        .cast_to(field.data_type())
        .ok()
}

/// The files in at most `partitions` groups of about equal bytes (largest first).
fn file_groups(files: &[PartitionedFile], partitions: usize) -> Vec<FileGroup> {
    let n = partitions.clamp(1, files.len().max(1));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); n];
    let mut sorted: Vec<&PartitionedFile> = files.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
    for file in sorted {
        if let Some(group) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            group.0 += file.object_meta.size;
            group.1.push(file.clone());
        }
    }
    groups
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}
