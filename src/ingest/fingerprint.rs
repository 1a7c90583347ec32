//! Content fingerprints of raw files: the SHA-256 that identifies a file version in
//! the ledger (a file is loaded once per content, whatever its name), with the size
//! and mtime it had when hashed. A file whose size or mtime moves while it is hashed or
//! loaded is still being written: it is left for the next run.
//!
//! Hashing a 70 MB file takes ~0.15 s, so a run hashes the next file on a thread of its
//! own while the current one is loaded ([`FingerprintsAhead`]).

use std::sync::mpsc;

use chrono::{DateTime, Utc};

use super::RawFile;
use crate::error::{MedallionError, Result};

/// A file's identity: its content hash, and the size and mtime it had when hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub sha256: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

/// Hash a raw file (streaming) and check it did not change meanwhile: a file whose size
/// or mtime moves while it is read is still being written and is left for the next run
/// (`Ok(None)`). Producers should write elsewhere and rename into the raw zone.
/// Blocking: call it off the async runtime's threads (see [`fingerprint_async`]).
pub fn fingerprint(file: &RawFile) -> Result<Option<Fingerprint>> {
    use sha2::Digest;
    let err = |source| MedallionError::ReadFile {
        path: file.display_path(),
        source,
    };
    let mut hasher = sha2::Sha256::new();
    let hashed = file.open().and_then(|mut f| {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(err)?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
        }
    });
    // Conditional reads of an object prove the listed version was read; a failed one
    // (or any local read) is checked against the listing: a change is "still being
    // written", not an unreadable file.
    if (hashed.is_err() || !file.reads_are_conditional()) && !file.unchanged_since_listed()? {
        return Ok(None);
    }
    hashed?;
    Ok(Some(Fingerprint {
        sha256: hex::encode(hasher.finalize()),
        size: file.size,
        modified: file.modified,
    }))
}

/// [`fingerprint`] on a blocking thread, for async callers.
pub async fn fingerprint_async(file: &RawFile) -> Result<Option<Fingerprint>> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || fingerprint(&file))
        .await
        .map_err(|e| MedallionError::Internal(format!("hashing a raw file stopped: {e}")))?
}

/// Fingerprints of a list of files, computed in order on a thread of its own at most
/// [`HASHED_AHEAD`] files ahead of the consumer (bounded work and memory).
pub struct FingerprintsAhead {
    results: mpsc::Receiver<(String, Result<Option<Fingerprint>>)>,
    /// Files hashed on demand because they were not (or no longer) ahead in the list.
    on_demand: usize,
}

/// How many files are hashed ahead: about a batch of small files, so the next batch's
/// files are hashed while this one's are loaded and committed.
pub const HASHED_AHEAD: usize = 1024;

impl FingerprintsAhead {
    /// Start hashing `files`, in order.
    pub fn start(files: Vec<RawFile>) -> Self {
        let (tx, results) = mpsc::sync_channel(HASHED_AHEAD);
        std::thread::spawn(move || {
            for file in files {
                let print = fingerprint(&file);
                // The consumer stopped (the run ended early): stop hashing.
                if tx.send((file.name, print)).is_err() {
                    return;
                }
            }
        });
        FingerprintsAhead {
            results,
            on_demand: 0,
        }
    }

    /// The fingerprint of `file`: the one hashed ahead (files the caller skipped are
    /// passed over), or hashed now when `file` is not ahead in the list.
    /// Blocking: from async code call it inside `tokio::task::block_in_place`.
    pub fn next(&mut self, file: &RawFile) -> Result<Option<Fingerprint>> {
        while let Ok((name, print)) = self.results.recv() {
            if name == file.name {
                return print;
            }
        }
        self.on_demand += 1;
        tracing::debug!(file = %file.name, "not hashed ahead; hashing now");
        fingerprint(file)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn listed(path: &std::path::Path) -> RawFile {
        let meta = std::fs::metadata(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        RawFile::local(name, path.to_path_buf(), &meta)
    }

    #[test]
    fn hashed_ahead_in_order_or_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<RawFile> = ["a.csv", "b.csv", "c.csv"]
            .iter()
            .map(|n| {
                let path = dir.path().join(n);
                std::fs::write(&path, format!("content of {n}\n")).unwrap();
                listed(&path)
            })
            .collect();
        let direct: Vec<String> = files
            .iter()
            .map(|f| fingerprint(f).unwrap().unwrap().sha256)
            .collect();
        assert_eq!(
            direct
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len(),
            3
        );
        // In order: every print comes from the thread and matches a direct hash.
        let mut ahead = FingerprintsAhead::start(files.clone());
        for (f, want) in files.iter().zip(&direct) {
            assert_eq!(&ahead.next(f).unwrap().unwrap().sha256, want);
        }
        assert_eq!(ahead.on_demand, 0);
        // A caller that skips a file still gets the print from the thread.
        let mut ahead = FingerprintsAhead::start(files.clone());
        assert_eq!(ahead.next(&files[1]).unwrap().unwrap().sha256, direct[1]);
        assert_eq!(ahead.on_demand, 0);
        // A file that is no longer ahead (already passed) is hashed on demand.
        assert_eq!(ahead.next(&files[0]).unwrap().unwrap().sha256, direct[0]);
        assert_eq!(ahead.on_demand, 1);
    }

    #[test]
    fn a_file_rewritten_after_listing_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let file = listed(&path);
        assert!(file.unchanged_since_listed().unwrap());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"3,4\n").unwrap();
        assert!(!file.unchanged_since_listed().unwrap());
    }
}
