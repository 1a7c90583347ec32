//! medallion's input layer, kept free of Delta/Arrow dependencies so it can be fuzzed:
//! - [`records`]: a tolerant CSV record reader with bounded memory: every physical
//!   record comes out with its line number and the problems found, never an error;
//! - [`values`]: strict parsing of raw text into typed values (nothing rounded or guessed);
//! - [`checks`]: column rules (pattern, range, allowed values) on typed values.

pub mod checks;
pub mod packed;
pub mod records;
pub mod values;

pub use checks::ColumnCheck;
pub use packed::PackedRecord;
pub use records::{Dialect, Problem, Record, RecordReader};
pub use values::{ColumnType, Value, ValueParser, excerpt, parse_decimal};
