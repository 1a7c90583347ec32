//! Bronze: every record of a raw file exactly as received — each configured column as
//! the raw, untrimmed text (null when the record had no such field) — plus lineage
//! (`_source_file`, `_source_line`, `_batch_id`, `_received_at`). Rows that silver will
//! reject are kept here too: bronze row count == records read, always.

use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;

use super::Lineage;
use crate::error::{MedallionError, Result};
use crate::ingest::reader::RawRow;

/// Raw string columns for `rows`, one array per configured column.
pub fn raw_columns(rows: &[&RawRow], n_columns: usize) -> Vec<ArrayRef> {
    (0..n_columns)
        .map(|i| {
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.fields[i].as_deref()),
            )) as ArrayRef
        })
        .collect()
}

/// Lineage columns in the order of the schema: file, line, batch id, received at.
pub fn lineage_columns(rows: &[&RawRow], lineage: &Lineage) -> Vec<ArrayRef> {
    let n = rows.len();
    vec![
        Arc::new(StringArray::from(vec![lineage.source_file.as_str(); n])) as ArrayRef,
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.line as i64),
        )),
        Arc::new(StringArray::from(vec![lineage.batch_id.as_str(); n])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![lineage.received_at.timestamp_micros(); n])
                .with_timezone("UTC"),
        ),
    ]
}

/// The bronze batch for a chunk of raw rows.
pub fn to_batch(schema: &SchemaRef, rows: &[RawRow], lineage: &Lineage) -> Result<RecordBatch> {
    let refs: Vec<&RawRow> = rows.iter().collect();
    let n_columns = schema.fields().len() - 4;
    let mut columns = raw_columns(&refs, n_columns);
    columns.extend(lineage_columns(&refs, lineage));
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(MedallionError::arrow("build bronze batch"))
}

/// Bronze rows read back as raw rows, for typing and checking them again: `batch` holds
/// the `n_columns` configured columns first (as text), then `_source_line`.
pub fn read_back(batch: &RecordBatch, n_columns: usize) -> Result<Vec<RawRow>> {
    let text: Vec<ArrayRef> = (0..n_columns)
        .map(|i| deltalake::arrow::compute::cast(batch.column(i), &DataType::Utf8))
        .collect::<std::result::Result<_, _>>()
        .map_err(MedallionError::arrow("read bronze rows back"))?;
    let lines = batch.column(n_columns).as_primitive::<Int64Type>();
    Ok((0..batch.num_rows())
        .map(|r| RawRow {
            line: lines.value(r) as u64,
            fields: text
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    c.is_valid(r).then(|| c.value(r).to_string())
                })
                .collect(),
            problems: Vec::new(),
            cut: false,
        })
        .collect())
}
