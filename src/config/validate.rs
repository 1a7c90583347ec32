//! Turns the YAML model into a checked [`Pipeline`]. Every check runs and every failure
//! is collected, so a user fixes all problems in one pass. The only place that builds a
//! `Pipeline`: the rest of medallion can rely on names existing, regexes compiling,
//! defaults parsing and SQL planning.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono_tz::Tz;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use super::ConfigError;
use super::columns::{validate_column, validate_row_rules};
use super::model::*;
use super::spec::*;
use super::{first_line, valid_name};

pub(super) async fn validate(file: &ConfigFile, base: &Path) -> Result<Pipeline, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let lakehouse = super::location::lakehouse(file, base, &mut errs);
    let source = validate_source(&file.source, lakehouse.as_ref(), &mut errs);

    if file.batches.max_files == 0 {
        errs.push(ConfigError::new("batches.max_files", "must be at least 1"));
    }
    if file.batches.max_bytes.as_u64() == 0 {
        errs.push(ConfigError::new(
            "batches.max_bytes",
            "must be at least 1 byte",
        ));
    }
    if file.silver.batch_rows == 0 {
        errs.push(ConfigError::new("silver.batch_rows", "must be at least 1"));
    }
    if file.silver.key.is_empty() {
        errs.push(ConfigError::new(
            "silver.key",
            "at least one key column is required",
        ));
    }
    for (i, k) in file.silver.key.iter().enumerate() {
        match file.source.columns.iter().find(|c| &c.name == k) {
            None => errs.push(ConfigError::new(
                format!("silver.key[{i}]"),
                format!("unknown column \"{k}\""),
            )),
            Some(c) if !c.required => errs.push(ConfigError::new(
                format!("silver.key[{i}]"),
                format!(
                    "key column \"{k}\" must be `required: true` (a missing key cannot be upserted)"
                ),
            )),
            Some(_) => {}
        }
    }

    // Reported with the gold models' problems, whatever happens to those.
    let mut zorder_errs = Vec::new();
    let silver_zorder_by = zorder_columns(
        file.silver.zorder_by.as_deref(),
        &file.silver.key,
        "silver.zorder_by",
        |c| file.source.columns.iter().any(|col| col.name == c),
        &mut zorder_errs,
    );

    let mut pipeline = match (lakehouse, source) {
        (Some(lakehouse), Some(source)) if errs.is_empty() => Pipeline {
            lakehouse,
            source,
            silver_key: file.silver.key.clone(),
            silver_batch_rows: file.silver.batch_rows,
            silver_zorder_by,
            gold: Vec::new(),
            batches: BatchBounds {
                max_files: file.batches.max_files,
                max_bytes: file.batches.max_bytes.as_u64(),
            },
        },
        _ => {
            // Gold SQL can only be planned against a valid silver schema.
            errs.extend(zorder_errs);
            return Err(errs);
        }
    };
    let silver = pipeline.source.silver_schema();
    pipeline.gold = validate_gold(&file.gold, silver, &file.silver.key, &mut errs).await;
    errs.extend(zorder_errs);
    if errs.is_empty() {
        Ok(pipeline)
    } else {
        Err(errs)
    }
}

fn validate_source(
    src: &SourceConfig,
    lakehouse: Option<&crate::storage::Location>,
    errs: &mut Vec<ConfigError>,
) -> Option<SourceSpec> {
    let start = errs.len();
    let raw_zone = super::location::raw_zone(src, lakehouse, errs);
    if !valid_name(&src.name) {
        errs.push(ConfigError::new(
            "source.name",
            "must be a SQL identifier: letters, digits, _ (not starting with a digit)",
        ));
    }
    let pattern = glob::Pattern::new(&src.pattern)
        .map_err(|e| {
            errs.push(ConfigError::new(
                "source.pattern",
                format!("invalid glob: {e}"),
            ))
        })
        .ok();
    let timezone: Option<Tz> = src
        .timezone
        .parse()
        .map_err(|_| {
            errs.push(ConfigError::new(
                "source.timezone",
                format!("unknown timezone \"{}\"", src.timezone),
            ))
        })
        .ok();
    let csv = validate_csv(&src.csv, errs);
    if src.columns.is_empty() {
        errs.push(ConfigError::new(
            "source.columns",
            "at least one column is required",
        ));
    }
    let tz = timezone.unwrap_or(Tz::UTC);
    let mut seen = HashSet::new();
    let mut columns = Vec::new();
    for (i, c) in src.columns.iter().enumerate() {
        let place = format!("source.columns[{i}]");
        if !seen.insert(c.name.as_str()) {
            errs.push(ConfigError::new(
                format!("{place}.name"),
                format!("duplicate column \"{}\"", c.name),
            ));
        }
        if let Some(col) = validate_column(c, &place, tz, errs) {
            columns.push(col);
        }
    }
    // Columns whose own definition failed take type Null, so that row rules are still
    // checked (and only report their own problems).
    let typed: Vec<(String, DataType)> = src
        .columns
        .iter()
        .map(|c| {
            let ty = columns
                .iter()
                .find(|s| s.name == c.name)
                .map_or(DataType::Null, |s| crate::schema::arrow_type(s.parser.ty));
            (c.name.clone(), ty)
        })
        .collect();
    let row_rules = validate_row_rules(&src.row_rules, typed, errs);
    if errs.len() > start {
        return None;
    }
    Some(SourceSpec {
        name: src.name.clone(),
        raw_zone: raw_zone?,
        pattern: pattern?,
        timezone: tz,
        csv: csv?,
        columns,
        row_rules,
    })
}

