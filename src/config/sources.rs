//! Checks of the sources (part of `validate`): the `sources:` list, or the shorthand
//! `source:` with `silver:`, each source's landing zone, dialect, columns, rules, key
//! and mode. Problems are placed where they are written: `sources[1].columns[2].type`,
//! or `source.…` and `silver.key[0]` in the shorthand form.

use std::collections::HashSet;

use chrono_tz::Tz;
use deltalake::arrow::datatypes::DataType;

use super::ConfigError;
use super::columns::{validate_column, validate_row_rules};
use super::model::*;
use super::spec::*;
use super::valid_name;

/// A source as written, with where its keys are in the YAML.
pub(super) struct SourceEntry {
    pub config: SourceConfig,
    /// `sources[i]` or `source`.
    pub place: String,
    /// Where its key is: `sources[i].key`, or `silver.key` in the shorthand form.
    pub key_place: String,
    pub batch_rows_place: String,
    pub zorder_place: String,
}

/// The sources as written: the `sources:` list, or the shorthand, whose `silver:` keys
/// become the source's own.
pub(super) fn entries(file: &ConfigFile, errs: &mut Vec<ConfigError>) -> Vec<SourceEntry> {
    if let Some(list) = &file.sources {
        if file.source.is_some() || file.silver.is_some() {
            errs.push(ConfigError::new(
                "sources",
                "give either `sources:` (a list, each with its own key) or the one-source \
                 shorthand `source:` with `silver:`, not both",
            ));
        }
        if list.is_empty() {
            errs.push(ConfigError::new("sources", "list at least one source"));
        }
        return list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let place = format!("sources[{i}]");
                SourceEntry {
                    config: s.clone(),
                    key_place: format!("{place}.key"),
                    batch_rows_place: format!("{place}.batch_rows"),
                    zorder_place: format!("{place}.zorder_by"),
                    place,
                }
            })
            .collect();
    }
    let Some(source) = &file.source else {
        errs.push(ConfigError::new(
            "sources",
            "no source: list them under `sources:` (or give one as `source:` with `silver:`)",
        ));
        return Vec::new();
    };
    let mut config = source.clone();
    match &file.silver {
        Some(silver) => {
            if source.key.is_some()
                || source.batch_rows.is_some()
                || source.zorder_by.is_some()
                || source.deletion_vectors.is_some()
            {
                errs.push(ConfigError::new(
                    "source",
                    "key, batch_rows, zorder_by and deletion_vectors go under `silver:` in the \
                     one-source form",
                ));
            }
            config.key = Some(silver.key.clone());
            config.batch_rows = Some(silver.batch_rows);
            config.zorder_by = silver.zorder_by.clone();
            config.deletion_vectors = Some(silver.deletion_vectors);
        }
        None if source.mode == SourceMode::Append || source.key.is_some() => {}
        None => errs.push(ConfigError::new(
            "silver",
            "missing: give the natural key as `silver.key`",
        )),
    }
    let from_silver = file.silver.is_some();
    let at = |key: &str| {
        if from_silver {
            format!("silver.{key}")
        } else {
            format!("source.{key}")
        }
    };
    vec![SourceEntry {
        config,
        place: "source".into(),
        key_place: at("key"),
        batch_rows_place: at("batch_rows"),
        zorder_place: at("zorder_by"),
    }]
}

