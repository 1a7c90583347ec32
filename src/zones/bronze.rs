//! Bronze: every record of a raw file exactly as received — each configured column as
//! the raw, untrimmed text (null when the record had no such field) — plus lineage
//! (`_source_file`, `_source_line`, `_batch_id`, `_received_at`). Rows that silver will
//! reject are kept here too: bronze row count == records read, always.

use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;

use super::Lineage;
use crate::error::{MedallionError, Result};
use crate::row::RawRow;

/// Raw string columns for `rows`, one array per configured column.
pub fn raw_columns(rows: &[&RawRow], n_columns: usize) -> Vec<ArrayRef> {
    // Row by row (not column by column): a row's fields are read while in cache.
    let mut bytes = vec![0; n_columns];
    for r in rows {
        for (n, f) in bytes.iter_mut().zip(r.fields()) {
            *n += f.map_or(0, str::len);
        }
    }
    let mut builders: Vec<StringBuilder> = bytes
        .iter()
        .map(|&n| StringBuilder::with_capacity(rows.len(), n))
        .collect();
    for r in rows {
        for (i, b) in builders.iter_mut().enumerate() {
            b.append_option(r.field(i));
        }
    }
    builders
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef)
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
        .map(|r| {
            let fields = text
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    c.is_valid(r).then(|| c.value(r).to_string())
                })
                .collect();
            RawRow::new(lines.value(r) as u64, fields, Vec::new(), false)
        })
        .collect())
}

/// `batch` cut into runs of consecutive rows from the same file (column `file_column`,
/// text): each run with its file name, in order.
pub fn file_runs(batch: &RecordBatch, file_column: usize) -> Result<Vec<(String, RecordBatch)>> {
    let files = deltalake::arrow::compute::cast(batch.column(file_column), &DataType::Utf8)
        .map_err(MedallionError::arrow("read bronze rows back"))?;
    let files = files.as_string::<i32>();
    let mut runs = Vec::new();
    let mut start = 0;
    for r in 1..=batch.num_rows() {
        if r == batch.num_rows() || files.value(r) != files.value(start) {
            runs.push((
                files.value(start).to_string(),
                batch.slice(start, r - start),
            ));
            start = r;
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_runs_cut_where_the_file_changes() {
        let schema = Arc::new(deltalake::arrow::datatypes::Schema::new(vec![
            deltalake::arrow::datatypes::Field::new("f", DataType::Utf8, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["a", "a", "b", "a"]))],
        )
        .unwrap();
        let runs: Vec<(String, usize)> = file_runs(&b, 0)
            .unwrap()
            .into_iter()
            .map(|(f, part)| (f, part.num_rows()))
            .collect();
        assert_eq!(
            runs,
            vec![("a".into(), 2), ("b".into(), 1), ("a".into(), 1)]
        );
        let empty = b.slice(0, 0);
        assert!(file_runs(&empty, 0).unwrap().is_empty());
    }
}
