//! How the sled database is configured when it opens: where it lives, how often it flushes
//! on its own, and how much memory its page cache may hold. The memory a sled store holds is
//! mostly this cache (sled counts a node's estimated size, below its real footprint); the
//! README's sizing notes give the figures.

use std::path::Path;

/// sled's page cache by default (sled's own default is 1 GiB).
pub const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The sled configuration of the database at `path` with a page cache of `cache_bytes`.
pub(super) fn config(path: &Path, cache_bytes: u64) -> sled::Config {
    sled::Config::new()
        .path(path)
        .flush_every_ms(Some(500))
        .cache_capacity(cache_bytes)
}