/// Check one source; `None` (with its problems in `errs`) when it is not valid.
/// Problems that do not stop the gold models from being checked against it (its
/// Z-order columns) go to `deferred`.
pub(super) fn validate_source(
    entry: &SourceEntry,
    lakehouse: Option<&crate::storage::Location>,
    errs: &mut Vec<ConfigError>,
    deferred: &mut Vec<ConfigError>,
) -> Option<SourceSpec> {
    let (src, place) = (&entry.config, entry.place.as_str());
    let start = errs.len();
    let raw_zone = super::location::raw_zone(src, place, lakehouse, errs);
    if !valid_name(&src.name) || src.name.chars().any(|c| c.is_ascii_uppercase()) {
        errs.push(ConfigError::new(
            format!("{place}.name"),
            "must be a lowercase SQL identifier: a-z, digits, _ (not starting with a digit; \
             SQL folds unquoted names to lowercase)",
        ));
    }
    let pattern = glob::Pattern::new(&src.pattern)
        .map_err(|e| {
            errs.push(ConfigError::new(
                format!("{place}.pattern"),
                format!("invalid glob: {e}"),
            ))
        })
        .ok();
    let timezone: Option<Tz> = src
        .timezone
        .parse()
        .map_err(|_| {
            errs.push(ConfigError::new(
                format!("{place}.timezone"),
                format!("unknown timezone \"{}\"", src.timezone),
            ))
        })
        .ok();
    let csv = validate_csv(&src.csv, place, errs);
    if src.columns.is_empty() {
        errs.push(ConfigError::new(
            format!("{place}.columns"),
            "at least one column is required",
        ));
    }
    let tz = timezone.unwrap_or(Tz::UTC);
    let mut seen = HashSet::new();
    let mut columns = Vec::new();
    for (i, c) in src.columns.iter().enumerate() {
        let place = format!("{place}.columns[{i}]");
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
    let row_rules = validate_row_rules(
        &src.row_rules,
        &format!("{place}.row_rules"),
        typed.clone(),
        errs,
    );
    let delete_when = src.delete_when.as_ref().and_then(|sql| {
        let rule = RowRuleConfig {
            name: "delete_when".into(),
            check: sql.clone(),
            action: RuleAction::Reject,
        };
        let place = format!("{place}.delete_when");
        let before = errs.len();
        let mut checked = validate_row_rules(std::slice::from_ref(&rule), &place, typed, errs);
        // Its one problem is placed at the key itself, not at `[0].check`.
        for e in &mut errs[before..] {
            e.place = place.clone();
        }
        checked.pop()
    });
    let key = validate_key_and_mode(entry, errs);
    let zorder_by = super::validate::zorder_columns(
        src.zorder_by.as_deref(),
        &key,
        &entry.zorder_place,
        |c| src.columns.iter().any(|col| col.name == c),
        deferred,
    );
    let batch_rows = src.batch_rows.unwrap_or_else(default_silver_batch_rows);
    if batch_rows == 0 {
        errs.push(ConfigError::new(
            &entry.batch_rows_place,
            "must be at least 1",
        ));
    }
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
        key,
        mode: src.mode,
        sequence_by: src.sequence_by.clone(),
        delete_when,
        allow_empty_snapshot: src.allow_empty_snapshot,
        batch_rows,
        zorder_by,
        deletion_vectors: src.deletion_vectors.unwrap_or(false),
    })
}

/// `deletion_vectors: true` needs an upsert that replaces rows by key alone: `append`
/// and `snapshot` never replace a row, and `sequence_by` / `delete_when` upsert with
/// MERGE, which rewrites files.
fn deletion_vectors_apply(entry: &SourceEntry, errs: &mut Vec<ConfigError>) {
    let src = &entry.config;
    let why = if src.mode != SourceMode::Upsert {
        Some(format!(
            "a {} source never replaces a row",
            mode_name(src.mode)
        ))
    } else if src.sequence_by.is_some() || src.delete_when.is_some() {
        Some(
            "with sequence_by or delete_when rows are upserted by MERGE, which rewrites files"
                .into(),
        )
    } else {
        None
    };
    if let Some(why) = why {
        let parent = entry.key_place.strip_suffix("key").unwrap_or_default();
        let place = format!("{parent}deletion_vectors");
        errs.push(ConfigError::new(
            place,
            format!("deletion vectors apply to an upsert by key alone: {why}"),
        ));
    }
}

