//! Within one batch, the last row per natural key wins: rows come in the order the
//! batch applies them (its files in name order, each file's lines in order), so a later
//! line corrects an earlier one, and a later file an earlier file. With a sequence
//! column, the row with the highest sequence value wins, the last of equal ones. Keys are compared in
//! Arrow's row format, so any key column types work; a batch without repeated keys
//! comes back as it was, in one batch.

use std::collections::HashMap;

use deltalake::arrow::array::{ArrayRef, UInt32Array};
use deltalake::arrow::compute::{concat_batches, take_record_batch};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::row::{OwnedRow, RowConverter, Rows, SortField};

use crate::error::{MedallionError, Result};

/// Keep, per value of the `keys` columns, the row that comes last, in one batch: the
/// slice then makes a join's or MERGE's source of one batch, which DataFusion builds its
/// hash table from (with several, the corrections MERGE took far more time and memory;
/// see BENCHMARKS.md).
pub fn last_line_per_key(
    schema: &SchemaRef,
    keys: &[String],
    sequence_by: Option<&str>,
    batches: &[RecordBatch],
) -> Result<Vec<RecordBatch>> {
    one_batch(
        schema,
        last_line_per_key_as_read(schema, keys, sequence_by, batches)?,
    )
}

/// `rows` as one batch (none when they are empty).
pub fn one_batch(schema: &SchemaRef, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let rows: Vec<RecordBatch> = rows.into_iter().filter(|b| b.num_rows() > 0).collect();
    if rows.len() < 2 {
        return Ok(rows);
    }
    let one =
        concat_batches(schema, &rows).map_err(MedallionError::arrow("make a slice one batch"))?;
    Ok(vec![one])
}

/// [`last_line_per_key`], but when no key repeats the batches come back as they were
/// (no copy: a slice to be appended need not be one batch).
pub fn last_line_per_key_as_read(
    schema: &SchemaRef,
    keys: &[String],
    sequence_by: Option<&str>,
    batches: &[RecordBatch],
) -> Result<Vec<RecordBatch>> {
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    let Some(keep) = winners(keys, sequence_by, &batches)? else {
        return Ok(batches.into_iter().cloned().collect());
    };
    let err = || MedallionError::arrow("dedupe accepted rows");
    let all = concat_batches(schema, batches).map_err(err())?;
    let kept = take_record_batch(&all, &UInt32Array::from(keep)).map_err(err())?;
    Ok(vec![kept])
}

/// The positions (over all `batches`, in order) of the rows that win their key, or
/// `None` when every key comes once.
fn winners(
    keys: &[String],
    sequence_by: Option<&str>,
    batches: &[&RecordBatch],
) -> Result<Option<Vec<u32>>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let converter = converter_of(first, keys)?;
    let rows = convert(&converter, batches, keys)?;
    let sequence = match sequence_by {
        Some(column) => {
            let column = [column.to_string()];
            let converter = converter_of(first, &column)?;
            Some(convert(&converter, batches, &column)?)
        }
        None => None,
    };
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    // Per key: the winning row's position (and its sequence value).
    let mut latest: HashMap<_, (u32, Option<OwnedRow>), _> =
        HashMap::with_capacity_and_hasher(total, foldhash::fast::RandomState::default());
    let mut position = 0u32;
    for (b, r) in rows.iter().enumerate() {
        for (i, row) in r.iter().enumerate() {
            let seq = sequence.as_ref().map(|s| s[b].row(i));
            match latest.entry(row) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((position, seq.map(|s| s.owned())));
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let newer = match (seq, &o.get().1) {
                        (Some(s), Some(kept)) => s >= kept.row(),
                        _ => true,
                    };
                    if newer {
                        o.insert((position, seq.map(|s| s.owned())));
                    }
                }
            }
            position += 1;
        }
    }
    if latest.len() == total {
        return Ok(None);
    }
    let mut keep: Vec<u32> = latest.into_values().map(|(p, _)| p).collect();
    keep.sort_unstable();
    Ok(Some(keep))
}

/// `rows` split into those whose `keys` are among `others`' keys and the rest (keys
/// compared in the row format, as the rewrite drops replaced rows).
pub fn split_by_keys(
    keys: &[String],
    rows: &[RecordBatch],
    others: &[RecordBatch],
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let rows = rows.iter().filter(|b| b.num_rows() > 0);
    let others: Vec<RecordBatch> = others
        .iter()
        .filter(|b| b.num_rows() > 0)
        .cloned()
        .collect();
    if others.is_empty() {
        return Ok((Vec::new(), rows.cloned().collect()));
    }
    let known = crate::storage::KeySet::new(keys, &others)?;
    let (mut matching, mut rest) = (Vec::new(), Vec::new());
    for b in rows {
        let (unmatched, matched) = known.split(b)?;
        rest.push(unmatched);
        matching.extend(matched);
    }
    let non_empty = |v: Vec<RecordBatch>| v.into_iter().filter(|b| b.num_rows() > 0).collect();
    Ok((non_empty(matching), non_empty(rest)))
}

