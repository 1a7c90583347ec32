//! A set of keys (one or more columns) that rows are split by: the rows whose key is
//! in the set, and the others. A rewrite looks up every row of the files it reads, and
//! nearly all of them are not in the set: each row's key is hashed column by column
//! (vectorised, DataFusion's hashing) and looked up by its hash first; only the rows
//! whose hash is a key's are compared exactly, in Arrow's row format.

use std::collections::HashSet;

use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use deltalake::arrow::buffer::BooleanBuffer;
use deltalake::arrow::compute::{cast, filter_record_batch, not, take};
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::hash_utils::{RandomState, create_hashes};

use crate::error::{MedallionError, Result};

/// The keys of some rows. Keys compare in Arrow's row format, where null equals null:
/// keys found by equality hold no null (silver), keys found with `IS NOT DISTINCT FROM`
/// may (gold groups).
pub struct KeySet {
    columns: Vec<String>,
    types: Vec<DataType>,
    converter: RowConverter,
    /// Keys in the row format.
    keys: HashSet<Vec<u8>, foldhash::fast::RandomState>,
    /// The keys' hashes ([`hashes`]).
    hashes: HashSet<u64, foldhash::fast::RandomState>,
}

impl KeySet {
    /// The keys of `rows`.
    pub fn new(columns: &[String], rows: &[RecordBatch]) -> Result<Self> {
        let err = || MedallionError::arrow("index the replaced keys");
        let Some(first) = rows.first() else {
            return Err(MedallionError::Internal("no rows to replace".into()));
        };
        let types = columns
            .iter()
            .map(|c| Ok(column(first, c)?.data_type().clone()))
            .collect::<Result<Vec<_>>>()?;
        let fields = types.iter().cloned().map(SortField::new).collect();
        let converter = RowConverter::new(fields).map_err(err())?;
        let mut set = KeySet {
            columns: columns.to_vec(),
            types,
            converter,
            keys: HashSet::default(),
            hashes: HashSet::default(),
        };
        for b in rows {
            let columns = set.key_columns(b)?;
            set.hashes.extend(hashes(&columns, b.num_rows())?);
            let converted = set.converter.convert_columns(&columns);
            let converted = converted.map_err(err())?;
            set.keys
                .extend(converted.iter().map(|row| row.as_ref().to_vec()));
        }
        Ok(set)
    }

    /// The key columns.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// `batch`'s key columns, cast to the set's types.
    fn key_columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let err = || MedallionError::arrow("compare keys");
        self.columns
            .iter()
            .zip(&self.types)
            .map(|(c, t)| {
                let a = column(batch, c)?;
                match a.data_type() == t {
                    true => Ok(a),
                    false => cast(&a, t).map_err(err()),
                }
            })
            .collect()
    }

    /// Which rows of `batch` have their key in the set (a null key only matches a null
    /// key the set holds).
    pub fn contains(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let err = || MedallionError::arrow("compare keys");
        let columns = self.key_columns(batch)?;
        let candidates: Vec<u32> = hashes(&columns, batch.num_rows())?
            .iter()
            .enumerate()
            .filter(|(_, h)| self.hashes.contains(h))
            .map(|(i, _)| i as u32)
            .collect();
        let mut found = vec![false; batch.num_rows()];
        if !candidates.is_empty() {
            let indices = UInt32Array::from(candidates);
            let taken = columns
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(err())?;
            let rows = self.converter.convert_columns(&taken).map_err(err())?;
            for (row, &i) in rows.iter().zip(indices.values()) {
                found[i as usize] = self.keys.contains(row.as_ref());
            }
        }
        Ok(BooleanArray::new(BooleanBuffer::from(found), None))
    }

    /// The rows of `batch` whose key is not in the set, and those whose key is (if any).
    pub fn split(&self, batch: &RecordBatch) -> Result<(RecordBatch, Option<RecordBatch>)> {
        let found = self.contains(batch)?;
        if found.true_count() == 0 {
            return Ok((batch.clone(), None));
        }
        let err = || MedallionError::arrow("drop replaced rows");
        let keep = not(&found).map_err(err())?;
        let kept = filter_record_batch(batch, &keep).map_err(err())?;
        let dropped = filter_record_batch(batch, &found).map_err(err())?;
        Ok((kept, Some(dropped)))
    }
}

