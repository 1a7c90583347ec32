//! The slices of a batch that replace no row of silver as it was before the batch (all
//! of them, when silver was empty: a source's first load) are appended by one writer
//! and committed once. They may still repeat a key of the batch's own earlier slices,
//! which are not committed yet: each slice is checked against those by its key bounds
//! (every key column's [min, max]) against every earlier slice's, and, where the bounds
//! meet only those of the latest slices, whose keys are kept (a file in key or time
//! order: adjacent slices share a boundary value, or an hour spans several slices),
//! key by key against those slices' keys. A slice that may share a
//! key with an earlier one is not written: the caller commits what was written and
//! upserts the rest of the batch the usual way, which then finds and replaces those
//! rows.

use std::collections::VecDeque;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, MutableArrayData, make_array};
use deltalake::arrow::compute::kernels::boolean::{and, or_kleene};
use deltalake::arrow::compute::kernels::cmp::{gt_eq, lt_eq};
use deltalake::arrow::compute::{concat, filter, is_null};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use deltalake::datafusion::logical_expr::Accumulator;

use crate::error::{MedallionError, Result};
use crate::storage::{AppendWriter, UpsertMetrics};
use crate::zones::Lineage;

/// One key column's values over a slice: `[lo, hi]` of its non-null values (none when
/// every value is null), and whether it has nulls (a null key equals a null key here,
/// as in the within-batch dedupe: the check errs towards handing a slice back). A
/// floating-point column is not bounded (NaN has no place in `[lo, hi]`).
#[derive(Debug, Clone)]
struct ColumnBounds {
    range: Option<(ScalarValue, ScalarValue)>,
    nulls: bool,
    unbounded: bool,
}

impl ColumnBounds {
    fn of(values: &ArrayRef) -> Result<Self> {
        if values.data_type().is_floating() {
            return Ok(ColumnBounds {
                range: None,
                nulls: true,
                unbounded: true,
            });
        }
        let err = || MedallionError::sql("key bounds of a silver slice");
        let mut lo = MinAccumulator::try_new(values.data_type()).map_err(err())?;
        let mut hi = MaxAccumulator::try_new(values.data_type()).map_err(err())?;
        lo.update_batch(std::slice::from_ref(values))
            .map_err(err())?;
        hi.update_batch(std::slice::from_ref(values))
            .map_err(err())?;
        let (lo, hi) = (lo.evaluate().map_err(err())?, hi.evaluate().map_err(err())?);
        Ok(ColumnBounds {
            range: (!lo.is_null() && !hi.is_null()).then_some((lo, hi)),
            nulls: values.null_count() > 0,
            unbounded: false,
        })
    }

    /// Some value could be in both.
    fn meets(&self, other: &ColumnBounds) -> bool {
        use std::cmp::Ordering::Greater;
        let ranges = match (&self.range, &other.range) {
            (Some((lo1, hi1)), Some((lo2, hi2))) => {
                lo1.partial_cmp(hi2) != Some(Greater) && lo2.partial_cmp(hi1) != Some(Greater)
            }
            _ => false,
        };
        self.unbounded || other.unbounded || ranges || (self.nulls && other.nulls)
    }

    /// Which of `values` lie within these bounds (nulls only when these have nulls).
    fn admits(&self, values: &ArrayRef) -> Result<BooleanArray> {
        let err = || MedallionError::arrow("key bounds of a silver slice");
        if self.unbounded {
            return Ok(BooleanArray::from(vec![true; values.len()]));
        }
        let within = match &self.range {
            Some((lo, hi)) => {
                let lo = lo
                    .to_scalar()
                    .map_err(MedallionError::sql("key bounds of a silver slice"))?;
                let hi = hi
                    .to_scalar()
                    .map_err(MedallionError::sql("key bounds of a silver slice"))?;
                and(
                    &gt_eq(values, &lo).map_err(err())?,
                    &lt_eq(values, &hi).map_err(err())?,
                )
                .map_err(err())?
            }
            None => BooleanArray::from(vec![false; values.len()]),
        };
        if self.nulls {
            or_kleene(&within, &is_null(values).map_err(err())?).map_err(err())
        } else {
            Ok(within)
        }
    }
}

/// A slice's key columns and their bounds.
struct SliceKeys {
    columns: Vec<ArrayRef>,
    bounds: Vec<ColumnBounds>,
}

