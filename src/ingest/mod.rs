//! The landing zone: which raw files exist, which are new, and the ledger that records
//! what was done with each. Raw files are only ever read, never modified or deleted.

mod fingerprint;
pub mod lease;
pub mod ledger;
pub mod reader;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub use fingerprint::{Fingerprint, FingerprintsAhead, fingerprint, unchanged_since_listed};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};

/// A file found in the raw zone.
#[derive(Debug, Clone)]
pub struct RawFile {
    /// Path relative to the raw zone, with `/` separators: the file's identity.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

/// Files in the raw zone matching the source pattern, sorted by name.
pub fn discover(p: &Pipeline) -> Result<Vec<RawFile>> {
    let root = raw_dir(p)?;
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| MedallionError::ReadFile {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| MedallionError::ReadFile {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let linked = entry.file_type().is_ok_and(|t| t.is_symlink());
            // A symlinked file is read through its link (size and mtime of the target,
            // as `fingerprint` sees them); a dangling link is skipped, never fatal.
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if linked => {
                    tracing::warn!(path = %path.display(), "skipping a symlink that cannot be followed: {e}");
                    continue;
                }
                Err(source) => return Err(MedallionError::ReadFile { path, source }),
            };
            if meta.is_dir() {
                // Symlinked directories are not followed (a link cycle would never end).
                if !linked {
                    stack.push(path);
                }
                continue;
            }
            let Ok(rel) = path.strip_prefix(&root) else {
                continue;
            };
            let name = rel.to_string_lossy().replace('\\', "/");
            let file_name = rel
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if file_name.starts_with('.') || !matches_pattern(&p.source.pattern, &name, &file_name)
            {
                continue;
            }
            files.push(RawFile {
                name,
                path,
                size: meta.len(),
                modified: meta.modified().ok().map(DateTime::<Utc>::from),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// A file matches when its path or name matches the pattern, or when it is a `.gz`
/// whose name without `.gz` does (compressed exports are accepted).
fn matches_pattern(pattern: &glob::Pattern, path: &str, name: &str) -> bool {
    let plain = |n: &str| pattern.matches(n);
    plain(path)
        || plain(name)
        || path.strip_suffix(".gz").is_some_and(plain)
        || name.strip_suffix(".gz").is_some_and(plain)
}

/// The raw zone's local directory.
pub fn raw_dir(p: &Pipeline) -> Result<PathBuf> {
    let url = p
        .lakehouse
        .join(&format!("{}/", p.source.raw_dir))
        .map_err(|e| MedallionError::Usage(format!("bad raw_dir: {e}")))?;
    url.to_file_path()
        .map_err(|()| MedallionError::Usage(format!("the raw zone {url} is not a local directory")))
}
