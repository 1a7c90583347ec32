//! The accepted rows of a rebuild, with their batch's `seq`, parked in a local Parquet
//! file while bronze is streamed, so that the last row per key can be found by a
//! spilling sort instead of in memory.

use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::parquet::arrow::ArrowWriter;

use crate::error::{MedallionError, Result};

/// Accepted rows with their batch's `seq`, in a local Parquet file.
pub(super) struct Staged {
    writer: ArrowWriter<std::fs::File>,
    schema: SchemaRef,
    rows: u64,
}

impl Staged {
    pub(super) fn create(path: &std::path::Path, silver: &SchemaRef) -> Result<Self> {
        let io = |source| MedallionError::ReadFile {
            path: path.to_path_buf(),
            source,
        };
        let mut fields: Vec<Field> = silver.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("__seq", DataType::Int64, false));
        let schema = Arc::new(Schema::new(fields));
        let props = crate::zones::silver::staging_properties();
        let file = std::fs::File::create(path).map_err(io)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| {
            MedallionError::Arrow {
                step: "rebuild: stage accepted rows",
                source: e.into(),
            }
        })?;
        Ok(Staged {
            writer,
            schema,
            rows: 0,
        })
    }

    pub(super) fn write(&mut self, accepted: &RecordBatch, seq: i64) -> Result<()> {
        if accepted.num_rows() == 0 {
            return Ok(());
        }
        let mut columns = accepted.columns().to_vec();
        columns.push(Arc::new(Int64Array::from(vec![seq; accepted.num_rows()])));
        let b = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(MedallionError::arrow("rebuild: stage accepted rows"))?;
        self.rows += b.num_rows() as u64;
        self.writer.write(&b).map_err(|e| MedallionError::Arrow {
            step: "rebuild: stage accepted rows",
            source: e.into(),
        })
    }

    pub(super) fn finish(self) -> Result<u64> {
        self.writer.close().map_err(|e| MedallionError::Arrow {
            step: "rebuild: stage accepted rows",
            source: e.into(),
        })?;
        Ok(self.rows)
    }
}