impl SliceKeys {
    /// The key columns of a slice's batches, one array per column in buffers of its
    /// own: batches read back from the staging file share one buffer among all their
    /// columns, which kept keys must not hold on to.
    fn of(batches: &[&RecordBatch], keys: &[String]) -> Result<Self> {
        let columns = keys
            .iter()
            .map(|k| {
                let parts = batches
                    .iter()
                    .map(|b| {
                        b.column_by_name(k).map(|c| c.as_ref()).ok_or_else(|| {
                            MedallionError::Internal(format!("silver has no key column {k}"))
                        })
                    })
                    .collect::<Result<Vec<&dyn Array>>>()?;
                let err = MedallionError::arrow("keep the keys of a silver slice");
                match parts.as_slice() {
                    [one] => {
                        let data = one.to_data();
                        let mut copy = MutableArrayData::new(vec![&data], false, one.len());
                        copy.try_extend(0, 0, one.len()).map_err(err)?;
                        Ok(make_array(copy.freeze()))
                    }
                    _ => concat(&parts).map_err(err),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let bounds = columns
            .iter()
            .map(ColumnBounds::of)
            .collect::<Result<_>>()?;
        Ok(SliceKeys { columns, bounds })
    }

    fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.len())
    }

    fn meets(&self, other: &[ColumnBounds]) -> bool {
        self.bounds.iter().zip(other).all(|(a, b)| a.meets(b))
    }

    /// The key columns of the rows within `bounds`.
    fn within(&self, bounds: &[ColumnBounds]) -> Result<Vec<ArrayRef>> {
        let err = || MedallionError::arrow("key bounds of a silver slice");
        let mut mask: Option<BooleanArray> = None;
        for (c, b) in self.columns.iter().zip(bounds) {
            let m = b.admits(c)?;
            mask = Some(match mask {
                Some(prev) => and(&prev, &m).map_err(err())?,
                None => m,
            });
        }
        let Some(mask) = mask else {
            return Ok(self.columns.clone());
        };
        self.columns
            .iter()
            .map(|c| filter(c, &mask).map_err(err()))
            .collect()
    }

    /// Some key is in both slices.
    fn shares_a_key(&self, earlier: &SliceKeys) -> Result<bool> {
        let (mine, theirs) = (self.within(&earlier.bounds)?, earlier.within(&self.bounds)?);
        if mine.first().is_none_or(|c| c.is_empty()) || theirs.first().is_none_or(|c| c.is_empty())
        {
            return Ok(false);
        }
        let err = || MedallionError::arrow("compare the keys of silver slices");
        let fields = mine
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).map_err(err())?;
        let theirs = converter.convert_columns(&theirs).map_err(err())?;
        let mine = converter.convert_columns(&mine).map_err(err())?;
        let seen: std::collections::HashSet<_> = theirs.iter().collect();
        Ok(mine.iter().any(|r| seen.contains(&r)))
    }
}

/// Key rows of the latest slices kept for the key-by-key comparison; older slices keep
/// only their bounds. About 1.5 M keys (five or six slices of the default size, which
/// may exceed `batch_rows` by up to a staged chunk): a file in time order with more
/// readings per hour than that has slices whose hour meets slices whose keys were
/// dropped, and the rest of its batch is upserted slice by slice.
const KEYS_KEPT: usize = 3 << 19;

/// The open append of a batch's slices that replace no silver row.
pub struct BatchAppend {
    writer: AppendWriter,
    keys: Vec<String>,
    /// Bounds of the slices written whose keys are no longer kept.
    written: Vec<Vec<ColumnBounds>>,
    /// The latest slices written, with their keys (at most [`KEYS_KEPT`] rows, or one).
    recent: VecDeque<SliceKeys>,
    /// The slices are known to share no key: nothing to check.
    unique: bool,
}

impl BatchAppend {
    pub fn new(silver: &DeltaTable, name: &str, keys: &[String]) -> Result<Self> {
        Ok(BatchAppend {
            writer: AppendWriter::new(silver, name)?,
            keys: keys.to_vec(),
            written: Vec::new(),
            recent: VecDeque::new(),
            unique: false,
        })
    }

    /// Slices known to share no key (the batch's repeats were dropped when its staged
    /// rows were read back) are written unchecked.
    pub fn with_unique_keys(mut self, unique: bool) -> Self {
        self.unique = unique;
        self
    }

