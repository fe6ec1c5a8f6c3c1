//! Bounds on what an import may make the importer read, decompress or hold.

/// Upper bounds for one import, checked before and while reading. The defaults fit the real
/// OSV exports (the largest per-ecosystem `all.zip` members are well under a megabyte) with a
/// wide margin, and keep a hostile file from taking the hub's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one JSON document (a single file, or one member of an archive, decompressed).
    pub document: u64,
    /// Members of one archive.
    pub archive_members: usize,
    /// Decompressed bytes of one archive in total.
    pub archive_total: u64,
    /// Largest ratio of decompressed to compressed size of one archive member (a zip bomb
    /// compresses by thousands; JSON by ten or twenty).
    pub compression_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            document: 16 << 20,
            archive_members: 1_000_000,
            archive_total: 8 << 30,
            compression_ratio: 200,
        }
    }
}
