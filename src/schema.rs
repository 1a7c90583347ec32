//! Table layouts. One function per table kind returns its Arrow schema; the storage
//! module turns them into Delta schemas when a table is created. Lineage columns start
//! with `_` so they never clash with configured columns (config names may not start
//! with `_`).

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

use medallion_csv::ColumnType;

/// Delta `timestamp`: microseconds, adjusted to UTC (never `timestamp_ntz`, which raises
/// the table protocol and breaks older readers).
pub fn utc_timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// The Arrow type silver stores a column type as.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => utc_timestamp_type(),
    }
}

pub const SOURCE_FILE: &str = "_source_file";
pub const SOURCE_LINE: &str = "_source_line";
pub const BATCH_ID: &str = "_batch_id";
pub const RECEIVED_AT: &str = "_received_at";
/// Silver's ingestion time (no underscore: it is part of the business row).
pub const SILVER_RECEIVED_AT: &str = "received_at";
pub const REJECTION_REASONS: &str = "rejection_reasons";

fn lineage(received_at: &str) -> Vec<Field> {
    vec![
        Field::new(SOURCE_FILE, DataType::Utf8, false),
        Field::new(SOURCE_LINE, DataType::Int64, false),
        Field::new(BATCH_ID, DataType::Utf8, false),
        Field::new(received_at, utc_timestamp_type(), false),
    ]
}

fn raw_columns(columns: &[&str]) -> Vec<Field> {
    columns
        .iter()
        .map(|c| Field::new(*c, DataType::Utf8, true))
        .collect()
}

/// The column names of a layout, in order.
pub fn column_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// Bronze: every configured column (by name, in order) as the raw text received, plus
/// lineage.
pub fn bronze_schema(columns: &[&str]) -> SchemaRef {
    let mut fields = raw_columns(columns);
    fields.extend(lineage(RECEIVED_AT));
    Arc::new(Schema::new(fields))
}

/// Silver: the typed columns (name and type, in order), `received_at`, then lineage.
pub fn silver_schema(columns: &[(&str, DataType)]) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|(name, ty)| Field::new(*name, ty.clone(), true))
        .collect();
    fields.push(Field::new(SILVER_RECEIVED_AT, utc_timestamp_type(), false));
    fields.extend(
        lineage(RECEIVED_AT)
            .into_iter()
            .filter(|f| f.name() != RECEIVED_AT),
    );
    Arc::new(Schema::new(fields))
}

/// The struct of one rejection reason.
pub fn reason_fields() -> Fields {
    Fields::from(vec![
        Field::new("rule", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, true),
        Field::new("message", DataType::Utf8, false),
    ])
}

/// The list item of `rejection_reasons` (named `element`, as Delta and Parquet expect).
pub fn reason_item_field() -> FieldRef {
    Arc::new(Field::new(
        "element",
        DataType::Struct(reason_fields()),
        true,
    ))
}

/// Rejected: the raw columns (by name), lineage, and every rule the row failed.
pub fn rejected_schema(columns: &[&str]) -> SchemaRef {
    let mut fields = raw_columns(columns);
    fields.extend(lineage(RECEIVED_AT));
    fields.push(Field::new(
        REJECTION_REASONS,
        DataType::List(reason_item_field()),
        false,
    ));
    Arc::new(Schema::new(fields))
}

/// The ledger column naming the source a row belongs to.
pub const LEDGER_SOURCE: &str = "source";

/// The file ledger: one row per processed file.
pub fn ledger_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new("modified", utc_timestamp_type(), true),
        Field::new(BATCH_ID, DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("silver_accepted", DataType::Int64, false),
        Field::new("rejected", DataType::Int64, false),
        Field::new("message", DataType::Utf8, true),
        Field::new("table_versions", DataType::Utf8, true),
        Field::new("processed_at", utc_timestamp_type(), false),
        // Added after the others (a ledger from before sources gains it at the end).
        Field::new(LEDGER_SOURCE, DataType::Utf8, true),
    ]))
}

/// Gold tables store the model's output with every column nullable.
pub fn gold_schema(model_schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        model_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// A single-quoted SQL string literal (`it's` → `'it''s'`).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A double-quoted SQL identifier, as DataFusion reads it (`a"b` → `"a""b"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
