//! Deletion vectors: how a rewrite ([`super::replace_with`]) replaces rows in a table
//! that has them turned on (`delta.enableDeletionVectors`, reader 3 / writer 7).
//!
//! Instead of copying every other row of a data file that holds a replaced row into a
//! new file, [`mark`] reads the file's key columns in physical order, finds the
//! positions of the replaced keys that its current deletion vector does not already
//! delete, and decodes the other columns only at those positions (the rows returned).
//! The file's new vector (the old positions and the new ones) is stored inline in the
//! log: the commit removes each file's current entry and adds the same file with its
//! new vector ([`Marked`]). Nothing is written before that commit, and nothing is
//! visible without it.
//!
//! Every row of each file is seen once (the count is checked against the file's own
//! metadata), so a position is never guessed.
//!
//! Reading a table with vectors goes through [`provider`]: each file's vector becomes
//! a row selection of DataFusion's Parquet scan.

mod lookup;
mod provider;
#[cfg(test)]
mod read_tests;
mod scan;

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, StorageType};

use crate::error::{MedallionError, Result};

use super::rewrite::Dropping;
pub(crate) use lookup::from_marks;
pub use lookup::{FileMarks, Lookup, lookup};
pub(crate) use provider::provider;
use scan::Found;

/// Delta's table property that turns deletion vectors on.
pub const PROPERTY: &str = "delta.enableDeletionVectors";

/// Whether upserts into `table` mark replaced rows in deletion vectors.
pub fn enabled(table: &DeltaTable, name: &str) -> Result<bool> {
    let value = super::table_property(table, name, PROPERTY)?;
    Ok(value.is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

/// A data file given a new deletion vector: the commit removes its entry with the
/// vector `old` and adds `add` (the same path).
#[derive(Debug, Clone)]
pub struct Marked {
    pub old: Option<DeletionVectorDescriptor>,
    pub add: Add,
}

/// A data file of the table about to be marked: its current entry and vector.
#[derive(Debug, Clone)]
struct Target {
    add: Add,
    old: Option<DeletionVectorDescriptor>,
}

/// Mark the rows of `dropping` deleted in the data files `ids` (URLs, as a scan's
/// file column names them). Returns each file's new entry and the rows marked (in
/// `dropping`'s returned columns, else the table's).
pub(super) async fn mark(
    table: &DeltaTable,
    name: &str,
    ids: &[String],
    dropping: &Arc<Dropping>,
) -> Result<(Vec<Marked>, Vec<RecordBatch>)> {
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let targets = targets(table, name, ids)?;
    let found = scan::find_all(table, name, &targets, dropping).await?;
    let mut marked = Vec::new();
    let mut rows = Vec::new();
    for (target, found) in targets.into_iter().zip(found) {
        marked.push(new_entry(name, target, &found)?);
        rows.extend(found.rows);
    }
    Ok((marked, rows))
}

/// `target` re-added with a vector that also deletes `found`'s positions.
fn new_entry(name: &str, target: Target, found: &Found) -> Result<Marked> {
    let mut add = target.add;
    add.deletion_vector = Some(inline_vector(name, found)?);
    add.data_change = true;
    add.stats = add.stats.as_deref().map(loose_bounds).transpose()?;
    Ok(Marked {
        old: target.old,
        add,
    })
}

/// A file's new vector (its old positions and the new ones), stored inline in the log
/// (`i`: Z85 of the magic and the portable 64-bit roaring bitmap, zero-padded to a
/// multiple of 4 bytes as Delta's own writer pads). Not in a `deletion_vector_*.bin`
/// file: delta-rs (1.1.3) reads each vector file on a blocking thread that waits for
/// the read, which needs one more blocking thread, so a table with more vector files
/// than blocking threads hangs every scan (delta-rs issue 4657); an inline vector
/// needs no read.
fn inline_vector(name: &str, found: &Found) -> Result<DeletionVectorDescriptor> {
    let mut bitmap = found.old.clone();
    bitmap.extend(found.positions.iter().copied());
    let mut bytes = PORTABLE_MAGIC.to_le_bytes().to_vec();
    bitmap
        .serialize_into(&mut bytes)
        .map_err(|e| MedallionError::Internal(format!("{name}: deletion vector: {e}")))?;
    let size = bytes.len();
    bytes.resize(size.div_ceil(4) * 4, 0);
    let too_large = |_| MedallionError::Internal(format!("{name}: deletion vector too large"));
    Ok(DeletionVectorDescriptor {
        storage_type: StorageType::Inline,
        path_or_inline_dv: z85::encode(&bytes),
        offset: None,
        size_in_bytes: i32::try_from(size).map_err(too_large)?,
        cardinality: i64::try_from(bitmap.len()).map_err(too_large)?,
    })
}

/// The magic number before a deletion vector's portable roaring bitmap.
const PORTABLE_MAGIC: u32 = 1_681_511_377;

/// The commit's actions for `marked`: each file's current entry removed (it must still
/// carry the vector it was marked from: another writer's marks would be lost) and its
/// new one added.
pub(super) fn actions(table: &DeltaTable, name: &str, marked: &[Marked]) -> Result<Vec<Action>> {
    if marked.is_empty() {
        return Ok(Vec::new());
    }
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("mark deleted rows", name))?;
    let mut wanted: HashMap<&str, &Marked> =
        marked.iter().map(|m| (m.add.path.as_str(), m)).collect();
    let mut actions = Vec::new();
    for file in snapshot.log_data().iter() {
        let path = file.path();
        let Some(m) = wanted.get(path.as_ref()).copied() else {
            continue;
        };
        if !same_vector(&file.deletion_vector_descriptor(), &m.old) {
            break;
        }
        wanted.remove(path.as_ref());
        actions.push(Action::Remove(file.remove_action(true)));
        actions.push(Action::Add(m.add.clone()));
    }
    match wanted.len() {
        0 => Ok(actions),
        n => Err(MedallionError::Internal(format!(
            "{name}: {n} data file(s) being marked changed meanwhile (another writer); the \
             batch is retried by the next run"
        ))),
    }
}

fn same_vector(a: &Option<DeletionVectorDescriptor>, b: &Option<DeletionVectorDescriptor>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            (&a.path_or_inline_dv, a.offset, a.cardinality)
                == (&b.path_or_inline_dv, b.offset, b.cardinality)
        }
        _ => false,
    }
}

