//! How much memory the embedded store's block cache may hold by default (`--sled-cache-mib`),
//! and how its trees keep and compact their tables. The rest of what it holds is bounded by
//! the engine's settings (`engine`); the README's sizing notes give the figures.

use std::sync::Arc;

use fjall::KeyspaceCreateOptions;
use fjall::config::PinningPolicy;

/// The block cache by default.
pub const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Tables of the first level merged at once by a compaction (fjall's default: 4).
///
/// Trees whose new keys spread over their whole key range (`webhook ++ ...`: every webhook's
/// newest deliveries) cannot move their new tables down untouched as the other trees do: each
/// compaction merges them into the older entries they overlap, which grow with the backlog.
/// Merging 16 tables at once (64 MiB of writes) instead of 4 makes that work a quarter as
/// often: queueing 3,000,000 deliveries took 20 s of compaction instead of 72 s, and the
/// queueing itself 115 s instead of 158 s. A read meets at most 16 such tables (fjall slows
/// writers down from 20 on).
pub const L0_TABLES: u8 = 16;

/// How the trees' tables are kept (stored with a tree when it is created: trees created
/// before keep what they had).
///
/// - No filter or index block is pinned in memory; they are read through the block cache,
///   which bounds them. fjall pins them for the tables of its first level, but a table keeps
///   what it pinned when a compaction moves it down untouched (how most tables of a backlog
///   reach the last level, their keys being newer than all before), so a running process held
///   the filter and index of every table it wrote: memory grew with the data written (after a
///   restart the same tables held nothing pinned). Unpinned, queueing 3,000,000 deliveries
///   peaked at 210 MB and held 128 MB, against 231-234 and 149-154.
/// - Leveled compaction merging `L0_TABLES` at once.
pub fn tables(options: KeyspaceCreateOptions) -> KeyspaceCreateOptions {
    options
        .filter_block_pinning_policy(PinningPolicy::all(false))
        .index_block_pinning_policy(PinningPolicy::all(false))
        .compaction_strategy(Arc::new(
            fjall::compaction::Leveled::default().with_l0_threshold(L0_TABLES),
        ))
}

#[cfg(test)]
mod tests {
    use super::super::engine::Db;

    /// Keys as the webhook-ordered trees write them: ten prefixes, each growing at its end.
    fn key(prefix: u64, n: u64) -> [u8; 16] {
        let mut key = [0; 16];
        key[..8].copy_from_slice(&prefix.to_be_bytes());
        key[8..].copy_from_slice(&n.to_be_bytes());
        key
    }

    #[test]
    fn tables_without_pinned_blocks_answer_reads_and_scans_before_and_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let value = vec![7u8; 1000];
        let (prefixes, per_prefix) = (10, 3000);
        let expected: Vec<Vec<u8>> = (0..prefixes)
            .flat_map(|prefix| (0..per_prefix).map(move |n| key(prefix, n).to_vec()))
            .collect();
        let check = |db: &Db| {
            let tree = db.open_tree("spread").unwrap();
            let keys: Vec<Vec<u8>> = tree.iter().keys().map(|k| k.unwrap().to_vec()).collect();
            assert_eq!(keys.len(), expected.len());
            assert!(keys == expected, "keys out of order or missing");
            // Point reads consult each table's filter and index through the block cache.
            for n in (0..per_prefix).step_by(97) {
                assert_eq!(tree.get(key(3, n)).unwrap().as_deref(), Some(&value[..]));
            }
            assert!(tree.get(key(3, per_prefix)).unwrap().is_none());
            assert!(tree.get(key(prefixes, 0)).unwrap().is_none());
        };
        {
            let db = Db::open(dir.path(), 1 << 20).unwrap();
            let tree = db.open_tree("spread").unwrap();
            // ~30 MB: several 4 MiB memtables sealed by the flushes and written to tables.
            for n in 0..per_prefix {
                for prefix in 0..prefixes {
                    tree.insert(key(prefix, n), &value).unwrap();
                }
                if n % 100 == 0 {
                    db.flush().unwrap();
                }
            }
            db.flush().unwrap();
            check(&db);
        }
        check(&Db::open(dir.path(), 1 << 20).unwrap());
    }
}
