//! Reading the ledger back: what each raw file's versions are (loaded, duplicate,
//! failed, unchanged), which batches a crashed run left open, which rebuild is
//! unfinished, and the next batch sequence number.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::DataType;

use super::{LEDGER_TABLE, LedgerEntry};
use crate::error::{MedallionError, Result};
use crate::ingest::Fingerprint;
use crate::storage::{self, Lakehouse};

/// What the ledger knows, for deciding what to do with each raw file.
#[derive(Debug, Default)]
pub struct LedgerState {
    /// Content hash → the name it was loaded under.
    pub loaded: HashMap<String, String>,
    /// (name, hash) pairs already settled: loaded or recorded as duplicate.
    pub settled: HashSet<(String, String)>,
    /// Names that were loaded with some content.
    pub loaded_names: HashSet<String>,
    /// (name, size, modified µs) of settled file versions: a raw file that still has
    /// them is not hashed again (raw files are never modified in place; a producer
    /// that rewrites one changes its mtime).
    pub settled_stats: HashSet<(String, u64, Option<i64>)>,
    /// Claims without a final row: batches left part-way, oldest first (one claim
    /// per file; the files of a batch share its `seq`).
    pub unfinished: Vec<LedgerEntry>,
    /// The batches loaded, in `seq` order (their claims, as recorded).
    pub loaded_batches: Vec<LedgerEntry>,
    /// A rebuild started and not finished (a crashed `medallion rebuild`).
    pub open_rebuild: Option<LedgerEntry>,
    /// The next batch sequence number.
    pub next_seq: i64,
    /// (name, hash) of the file loaded last: for a snapshot source, the state silver holds.
    pub last_loaded: Option<(String, String)>,
}

impl LedgerState {
    /// Whether the raw file has the name, size and modification time of a settled file
    /// version, so it needs nothing more (and no hashing).
    pub fn unchanged_since_settled(&self, f: &crate::ingest::RawFile) -> bool {
        self.settled_stats.contains(&(
            f.name.clone(),
            f.size,
            f.modified.map(|m| m.timestamp_micros()),
        ))
    }

    /// The unfinished claims grouped into their batches, in `seq` order, each batch's
    /// files in name order.
    pub fn unfinished_batches(&mut self) -> Vec<Vec<LedgerEntry>> {
        let mut batches: std::collections::BTreeMap<i64, Vec<LedgerEntry>> = Default::default();
        for c in std::mem::take(&mut self.unfinished) {
            batches.entry(c.seq).or_default().push(c);
        }
        batches
            .into_values()
            .map(|mut files| {
                files.sort_by(|a, b| a.file.cmp(&b.file));
                files.dedup_by(|a, b| a.file == b.file);
                files
            })
            .collect()
    }

    /// Whether `name` with content `sha256` needs nothing more.
    pub fn is_settled(&self, name: &str, sha256: &str) -> bool {
        self.settled
            .contains(&(name.to_string(), sha256.to_string()))
    }
}

/// SQL: the ledger row is `source`'s (every row of a ledger from before sources,
/// which has no other source's rows).
pub fn rows_of(table: &deltalake::DeltaTable, source: &str) -> Result<String> {
    let labelled = storage::arrow_schema(table, LEDGER_TABLE)?
        .field_with_name(crate::schema::LEDGER_SOURCE)
        .is_ok();
    Ok(if labelled {
        super::of_source(source)
    } else {
        "TRUE".to_string()
    })
}

/// Read `source`'s rows of the ledger (all of them in a ledger from before sources,
/// which has no other source's rows).
pub async fn state(lake: &Lakehouse, source: &str) -> Result<LedgerState> {
    let mut state = LedgerState {
        next_seq: 1,
        ..LedgerState::default()
    };
    let Some(table) = lake.open(LEDGER_TABLE).await? else {
        return Ok(state);
    };
    let ctx = storage::session();
    storage::register(&ctx, "ledger", &table).await?;
    let sql = format!(
        "SELECT file, sha256, status, _batch_id, seq, size, modified FROM ledger WHERE {} \
         ORDER BY seq, processed_at",
        rows_of(&table, source)?
    );
    let batches = storage::sql_batches(&ctx, &sql, "read the file ledger").await?;
    let mut finished = HashSet::new();
    let mut claims = Vec::new();
    let mut rebuilds = Vec::new();
    for b in batches {
        let cast = |i: usize, t: &DataType| {
            deltalake::arrow::compute::cast(b.column(i), t)
                .map_err(MedallionError::arrow("read the file ledger"))
        };
        let (file, sha, status, batch) = (
            cast(0, &DataType::Utf8)?,
            cast(1, &DataType::Utf8)?,
            cast(2, &DataType::Utf8)?,
            cast(3, &DataType::Utf8)?,
        );
        let (file, sha, status, batch) = (
            file.as_string::<i32>(),
            sha.as_string::<i32>(),
            status.as_string::<i32>(),
            batch.as_string::<i32>(),
        );
        let seq = b
            .column(4)
            .as_primitive::<deltalake::arrow::datatypes::Int64Type>();
        let size = b
            .column(5)
            .as_primitive::<deltalake::arrow::datatypes::Int64Type>();
        let modified = b
            .column(6)
            .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            state.next_seq = state.next_seq.max(seq.value(i) + 1);
            let (f, h) = (file.value(i).to_string(), sha.value(i).to_string());
            if matches!(status.value(i), "loaded" | "duplicate" | "unchanged") {
                state.settled_stats.insert((
                    f.clone(),
                    size.value(i) as u64,
                    modified.is_valid(i).then(|| modified.value(i)),
                ));
            }
            let entry = || {
                LedgerEntry::claim(
                    Fingerprint {
                        sha256: sha.value(i).to_string(),
                        size: size.value(i) as u64,
                        modified: modified
                            .is_valid(i)
                            .then(|| DateTime::<Utc>::from_timestamp_micros(modified.value(i)))
                            .flatten(),
                    },
                    file.value(i).to_string(),
                    batch.value(i).to_string(),
                    seq.value(i),
                )
            };
            match status.value(i) {
                "loaded" => {
                    state.last_loaded = Some((f.clone(), h.clone()));
                    state.loaded_batches.push(entry());
                    finished.insert(seq.value(i));
                    state.loaded.entry(h.clone()).or_insert_with(|| f.clone());
                    state.loaded_names.insert(f.clone());
                    state.settled.insert((f, h));
                }
                "duplicate" | "unchanged" => {
                    state.settled.insert((f, h));
                }
                "failed" | "rebuild_done" => {
                    finished.insert(seq.value(i));
                }
                "claimed" => claims.push(entry()),
                "rebuild_started" => rebuilds.push(entry()),
                _ => {}
            }
        }
    }
    state.unfinished = claims
        .into_iter()
        .filter(|c| !finished.contains(&c.seq))
        .collect();
    // Only the latest rebuild can be open: an earlier one it superseded is not.
    state.open_rebuild = rebuilds
        .into_iter()
        .next_back()
        .filter(|r| !finished.contains(&r.seq));
    Ok(state)
}
