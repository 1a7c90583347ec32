//! Where the lakehouse and the landing zone live: a local path or a URI (`s3://`,
//! `az://`, `abfss://`, `gs://`), each with an optional `storage_options` map. Values may
//! name environment variables as `${VAR}` (write `$${` for a literal `${`), so a secret
//! never has to be written into the YAML. Messages name options and variables, never
//! their values.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use url::Url;

use super::ConfigError;
use super::model::{ConfigFile, SourceConfig};
use crate::storage::location::{SCHEMES, supported_scheme};
use crate::storage::{Location, StorageOptions};

/// The lakehouse root, with its options.
pub(super) fn lakehouse(
    file: &ConfigFile,
    base: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<Location> {
    let options = options(&file.storage_options, "storage_options", errs);
    let text = non_empty(
        interpolate(&file.lakehouse, "lakehouse", errs)?,
        "lakehouse",
        errs,
    )?;
    let url = if text.contains("://") {
        uri(&text, "lakehouse", errs)?
    } else {
        local_dir(&base.join(&text), "lakehouse", errs)?
    };
    Some(Location::new(url, options?))
}

/// The landing zone: a URI of its own (with `source.storage_options`; `file:///…` for a
/// local directory of its own), or a path relative to the lakehouse (reached with the
/// lakehouse's options; a leading `/` is relative too, as it always was).
pub(super) fn raw_zone(
    src: &SourceConfig,
    place: &str,
    lakehouse: Option<&Location>,
    errs: &mut Vec<ConfigError>,
) -> Option<Location> {
    let (options_place, raw_place) = (
        format!("{place}.storage_options"),
        format!("{place}.raw_dir"),
    );
    let options = options(&src.storage_options, &options_place, errs);
    let text = non_empty(
        interpolate(&src.raw_dir, &raw_place, errs)?,
        &raw_place,
        errs,
    )?;
    if text.contains("://") {
        let url = uri(&text, &raw_place, errs)?;
        return Some(Location::new(url, options?));
    }
    if !src.storage_options.is_empty() {
        errs.push(ConfigError::new(
            options_place,
            "only for a raw_dir of its own (a URI); a raw_dir inside the lakehouse is \
             reached with the lakehouse's storage_options",
        ));
        return None;
    }
    match lakehouse?.join(text.trim_matches('/')) {
        Ok(location) => Some(location),
        Err(e) => {
            errs.push(ConfigError::new(raw_place, e.to_string()));
            None
        }
    }
}

fn non_empty(text: String, place: &str, errs: &mut Vec<ConfigError>) -> Option<String> {
    if text.trim().is_empty() {
        errs.push(ConfigError::new(place, "is empty (after ${…} replacement)"));
        return None;
    }
    Some(text)
}

/// A directory URI: a supported scheme, a bucket or container, no credentials in it.
fn uri(text: &str, place: &str, errs: &mut Vec<ConfigError>) -> Option<Url> {
    let mut url = match Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            errs.push(ConfigError::new(place, format!("not a valid URI: {e}")));
            return None;
        }
    };
    let scheme = url.scheme().to_string();
    let problem = if !supported_scheme(&scheme) {
        Some(format!(
            "storage scheme \"{scheme}\" is not supported (use {SCHEMES})"
        ))
    } else if url.password().is_some()
        || (scheme != "abfss" && scheme != "abfs" && !url.username().is_empty())
    {
        Some("credentials do not belong in the URI; put them in storage_options (as ${VAR})".into())
    } else if url.query().is_some() {
        Some("a query string does not belong in the URI; put options in storage_options".into())
    } else if scheme != "file" && url.host_str().is_none_or(str::is_empty) {
        Some(format!(
            "names no bucket or container ({scheme}://<bucket>/<prefix>)"
        ))
    } else {
        None
    };
    if let Some(message) = problem {
        errs.push(ConfigError::new(place, message));
        return None;
    }
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Some(url)
}

fn local_dir(path: &Path, place: &str, errs: &mut Vec<ConfigError>) -> Option<Url> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match Url::from_directory_path(&abs) {
        Ok(u) => Some(u),
        Err(()) => {
            errs.push(ConfigError::new(
                place,
                format!("not a usable path: {}", abs.display()),
            ));
            None
        }
    }
}

