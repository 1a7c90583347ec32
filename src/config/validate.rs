//! Turns the YAML model into a checked [`Pipeline`]. Every check runs and every failure
//! is collected, so a user fixes all problems in one pass. The only place that builds a
//! `Pipeline`: the rest of medallion can rely on names existing, regexes compiling,
//! defaults parsing and SQL planning.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use super::ConfigError;
use super::model::*;
use super::spec::*;
use super::{first_line, valid_name};

pub(super) async fn validate(file: &ConfigFile, base: &Path) -> Result<Pipeline, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let lakehouse = super::location::lakehouse(file, base, &mut errs);
    let entries = super::sources::entries(file, &mut errs);
    let mut names = HashSet::new();
    for e in &entries {
        if !names.insert(e.config.name.as_str()) {
            errs.push(ConfigError::new(
                format!("{}.name", e.place),
                format!("duplicate source \"{}\"", e.config.name),
            ));
        }
    }
    // Reported with the gold models' problems, whatever happens to those.
    let mut deferred = Vec::new();
    // Two sources reading the same files would load each of them twice.
    for (i, a) in entries.iter().enumerate() {
        for b in &entries[..i] {
            let (x, y) = (&a.config, &b.config);
            if x.raw_dir.trim_matches('/') == y.raw_dir.trim_matches('/') && x.pattern == y.pattern
            {
                errs.push(ConfigError::new(
                    format!("{}.pattern", a.place),
                    format!(
                        "source {} reads the same files as source {} (same raw_dir and \
                         pattern): give each source its own pattern or raw_dir",
                        x.name, y.name
                    ),
                ));
            }
        }
    }
    let sources: Vec<Option<SourceSpec>> = entries
        .iter()
        .map(|e| super::sources::validate_source(e, lakehouse.as_ref(), &mut errs, &mut deferred))
        .collect();
    if file.batches.max_files == 0 {
        errs.push(ConfigError::new("batches.max_files", "must be at least 1"));
    }
    if file.batches.max_bytes.as_u64() == 0 {
        errs.push(ConfigError::new(
            "batches.max_bytes",
            "must be at least 1 byte",
        ));
    }
    // Gold SQL can only be planned against valid silver schemas.
    let sources: Option<Vec<SourceSpec>> = sources.into_iter().collect();
    let (Some(lakehouse), Some(sources)) = (lakehouse, sources) else {
        errs.extend(deferred);
        return Err(errs);
    };
    if !errs.is_empty() || sources.is_empty() {
        errs.extend(deferred);
        return Err(errs);
    }
    let gold = validate_gold(&file.gold, &sources, &mut errs).await;
    errs.extend(deferred);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Pipeline {
        lakehouse,
        source: sources[0].clone(),
        sources,
        gold,
        batches: BatchBounds {
            max_files: file.batches.max_files,
            max_bytes: file.batches.max_bytes.as_u64(),
        },
    })
}

async fn validate_gold(
    models: &[GoldModelConfig],
    sources: &[SourceSpec],
    errs: &mut Vec<ConfigError>,
) -> Vec<GoldModel> {
    // The session the models run in at ingest time, so they mean the same here.
    let ctx = crate::storage::session();
    if let Err(e) = register_empty_silver(&ctx, sources) {
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
        let single = (sources.len() == 1).then(|| sources[0].name.as_str());
        let model_sources = crate::plan::silver_sources(df.logical_plan(), single);
        if model_sources.is_empty() {
            errs.push(ConfigError::new(
                format!("{place}.sql"),
                "the model reads no silver table: name silver.<source> in FROM",
            ));
            continue;
        }
        // A selection's rows are unique by its source's key (none for an append source).
        let silver_key: &[String] = match model_sources.as_slice() {
            [one] => sources
                .iter()
                .find(|s| &s.name == one)
                .map_or(&[], |s| s.key.as_slice()),
            _ => &[],
        };
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
            sources: model_sources,
        });
    }
    out
}

/// Register every source's silver layout, empty, as the models see it at run time:
/// `silver.<name>`, and also `silver` when there is one source.
fn register_empty_silver(
    ctx: &SessionContext,
    sources: &[SourceSpec],
) -> deltalake::datafusion::error::Result<()> {
    for s in sources {
        let empty = Arc::new(MemTable::try_new(s.silver_schema(), vec![vec![]])?);
        crate::storage::register_silver_provider(ctx, &s.name, empty, sources.len() == 1)?;
    }
    Ok(())
}

/// The Z-order columns of a table: the configured list (at `place`), each a known,
/// distinct column, or else `default` (its keys).
pub(super) fn zorder_columns(
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
