//! Turns the YAML model into a checked [`Pipeline`]. Every check runs and every failure
//! is collected, so a user fixes all problems in one pass. The only place that builds a
//! `Pipeline`: the rest of medallion can rely on names existing, regexes compiling,
//! defaults parsing and SQL planning.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono_tz::Tz;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::logical_expr::{Expr, ExprSchemable};
use deltalake::datafusion::prelude::SessionContext;
use regex::Regex;
use url::Url;

use super::ConfigError;
use super::model::*;
use crate::schema;
use crate::types::{ColumnType, Value, ValueParser};

/// The checked configuration: what every stage runs from.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Root of the lakehouse, as a directory URL (ends with `/`).
    pub lakehouse: Url,
    pub source: SourceSpec,
    /// Natural key of silver.
    pub silver_key: Vec<String>,
    pub gold: Vec<GoldModel>,
}

/// A checked CSV source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub raw_dir: String,
    pub pattern: glob::Pattern,
    pub timezone: Tz,
    pub csv: CsvSpec,
    pub columns: Vec<ColumnSpec>,
    pub row_rules: Vec<RowRule>,
}

/// A checked CSV dialect.
#[derive(Debug, Clone)]
pub struct CsvSpec {
    pub delimiter: u8,
    pub quote: u8,
    pub header: bool,
    pub trim: bool,
    pub null_values: Vec<String>,
}

/// A checked column: where to read it, how to type it, what it must satisfy.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    /// Header in the file.
    pub header: String,
    pub parser: ValueParser,
    pub required: bool,
    /// Raw default text and its parsed value.
    pub default: Option<(String, Value)>,
    pub rules: Vec<ColumnRule>,
}

/// A named check on a column value.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    pub name: String,
    pub action: RuleAction,
    pub check: ColumnCheck,
}

/// What a column rule checks.
#[derive(Debug, Clone)]
pub enum ColumnCheck {
    Pattern(Regex),
    /// Inclusive bounds; `bounds` shows them for messages, e.g. `[0, 500]`.
    Range {
        min: Option<Value>,
        max: Option<Value>,
        bounds: String,
    },
    Allowed(Vec<String>),
}

/// A named SQL check over the typed row.
#[derive(Debug, Clone)]
pub struct RowRule {
    pub name: String,
    pub sql: String,
    pub expr: Expr,
    pub action: RuleAction,
}

/// A gold model.
#[derive(Debug, Clone)]
pub struct GoldModel {
    pub name: String,
    pub keys: Vec<String>,
    pub sql: String,
    /// Output schema of the model query.
    pub schema: SchemaRef,
}

impl Pipeline {
    /// The typed columns, in order.
    pub fn typed_columns(&self) -> impl Iterator<Item = (&str, DataType)> {
        self.source
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.parser.ty.arrow_type()))
    }
}

pub(super) async fn validate(file: &ConfigFile, base: &Path) -> Result<Pipeline, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let lakehouse = resolve_lakehouse(&file.lakehouse, base, &mut errs);
    let source = validate_source(&file.source, &mut errs);

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

    let mut pipeline = match (lakehouse, source) {
        (Some(lakehouse), Some(source)) if errs.is_empty() => Pipeline {
            lakehouse,
            source,
            silver_key: file.silver.key.clone(),
            gold: Vec::new(),
        },
        _ => {
            // Gold SQL can only be planned against a valid silver schema.
            return Err(errs);
        }
    };
    let silver = schema::silver_schema(&pipeline);
    pipeline.gold = validate_gold(&file.gold, silver, &mut errs).await;
    if errs.is_empty() {
        Ok(pipeline)
    } else {
        Err(errs)
    }
}

