//! Keys that repeat within a batch, found while its accepted rows are staged, so that a
//! row superseded by a later row of its key (the last row of a key wins) is dropped
//! when the staged rows are read back, before anything is written: the slices of the
//! batch then never share a key, however its rows are ordered (a corrections file in
//! the same batch as the readings it corrects rewrites nothing).
//!
//! Each staged row's key is hashed into a blocked Bloom filter sized from the batch's
//! bytes. A row whose hash the filter already holds (a repeat, or a false positive) is
//! noted exactly, by key in Arrow's row format, with its position in the batch. Every
//! row of a key after its first is noted, so a noted key keeps the position of its last
//! row. Reading back, a row whose key hash was noted is dropped unless it is that row.
//!
//! Memory and time stay bounded: a batch too large for a filter of [`MAX_BITS`] (about
//! 22 M rows, 1.4 GB of text: past that the filter would no longer fit in a CPU cache,
//! nor keep its false positives few) is not tracked; tracking stops past [`MAX_NOTED`]
//! noted keys (a batch that repeats most of its keys) or twice the rows the filter was
//! sized for (a gzip file that held far more than its size suggested). An untracked
//! batch's slices are deduplicated each on its own and checked against one another.

use std::collections::{HashMap, HashSet};

use deltalake::arrow::array::{ArrayRef, BooleanArray, UInt32Array};
use deltalake::arrow::compute::{filter_record_batch, take};
use deltalake::arrow::datatypes::Schema;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::hash_utils::{RandomState, create_hashes};

use crate::error::{MedallionError, Result};

/// Keys noted at most; past this, tracking stops (about 100 bytes each).
pub const MAX_NOTED: usize = 1 << 20;

