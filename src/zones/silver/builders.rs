//! Arrow array builders keyed by column type, so typing code can append a parsed
//! [`Value`] (or a null) without matching on types itself.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};

use crate::error::{MedallionError, Result};
use medallion_csv::{ColumnType, Value};

/// A builder for one typed column.
pub enum TypedBuilder {
    Str(StringBuilder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl TypedBuilder {
    pub fn new(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::String => {
                TypedBuilder::Str(StringBuilder::with_capacity(capacity, capacity * 8))
            }
            ColumnType::Int => TypedBuilder::Int(Int32Builder::with_capacity(capacity)),
            ColumnType::BigInt => TypedBuilder::BigInt(Int64Builder::with_capacity(capacity)),
            ColumnType::Double => TypedBuilder::Double(Float64Builder::with_capacity(capacity)),
            ColumnType::Decimal { precision, scale } => {
                TypedBuilder::Decimal(Decimal128Builder::with_capacity(capacity), precision, scale)
            }
            ColumnType::Bool => TypedBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Date => TypedBuilder::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Timestamp => {
                TypedBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
        }
    }

    /// Append a value of this builder's type, or a null for `None`.
    pub fn append(&mut self, value: Option<&Value>) {
        match (self, value) {
            (TypedBuilder::Str(b), Some(Value::Str(v))) => b.append_value(v),
            (TypedBuilder::Int(b), Some(Value::Int(v))) => b.append_value(*v),
            (TypedBuilder::BigInt(b), Some(Value::BigInt(v))) => b.append_value(*v),
            (TypedBuilder::Double(b), Some(Value::Double(v))) => b.append_value(*v),
            (TypedBuilder::Decimal(b, _, _), Some(Value::Decimal(v))) => b.append_value(*v),
            (TypedBuilder::Bool(b), Some(Value::Bool(v))) => b.append_value(*v),
            (TypedBuilder::Date(b), Some(Value::Date(v))) => b.append_value(*v),
            (TypedBuilder::Timestamp(b), Some(Value::Timestamp(v))) => b.append_value(*v),
            (b, _) => b.append_null(),
        }
    }

    /// Append a string column's text (a null on a builder of another type).
    pub fn append_str(&mut self, s: &str) {
        match self {
            TypedBuilder::Str(b) => b.append_value(s),
            b => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            TypedBuilder::Str(b) => b.append_null(),
            TypedBuilder::Int(b) => b.append_null(),
            TypedBuilder::BigInt(b) => b.append_null(),
            TypedBuilder::Double(b) => b.append_null(),
            TypedBuilder::Decimal(b, _, _) => b.append_null(),
            TypedBuilder::Bool(b) => b.append_null(),
            TypedBuilder::Date(b) => b.append_null(),
            TypedBuilder::Timestamp(b) => b.append_null(),
        }
    }

    pub fn finish(self) -> Result<ArrayRef> {
        Ok(match self {
            TypedBuilder::Str(mut b) => Arc::new(b.finish()),
            TypedBuilder::Int(mut b) => Arc::new(b.finish()),
            TypedBuilder::BigInt(mut b) => Arc::new(b.finish()),
            TypedBuilder::Double(mut b) => Arc::new(b.finish()),
            TypedBuilder::Decimal(mut b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(p, s)
                    .map_err(MedallionError::arrow("build decimal column"))?,
            ),
            TypedBuilder::Bool(mut b) => Arc::new(b.finish()),
            TypedBuilder::Date(mut b) => Arc::new(b.finish()),
            TypedBuilder::Timestamp(mut b) => Arc::new(b.finish().with_timezone("UTC")),
        })
    }
}
