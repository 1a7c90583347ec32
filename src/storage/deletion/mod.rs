//! Deletion vectors: how a rewrite ([`super::replace_with`]) replaces rows in a table
//! that has them turned on (`delta.enableDeletionVectors`, reader 3 / writer 7).
//!
//! Instead of copying every other row of a data file that holds a replaced row into a
//! new file, [`mark`] reads the file's key columns in physical order, finds the
//! positions of the replaced keys that its current deletion vector does not already
//! delete, and decodes the other columns only at those positions (the rows returned).
//! The file's new vector (the old positions and the new ones) goes, with those of the
//! other files, into one `deletion_vector_<uuid>.bin` beside the data; the commit
//! removes each file's current entry and adds the same file with its new vector
//! ([`Marked`]). Nothing is visible before that commit; a vector file of a commit that
//! never lands is an orphan `vacuum` deletes.
//!
//! Every row of each file is seen once (the count is checked against the file's own
//! metadata), so a position is never guessed.

mod scan;

use std::collections::HashMap;
use std::sync::Arc;

use delta_kernel::actions::deletion_vector_writer::{
    DeletionVectorWriteResult, KernelDeletionVector, StreamingDeletionVectorWriter,
};
use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, StorageType};
use deltalake::logstore::LogStore;
use deltalake::logstore::object_store::{ObjectStoreExt, PutPayload};
use deltalake::{ObjectStore, Path};

use crate::error::{MedallionError, Result};

use super::rewrite::Dropping;
use scan::Found;

/// Delta's table property that turns deletion vectors on.
pub const PROPERTY: &str = "delta.enableDeletionVectors";

/// Whether upserts into `table` mark replaced rows in deletion vectors.
pub fn enabled(table: &DeltaTable, name: &str) -> Result<bool> {
    let value = super::table_property(table, name, PROPERTY)?;
    Ok(value.is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

/// A data file given a new deletion vector: the commit removes its entry as `path`
/// with the vector `old` and adds `add`.
#[derive(Debug, Clone)]
pub struct Marked {
    pub path: String,
    pub old: Option<DeletionVectorDescriptor>,
    pub add: Add,
}

/// A data file of the table about to be marked: its current entry and vector.
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
    let store = table.log_store().object_store(None);
    let found = scan::find_all(table, name, &targets, dropping).await?;
    let (uuid, written) = write_vectors(&store, name, &found).await?;
    let mut marked = Vec::new();
    let mut rows = Vec::new();
    for ((target, written), found) in targets.into_iter().zip(written).zip(found) {
        let mut add = target.add;
        add.deletion_vector = Some(DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: uuid.clone(),
            offset: Some(written.offset),
            size_in_bytes: written.size_in_bytes,
            cardinality: written.cardinality,
        });
        add.data_change = true;
        add.stats = add.stats.as_deref().map(loose_bounds).transpose()?;
        marked.push(Marked {
            path: add.path.clone(),
            old: target.old,
            add,
        });
        rows.extend(found.rows);
    }
    Ok((marked, rows))
}

/// Write each file's new vector (its old positions and the new ones) to one new
/// `deletion_vector_<uuid>.bin` beside the data files. Returns the UUID as a `u`
/// vector names it (Z85, no prefix) and where each vector is in the file.
async fn write_vectors(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    found: &[Found],
) -> Result<(String, Vec<DeletionVectorWriteResult>)> {
    let mut bytes = Vec::new();
    let mut written = Vec::new();
    let mut writer = StreamingDeletionVectorWriter::new(&mut bytes);
    for f in found {
        let mut dv = KernelDeletionVector::new();
        dv.add_deleted_row_indexes(f.old.iter());
        dv.add_deleted_row_indexes(&f.positions);
        written.push(writer.write_deletion_vector(dv).map_err(kernel_err(name))?);
    }
    writer.finalize().map_err(kernel_err(name))?;
    let uuid = uuid::Uuid::new_v4();
    let file = Path::from(format!("deletion_vector_{uuid}.bin"));
    store
        .put(&file, PutPayload::from(bytes))
        .await
        .map_err(|e| MedallionError::delta("write a deletion vector", name)(e.into()))?;
    Ok((z85::encode(uuid.as_bytes()), written))
}

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
    let mut wanted: HashMap<&str, &Marked> = marked.iter().map(|m| (m.path.as_str(), m)).collect();
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

    /// A deletion vector serialised as the protocol wants: checked against an
    /// independently written vector (rows 3, 4, 7, 11, 18, 29; Z85 of magic + the
    /// portable 64-bit roaring bitmap), docs/research/deletion-vectors/FINDINGS.md.
    #[test]
    fn vectors_serialise_in_the_portable_format() {
        let mut bytes = Vec::new();
        let mut writer = StreamingDeletionVectorWriter::new(&mut bytes);
        let mut dv = KernelDeletionVector::new();
        dv.add_deleted_row_indexes([3u64, 4, 7, 11, 18, 29]);
        let written = writer.write_deletion_vector(dv).unwrap();
        writer.finalize().unwrap();
        assert_eq!(
            (written.offset, written.size_in_bytes, written.cardinality),
            (1, 44, 6)
        );
        let body = &bytes[5..5 + 44];
        assert_eq!(
            z85::encode(body),
            "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L"
        );
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
