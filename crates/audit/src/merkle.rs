//! RFC 6962 Merkle tree over the log's entries.
//!
//! Leaves are `SHA-256(0x00 || entry bytes)`, interior nodes `SHA-256(0x01 || left || right)`.
//! The tree is kept the way Go's `sumdb/tlog` keeps it (ported by the `tlog_tiles` crate): for
//! each appended record, at most `1 + log2 n` "stored hashes" (the roots of the complete subtrees
//! it completes) are written at contiguous indexes, so the root of any size is `O(log n)` reads
//! and nothing is ever rewritten, which suits an append-only table. [`PendingTree`] appends on
//! top of hashes held elsewhere (a SQLite table, here or in the hub) and keeps the new ones in
//! memory until the caller commits them.

use std::cell::RefCell;

use tlog_tiles::{Hash, HashReader};

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: [u8; 32] = tlog_tiles::EMPTY_HASH.0;

/// The RFC 6962 leaf hash of `data`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    tlog_tiles::record_hash(data).0
}

/// The number of stored hashes a tree of `n` entries keeps.
pub fn stored_hash_count(n: u64) -> u64 {
    tlog_tiles::stored_hash_count(n)
}

/// The indexes of the stored hashes that the root of a tree of `n` entries is made of (the
/// roots of its complete subtrees, left to right). Appending to a tree of `n` entries, and any
/// root up to `n`, reads only these (and those of the smaller size), so a caller that holds its
/// hashes remotely can fetch them in one query before building a [`PendingTree`].
pub fn edge_indexes(n: u64) -> Vec<u64> {
    tlog_tiles::sub_tree_index(0, n, Vec::new())
}

/// The RFC 6962 root of a list of leaf hashes, computed from scratch (for verification).
pub fn root_from_leaves(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            // The largest power of two strictly below n splits the tree (RFC 6962 §2.1).
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            tlog_tiles::node_hash(
                Hash(root_from_leaves(&leaves[..k])),
                Hash(root_from_leaves(&leaves[k..])),
            )
            .0
        }
    }
}

/// The hash store returned fewer hashes than the tree needs: rows are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingStoredHashes {
    /// How many stored hashes were asked for.
    pub wanted: usize,
    /// How many came back.
    pub found: usize,
}

impl std::fmt::Display for MissingStoredHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tree hash store returned {} of {} hashes",
            self.found, self.wanted
        )
    }
}

/// Reads stored hashes by index from wherever they are kept.
pub type ReadHashes<'a, E> = &'a dyn Fn(&[u64]) -> Result<Vec<[u8; 32]>, E>;

/// A tree of `base_size` entries whose stored hashes are read through a callback, plus entries
/// appended in memory.
pub struct PendingTree<'a, E> {
    read: ReadHashes<'a, E>,
    base_size: u64,
    size: u64,
    new: Vec<Hash>,
    error: RefCell<Option<E>>,
}

impl<'a, E: From<MissingStoredHashes>> PendingTree<'a, E> {
    /// A tree of `base_size` entries whose stored hashes `read` returns by index.
    pub fn new(base_size: u64, read: ReadHashes<'a, E>) -> Self {
        Self {
            read,
            base_size,
            size: base_size,
            new: Vec::new(),
            error: RefCell::new(None),
        }
    }

    /// The number of entries, including the appended ones.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn append(&mut self, leaf: [u8; 32]) -> Result<(), E> {
        let hashes = tlog_tiles::stored_hashes_for_record_hash(self.size, Hash(leaf), &*self)
            .map_err(|_| self.take_error())?;
        self.new.extend(hashes);
        self.size += 1;
        Ok(())
    }

    /// The root hash at the current size.
    pub fn root(&self) -> Result<[u8; 32], E> {
        self.root_at(self.size)
    }

    /// The root hash at `size` (at most the current size).
    pub fn root_at(&self, size: u64) -> Result<[u8; 32], E> {
        tlog_tiles::tree_hash(size.min(self.size), self)
            .map(|h| h.0)
            .map_err(|_| self.take_error())
    }

    /// The index of the first new stored hash and the new stored hashes, to be committed.
    pub fn new_hashes(&self) -> (u64, Vec<[u8; 32]>) {
        (
            stored_hash_count(self.base_size),
            self.new.iter().map(|h| h.0).collect(),
        )
    }

    fn take_error(&self) -> E {
        // tlog_tiles fails only when the reader does; the reader records why before failing.
        self.error
            .borrow_mut()
            .take()
            .unwrap_or(E::from(MissingStoredHashes {
                wanted: 1,
                found: 0,
            }))
    }
}

