//! How much memory the embedded store's block cache may hold by default (`--sled-cache-mib`).
//! The rest of what it holds is bounded by the engine's settings (`engine`); the README's
//! sizing notes give the figures.

/// The block cache by default.
pub const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;