/// A location's options, interpolated; keys are passed to the store as written.
fn options(
    map: &BTreeMap<String, String>,
    place: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<StorageOptions> {
    let start = errs.len();
    let mut out = HashMap::new();
    for (key, value) in map {
        if let Some(v) = interpolate(value, &format!("{place}.{key}"), errs) {
            out.insert(key.clone(), v);
        }
    }
    (errs.len() == start).then(|| StorageOptions::new(out))
}

/// Replace `${VAR}` with the environment variable's value (`$${` is a literal `${`).
pub(super) fn interpolate(text: &str, place: &str, errs: &mut Vec<ConfigError>) -> Option<String> {
    interpolate_with(text, place, errs, |name| std::env::var(name).ok())
}

fn interpolate_with(
    text: &str,
    place: &str,
    errs: &mut Vec<ConfigError>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let start = errs.len();
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let Some(end) = rest[i + 2..].find('}') else {
            errs.push(ConfigError::new(place, "`${` without a closing `}`"));
            return None;
        };
        let name = &rest[i + 2..i + 2 + end];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            errs.push(ConfigError::new(
                place,
                "`${…}` must name an environment variable (letters, digits, _)",
            ));
        } else {
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => errs.push(ConfigError::new(
                    place,
                    format!("environment variable {name} is not set"),
                )),
            }
        }
        rest = &rest[i + 3 + end..];
    }
    out.push_str(rest);
    (errs.len() == start).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Option<String>, Vec<ConfigError>) {
        let mut errs = Vec::new();
        let env = |n: &str| match n {
            "SECRET" => Some("s3cr3t".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let out = interpolate_with(text, "storage_options.key", &mut errs, env);
        (out, errs)
    }

    #[test]
    fn variables_are_replaced_and_escapes_kept() {
        assert_eq!(run("plain").0.as_deref(), Some("plain"));
        assert_eq!(run("${SECRET}").0.as_deref(), Some("s3cr3t"));
        assert_eq!(
            run("a-${SECRET}-${EMPTY}b").0.as_deref(),
            Some("a-s3cr3t-b")
        );
        assert_eq!(run("$${SECRET}").0.as_deref(), Some("${SECRET}"));
        assert_eq!(run("cost $5").0.as_deref(), Some("cost $5"));
    }

    #[test]
    fn problems_name_the_variable_never_a_value() {
        let (out, errs) = run("${MISSING}/${SECRET}/${}/${UNCLOSED");
        assert!(out.is_none());
        let text: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.place, e.message))
            .collect();
        assert!(text[0].contains("MISSING is not set"), "{text:?}");
        assert!(
            text[1].contains("must name an environment variable"),
            "{text:?}"
        );
        assert!(text.iter().all(|t| !t.contains("s3cr3t")), "{text:?}");
        assert!(
            text.iter().all(|t| t.starts_with("storage_options.key")),
            "{text:?}"
        );
    }

    #[test]
    fn uris_are_checked() {
        let check = |t: &str| {
            let mut errs = Vec::new();
            let url = uri(t, "lakehouse", &mut errs);
            (
                url.map(|u| u.to_string()),
                errs.first().map(|e| e.message.clone()),
            )
        };
        assert_eq!(
            check("s3://lake/prod").0.as_deref(),
            Some("s3://lake/prod/")
        );
        assert_eq!(check("az://landing").0.as_deref(), Some("az://landing/"));
        assert_eq!(
            check("abfss://c@acct.dfs.core.windows.net/x").0.as_deref(),
            Some("abfss://c@acct.dfs.core.windows.net/x/")
        );
        assert_eq!(check("gs://b/p/").0.as_deref(), Some("gs://b/p/"));
        assert!(check("ftp://x/y").1.unwrap().contains("not supported"));
        assert!(
            check("s3://key:secret@b/p")
                .1
                .unwrap()
                .contains("credentials")
        );
        assert!(check("s3:///p").1.unwrap().contains("no bucket"));
    }
}
