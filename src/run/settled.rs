//! The settled mark: a run with nothing to do answers from three requests.
//!
//! When a run finds nothing to do the long way (every listed raw file settled in the
//! ledger, no open batch or rebuild, no schema change, no stale gold model) while no
//! run holds the ingest lease, it remembers that in `_medallion/settled/<source>.json`: the
//! configuration's fingerprint, a digest of the landing zone's listing, and the lease
//! table's version. A later run with the same configuration, the same listing and no
//! lease commit after that version has nothing to do either, and says so without
//! opening a table: one GET of the mark, one LIST of the lease log after its version,
//! and the listing of the landing zone.
//!
//! Why that is safe: what a run would do changes only through the configuration (the
//! fingerprint), the landing zone (the digest) or another writer, and every writer (a
//! run, a rebuild, an optimize) commits to the lease table before its first write. A
//! mark that is stale in any of them is ignored: the long check runs, and writes a
//! fresh mark.
//! Errors on the short path only cost the long one.

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::config::Pipeline;
use crate::error::Result;
use crate::ingest::RawFile;
use crate::ingest::lease::source_lease;
use crate::storage::Lakehouse;

/// Where source `name`'s mark is, relative to the lakehouse root.
pub fn settled_mark(source: &str) -> String {
    format!("_medallion/settled/{source}.json")
}
/// 2: per source, against the source's lease table.
const FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Mark {
    format: u32,
    /// `Pipeline::fingerprint` of the configuration that found nothing to do.
    config: String,
    /// Digest of the landing zone's listing (names, sizes, modification times, ETags).
    landing: String,
    files: usize,
    /// The lease table's version, a release: any later writer commits after it.
    lease_version: i64,
    written_at: String,
}

/// A digest of a listing: changes when a file appears, goes or changes.
fn digest(files: &[RawFile]) -> String {
    let mut h = sha2::Sha256::new();
    for f in files {
        let modified = f.modified.map(|m| m.timestamp_micros());
        let line = format!("{}\0{}\0{modified:?}\0{:?}\n", f.name, f.size, f.etag());
        h.update(line.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The number of raw files when the mark says that a run has nothing to do, `None`
/// when the long check must run (no mark, a stale one, or an error reading it).
pub async fn still_settled(lake: &Lakehouse, p: &Pipeline) -> Option<usize> {
    match check(lake, p).await {
        Ok(settled) => settled,
        Err(e) => {
            tracing::debug!("the settled mark cannot be checked ({e}); checking the long way");
            None
        }
    }
}

async fn check(lake: &Lakehouse, p: &Pipeline) -> Result<Option<usize>> {
    let Some(bytes) = lake.read_small(&settled_mark(&p.source.name)).await? else {
        return Ok(None);
    };
    let Ok(mark) = serde_json::from_slice::<Mark>(&bytes) else {
        return Ok(None);
    };
    if mark.format != FORMAT || mark.config != p.fingerprint() {
        return Ok(None);
    }
    let files = crate::ingest::discover(p).await?;
    let lease = source_lease(&p.source.name);
    if mark.landing != digest(&files) || lake.commits_after(&lease, mark.lease_version).await? {
        return Ok(None);
    }
    Ok(Some(files.len()))
}

/// Remember that a run with this configuration and listing has nothing to do, as of
/// the lease table's `lease_version` (read before anything else was, and a release).
/// A failure only costs the next run the long check.
pub async fn remember(lake: &Lakehouse, p: &Pipeline, files: &[RawFile], lease_version: i64) {
    let mark = Mark {
        format: FORMAT,
        config: p.fingerprint(),
        landing: digest(files),
        files: files.len(),
        lease_version,
        written_at: chrono::Utc::now().to_rfc3339(),
    };
    let written = match serde_json::to_vec_pretty(&mark) {
        Ok(bytes) => lake.write_small(&settled_mark(&p.source.name), bytes).await,
        Err(e) => Err(crate::error::MedallionError::Internal(e.to_string())),
    };
    if let Err(e) = written {
        tracing::warn!(
            "cannot remember that there is nothing to do (the next run checks again): {e}"
        );
    }
}
