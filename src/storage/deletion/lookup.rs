//! Finding the rows an upsert replaces in a table with deletion vectors by the marking
//! scan itself: the candidate files are those whose statistics admit the new rows' key
//! bounds, and one scan of each finds the replaced rows, whole, with their positions
//! ([`FileMarks`]). The commit then only builds the vectors ([`from_marks`]); a lookup
//! by join and a second scan of the same files at commit time are saved. That each file
//! still carries the vector its rows were found with is checked by the commit
//! ([`super::actions`]).

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::common::pruning::PrunableStatistics;
use deltalake::datafusion::common::{Column, ToDFSchema};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::logical_expr::col;
use deltalake::datafusion::logical_expr::utils::conjunction;
use deltalake::datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use roaring::RoaringTreemap;

use super::{Marked, Target, same_vector, scan};
use crate::error::{MedallionError, Result};
use crate::storage::keyset::KeySet;
use crate::storage::rewrite::Dropping;

/// The rows to mark deleted in one data file, found on the table's current version.
#[derive(Debug, Clone)]
pub struct FileMarks {
    /// The file's entry and vector when the rows were found (the vector must be the
    /// same at commit time).
    target: Target,
    /// The positions that vector deletes.
    deleted: RoaringTreemap,
    /// The positions of the rows found (none of them in `deleted`).
    positions: Vec<u64>,
}

/// What [`lookup`] found: the rows (in the returned columns), the data files holding
/// them (named like a scan's file column) and the positions to mark in each.
#[derive(Debug, Default)]
pub struct Lookup {
    pub rows: Vec<RecordBatch>,
    pub files: Vec<String>,
    pub marks: Vec<FileMarks>,
}

/// The rows of `table` whose `keys` are among `rows`' keys (unique in `rows`), in the
/// `returned` columns, with their files and positions.
pub async fn lookup(
    table: &DeltaTable,
    name: &str,
    keys: &[String],
    rows: &[RecordBatch],
    returned: &[String],
) -> Result<Lookup> {
    let candidates = candidates(table, name, keys, rows).await?;
    let dropping = Arc::new(Dropping {
        keys: KeySet::new(keys, rows)?,
        returned: Some(returned.to_vec()),
    });
    let found = scan::find_all(table, name, &candidates, &dropping).await?;
    let root = crate::storage::rewrite::table_root(table);
    let mut out = Lookup::default();
    for (target, found) in candidates.into_iter().zip(found) {
        if found.positions.is_empty() {
            continue;
        }
        let url = crate::storage::rewrite::file_url(&root, &target.add.path, name)?;
        out.files.push(url.to_string());
        out.rows.extend(found.rows);
        out.marks.push(FileMarks {
            target,
            deleted: found.old,
            positions: found.positions,
        });
    }
    out.files.sort();
    Ok(out)
}

/// The data files whose statistics admit `rows`' key bounds (a file with deleted rows
/// by its bounds from before: still bounds of the rows it has left).
async fn candidates(
    table: &DeltaTable,
    name: &str,
    keys: &[String],
    rows: &[RecordBatch],
) -> Result<Vec<Target>> {
    let err = || MedallionError::sql(format!("{name}: data files holding the keys"));
    let schema = crate::storage::arrow_schema(table, name)?;
    let ctx = crate::storage::session();
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let staged = MemTable::try_new(first.schema(), vec![rows.to_vec()]).map_err(err())?;
    let batch = ctx.read_table(Arc::new(staged)).map_err(err())?;
    let bounds = crate::storage::key_bounds(&batch, keys).await?;
    let predicate = conjunction(
        bounds
            .iter()
            .map(|b| b.admits(col(Column::from_name(&b.key)))),
    );
    let snapshot = table
        .snapshot()
        .map_err(MedallionError::delta("find replaced rows", name))?;
    let files: Vec<_> = snapshot.log_data().iter().collect();
    let keep = match predicate {
        None => vec![true; files.len()],
        Some(predicate) => {
            let df_schema = schema.clone().to_dfschema().map_err(err())?;
            let physical = ctx
                .create_physical_expr(predicate, &df_schema)
                .map_err(err())?;
            let pruning = PruningPredicateBuilder::new()
                .with_file_schema(schema.clone())
                .try_build(physical)
                .map_err(err())?;
            let stats = files
                .iter()
                .map(|f| Arc::new(super::provider::statistics(f, 0, &schema)))
                .collect();
            pruning
                .prune(&PrunableStatistics::new(stats, schema.clone()))
                .map_err(err())?
        }
    };
    Ok(files
        .iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(f, _)| {
            #[allow(deprecated)] // the full add (tags, row ids); its successor is crate-private
            let add = f.add_action();
            Target {
                add,
                old: f.deletion_vector_descriptor(),
            }
        })
        .collect())
}

/// The new entries of the files `marks` name, merged per file (a round's slices may
/// mark rows of the same file, all found on the same version).
pub(crate) fn from_marks(name: &str, marks: &[FileMarks]) -> Result<Vec<Marked>> {
    let mut by_path: HashMap<&str, (&FileMarks, Vec<u64>)> = HashMap::new();
    for m in marks {
        let path = m.target.add.path.as_str();
        let entry = by_path.entry(path).or_insert((m, Vec::new()));
        if !same_vector(&entry.0.target.old, &m.target.old) {
            return Err(MedallionError::Internal(format!(
                "{name}: data file {path} was looked up at two versions"
            )));
        }
        entry.1.extend(&m.positions);
    }
    by_path
        .into_values()
        .map(|(m, positions)| {
            let found = scan::Found {
                old: m.deleted.clone(),
                positions,
                rows: Vec::new(),
            };
            super::new_entry(name, m.target.clone(), &found)
        })
        .collect()
}