/// [`MAX_NOTED`], or `MEDALLION_REPEATS_MAX_NOTED` (tests only: 0 stops tracking at
/// the first repeat, so the slices' own checks are exercised).
fn max_noted() -> usize {
    std::env::var("MEDALLION_REPEATS_MAX_NOTED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_NOTED)
}

/// Filter bits per expected row (about 1 % false positives).
const BITS_PER_ROW: u64 = 12;

/// Expected rows per byte of raw file: one per 64 bytes errs towards a larger filter.
const BYTES_PER_ROW: u64 = 64;

/// Bounds of the filter's size: 8 KiB to 32 MiB.
const MIN_BITS: u64 = 1 << 16;
pub const MAX_BITS: u64 = 1 << 28;

fn hasher() -> RandomState {
    RandomState::with_seed(0x6d65_6461_6c6c_696f)
}

/// Which rows of a batch repeat a key, gathered while the rows are staged.
pub struct RepeatTracker {
    keys: Keys,
    bloom: Bloom,
    noted: Noted,
    max_noted: usize,
    /// Rows the filter was sized for.
    capacity: u64,
    rows: u64,
    hashes: Vec<u64>,
}

/// The key columns and their row format.
struct Keys {
    columns: Vec<usize>,
    converter: RowConverter,
}

impl Keys {
    fn of(schema: &Schema, keys: &[String]) -> Result<Self> {
        let mut columns = Vec::with_capacity(keys.len());
        let mut fields = Vec::with_capacity(keys.len());
        for k in keys {
            let i = schema
                .index_of(k)
                .map_err(MedallionError::arrow("find a key column"))?;
            columns.push(i);
            fields.push(SortField::new(schema.field(i).data_type().clone()));
        }
        let converter = RowConverter::new(fields).map_err(MedallionError::arrow("key rows"))?;
        Ok(Keys { columns, converter })
    }

    /// The key columns of `batch` and their hashes (into `hashes`).
    fn hash(&self, batch: &RecordBatch, hashes: &mut Vec<u64>) -> Result<Vec<ArrayRef>> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        hashes.clear();
        hashes.resize(batch.num_rows(), 0);
        create_hashes(&columns, &hasher(), hashes).map_err(MedallionError::sql("hash keys"))?;
        Ok(columns)
    }

    /// The keys of rows `at` of `columns`, in row format.
    fn rows_at(&self, columns: &[ArrayRef], at: &[u32]) -> Result<deltalake::arrow::row::Rows> {
        let at = UInt32Array::from(at.to_vec());
        let taken = columns
            .iter()
            .map(|c| take(c, &at, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(MedallionError::arrow("key rows"))?;
        self.converter
            .convert_columns(&taken)
            .map_err(MedallionError::arrow("key rows"))
    }
}

/// The keys noted, with the position of their last row, and their hashes.
#[derive(Default)]
struct Noted {
    last: HashMap<Box<[u8]>, u64>,
    hashes: HashSet<u64, RandomState>,
}

impl RepeatTracker {
    /// A tracker for rows of `schema` keyed by `keys`, from raw files of `bytes` bytes;
    /// `None` when they are too many to track.
    pub fn new(schema: &Schema, keys: &[String], bytes: u64) -> Result<Option<Self>> {
        let bits = (bytes / BYTES_PER_ROW).saturating_mul(BITS_PER_ROW);
        if bits > MAX_BITS {
            return Ok(None);
        }
        let bits = bits.max(MIN_BITS);
        Ok(Some(RepeatTracker {
            keys: Keys::of(schema, keys)?,
            bloom: Bloom::with_bits(bits),
            noted: Noted {
                last: HashMap::new(),
                hashes: HashSet::with_hasher(hasher()),
            },
            max_noted: max_noted(),
            capacity: bits / BITS_PER_ROW,
            rows: 0,
            hashes: Vec::new(),
        }))
    }

    /// Take in the next staged rows. `false`: too many keys were noted, or rows seen,
    /// and tracking stops.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<bool> {
        let columns = self.keys.hash(batch, &mut self.hashes)?;
        let seen: Vec<u32> = (0..self.hashes.len())
            .filter(|&i| self.bloom.insert(self.hashes[i]))
            .map(|i| i as u32)
            .collect();
        if !seen.is_empty() {
            let rows = self.keys.rows_at(&columns, &seen)?;
            for (row, &i) in rows.iter().zip(&seen) {
                let at = self.rows + i as u64;
                match self.noted.last.get_mut(row.as_ref()) {
                    Some(last) => *last = at,
                    None => {
                        self.noted.last.insert(row.as_ref().into(), at);
                    }
                }
                self.noted.hashes.insert(self.hashes[i as usize]);
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(self.noted.last.len() <= self.max_noted && self.rows <= 2 * self.capacity)
    }

    /// What reading back needs (the filter is dropped).
    pub fn finish(self) -> Repeats {
        Repeats {
            keys: self.keys,
            noted: self.noted,
        }
    }
}

/// The repeated keys of a staged batch, and where each one's last row is.
pub struct Repeats {
    keys: Keys,
    noted: Noted,
}

impl Repeats {
    /// Keys noted (repeated ones, and a few that only collided in the filter).
    #[cfg(test)]
    fn noted(&self) -> usize {
        self.noted.last.len()
    }

    /// `batch`, whose first row is at position `first` of the batch, without the rows
    /// that a later row of their key supersedes.
    pub fn drop_superseded(&self, batch: RecordBatch, first: u64) -> Result<RecordBatch> {
        if self.noted.last.is_empty() {
            return Ok(batch);
        }
        let mut hashes = Vec::new();
        let columns = self.keys.hash(&batch, &mut hashes)?;
        let noted: Vec<u32> = (0..hashes.len())
            .filter(|&i| self.noted.hashes.contains(&hashes[i]))
            .map(|i| i as u32)
            .collect();
        if noted.is_empty() {
            return Ok(batch);
        }
        let rows = self.keys.rows_at(&columns, &noted)?;
        let mut keep = vec![true; batch.num_rows()];
        for (row, &i) in rows.iter().zip(&noted) {
            // A key not noted came once (its hash only equals a noted key's).
            if let Some(&last) = self.noted.last.get(row.as_ref()) {
                keep[i as usize] = last == first + i as u64;
            }
        }
        if keep.iter().all(|&k| k) {
            return Ok(batch);
        }
        filter_record_batch(&batch, &BooleanArray::from(keep))
            .map_err(MedallionError::arrow("drop superseded rows"))
    }
}

/// A blocked Bloom filter: each hash sets [`PROBES`] bits in one 512-bit block (one
/// cache line), so an insert costs one memory access.
struct Bloom {
    blocks: Vec<[u64; 8]>,
}

const PROBES: u32 = 6;

impl Bloom {
    fn with_bits(bits: u64) -> Self {
        let n = bits.div_ceil(512).max(1) as usize;
        Bloom {
            blocks: vec![[0; 8]; n],
        }
    }

    /// Insert `hash`; whether it was (probably) there already.
    fn insert(&mut self, hash: u64) -> bool {
        let n = self.blocks.len() as u64;
        let block = &mut self.blocks[(((hash >> 32) * n) >> 32) as usize];
        // The low half, mixed again, picks the bits (9 bits each).
        let mut m = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        m ^= m >> 32;
        let mut present = true;
        for _ in 0..PROBES {
            let bit = (m & 511) as usize;
            m >>= 9;
            let (word, mask) = (bit >> 6, 1u64 << (bit & 63));
            present &= block[word] & mask != 0;
            block[word] |= mask;
        }
        present
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field};

    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("meter", DataType::Utf8, true),
            Field::new("hour", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    fn batch(rows: &[(Option<&str>, i64, i64)]) -> RecordBatch {
        let meters: StringArray = rows.iter().map(|r| r.0).collect();
        let hours = Int64Array::from_iter_values(rows.iter().map(|r| r.1));
        let values = Int64Array::from_iter_values(rows.iter().map(|r| r.2));
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(meters), Arc::new(hours), Arc::new(values)],
        )
        .unwrap()
    }

    fn values(b: &RecordBatch) -> Vec<i64> {
        let v = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        v.values().to_vec()
    }

    fn keys() -> Vec<String> {
        vec!["meter".into(), "hour".into()]
    }

    #[test]
    fn the_last_row_of_a_key_wins_across_batches() {
        let mut t = RepeatTracker::new(&schema(), &keys(), 1 << 20)
            .unwrap()
            .unwrap();
        let a = batch(&[(Some("m1"), 1, 10), (Some("m2"), 1, 11), (None, 1, 12)]);
        let b = batch(&[(Some("m1"), 1, 20), (Some("m3"), 1, 21), (None, 1, 22)]);
        let c = batch(&[(Some("m1"), 2, 30), (Some("m1"), 1, 31)]);
        for x in [&a, &b, &c] {
            assert!(t.observe(x).unwrap());
        }
        let r = t.finish();
        assert!(r.noted() >= 2, "m1@1 and null@1 repeat");
        assert_eq!(values(&r.drop_superseded(a, 0).unwrap()), vec![11]);
        assert_eq!(values(&r.drop_superseded(b, 3).unwrap()), vec![21, 22]);
        assert_eq!(values(&r.drop_superseded(c, 6).unwrap()), vec![30, 31]);
    }

    #[test]
    fn no_repeats_keeps_every_row_and_false_positives_are_harmless() {
        // A filter of one block: nearly every key collides in it, none repeats.
        let mut t = RepeatTracker::new(&schema(), &keys(), 0).unwrap().unwrap();
        t.bloom = Bloom::with_bits(512);
        let rows: Vec<(Option<&str>, i64, i64)> = (0..2000).map(|i| (Some("m"), i, i)).collect();
        let all = batch(&rows);
        assert!(t.observe(&all).unwrap());
        let r = t.finish();
        assert!(r.noted() > 100, "a saturated filter notes many keys");
        assert_eq!(r.drop_superseded(all, 0).unwrap().num_rows(), 2000);
    }

    #[test]
    fn tracking_stops_past_its_bound() {
        let mut t = RepeatTracker::new(&schema(), &keys(), 0).unwrap().unwrap();
        let rows: Vec<(Option<&str>, i64, i64)> = (0..10).map(|i| (Some("m"), i, i)).collect();
        let b = batch(&rows);
        assert!(t.observe(&b).unwrap());
        t.max_noted = 100;
        t.noted
            .last
            .extend((0..100u64).map(|i| (i.to_le_bytes().into(), i)));
        assert!(!t.observe(&b).unwrap(), "past its noted keys");
        let mut t = RepeatTracker::new(&schema(), &keys(), 0).unwrap().unwrap();
        t.capacity = 5;
        assert!(t.observe(&b).unwrap());
        assert!(!t.observe(&b.slice(0, 1)).unwrap(), "past twice its rows");
        let too_large = MAX_BITS / BITS_PER_ROW * BYTES_PER_ROW + BYTES_PER_ROW;
        assert!(
            RepeatTracker::new(&schema(), &keys(), too_large)
                .unwrap()
                .is_none()
        );
    }
}