fn one_byte(text: &str, place: &str, errs: &mut Vec<ConfigError>) -> Option<u8> {
    match text.as_bytes() {
        [b] => Some(*b),
        _ => {
            errs.push(ConfigError::new(
                place,
                format!("must be exactly one byte, got {text:?}"),
            ));
            None
        }
    }
}

fn validate_csv(csv: &CsvConfig, errs: &mut Vec<ConfigError>) -> Option<CsvSpec> {
    let delimiter = one_byte(&csv.delimiter, "source.csv.delimiter", errs);
    let quote = one_byte(&csv.quote, "source.csv.quote", errs);
    let positive = |v: usize, key: &str, errs: &mut Vec<ConfigError>| {
        if v == 0 {
            errs.push(ConfigError::new(
                format!("source.csv.{key}"),
                "must be at least 1",
            ));
        }
    };
    positive(csv.max_record_bytes, "max_record_bytes", errs);
    positive(csv.max_record_lines, "max_record_lines", errs);
    positive(csv.max_field_bytes, "max_field_bytes", errs);
    Some(CsvSpec {
        dialect: medallion_csv::Dialect {
            delimiter: delimiter?,
            quote: quote?,
            max_record_bytes: csv.max_record_bytes,
            max_record_lines: csv.max_record_lines,
            max_field_bytes: csv.max_field_bytes,
        },
        header: csv.header,
        trim: csv.trim,
        null_values: csv
            .null_values
            .iter()
            .map(|v| v.trim().to_string())
            .collect(),
    })
}
async fn validate_gold(
    models: &[GoldModelConfig],
    silver: SchemaRef,
    silver_key: &[String],
    errs: &mut Vec<ConfigError>,
) -> Vec<GoldModel> {
    // The session the models run in at ingest time, so they mean the same here.
    let ctx = crate::storage::session();
    let empty = match MemTable::try_new(silver.clone(), vec![vec![]]) {
        Ok(t) => t,
        Err(e) => {
            errs.push(ConfigError::new("gold", e.to_string()));
            return Vec::new();
        }
    };
    if let Err(e) = ctx.register_table("silver", Arc::new(empty)) {
        errs.push(ConfigError::new("gold", e.to_string()));
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let place = format!("gold[{i}]");
        if !valid_name(&m.name) {
            errs.push(ConfigError::new(
                format!("{place}.name"),
                "must be a SQL identifier",
            ));
        }
        if !seen.insert(m.name.as_str()) {
            errs.push(ConfigError::new(
                format!("{place}.name"),
                format!("duplicate model \"{}\"", m.name),
            ));
        }
        if m.keys.is_empty() {
            errs.push(ConfigError::new(
                format!("{place}.keys"),
                "at least one key column is required",
            ));
        }
        let df = match ctx.sql(&m.sql).await {
            Ok(df) => df,
            Err(e) => {
                errs.push(ConfigError::new(
                    format!("{place}.sql"),
                    first_line(&e.to_string()),
                ));
                continue;
            }
        };
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut keys_ok = true;
        for (j, k) in m.keys.iter().enumerate() {
            if schema.field_with_name(k).is_err() {
                keys_ok = false;
                errs.push(ConfigError::new(
                    format!("{place}.keys[{j}]"),
                    format!("the query has no output column \"{k}\""),
                ));
            }
        }
        if !keys_ok {
            continue;
        }
        let maintenance = match crate::plan::maintenance(df.logical_plan(), &m.keys, silver_key) {
            Ok(mode) => mode,
            Err(reason) => {
                errs.push(ConfigError::new(format!("{place}.sql"), reason));
                continue;
            }
        };
        let zorder_by = zorder_columns(
            m.zorder_by.as_deref(),
            &m.keys,
            &format!("{place}.zorder_by"),
            |c| schema.field_with_name(c).is_ok(),
            errs,
        );
        let fingerprint = model_fingerprint(&ctx, m, &schema);
        out.push(GoldModel {
            name: m.name.clone(),
            keys: m.keys.clone(),
            zorder_by,
            sql: m.sql.clone(),
            schema,
            maintenance,
            fingerprint,
        });
    }
    out
}

/// The Z-order columns of a table: the configured list (at `place`), each a known,
/// distinct column, or else `default` (its keys).
fn zorder_columns(
    configured: Option<&[String]>,
    default: &[String],
    place: &str,
    known: impl Fn(&str) -> bool,
    errs: &mut Vec<ConfigError>,
) -> Vec<String> {
    let Some(columns) = configured else {
        return default.to_vec();
    };
    if columns.is_empty() {
        errs.push(ConfigError::new(
            place,
            "list at least one column, or leave the key out to Z-order by the keys",
        ));
    }
    let mut seen = HashSet::new();
    for (i, c) in columns.iter().enumerate() {
        if !known(c) {
            errs.push(ConfigError::new(
                format!("{place}[{i}]"),
                format!("unknown column \"{c}\""),
            ));
        } else if !seen.insert(c.as_str()) {
            errs.push(ConfigError::new(
                format!("{place}[{i}]"),
                format!("column \"{c}\" is listed twice"),
            ));
        }
    }
    columns.to_vec()
}

/// sha256 of the model's normalised SQL (parsed and printed again: whitespace, case of
/// keywords and comments do not count), its keys and its output schema.
fn model_fingerprint(ctx: &SessionContext, m: &GoldModelConfig, schema: &SchemaRef) -> String {
    use sha2::Digest;
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let sql = state
        .sql_to_statement(&m.sql, &dialect)
        .map_or_else(|_| m.sql.trim().to_string(), |s| s.to_string());
    let columns: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let text = serde_json::json!({ "sql": sql, "keys": m.keys, "columns": columns }).to_string();
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