    /// Append a deduplicated slice, unless some key of it may be in an earlier slice
    /// (then nothing is written): whether it was written.
    pub async fn write(&mut self, rows: &[RecordBatch]) -> Result<bool> {
        let rows: Vec<&RecordBatch> = rows.iter().filter(|b| b.num_rows() > 0).collect();
        if rows.is_empty() {
            return Ok(true);
        }
        let keys = match self.unique {
            true => None,
            false => {
                let keys = SliceKeys::of(&rows, &self.keys)?;
                if self.may_repeat(&keys)? {
                    return Ok(false);
                }
                Some(keys)
            }
        };
        for batch in rows {
            self.writer.write(batch.clone()).await?;
        }
        if let Some(keys) = keys {
            self.remember(keys);
        }
        Ok(true)
    }

    /// Whether a slice with `keys` may share a key with an earlier slice.
    fn may_repeat(&self, keys: &SliceKeys) -> Result<bool> {
        if self.written.iter().any(|b| keys.meets(b)) {
            return Ok(true);
        }
        for earlier in &self.recent {
            if keys.meets(&earlier.bounds) && keys.shares_a_key(earlier)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Keep a written slice's keys; the oldest kept give way to their bounds alone.
    fn remember(&mut self, keys: SliceKeys) {
        self.recent.push_back(keys);
        let mut kept: usize = self.recent.iter().map(SliceKeys::rows).sum();
        while kept > KEYS_KEPT && self.recent.len() > 1 {
            let Some(oldest) = self.recent.pop_front() else {
                break;
            };
            kept -= oldest.rows();
            self.written.push(oldest.bounds);
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.writer.rows()
    }

    /// Commit every slice written as one version (with `txn`, if given).
    pub async fn commit(
        self,
        silver: &mut DeltaTable,
        lineage: &Lineage,
        txn: Option<(&str, i64)>,
    ) -> Result<UpsertMetrics> {
        let n_rows = self.writer.rows();
        let committed = self
            .writer
            .commit(silver, super::commit_info(lineage, n_rows as usize), txn)
            .await?;
        Ok(UpsertMetrics::appended(committed, n_rows))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// A slice keyed by (meter, hour).
    fn slice(rows: &[(Option<&str>, i64)]) -> SliceKeys {
        let schema = Arc::new(Schema::new(vec![
            Field::new("meter", DataType::Utf8, true),
            Field::new("hour", DataType::Int64, false),
        ]));
        let meters: StringArray = rows.iter().map(|r| r.0).collect();
        let hours = Int64Array::from_iter_values(rows.iter().map(|r| r.1));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(meters), Arc::new(hours)]).unwrap();
        SliceKeys::of(&[&batch], &["meter".into(), "hour".into()]).unwrap()
    }

    #[test]
    fn disjoint_hours_never_meet() {
        let a = slice(&[(Some("m1"), 1), (Some("m9"), 2)]);
        let b = slice(&[(Some("m1"), 3), (Some("m9"), 4)]);
        assert!(!b.meets(&a.bounds));
        assert!(!b.shares_a_key(&a).unwrap());
    }

    #[test]
    fn a_shared_boundary_hour_is_checked_key_by_key() {
        let a = slice(&[(Some("m1"), 1), (Some("m5"), 2), (Some("m9"), 2)]);
        let b = slice(&[(Some("m6"), 2), (Some("m1"), 3)]);
        assert!(b.meets(&a.bounds));
        assert!(!b.shares_a_key(&a).unwrap());
        let c = slice(&[(Some("m5"), 2), (Some("m1"), 3)]);
        assert!(c.shares_a_key(&a).unwrap());
    }

    #[test]
    fn null_keys_meet_null_keys() {
        let a = slice(&[(None, 1), (Some("m1"), 1)]);
        let b = slice(&[(None, 1), (Some("m2"), 1)]);
        assert!(b.meets(&a.bounds));
        assert!(b.shares_a_key(&a).unwrap());
        let c = slice(&[(Some("m2"), 1)]);
        assert!(!c.shares_a_key(&a).unwrap());
    }

    #[test]
    fn float_keys_always_meet() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
        let batch = |v: Vec<f64>| {
            let a = deltalake::arrow::array::Float64Array::from(v);
            RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap()
        };
        let keys = ["x".to_string()];
        let a = SliceKeys::of(&[&batch(vec![1.0, f64::NAN])], &keys).unwrap();
        let b = SliceKeys::of(&[&batch(vec![5.0, f64::NAN])], &keys).unwrap();
        assert!(b.meets(&a.bounds));
        assert!(b.shares_a_key(&a).unwrap());
    }
}
