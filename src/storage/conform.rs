//! Rows made to fit a table's columns before they are written.

use deltalake::arrow::array::new_null_array;
use deltalake::arrow::compute::{CastOptions, cast_with_options};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{MedallionError, Result};

/// `batch` with the columns of `schema`, matched by name and in its order: a column the
/// batch lacks (one removed from the configuration but kept by the table) is null. A
/// batch column the table lacks is an error: tables are evolved before they are written.
pub fn conform(batch: RecordBatch, schema: &SchemaRef, table_name: &str) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    if let Some(f) = batch
        .schema()
        .fields()
        .iter()
        .find(|f| schema.field_with_name(f.name()).is_err())
    {
        return Err(MedallionError::Internal(format!(
            "{table_name} has no column \"{}\" (its schema was not evolved)",
            f.name()
        )));
    }
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            // Never a lossy cast: a value that does not fit is an error, not a null.
            Some(c) => cast_with_options(
                c,
                f.data_type(),
                &CastOptions {
                    safe: false,
                    ..CastOptions::default()
                },
            ),
            None => Ok(new_null_array(f.data_type(), n)),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(MedallionError::arrow("conform rows to the table"))?;
    // The row count is kept also for a schema of no columns (rows kept only as a count).
    let options = RecordBatchOptions::new().with_row_count(Some(n));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(MedallionError::arrow("conform rows to the table"))
}
