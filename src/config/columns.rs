//! Checks of columns, column rules and row rules (part of `validate`).

use chrono_tz::Tz;
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::logical_expr::ExprSchemable;
use deltalake::datafusion::prelude::SessionContext;
use regex::Regex;

use super::ConfigError;
use super::model::*;
use super::spec::*;
use super::{first_line, valid_name};
use medallion_csv::{ColumnType, Value, ValueParser};

pub(super) fn validate_column(
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

/// Check row rules (at `place[i]`) as boolean SQL over the typed columns `fields`.
pub(super) fn validate_row_rules(
    rules: &[RowRuleConfig],
    place: &str,
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
        let place = format!("{place}[{i}]");
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