/// The key, checked against the mode; `sequence_by`, `delete_when` and
/// `allow_empty_snapshot` only where the mode takes them.
fn validate_key_and_mode(entry: &SourceEntry, errs: &mut Vec<ConfigError>) -> Vec<String> {
    let (src, place) = (&entry.config, entry.place.as_str());
    let key = src.key.clone().unwrap_or_default();
    let mode = src.mode;
    let only = |what: &str, modes: &str, errs: &mut Vec<ConfigError>| {
        errs.push(ConfigError::new(
            format!("{place}.{what}"),
            format!(
                "only {modes} sources take `{what}` (this one is `{}`)",
                mode_name(mode)
            ),
        ));
    };
    if mode != SourceMode::Upsert {
        if src.sequence_by.is_some() {
            only("sequence_by", "upsert", errs);
        }
        if src.delete_when.is_some() {
            only("delete_when", "upsert", errs);
        }
    }
    if mode != SourceMode::Snapshot && src.allow_empty_snapshot {
        only("allow_empty_snapshot", "snapshot", errs);
    }
    if src.deletion_vectors == Some(true) {
        deletion_vectors_apply(entry, errs);
    }
    if mode == SourceMode::Append {
        if !key.is_empty() {
            errs.push(ConfigError::new(
                &entry.key_place,
                "an append source has no key: every accepted row is appended",
            ));
        }
        return Vec::new();
    }
    if key.is_empty() {
        errs.push(ConfigError::new(
            &entry.key_place,
            format!(
                "at least one key column is required (a {} source keeps one row per key)",
                mode_name(mode)
            ),
        ));
    }
    let required_column =
        |name: &str, at: String, what: &str, errs: &mut Vec<ConfigError>| match src
            .columns
            .iter()
            .find(|c| c.name == name)
        {
            None => errs.push(ConfigError::new(at, format!("unknown column \"{name}\""))),
            Some(c) if !c.required => errs.push(ConfigError::new(
                at,
                format!(
                    "{what} column \"{name}\" must be `required: true` ({})",
                    match what {
                        "key" => "a missing key cannot be upserted",
                        _ => "a row without a sequence value cannot be ordered",
                    }
                ),
            )),
            Some(_) => {}
        };
    for (i, k) in key.iter().enumerate() {
        required_column(k, format!("{}[{i}]", entry.key_place), "key", errs);
    }
    if let Some(column) = &src.sequence_by {
        let at = format!("{place}.sequence_by");
        required_column(column, at.clone(), "sequence_by", errs);
        let ty = src
            .columns
            .iter()
            .find(|c| &c.name == column)
            .map(|c| c.data_type.as_str());
        let ordered = ["int", "bigint", "date", "timestamp"];
        if let Some(ty) = ty.filter(|t| !ordered.contains(t) && !t.starts_with("decimal")) {
            errs.push(ConfigError::new(
                at,
                format!(
                    "column \"{column}\" is {ty}: a sequence is an int, bigint, decimal, date \
                     or timestamp (text would order \"10\" before \"9\")"
                ),
            ));
        }
    }
    key
}

/// The mode as written in the configuration.
pub fn mode_name(mode: SourceMode) -> &'static str {
    match mode {
        SourceMode::Upsert => "upsert",
        SourceMode::Append => "append",
        SourceMode::Snapshot => "snapshot",
    }
}

fn one_byte(text: &str, place: String, errs: &mut Vec<ConfigError>) -> Option<u8> {
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

fn validate_csv(csv: &CsvConfig, place: &str, errs: &mut Vec<ConfigError>) -> Option<CsvSpec> {
    let delimiter = one_byte(&csv.delimiter, format!("{place}.csv.delimiter"), errs);
    let quote = one_byte(&csv.quote, format!("{place}.csv.quote"), errs);
    let positive = |v: usize, key: &str, errs: &mut Vec<ConfigError>| {
        if v == 0 {
            errs.push(ConfigError::new(
                format!("{place}.csv.{key}"),
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