/// Each row's hash of `columns` (`rows` rows): equal keys hash equally (a null key
/// column hashes the same whatever its slot holds).
fn hashes(columns: &[ArrayRef], rows: usize) -> Result<Vec<u64>> {
    let mut hashes = vec![0; rows];
    create_hashes(columns, &RandomState::default(), &mut hashes)
        .map_err(MedallionError::sql("hash keys"))?;
    Ok(hashes)
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| MedallionError::Internal(format!("no key column \"{name}\" in the rows")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};

    fn batch(ids: &[Option<&str>], n: &[i64]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(Int64Array::from(n.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn drops_exactly_the_keys_in_the_set() {
        let keys = vec!["id".to_string(), "n".to_string()];
        let set = KeySet::new(&keys, &[batch(&[Some("a"), Some("b")], &[1, 2])]).unwrap();
        let scanned = batch(&[Some("a"), Some("a"), None, Some("b")], &[1, 2, 1, 2]);
        let (kept, dropped) = set.split(&scanned).unwrap();
        assert_eq!(dropped.unwrap().num_rows(), 2);
        let ids = kept
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let n = kept
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        // ("a", 2) differs in its second key column; a null key never matches.
        assert_eq!(kept.num_rows(), 2);
        assert_eq!((ids.value(0), n.value(0)), ("a", 2));
        assert!(ids.is_null(1));
    }

    #[test]
    fn compares_across_string_types() {
        let keys = vec!["id".to_string()];
        let set = KeySet::new(&keys, &[batch(&[Some("x")], &[0])]).unwrap();
        let scanned = batch(&[Some("x"), Some("y")], &[0, 0]);
        let views = cast(scanned.column(0), &DataType::Utf8View).unwrap();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
        ]);
        let scanned =
            RecordBatch::try_new(Arc::new(schema), vec![views, scanned.column(1).clone()]).unwrap();
        assert_eq!(set.split(&scanned).unwrap().0.num_rows(), 1);
    }

    #[test]
    fn a_null_key_matches_a_null_key_whatever_its_slot_holds() {
        use deltalake::arrow::buffer::NullBuffer;
        let keys = vec!["id".to_string(), "n".to_string()];
        let with_slot = |slot: i64| {
            let ns = Int64Array::new(
                vec![slot, 5].into(),
                Some(NullBuffer::from(vec![false, true])),
            );
            let schema = Schema::new(vec![
                Field::new("id", DataType::Utf8, true),
                Field::new("n", DataType::Int64, true),
            ]);
            let ids = StringArray::from(vec![Some("a"), Some("a")]);
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), Arc::new(ns)]).unwrap()
        };
        let set = KeySet::new(&keys, &[with_slot(1).slice(0, 1)]).unwrap();
        let found = set.contains(&with_slot(7)).unwrap();
        assert_eq!(found.iter().collect::<Vec<_>>(), [Some(true), Some(false)]);
    }

    #[test]
    fn a_null_key_never_matches() {
        let keys = vec!["id".to_string(), "n".to_string()];
        let set = KeySet::new(&keys, &[batch(&[Some("a"), Some("b")], &[5, 7])]).unwrap();
        let scanned = batch(&[Some("a"), Some("b"), Some("a"), Some("b")], &[4, 7, 5, 8]);
        let found = set.contains(&scanned).unwrap();
        assert_eq!(
            found.iter().collect::<Vec<_>>(),
            [Some(false), Some(true), Some(true), Some(false)]
        );
        let outside = batch(&[Some("a"), Some("b")], &[1, 9]);
        assert!(set.split(&outside).unwrap().1.is_none());
        let ns = Int64Array::from(vec![None, Some(5)]);
        let with_null = RecordBatch::try_new(
            outside.schema(),
            vec![Arc::new(StringArray::from(vec!["a", "a"])), Arc::new(ns)],
        )
        .unwrap();
        let found = set.contains(&with_null).unwrap();
        assert_eq!(found.iter().collect::<Vec<_>>(), [Some(false), Some(true)]);
    }
}
