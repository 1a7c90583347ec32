//! One file's rows, held until the file has been read to its end (in a batch of many
//! files, so that a file that fails drops out alone, with nothing of it written).
//!
//! Held rows stay in memory up to [`HOLD_BYTES`] per stream (bronze, rejected,
//! accepted); past that, a stream spills to a local temporary Arrow IPC file and is
//! read back, in order, when the file is handed to the writers. So memory stays
//! bounded even for a small gzip file that decompresses to far more than its size
//! suggested when the batch was assembled.

use deltalake::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::zones::silver::{StagedRows, Staging};

/// Memory one held stream may take before it spills to disk.
pub const HOLD_BYTES: usize = 64 << 20;

/// Rows per batch read back from a spilled stream.
const READ_BACK_ROWS: u64 = 64 * 1024;

/// A chunk's rows, by destination.
#[derive(Default)]
pub struct Rows {
    pub bronze: Option<RecordBatch>,
    pub rejected: Option<RecordBatch>,
    pub accepted: Option<RecordBatch>,
}

/// A file's rows so far.
#[derive(Default)]
pub struct Held {
    pub bronze: Stream,
    pub rejected: Stream,
    pub accepted: Stream,
}

impl Held {
    pub fn push(&mut self, rows: Rows) -> Result<()> {
        self.bronze.push(rows.bronze)?;
        self.rejected.push(rows.rejected)?;
        self.accepted.push(rows.accepted)
    }
}

/// Batches of one schema, in memory until they outgrow [`HOLD_BYTES`], then on disk.
#[derive(Default)]
pub struct Stream {
    batches: Vec<RecordBatch>,
    bytes: usize,
    spill: Option<Staging>,
}

impl Stream {
    fn push(&mut self, batch: Option<RecordBatch>) -> Result<()> {
        let Some(batch) = batch.filter(|b| b.num_rows() > 0) else {
            return Ok(());
        };
        if let Some(spill) = self.spill.as_mut() {
            return spill.write(&batch);
        }
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        if self.bytes > HOLD_BYTES {
            let mut spill = Staging::new(&self.batches[0].schema())?;
            for b in self.batches.drain(..) {
                spill.write(&b)?;
            }
            self.bytes = 0;
            self.spill = Some(spill);
        }
        Ok(())
    }

    /// Whether the stream went to disk.
    #[cfg(test)]
    pub fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// The held batches, in the order they came.
    pub fn drain(self) -> Result<Drained> {
        Ok(match self.spill {
            Some(spill) => Drained::Spilled(Box::new(spill.finish()?)),
            None => Drained::Memory(self.batches.into_iter()),
        })
    }
}

/// Held batches being handed on.
pub enum Drained {
    Memory(std::vec::IntoIter<RecordBatch>),
    Spilled(Box<StagedRows>),
}

impl Drained {
    /// The next batches (one or a few), `None` when done.
    pub fn next_batches(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        match self {
            Drained::Memory(it) => Ok(it.next().map(|b| vec![b])),
            Drained::Spilled(rows) => Ok(rows.next_slice(READ_BACK_ROWS)?.map(|(b, _)| b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: usize, tag: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
        let text = "x".repeat(1024);
        let values: Vec<String> = (0..rows).map(|i| format!("{tag}:{i}:{text}")).collect();
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values))]).unwrap()
    }

    fn read_all(stream: Stream) -> Vec<String> {
        let mut out = Vec::new();
        let mut d = stream.drain().unwrap();
        while let Some(batches) = d.next_batches().unwrap() {
            for b in batches {
                let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                out.extend(
                    (0..a.len())
                        .map(|i| a.value(i).split(':').take(2).collect::<Vec<_>>().join(":")),
                );
            }
        }
        out
    }

    #[test]
    fn a_stream_spills_past_its_bound_and_keeps_its_order() {
        let mut small = Stream::default();
        small.push(Some(batch(10, 0))).unwrap();
        small.push(None).unwrap();
        small.push(Some(batch(0, 9))).unwrap();
        assert!(!small.spilled());
        assert_eq!(read_all(small).len(), 10);

        // 1,000 rows of about 1 KiB per batch: the bound is passed after about 64 of them.
        let mut big = Stream::default();
        let n = 80;
        for tag in 0..n {
            big.push(Some(batch(1000, tag))).unwrap();
        }
        assert!(big.spilled());
        let rows = read_all(big);
        let expected: Vec<String> = (0..n)
            .flat_map(|tag| (0..1000).map(move |i| format!("{tag}:{i}")))
            .collect();
        assert_eq!(rows, expected, "every row once, in the order it came");
    }
}
