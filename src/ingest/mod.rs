//! The landing zone: which raw files exist, which are new, and the ledger that records
//! what was done with each. Raw files are only ever read, never modified or deleted.

mod fingerprint;
mod landing;
pub mod lease;
pub mod ledger;
pub mod reader;

use std::path::Path;

pub use fingerprint::{Fingerprint, FingerprintsAhead, fingerprint, fingerprint_async};
pub use landing::{RawFile, RawSource, discover};

use crate::error::{MedallionError, Result};

/// The local directory's files (recursively), with their names inside it. A symlinked
/// file is read through its link (size and mtime of the target); a dangling link is
/// skipped with a warning; symlinked directories are not followed (a cycle would never
/// end).
mod local {
    use super::*;

    pub fn discover(root: &Path) -> Result<Vec<RawFile>> {
        if !root.exists() {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let read_error = |source| MedallionError::ReadFile {
                path: dir.clone(),
                source,
            };
            for entry in std::fs::read_dir(&dir).map_err(read_error)? {
                let entry = entry.map_err(read_error)?;
                let path = entry.path();
                let linked = entry.file_type().is_ok_and(|t| t.is_symlink());
                let meta = match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) if linked => {
                        tracing::warn!(path = %path.display(), "skipping a symlink that cannot be followed: {e}");
                        continue;
                    }
                    Err(source) => return Err(MedallionError::ReadFile { path, source }),
                };
                if meta.is_dir() {
                    if !linked {
                        stack.push(path);
                    }
                    continue;
                }
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                let name = rel.to_string_lossy().replace('\\', "/");
                files.push(RawFile::local(name, path, &meta));
            }
        }
        Ok(files)
    }
}
