//! Table schema and property changes that keep the data: adding nullable columns
//! (Delta schema evolution; no table feature needed, so the protocol stays reader 1 /
//! writer 2) and setting medallion's own table properties. Old data files simply lack
//! the new columns, which every reader fills with nulls.

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::Field;
use deltalake::kernel::StructField;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;

use crate::error::{MedallionError, Result};

/// Add `fields` (made nullable) to the table's schema in one commit.
pub async fn add_columns(table: DeltaTable, name: &str, fields: &[Field]) -> Result<DeltaTable> {
    let err = || MedallionError::delta("add columns", name);
    let kernel: Vec<StructField> = fields
        .iter()
        .map(|f| {
            (&f.clone().with_nullable(true))
                .try_into_kernel()
                .map_err(|e| err()(e.into()))
        })
        .collect::<Result<_>>()?;
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    table
        .add_columns()
        .with_fields(kernel)
        .with_commit_properties(super::commit_info(
            "add_columns",
            serde_json::json!({ "columns": names, "note": format!("columns added: {}", names.join(", ")) }),
        ))
        .await
        .map_err(err())
}

/// Replace every row of the table with `batches`, whose layout adds columns to the
/// table's, in one commit (schema and rows change together, so no reader sees one
/// without the other). For small internal tables only: it holds them in memory.
pub async fn rewrite_with_columns(
    table: DeltaTable,
    name: &str,
    batches: Vec<deltalake::arrow::record_batch::RecordBatch>,
    props: deltalake::kernel::transaction::CommitProperties,
) -> Result<DeltaTable> {
    use deltalake::operations::write::SchemaMode;
    use deltalake::protocol::SaveMode;
    table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(SchemaMode::Merge)
        .with_commit_properties(props)
        .await
        .map_err(MedallionError::delta("rewrite with new columns", name))
}

/// Set medallion's table properties (`medallion.*` keys) in one commit.
pub async fn set_properties(
    table: DeltaTable,
    name: &str,
    properties: &[(&str, &str)],
) -> Result<DeltaTable> {
    let props = properties
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    table
        .set_tbl_properties()
        .with_properties(props)
        // medallion's own `medallion.*` properties are not Delta keys.
        .with_raise_if_not_exists(false)
        .with_commit_properties(super::commit_info(
            "set_properties",
            serde_json::json!({ "note": "medallion table properties recorded" }),
        ))
        .await
        .map_err(MedallionError::delta("set table properties", name))
}
