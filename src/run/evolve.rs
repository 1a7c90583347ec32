//! Source schema evolution. Before a run writes anything, the configured columns are
//! compared with the existing bronze, silver and rejected tables:
//! - a column added to the configuration is added to each table as a nullable column
//!   (old rows read as null); it may be optional, or required with a default;
//! - a column removed from the configuration stays in the tables, null for new rows;
//! - a changed type, a new required column without a default, or a changed silver key
//!   is refused, naming the table, the column and the way out, and nothing is written.
//!
//! Silver records its natural key as the table property [`SILVER_KEY_PROPERTY`].

use deltalake::arrow::datatypes::{Field, SchemaRef};

use crate::config::{Pipeline, SourceSpec};
use crate::error::{MedallionError, Result};
use crate::storage::{self, DELETION_VECTORS_PROPERTY, Lakehouse};

/// The silver table property holding its natural key (a JSON array of column names).
pub const SILVER_KEY_PROPERTY: &str = "medallion.silver.key";

/// The table properties a new silver table of source `s` is created with. Turning
/// deletion vectors on also raises the protocol to reader 3 / writer 7 with the
/// `deletionVectors` feature; turning them off keeps that.
pub fn silver_properties(s: &SourceSpec) -> Vec<(&'static str, String)> {
    let mut props = vec![(SILVER_KEY_PROPERTY, silver_key_value(s))];
    if s.deletion_vectors {
        props.push((DELETION_VECTORS_PROPERTY, "true".into()));
    }
    props
}

/// The configured silver key, as stored in [`SILVER_KEY_PROPERTY`].
pub fn silver_key_value(s: &SourceSpec) -> String {
    serde_json::Value::from(s.key.clone()).to_string()
}

/// What the existing tables need before this configuration can write to them.
#[derive(Debug, Default)]
pub struct SchemaPlan {
    /// (table, columns to add), for tables that lack configured columns.
    pub additions: Vec<(String, Vec<Field>)>,
    /// Sources whose silver exists without a recorded key (made by an older
    /// medallion): record it.
    pub record_silver_key: Vec<String>,
    /// (silver table, on): silver tables whose deletion vectors the configuration
    /// turns on or off.
    pub deletion_vectors: Vec<(String, bool)>,
}

impl SchemaPlan {
    pub fn is_empty(&self) -> bool {
        self.additions.is_empty()
            && self.record_silver_key.is_empty()
            && self.deletion_vectors.is_empty()
    }
}

/// Compare the focused source's configuration with its existing tables (each source's
/// run evolves its own, under its lease); every incompatible change is reported
/// together (`MedallionError::SchemaChange`). With `silver_replaced` (a
/// rebuild writes silver and rejected anew, in the configured layout) only bronze is
/// compared.
pub async fn check(lake: &Lakehouse, p: &Pipeline, silver_replaced: bool) -> Result<SchemaPlan> {
    let mut plan = SchemaPlan::default();
    let mut problems = Vec::new();
    check_source(lake, &p.source, silver_replaced, &mut plan, &mut problems).await?;
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(MedallionError::SchemaChange { problems })
    }
}

async fn check_source(
    lake: &Lakehouse,
    source: &SourceSpec,
    silver_replaced: bool,
    plan: &mut SchemaPlan,
    problems: &mut Vec<String>,
) -> Result<()> {
    let tables = source.tables();
    let mut compared = vec![(&tables.bronze, source.bronze_schema())];
    if !silver_replaced {
        compared.push((&tables.silver, source.silver_schema()));
        compared.push((&tables.rejected, source.rejected_schema()));
    }
    for (relative, wanted) in compared {
        let Some(table) = lake.open(relative).await? else {
            continue;
        };
        let current = storage::arrow_schema(&table, relative)?;
        let added = compare(source, relative, &current, &wanted, problems);
        if !added.is_empty() {
            plan.additions.push((relative.clone(), added));
        }
        if *relative == tables.silver {
            match storage::table_property(&table, relative, SILVER_KEY_PROPERTY)? {
                Some(key) if key != silver_key_value(source) => problems.push(format!(
                    "{relative}: its key is {key} but the configuration's key of source {} is \
                     {}; silver holds one row per key, so the key cannot change in place: \
                     restore the old key, or rebuild silver from bronze under the new one \
                     (`medallion rebuild silver`)",
                    source.name,
                    silver_key_value(source)
                )),
                Some(_) => {}
                None => plan.record_silver_key.push(source.name.clone()),
            }
            let on = storage::deletion_vectors_enabled(&table, relative)?;
            if on != source.deletion_vectors {
                plan.deletion_vectors
                    .push((relative.clone(), source.deletion_vectors));
            }
        }
    }
    Ok(())
}

/// The configured columns the table lacks; incompatible columns go to `problems`.
fn compare(
    source: &SourceSpec,
    relative: &str,
    current: &SchemaRef,
    wanted: &SchemaRef,
    problems: &mut Vec<String>,
) -> Vec<Field> {
    let mut added = Vec::new();
    for field in wanted.fields() {
        match current.field_with_name(field.name()) {
            Ok(have) if have.data_type() != field.data_type() => problems.push(format!(
                "{relative}: column \"{}\" is {} in the table but {} in the configuration; \
                 a type cannot change in place: restore the old type, or retype silver \
                 from bronze with `medallion rebuild silver`",
                field.name(),
                have.data_type(),
                field.data_type()
            )),
            Ok(_) => {}
            Err(_) => {
                let column = source.columns.iter().find(|c| c.name == *field.name());
                if let Some(c) = column
                    && c.required
                    && c.default.is_none()
                {
                    problems.push(format!(
                        "{relative}: new column \"{}\" is required without a default, but the \
                         rows already loaded have no value for it: give it a `default:` or \
                         make it optional",
                        c.name
                    ));
                } else {
                    added.push(field.as_ref().clone());
                }
            }
        }
    }
    added
}

/// Evolve the tables as planned (under the ingest lease).
pub async fn apply(lake: &Lakehouse, p: &Pipeline, plan: &SchemaPlan) -> Result<()> {
    for (relative, fields) in &plan.additions {
        if let Some(table) = lake.open(relative).await? {
            storage::add_columns(table, relative, fields).await?;
            tracing::info!(
                table = %relative,
                "added columns {}",
                fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    for source in p
        .sources
        .iter()
        .filter(|s| plan.record_silver_key.contains(&s.name))
    {
        let relative = source.tables().silver;
        if let Some(table) = lake.open(&relative).await? {
            storage::set_properties(
                table,
                &relative,
                &[(SILVER_KEY_PROPERTY, &silver_key_value(source))],
            )
            .await?;
        }
    }
    for (relative, on) in &plan.deletion_vectors {
        if let Some(table) = lake.open(relative).await? {
            let value = if *on { "true" } else { "false" };
            storage::set_properties(table, relative, &[(DELETION_VECTORS_PROPERTY, value)]).await?;
            tracing::info!(table = %relative, "deletion vectors turned {}", if *on { "on" } else { "off" });
        }
    }
    Ok(())
}
