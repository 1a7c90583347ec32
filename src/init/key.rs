//! Suggests a silver key: the smallest set of columns whose values are unique over the
//! sample's rows that have them all. The caller offers columns missing in at most 1 % of
//! the rows (key columns become `required`, rejecting those rows); doubles never qualify. Sets of identifier-like columns (strings, integers,
//! dates, timestamps, bools) are tried before sets that need a decimal, and earlier
//! columns before later ones. Values are held as 64-bit hashes, one per row and column.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;

/// The largest key tried.
pub const MAX_KEY_COLUMNS: usize = 4;

/// Per column, the hash of each sampled row's value.
pub struct KeySample {
    state: FixedState,
    columns: Vec<Vec<u64>>,
}

impl KeySample {
    pub fn new(columns: usize) -> Self {
        KeySample {
            state: FixedState::with_seed(0x6d65_6461_6c6c_696f),
            columns: vec![Vec::new(); columns],
        }
    }

    /// Take one row's values (trimmed; missing as `None`, held as hash 0).
    pub fn push(&mut self, row: &[Option<&str>]) {
        for (column, value) in self.columns.iter_mut().zip(row) {
            column.push(value.map_or(0, |v| self.state.hash_one(v) | 1));
        }
    }

    /// The first unique set of the smallest size, trying `preferred` columns alone
    /// before sets that also take `others`.
    pub fn smallest_unique(&self, preferred: &[usize], others: &[usize]) -> Option<Vec<usize>> {
        let all: Vec<usize> = {
            let mut v = [preferred, others].concat();
            v.sort_unstable();
            v
        };
        for size in 1..=MAX_KEY_COLUMNS {
            for pool in [preferred, &all[..]] {
                let found = combinations(pool, size).find(|set| self.unique(set));
                if found.is_some() {
                    return found;
                }
            }
        }
        None
    }

    /// Whether no two rows agree on every column of `set` (stops at the first repeat).
    /// Rows missing a value of the set are left out: `required` rejects them.
    fn unique(&self, set: &[usize]) -> bool {
        let rows = self.columns.first().map_or(0, Vec::len);
        let mut seen =
            std::collections::HashSet::with_capacity_and_hasher(rows, self.state.clone());
        (0..rows).all(|row| {
            let mut h = self.state.build_hasher();
            for &c in set {
                match self.columns[c][row] {
                    0 => return true,
                    v => h.write_u64(v),
                }
            }
            seen.insert(h.finish())
        })
    }
}

/// Every `size`-subset of `pool`, in lexicographic order of positions.
fn combinations(pool: &[usize], size: usize) -> impl Iterator<Item = Vec<usize>> + '_ {
    let mut idx: Vec<usize> = (0..size).collect();
    let mut done = size == 0 || size > pool.len();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let out = idx.iter().map(|&i| pool[i]).collect();
        // Advance: the rightmost position that can move, then reset the ones after it.
        match (0..size).rev().find(|&i| idx[i] < pool.len() - size + i) {
            Some(i) => {
                idx[i] += 1;
                for j in i + 1..size {
                    idx[j] = idx[j - 1] + 1;
                }
            }
            None => done = true,
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_in_order() {
        let all: Vec<_> = combinations(&[1, 3, 5], 2).collect();
        assert_eq!(all, vec![vec![1, 3], vec![1, 5], vec![3, 5]]);
        assert_eq!(combinations(&[1], 2).count(), 0);
    }

    #[test]
    fn the_smallest_unique_set_preferring_identifiers() {
        let rows = [
            ["C1", "M1", "00:00", "1.5"],
            ["C1", "M1", "01:00", "2.5"],
            ["C1", "M2", "00:00", "3.5"],
            ["C2", "M3", "00:00", "1.5"],
        ];
        let mut s = KeySample::new(4);
        for r in rows {
            s.push(&r.map(Some));
        }
        // No column alone is unique (3 repeats 1.5); meter and time are the first pair.
        assert_eq!(s.smallest_unique(&[0, 1, 2], &[3]), Some(vec![1, 2]));
        // A decimal is taken when no set of identifiers of the same size is unique.
        let mut s = KeySample::new(2);
        for r in [["a", "1.1"], ["a", "2.2"]] {
            s.push(&r.map(Some));
        }
        assert_eq!(s.smallest_unique(&[0], &[1]), Some(vec![1]));
        let mut s = KeySample::new(1);
        s.push(&[Some("x")]);
        s.push(&[Some("x")]);
        assert_eq!(s.smallest_unique(&[0], &[]), None);
    }
}