fn resolve_lakehouse(text: &str, base: &Path, errs: &mut Vec<ConfigError>) -> Option<Url> {
    if text.contains("://") {
        return match Url::parse(text) {
            Ok(u) if u.scheme() == "file" => {
                let mut u = u;
                if !u.path().ends_with('/') {
                    u.set_path(&format!("{}/", u.path()));
                }
                Some(u)
            }
            Ok(u) => {
                errs.push(ConfigError::new(
                    "lakehouse",
                    format!(
                        "storage scheme \"{}\" is not supported yet (use a local path)",
                        u.scheme()
                    ),
                ));
                None
            }
            Err(e) => {
                errs.push(ConfigError::new(
                    "lakehouse",
                    format!("not a valid URI: {e}"),
                ));
                None
            }
        };
    }
    let path = base.join(text);
    let abs = std::path::absolute(&path).unwrap_or(path);
    match Url::from_directory_path(&abs) {
        Ok(u) => Some(u),
        Err(()) => {
            errs.push(ConfigError::new(
                "lakehouse",
                format!("not a usable path: {}", abs.display()),
            ));
            None
        }
    }
}

fn validate_source(src: &SourceConfig, errs: &mut Vec<ConfigError>) -> Option<SourceSpec> {
    let start = errs.len();
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
                .map_or(DataType::Null, |s| s.parser.ty.arrow_type());
            (c.name.clone(), ty)
        })
        .collect();
    let row_rules = validate_row_rules(&src.row_rules, typed, errs);
    if errs.len() > start {
        return None;
    }
    Some(SourceSpec {
        name: src.name.clone(),
        raw_dir: src.raw_dir.trim_matches('/').to_string(),
        pattern: pattern?,
        timezone: tz,
        csv: csv?,
        columns,
        row_rules,
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
    Some(CsvSpec {
        delimiter: delimiter?,
        quote: quote?,
        header: csv.header,
        trim: csv.trim,
        null_values: csv
            .null_values
            .iter()
            .map(|v| v.trim().to_string())
            .collect(),
    })
}

fn validate_column(
    c: &ColumnConfig,
    place: &str,
    tz: Tz,
    errs: &mut Vec<ConfigError>,
) -> Option<ColumnSpec> {
    let start = errs.len();
    if !valid_name(&c.name) || c.name.starts_with('_') {
        errs.push(ConfigError::new(
            format!("{place}.name"),
            format!(
                "\"{}\" must be a SQL identifier not starting with _ (reserved for lineage)",
                c.name
            ),
        ));
    }
    let ty = ColumnType::parse(&c.data_type)
        .map_err(|m| errs.push(ConfigError::new(format!("{place}.type"), m)))
        .ok()?;
    if c.format.is_some() && !matches!(ty, ColumnType::Date | ColumnType::Timestamp) {
        errs.push(ConfigError::new(
            format!("{place}.format"),
            "only date and timestamp columns take a format",
        ));
    }
    let parser = ValueParser {
        ty,
        format: c.format.clone(),
        tz,
    };
    let default = c.default.as_ref().and_then(|d| match parser.parse(d) {
        Ok(v) => Some((d.clone(), v)),
        Err(m) => {
            errs.push(ConfigError::new(format!("{place}.default"), m));
            None
        }
    });
    let mut rules = Vec::new();
    for (j, r) in c.rules.iter().enumerate() {
        if let Some(rule) = validate_column_rule(r, &format!("{place}.rules[{j}]"), &parser, errs) {
            rules.push(rule);
        }
    }
    (errs.len() == start).then(|| ColumnSpec {
        name: c.name.clone(),
        header: c.source.clone().unwrap_or_else(|| c.name.clone()),
        parser,
        required: c.required,
        default,
        rules,
    })
}

fn validate_column_rule(
    r: &ColumnRuleConfig,
    place: &str,
    parser: &ValueParser,
    errs: &mut Vec<ConfigError>,
) -> Option<ColumnRule> {
    let kinds = [
        r.pattern.is_some(),
        r.min.is_some() || r.max.is_some(),
        r.allowed.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        errs.push(ConfigError::new(
            place,
            "a rule needs exactly one of: pattern, min/max, allowed",
        ));
        return None;
    }
    if !valid_rule_name(&r.name) {
        errs.push(ConfigError::new(
            format!("{place}.name"),
            "rule names use letters, digits, _ and -",
        ));
    }
    let check = if let Some(p) = &r.pattern {
        match Regex::new(p) {
            Ok(re) => ColumnCheck::Pattern(re),
            Err(e) => {
                errs.push(ConfigError::new(
                    format!("{place}.pattern"),
                    format!("invalid regex: {e}"),
                ));
                return None;
            }
        }
    } else if let Some(allowed) = &r.allowed {
        ColumnCheck::Allowed(allowed.clone())
    } else {
        if !parser.ty.is_ordered() {
            errs.push(ConfigError::new(place, "min/max need an ordered type"));
            return None;
        }
        let bound = |v: &Option<serde_yaml::Value>,
                     key: &str,
                     errs: &mut Vec<ConfigError>|
         -> Option<Option<Value>> {
            let Some(v) = v else { return Some(None) };
            let text = match v {
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::String(s) => s.clone(),
                _ => {
                    errs.push(ConfigError::new(
                        format!("{place}.{key}"),
                        "must be a number or a string",
                    ));
                    return None;
                }
            };
            match parser.parse(&text) {
                Ok(v) => Some(Some(v)),
                Err(m) => {
                    errs.push(ConfigError::new(format!("{place}.{key}"), m));
                    None
                }
            }
        };
        let min = bound(&r.min, "min", errs);
        let max = bound(&r.max, "max", errs);
        let show = |v: &Option<serde_yaml::Value>| match v {
            Some(serde_yaml::Value::Number(n)) => n.to_string(),
            Some(serde_yaml::Value::String(s)) => s.clone(),
            _ => "..".to_string(),
        };
        let bounds = format!("[{}, {}]", show(&r.min), show(&r.max));
        ColumnCheck::Range {
            min: min?,
            max: max?,
            bounds,
        }
    };
    Some(ColumnRule {
        name: r.name.clone(),
        action: r.action,
        check,
    })
}

fn valid_rule_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_row_rules(
    rules: &[RowRuleConfig],
    fields: Vec<(String, DataType)>,
    errs: &mut Vec<ConfigError>,
) -> Vec<RowRule> {
    let arrow = deltalake::arrow::datatypes::Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| deltalake::arrow::datatypes::Field::new(n, t, true))
            .collect::<Vec<_>>(),
    );
    let Ok(dfschema) = DFSchema::try_from(arrow) else {
        return Vec::new();
    };
    let ctx = SessionContext::new();
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let place = format!("source.row_rules[{i}]");
        if !valid_rule_name(&r.name) {
            errs.push(ConfigError::new(
                format!("{place}.name"),
                "rule names use letters, digits, _ and -",
            ));
        }
        match ctx.parse_sql_expr(&r.check, &dfschema) {
            Ok(expr) => match expr.get_type(&dfschema) {
                Ok(DataType::Boolean) => out.push(RowRule {
                    name: r.name.clone(),
                    sql: r.check.clone(),
                    expr,
                    action: r.action,
                }),
                Ok(other) => errs.push(ConfigError::new(
                    format!("{place}.check"),
                    format!("must be a boolean expression, is {other}"),
                )),
                Err(e) => errs.push(ConfigError::new(
                    format!("{place}.check"),
                    first_line(&e.to_string()),
                )),
            },
            Err(e) => errs.push(ConfigError::new(
                format!("{place}.check"),
                first_line(&e.to_string()),
            )),
        }
    }
    out
}

async fn validate_gold(
    models: &[GoldModelConfig],
    silver: SchemaRef,
    errs: &mut Vec<ConfigError>,
) -> Vec<GoldModel> {
    let ctx = SessionContext::new();
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
        for (j, k) in m.keys.iter().enumerate() {
            if schema.field_with_name(k).is_err() {
                errs.push(ConfigError::new(
                    format!("{place}.keys[{j}]"),
                    format!("the query has no output column \"{k}\""),
                ));
            }
        }
        out.push(GoldModel {
            name: m.name.clone(),
            keys: m.keys.clone(),
            sql: m.sql.clone(),
            schema,
        });
    }
    out
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}
