//! Upsert by key as a copy-on-write rewrite of the files holding the rows it replaces,
//! when those rows and files are already known (found by a scan with the file column,
//! see [`super::register_with_files`]).
//!
//! The files are read once, in shares spread over the cores ([`shares`]), and their
//! other rows are written to new files in their order: the table keeps its layout (a
//! feed's time order stays in its files' key statistics); the upserted rows follow in
//! files of their own. One commit removes the files read and adds the new ones,
//! recorded as a MERGE. A Delta MERGE of the same rows would scan the files again to
//! find the matches and write them in join order.
//!
//! Exactly the replaced rows are dropped: if the files hold more or fewer rows with
//! those keys (the table changed since they were found), nothing is committed. In a
//! table with deletion vectors the rows are marked deleted instead (see
//! [`super::deletion`]); each file must still carry the vector it had when its rows
//! were found.

use std::collections::HashSet;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::CommitProperties;

mod shares;

use super::keyset::KeySet;
use super::{AppendWriter, Committed, UpsertMetrics};
use crate::error::{MedallionError, Result};

/// What a rewrite replaces.
pub struct Replacement<'a> {
    /// Table name for messages.
    pub table_name: &'a str,
    /// Key columns (equal keys replace; a null key replaces a null key).
    pub keys: &'a [String],
    /// The table's rows being replaced, found on its current version.
    pub replaced: &'a [RecordBatch],
    /// The data files holding them, as the scan's file column named them.
    pub files: &'a [String],
    /// Application transaction (app id, batch sequence) committed with the rewrite.
    pub txn: Option<(&'a str, i64)>,
    /// The columns of the replaced rows returned, in this order (all of the table's
    /// when `None`): the others are let go as each file is read.
    pub returned: Option<&'a [String]>,
    /// In a table with deletion vectors: the rows' positions, found with them (then
    /// `replaced` holds them whole, in the returned columns, and no file is read).
    pub marks: Option<&'a [super::deletion::FileMarks]>,
}

/// The rows a rewrite drops: their keys, and the columns of them it returns.
pub(super) struct Dropping {
    pub(super) keys: KeySet,
    pub(super) returned: Option<Vec<String>>,
}

impl Dropping {
    /// `batch` as the rows it keeps, and the rows it drops in the returned columns.
    fn split(&self, batch: &RecordBatch) -> Result<(RecordBatch, Option<RecordBatch>)> {
        let (kept, dropped) = self.keys.split(batch)?;
        let (Some(dropped), Some(columns)) = (&dropped, &self.returned) else {
            return Ok((kept, dropped));
        };
        let err = || MedallionError::arrow("keep the replaced rows");
        let indices = columns
            .iter()
            .map(|c| dropped.schema().index_of(c))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err())?;
        Ok((kept, Some(dropped.project(&indices).map_err(err())?)))
    }
}

/// Replace `spec.replaced` by `rows` (one row per key; a key not replaced is inserted)
/// in one commit. Returns the table after the commit, its counts, and the replaced
/// rows whole, as the files held them (in the table's columns): `spec.replaced` need
/// only hold the keys (but with `spec.marks`, it holds the rows whole, in the returned
/// columns).
pub async fn replace_rows(
    table: DeltaTable,
    ctx: &SessionContext,
    spec: &Replacement<'_>,
    rows: &[RecordBatch],
    props: CommitProperties,
) -> Result<(DeltaTable, UpsertMetrics, Vec<RecordBatch>)> {
    let mut writer = AppendWriter::new(&table, spec.table_name)?;
    for b in rows {
        writer.write(b.clone()).await?;
    }
    replace_with(table, ctx, spec, writer, props).await
}

/// [`replace_rows`], the new rows already written by `writer` (a writer of this table,
/// not committed).
pub async fn replace_with(
    mut table: DeltaTable,
    ctx: &SessionContext,
    spec: &Replacement<'_>,
    mut writer: AppendWriter,
    props: CommitProperties,
) -> Result<(DeltaTable, UpsertMetrics, Vec<RecordBatch>)> {
    let name = spec.table_name;
    // The keys to drop, indexed only when files are scanned for them (found marks
    // already hold their rows' positions).
    let dropping = || {
        Ok::<_, MedallionError>(Arc::new(Dropping {
            keys: KeySet::new(spec.keys, spec.replaced)?,
            returned: spec.returned.map(<[String]>::to_vec),
        }))
    };
    let expected: usize = spec.replaced.iter().map(|b| b.num_rows()).sum();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(MedallionError::delta("register", name))?;
    let t = std::time::Instant::now();
    let n_rows = writer.rows();
    let marking = super::deletion::enabled(&table, name)?;
    let dropped = if let (true, Some(marks)) = (marking, spec.marks) {
        // The rows were found with their positions (one row per position).
        writer = writer.marking(super::deletion::from_marks(name, marks)?);
        spec.replaced.to_vec()
    } else if marking {
        let (marked, rows) = super::deletion::mark(&table, name, spec.files, &dropping()?).await?;
        writer = writer.marking(marked);
        rows
    } else {
        let dropped =
            shares::rewrite_files(&table, ctx, (name, spec.files), &dropping()?, &mut writer)
                .await?;
        writer = writer.removing(spec.files.to_vec());
        dropped
    };
    let kept = writer.rows() - n_rows;
    let n_dropped: usize = dropped.iter().map(|b| b.num_rows()).sum();
    if n_dropped != expected {
        return Err(MedallionError::Internal(format!(
            "{name}: {expected} row(s) to replace, but their files hold {n_dropped} \
             (the table changed meanwhile); the batch is retried by the next run"
        )));
    }
    tracing::debug!(
        table = name,
        files = spec.files.len(),
        kept,
        ms = t.elapsed().as_millis() as u64,
        "{}",
        if marking {
            "rows marked deleted"
        } else {
            "files rewritten"
        }
    );
    let committed = writer.commit(&mut table, props, spec.txn).await?;
    let metrics = match committed {
        Committed::Wrote(_) => UpsertMetrics {
            inserted: n_rows.saturating_sub(expected as u64),
            updated: expected as u64,
            deleted: 0,
            version: committed.version(),
        },
        _ => UpsertMetrics {
            version: committed.version(),
            ..UpsertMetrics::default()
        },
    };
    Ok((table, metrics, dropped))
}

