//! A query result's columns read as one Rust type each, whatever type the engine gave
//! them (cast first): text, integers, doubles, timestamps in microseconds. For the
//! read-side commands that turn small SQL results into reports.

use deltalake::arrow::array::{
    AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{
    DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};

use crate::error::{MedallionError, Result};

fn cast(b: &RecordBatch, i: usize, to: &DataType) -> Result<deltalake::arrow::array::ArrayRef> {
    deltalake::arrow::compute::cast(b.column(i), to)
        .map_err(MedallionError::arrow("read a query result"))
}

/// Column `i` as text.
pub fn text(b: &RecordBatch, i: usize) -> Result<StringArray> {
    Ok(cast(b, i, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// Column `i` as 64-bit integers.
pub fn ints(b: &RecordBatch, i: usize) -> Result<Int64Array> {
    Ok(cast(b, i, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// Column `i` as doubles.
pub fn doubles(b: &RecordBatch, i: usize) -> Result<Float64Array> {
    Ok(cast(b, i, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

/// Column `i` as timestamps in microseconds (a time zone dropped: values are UTC).
pub fn micros(b: &RecordBatch, i: usize) -> Result<TimestampMicrosecondArray> {
    let c = cast(b, i, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    Ok(c.as_primitive::<TimestampMicrosecondType>().clone())
}