/// A row converter for `columns` of batches shaped like `first`.
fn converter_of(first: &RecordBatch, columns: &[String]) -> Result<RowConverter> {
    let fields = key_columns(first, columns)?
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    RowConverter::new(fields).map_err(MedallionError::arrow("dedupe accepted rows"))
}

/// `columns` of every batch in the row format (which compares as the values sort).
fn convert(
    converter: &RowConverter,
    batches: &[&RecordBatch],
    columns: &[String],
) -> Result<Vec<Rows>> {
    batches
        .iter()
        .map(|b| {
            converter
                .convert_columns(&key_columns(b, columns)?)
                .map_err(MedallionError::arrow("dedupe accepted rows"))
        })
        .collect()
}

fn key_columns(batch: &RecordBatch, keys: &[String]) -> Result<Vec<ArrayRef>> {
    keys.iter()
        .map(|k| {
            batch
                .column_by_name(k)
                .cloned()
                .ok_or_else(|| MedallionError::Internal(format!("silver has no key column {k}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::schema::SOURCE_LINE;
    use deltalake::arrow::array::AsArray;
    use deltalake::arrow::datatypes::Int64Type;

    fn batch(schema: &SchemaRef, keys: &[(&str, i64)], lines: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(
                    keys.iter().map(|k| k.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    keys.iter().map(|k| k.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(lines.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn last_line_wins_across_batches_and_unique_rows_pass_through() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("c", DataType::Utf8, false),
            Field::new("t", DataType::Int64, false),
            Field::new(SOURCE_LINE, DataType::Int64, false),
        ]));
        let keys = vec!["c".to_string(), "t".to_string()];
        let a = batch(&schema, &[("a", 1), ("b", 1), ("a", 2)], &[2, 3, 4]);
        let b = batch(&schema, &[("a", 1), ("c", 1)], &[5, 6]);
        let out = last_line_per_key(&schema, &keys, None, &[a.clone(), b]).unwrap();
        assert_eq!(out.len(), 1);
        let lines: Vec<i64> = out[0]
            .column(2)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(
            lines,
            vec![3, 4, 5, 6],
            "(a,1) keeps line 5, order by position"
        );
        let same = last_line_per_key(&schema, &keys, None, std::slice::from_ref(&a)).unwrap();
        assert_eq!(same, vec![a]);
        assert!(
            last_line_per_key(&schema, &keys, None, &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn with_a_sequence_the_highest_value_wins_and_the_last_of_equal_ones() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("c", DataType::Utf8, false),
            Field::new("t", DataType::Int64, false),
            Field::new(SOURCE_LINE, DataType::Int64, false),
        ]));
        let keys = vec!["c".to_string()];
        // Key a: t 5 (line 2), 3 (line 3, older: loses), 5 (line 4, equal: wins).
        let a = batch(
            &schema,
            &[("a", 5), ("a", 3), ("a", 5), ("b", 1)],
            &[2, 3, 4, 5],
        );
        let out = last_line_per_key(&schema, &keys, Some("t"), &[a]).unwrap();
        let lines: Vec<i64> = out[0]
            .column(2)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(lines, vec![4, 5]);
    }

    #[test]
    fn rows_split_by_the_keys_they_replace() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("c", DataType::Utf8, false),
            Field::new("t", DataType::Int64, false),
            Field::new(SOURCE_LINE, DataType::Int64, false),
        ]));
        let keys = vec!["c".to_string(), "t".to_string()];
        let rows = batch(&schema, &[("a", 1), ("b", 1), ("a", 2)], &[2, 3, 4]);
        let silver = batch(&schema, &[("a", 2), ("b", 2)], &[9, 9]);
        let (replacing, new) =
            split_by_keys(&keys, std::slice::from_ref(&rows), &[silver]).unwrap();
        let lines = |b: &[RecordBatch]| -> Vec<i64> {
            b.iter()
                .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
                .collect()
        };
        assert_eq!(lines(&replacing), vec![4]);
        assert_eq!(lines(&new), vec![2, 3]);
        let (replacing, new) = split_by_keys(&keys, &[rows], &[]).unwrap();
        assert!(replacing.is_empty());
        assert_eq!(lines(&new), vec![2, 3, 4]);
    }
}