impl<E: From<MissingStoredHashes>> HashReader for PendingTree<'_, E> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let base = stored_hash_count(self.base_size);
        let old: Vec<u64> = indexes.iter().copied().filter(|&i| i < base).collect();
        let mut from_store = if old.is_empty() {
            Vec::new().into_iter()
        } else {
            match (self.read)(&old) {
                Ok(h) if h.len() == old.len() => h.into_iter(),
                Ok(h) => {
                    let missing = MissingStoredHashes {
                        wanted: old.len(),
                        found: h.len(),
                    };
                    *self.error.borrow_mut() = Some(E::from(missing));
                    return Err(tlog_tiles::Error::IndexesNotInTree);
                }
                Err(e) => {
                    *self.error.borrow_mut() = Some(e);
                    return Err(tlog_tiles::Error::IndexesNotInTree);
                }
            }
        };
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            if i < base {
                out.push(Hash(from_store.next().unwrap_or_default()));
            } else {
                match self.new.get((i - base) as usize) {
                    Some(h) => out.push(*h),
                    None => {
                        let missing = MissingStoredHashes {
                            wanted: indexes.len(),
                            found: out.len(),
                        };
                        *self.error.borrow_mut() = Some(E::from(missing));
                        return Err(tlog_tiles::Error::IndexesNotInTree);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Certificate Transparency reference leaves and roots (RFC 6962 test data).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[derive(Debug, PartialEq)]
    enum TestError {
        Store(&'static str),
        Missing(MissingStoredHashes),
    }
    impl From<MissingStoredHashes> for TestError {
        fn from(m: MissingStoredHashes) -> Self {
            Self::Missing(m)
        }
    }

    fn leaves() -> Vec<[u8; 32]> {
        LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    #[test]
    fn recursive_root_matches_rfc6962_vectors() {
        let leaves = leaves();
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(
                hex::encode(root_from_leaves(&leaves[..n])),
                *want,
                "size {n}"
            );
        }
    }

    #[test]
    fn stored_hash_tree_matches_rfc6962_vectors_at_every_split() {
        // Grow the tree from every possible committed base, so that both the stored and the
        // in-memory halves of PendingTree are exercised at every size.
        let leaves = leaves();
        for base in 0..=leaves.len() {
            let mut store: Vec<[u8; 32]> = Vec::new();
            let read_none = |_: &[u64]| -> Result<Vec<[u8; 32]>, TestError> { unreachable!() };
            let mut t = PendingTree::new(0, &read_none);
            for l in &leaves[..base] {
                t.append(*l).unwrap();
            }
            store.extend(t.new_hashes().1);
            let read = |idx: &[u64]| -> Result<Vec<[u8; 32]>, TestError> {
                Ok(idx.iter().map(|&i| store[i as usize]).collect())
            };
            let mut t = PendingTree::new(base as u64, &read);
            for (n, l) in leaves.iter().enumerate().skip(base) {
                t.append(*l).unwrap();
                assert_eq!(
                    hex::encode(t.root().unwrap()),
                    ROOTS[n + 1],
                    "base {base} size {}",
                    n + 1
                );
            }
            for (n, want) in ROOTS.iter().enumerate() {
                assert_eq!(hex::encode(t.root_at(n as u64).unwrap()), *want);
            }
        }
    }

    #[test]
    fn reader_errors_come_back_typed() {
        let read =
            |_: &[u64]| -> Result<Vec<[u8; 32]>, TestError> { Err(TestError::Store("disk gone")) };
        let mut t = PendingTree::new(5, &read);
        assert_eq!(t.append([0; 32]), Err(TestError::Store("disk gone")));
        let short = |_: &[u64]| -> Result<Vec<[u8; 32]>, TestError> { Ok(vec![]) };
        let t = PendingTree::new(5, &short);
        assert!(matches!(t.root(), Err(TestError::Missing(_))));
    }
}
