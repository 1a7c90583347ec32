//! Configuration: `config.yaml` is read once, checked once, and becomes a [`Pipeline`]
//! that the rest of medallion trusts. Every problem (unknown keys, bad types, invalid
//! patterns, SQL that does not plan) is collected and reported together, each with its
//! place in the YAML. Nothing is written anywhere while the configuration is invalid.

mod columns;
mod location;
mod model;
mod sources;
mod spec;
mod validate;

use std::path::Path;

pub use crate::error::{ConfigError, ConfigErrors};
pub use model::*;
pub use sources::mode_name;
pub use spec::{
    BatchBounds, ColumnCheck, ColumnRule, ColumnSpec, CsvSpec, GoldModel, Pipeline, RowRule,
    SourceSpec, SourceTables, gold_table,
};

/// Read and check a configuration file. Relative lakehouse paths are resolved against
/// the directory that holds the file.
pub async fn load(path: &Path) -> Result<Pipeline, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: path.to_path_buf(),
        errors: vec![ConfigError::new("", format!("cannot read the file: {e}"))],
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    load_str(&text, base).await.map_err(|errors| ConfigErrors {
        file: path.to_path_buf(),
        errors,
    })
}

/// Parse and check configuration text; `base` resolves a relative lakehouse path.
pub async fn load_str(text: &str, base: &Path) -> Result<Pipeline, Vec<ConfigError>> {
    let (file, mut errors) = parse_yaml(text)?;
    match validate::validate(&file, base).await {
        Ok(pipeline) if errors.is_empty() => Ok(pipeline),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// Deserialize the YAML, collecting unknown keys instead of stopping at the first.
fn parse_yaml(text: &str) -> Result<(ConfigFile, Vec<ConfigError>), Vec<ConfigError>> {
    let mut unknown = Vec::new();
    let de = serde_yaml::Deserializer::from_str(text);
    let mut on_unknown = |path: serde_ignored::Path<'_>| {
        unknown.push(ConfigError::new(yaml_place(&path), "unknown key"));
    };
    let de = serde_ignored::Deserializer::new(de, &mut on_unknown);
    match serde_path_to_error::deserialize::<_, ConfigFile>(de) {
        Ok(file) => Ok((file, unknown)),
        Err(e) => {
            let place = e.path().to_string();
            let place = if place == "." { String::new() } else { place };
            let mut errors = unknown;
            errors.push(ConfigError::new(place, e.into_inner().to_string()));
            Err(errors)
        }
    }
}

/// `source.columns[3].typo` from serde_ignored's path.
fn yaml_place(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", yaml_place(parent)),
        P::Map { parent, key } => {
            let p = yaml_place(parent);
            if p.is_empty() {
                key.to_string()
            } else {
                format!("{p}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            yaml_place(parent)
        }
    }
}

/// A name medallion can use unquoted in SQL and in table paths.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The first line of an error message (DataFusion's can run to many).
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests;