/// The table's current entries of the data files `ids`, in that order.
fn targets(table: &DeltaTable, name: &str, ids: &[String]) -> Result<Vec<Target>> {
    let err = || MedallionError::delta("mark deleted rows", name);
    let snapshot = table.snapshot().map_err(err())?;
    let paths = super::rewrite::log_paths(table, name, ids)?;
    let mut by_path: HashMap<&str, Target> = HashMap::new();
    for file in snapshot.log_data().iter() {
        let path = file.path();
        if let Some(wanted) = paths.iter().find(|p| p.as_str() == path.as_ref()) {
            #[allow(deprecated)] // the full add (tags, row ids); its successor is crate-private
            let add = file.add_action();
            let old = file.deletion_vector_descriptor();
            by_path.insert(wanted.as_str(), Target { add, old });
        }
    }
    paths
        .iter()
        .map(|p| {
            by_path.remove(p.as_str()).ok_or_else(|| {
                MedallionError::Internal(format!(
                    "{name}: data file {p} is no longer in the table (another writer changed \
                     it); the batch is retried by the next run"
                ))
            })
        })
        .collect()
}

/// A file's statistics once some of its rows are deleted: the count stays the physical
/// one (as the protocol wants) and the bounds are no longer tight.
fn loose_bounds(stats: &str) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(stats)
        .map_err(|e| MedallionError::Internal(format!("unreadable file statistics: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        object.insert("tightBounds".into(), serde_json::Value::Bool(false));
    }
    Ok(value.to_string())
}

/// A kernel error, naming the table.
fn kernel_err(name: &str) -> impl Fn(delta_kernel::Error) -> MedallionError + '_ {
    move |e| MedallionError::Internal(format!("{name}: deletion vector: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(positions: &[u64]) -> DeletionVectorDescriptor {
        let found = Found {
            old: roaring::RoaringTreemap::new(),
            positions: positions.to_vec(),
            rows: Vec::new(),
        };
        inline_vector("t", &found).unwrap()
    }

    /// Rows 3, 4, 7, 11, 18 and 29 give exactly an independently written vector (Z85
    /// of the magic and the portable 64-bit roaring bitmap, 44 bytes; see
    /// docs/research/deletion-vectors/FINDINGS.md).
    #[test]
    fn vectors_are_stored_inline_in_the_portable_format() {
        let dv = vector(&[3, 4, 7, 11, 18, 29]);
        assert_eq!(dv.storage_type, StorageType::Inline);
        assert_eq!(
            dv.path_or_inline_dv,
            "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L"
        );
        assert_eq!((dv.offset, dv.size_in_bytes, dv.cardinality), (None, 44, 6));
        // 38 bytes are padded to 40 for Z85; the size stays the vector's own.
        let padded = vector(&[0, 5, 7]);
        assert_eq!((padded.size_in_bytes, padded.cardinality), (38, 3));
        assert_eq!(padded.path_or_inline_dv.len(), 50);
    }

    /// A file's new vector holds its old positions and the new ones.
    #[test]
    fn a_new_vector_keeps_the_old_positions() {
        let found = Found {
            old: [1u64, 2].into_iter().collect(),
            positions: vec![7],
            rows: Vec::new(),
        };
        assert_eq!(inline_vector("t", &found).unwrap().cardinality, 3);
    }

    #[test]
    fn deleted_rows_loosen_the_bounds() {
        let stats =
            r#"{"numRecords":3,"minValues":{"a":1},"maxValues":{"a":9},"nullCount":{"a":0}}"#;
        let loose: serde_json::Value = serde_json::from_str(&loose_bounds(stats).unwrap()).unwrap();
        assert_eq!(loose["numRecords"], 3);
        assert_eq!(loose["tightBounds"], false);
        assert_eq!(loose["minValues"]["a"], 1);
    }
}
