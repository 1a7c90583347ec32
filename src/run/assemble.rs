//! Batches: the files claimed together under one batch id and `seq`, and how new files
//! are grouped into them.
//!
//! New files are taken in name order, into one batch until it holds
//! `batches.max_files` files or `batches.max_bytes` bytes (a file larger than that has
//! a batch of its own). A batch's files stream through its writers, however large; one
//! that fails part-way has the others read again (see `read`). A file with the content
//! of a file already in the open batch starts the next batch, so it is recognised as a
//! duplicate once the first is loaded.

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};

use crate::config::BatchBounds;
use crate::ingest::ledger::LedgerEntry;
use crate::ingest::{Fingerprint, RawFile};
use crate::report::FileReport;
use crate::zones::Lineage;

/// How much larger than its size a gzip file is counted, for [`Batch::text_bytes`].
pub const GZIP_RATIO: u64 = 8;

/// One file of a batch.
#[derive(Debug)]
pub struct Member {
    pub claim: LedgerEntry,
    /// The raw file: `None` when it is gone, or no longer has the claimed content.
    pub file: Option<RawFile>,
    /// What happened to it (`error` set: it failed alone).
    pub report: FileReport,
}

/// Files claimed together under one batch id and `seq`, in name order.
#[derive(Debug)]
pub struct Batch {
    pub batch_id: String,
    pub seq: i64,
    pub received_at: DateTime<Utc>,
    pub members: Vec<Member>,
    /// This completes a batch an earlier run left part-way.
    pub recovering: bool,
    /// An earlier attempt committed some stage of it: a failure now leaves it open.
    pub committed: bool,
}

impl Batch {
    pub fn new(batch_id: String, seq: i64, members: Vec<Member>, recovering: bool) -> Self {
        Batch {
            batch_id,
            seq,
            received_at: Utc::now().trunc_subsecs(6),
            members,
            recovering,
            committed: false,
        }
    }

    /// The lineage of member `i`'s rows.
    pub fn lineage(&self, i: usize) -> Lineage {
        Lineage {
            source_file: self.members[i].claim.file.clone(),
            batch_id: self.batch_id.clone(),
            received_at: self.received_at,
        }
    }

    /// The lineage shown in commit infos: the file's name, or for a batch of many
    /// "N files: first … last".
    pub fn commit_lineage(&self) -> Lineage {
        let loaded: Vec<&str> = self.loaded().map(|m| m.claim.file.as_str()).collect();
        let source_file = match loaded.as_slice() {
            [] => String::new(),
            [one] => one.to_string(),
            [first, .., last] => format!("{} files: {first} … {last}", loaded.len()),
        };
        Lineage {
            source_file,
            batch_id: self.batch_id.clone(),
            received_at: self.received_at,
        }
    }

    /// The bytes of text its files hold, about (gzip counted [`GZIP_RATIO`] times).
    pub fn text_bytes(&self) -> u64 {
        let bytes = |c: &LedgerEntry| match c.file.ends_with(".gz") {
            true => c.size.saturating_mul(GZIP_RATIO),
            false => c.size,
        };
        self.members.iter().map(|m| bytes(&m.claim)).sum()
    }

    /// The members that have not failed.
    pub fn loaded(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.report.loaded())
    }

    /// Mark member `i` failed with `message`.
    pub fn fail(&mut self, i: usize, message: String) {
        let m = &mut self.members[i];
        m.report = FileReport {
            error: Some(message),
            ..FileReport::new(&m.claim.file, &self.batch_id)
        };
    }

    /// Start the reports of members `indices` again, failures cleared (a read given
    /// up for a replay).
    pub fn reset(&mut self, indices: &[usize]) {
        for &i in indices {
            let m = &mut self.members[i];
            m.report = FileReport {
                new_version: m.report.new_version,
                ..FileReport::new(&m.claim.file, &self.batch_id)
            };
        }
    }
}

/// New files being gathered into the next batch.
#[derive(Debug, Default)]
pub struct Gathering {
    /// (file, its fingerprint, a file of this name was loaded before).
    pub files: Vec<(RawFile, Fingerprint, bool)>,
    bytes: u64,
    hashes: HashSet<String>,
}

impl Gathering {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether the content `sha256` is already in the batch.
    pub fn holds(&self, sha256: &str) -> bool {
        self.hashes.contains(sha256)
    }

    /// Whether `file` can join the batch within `bounds`.
    pub fn fits(&self, file: &RawFile, bounds: BatchBounds) -> bool {
        if self.files.is_empty() {
            return true;
        }
        self.files.len() < bounds.max_files && self.bytes + file.size <= bounds.max_bytes
    }

    pub fn push(&mut self, file: RawFile, print: Fingerprint, new_version: bool) {
        self.bytes += file.size;
        self.hashes.insert(print.sha256.clone());
        self.files.push((file, print, new_version));
    }

    /// The batch of the gathered files, as batch `seq`.
    pub fn into_batch(self, seq: i64) -> Batch {
        let batch_id = uuid::Uuid::now_v7().to_string();
        let members = self
            .files
            .into_iter()
            .map(|(file, print, new_version)| Member {
                claim: LedgerEntry::claim(print, file.name.clone(), batch_id.clone(), seq),
                report: FileReport {
                    new_version,
                    ..FileReport::new(&file.name, &batch_id)
                },
                file: Some(file),
            })
            .collect();
        Batch::new(batch_id, seq, members, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::RawSource;

    fn file(name: &str, size: u64) -> RawFile {
        RawFile {
            name: name.into(),
            size,
            modified: None,
            source: RawSource::Local(name.into()),
        }
    }

    fn print(sha: &str) -> Fingerprint {
        Fingerprint {
            sha256: sha.into(),
            size: 1,
            modified: None,
        }
    }

    #[test]
    fn a_batch_ends_at_its_bounds_and_large_files_share_one() {
        let bounds = BatchBounds {
            max_files: 3,
            max_bytes: 1000,
        };
        let mut g = Gathering::default();
        assert!(
            g.fits(&file("a", 2000), bounds),
            "an empty batch takes any file"
        );
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            assert!(g.fits(&file(name, 100), bounds));
            g.push(file(name, 100), print(&i.to_string()), false);
        }
        assert!(!g.fits(&file("d", 100), bounds), "max_files");
        let mut g = Gathering::default();
        g.push(file("a", 900), print("1"), false);
        assert!(!g.fits(&file("b", 101), bounds), "max_bytes");
        assert!(g.fits(&file("b", 100), bounds));
        assert!(g.holds("1") && !g.holds("2"));
        let big = BatchBounds {
            max_files: 1000,
            max_bytes: 2000,
        };
        let mut g = Gathering::default();
        g.push(file("big.csv", 1500), print("1"), false);
        assert!(
            g.fits(&file("small", 500), big),
            "large files share batches"
        );
        assert!(!g.fits(&file("more", 501), big));
        g.push(file("small", 500), print("2"), false);
        let b = g.into_batch(7);
        assert_eq!((b.seq, b.members.len()), (7, 2));
        assert_eq!(b.members[0].claim.batch_id, b.batch_id);
    }

    #[test]
    fn text_bytes_count_gzip_larger() {
        let sized = |sha: &str| Fingerprint {
            size: 100,
            ..print(sha)
        };
        let mut g = Gathering::default();
        g.push(file("a.csv", 100), sized("1"), false);
        g.push(file("b.csv.gz", 100), sized("2"), false);
        assert_eq!(g.into_batch(1).text_bytes(), 100 + 100 * GZIP_RATIO);
    }
}