/// The scan column naming each row's data file ([`super::register_with_files`]; not a
/// configurable name: those never start with two underscores).
pub const FILE_COLUMN: &str = "__medallion_file";

/// Rows whose last column is [`FILE_COLUMN`], as the rows without it (empty batches
/// left out) and the distinct files, sorted.
pub fn split_file_column(batches: Vec<RecordBatch>) -> Result<(Vec<RecordBatch>, Vec<String>)> {
    use deltalake::arrow::array::{Array, StringArray};
    use deltalake::arrow::datatypes::DataType;
    let err = || MedallionError::arrow("read the data files of rows");
    let mut files = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
        let last = b.num_columns() - 1;
        let names =
            deltalake::arrow::compute::cast(b.column(last), &DataType::Utf8).map_err(err())?;
        let names = names
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| MedallionError::Internal("file column is not text".into()))?;
        files.extend(names.iter().flatten().map(str::to_string));
        rows.push(b.project(&(0..last).collect::<Vec<_>>()).map_err(err())?);
    }
    Ok((rows, files.into_iter().collect()))
}

/// The remove actions of the data files `ids` (URLs, as a scan's file column names
/// them), all of which must still be in the table (a file another writer removed
/// meanwhile would make the rewrite drop or repeat rows).
pub(super) fn removes(table: &DeltaTable, table_name: &str, ids: &[String]) -> Result<Vec<Action>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let err = || MedallionError::delta("rewrite", table_name);
    let snapshot = table.snapshot().map_err(err())?;
    let mut wanted: HashSet<String> = log_paths(table, table_name, ids)?.into_iter().collect();
    let mut removes = Vec::new();
    for file in snapshot.log_data().iter() {
        if wanted.remove(file.path().as_ref()) {
            removes.push(Action::Remove(file.remove_action(true)));
        }
    }
    match wanted.len() {
        0 => Ok(removes),
        n => Err(MedallionError::Internal(format!(
            "{}: {n} data file(s) being rewritten are no longer in the table \
             (another writer changed it); the batch is retried by the next run",
            table_name
        ))),
    }
}

/// The paths in the log (decoded) of the data files a scan's file column names `ids`.
pub(super) fn log_paths(
    table: &DeltaTable,
    table_name: &str,
    ids: &[String],
) -> Result<Vec<String>> {
    let root = table_root(table);
    // The file column names a file by its URL (the log's raw path joined to the
    // root); the log's files are compared by their decoded paths.
    let paths: Vec<String> = ids.iter().filter_map(|id| log_path(&root, id)).collect();
    if paths.len() != ids.len() {
        return Err(MedallionError::Internal(format!(
            "{table_name}: a data file to rewrite is not under the table's root"
        )));
    }
    Ok(paths)
}

/// The table's root URL, ending in `/` (what its files' paths are relative to).
pub(super) fn table_root(table: &DeltaTable) -> url::Url {
    let mut root = table.table_url().clone();
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    root
}

/// The URL of the data file at (log) `path` in the table at `root`: how a scan's file
/// column names it.
pub(super) fn file_url(root: &url::Url, path: &str, table_name: &str) -> Result<url::Url> {
    url::Url::parse(path)
        .or_else(|_| root.join(path))
        .map_err(|e| MedallionError::Internal(format!("{table_name}: data file {path}: {e}")))
}

/// The path in the log (decoded) of the data file a scan's file column names `id`,
/// when it is under `root` (ending in `/`).
fn log_path(root: &url::Url, id: &str) -> Option<String> {
    let relative = id.strip_prefix(root.as_str())?;
    let decoded = percent_encoding::percent_decode_str(relative).decode_utf8();
    decoded.ok().map(|p| p.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_map_to_decoded_log_paths() {
        let root = url::Url::parse("s3://bucket/lake/silver/t/").unwrap();
        let id = "s3://bucket/lake/silver/t/day%3D1/part-0%20a.parquet";
        assert_eq!(
            log_path(&root, id).as_deref(),
            Some("day=1/part-0 a.parquet")
        );
        assert_eq!(log_path(&root, "s3://other/part.parquet"), None);
    }
}
