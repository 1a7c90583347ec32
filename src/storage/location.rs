//! Where data lives: a directory URL on a local disk or an object store (`s3://`,
//! `az://`, `abfss://`, `gs://`) and the options that reach it (endpoint, region,
//! credentials). Options are secrets: they are never printed, in `Debug` or anywhere.
//!
//! Object stores come from deltalake's own factories (its `s3`, `azure` and `gcs`
//! features), so the raw zone, the tables and their commits are configured alike, and
//! the standard environment variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`) apply to all.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use deltalake::DeltaTableBuilder;
use deltalake::logstore::object_store::ObjectStore;
use url::Url;

use crate::error::{MedallionError, Result};

/// Options for one location (`aws_endpoint_url`, `azure_storage_account_key`, ...).
/// `Debug` shows the keys only: the values may be credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(HashMap<String, String>);

impl StorageOptions {
    pub fn new(options: HashMap<String, String>) -> Self {
        StorageOptions(options)
    }

    pub fn as_map(&self) -> &HashMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        f.debug_map()
            .entries(keys.into_iter().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// A directory (URL ending in `/`) and the options to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub url: Url,
    pub options: StorageOptions,
}

impl Location {
    pub fn new(url: Url, options: StorageOptions) -> Self {
        Location { url, options }
    }

    /// Whether the location is a local directory.
    pub fn is_local(&self) -> bool {
        self.url.scheme() == "file"
    }

    /// A sub-directory, reached with the same options.
    pub fn join(&self, relative: &str) -> Result<Location> {
        let url = self
            .url
            .join(&format!("{}/", relative.trim_matches('/')))
            .map_err(|e| MedallionError::Usage(format!("bad path {relative}: {e}")))?;
        Ok(Location::new(url, self.options.clone()))
    }

    /// A table builder for the URL, with this location's options.
    pub fn table_builder(
        &self,
        url: Url,
    ) -> std::result::Result<DeltaTableBuilder, deltalake::DeltaTableError> {
        super::azure::install();
        Ok(DeltaTableBuilder::from_url(url)?.with_storage_options(self.options.as_map().clone()))
    }

    /// The object store rooted at this directory: paths are relative to it.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        let log_store = self
            .table_builder(self.url.clone())
            .and_then(|b| b.build_storage())
            .map_err(MedallionError::store("connect", &self.url))?;
        Ok(log_store.object_store(None))
    }
}

/// The scheme names medallion accepts, for messages.
pub const SCHEMES: &str =
    "a local path, file://, s3://, s3a://, az://, azure://, adl://, abfs(s)://, gs://";

/// Whether `scheme` is a store medallion can use.
pub fn supported_scheme(scheme: &str) -> bool {
    matches!(
        scheme,
        "file" | "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss" | "adl" | "gs"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_option_values() {
        let options = StorageOptions::new(HashMap::from([
            (
                "aws_secret_access_key".to_string(),
                "s3cr3t-value".to_string(),
            ),
            ("aws_region".to_string(), "eu-west-1".to_string()),
        ]));
        let location = Location::new(Url::parse("s3://bucket/lake/").unwrap(), options);
        let shown = format!("{location:?}");
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(!shown.contains("eu-west-1"), "{shown}");
    }

    #[test]
    fn a_sub_directory_keeps_the_options() {
        let options = StorageOptions::new(HashMap::from([("k".to_string(), "v".to_string())]));
        let root = Location::new(Url::parse("s3://bucket/lake/").unwrap(), options.clone());
        let raw = root.join("raw").unwrap();
        assert_eq!(raw.url.as_str(), "s3://bucket/lake/raw/");
        assert_eq!(raw.options, options);
    }
}
