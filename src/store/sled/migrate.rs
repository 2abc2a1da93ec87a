//! Where the embedded store lives in the data directory, and its one-time move from sled.
//! The store is in `<data-dir>/store` (fjall); versions before kept it in `<data-dir>/db`
//! (sled 0.34). At open, a `db` without a `store` is copied over tree by tree (same names, same
//! keys and values, sled's id counter carried over) into `store.new`, made durable, renamed to
//! `store` (the moment the moved store exists), and then the sled directory is removed. A crash
//! before the rename leaves `db` as it was and the copy starts again; after it, only the old
//! directory is left to remove. The records themselves are upgraded afterwards by the same
//! code that upgrades them in place (old value versions are read as they are; older tree
//! layouts are moved over by their modules at open).

use std::path::Path;

use super::engine::{self, Db};

/// The store's directory, the copy in progress, and sled's directory.
const STORE: &str = "store";
const COPYING: &str = "store.new";
const SLED: &str = "db";

/// sled's default tree: webhookd never wrote to it.
const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";

fn io(e: impl std::fmt::Display) -> engine::Error {
    engine::Error::Io(std::io::Error::other(e.to_string()))
}

/// Opens the store in `dir`, moving a sled store over first.
pub fn open(dir: &Path, cache_bytes: u64) -> engine::Result<Db> {
    let store = dir.join(STORE);
    let sled_dir = dir.join(SLED);
    if !store.exists() && sled_dir.exists() {
        let copying = dir.join(COPYING);
        if copying.exists() {
            std::fs::remove_dir_all(&copying)?;
        }
        copy_from_sled(&sled_dir, &copying, cache_bytes)?;
        std::fs::rename(&copying, &store)?;
        std::fs::File::open(dir)?.sync_all()?;
    }
    let db = Db::open(&store, cache_bytes)?;
    if sled_dir.exists() {
        std::fs::remove_dir_all(&sled_dir)?;
    }
    Ok(db)
}

/// Copies every tree of the sled database at `from` into a new store at `to`.
fn copy_from_sled(from: &Path, to: &Path, cache_bytes: u64) -> engine::Result<()> {
    let old = sled::Config::new()
        .path(from)
        .cache_capacity(cache_bytes)
        .open()
        .map_err(|e| match e {
            // sled's wording of a lock held by another process (an ErrorKind::Other).
            sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock") => {
                engine::Error::Locked
            }
            e => io(e),
        })?;
    let new = Db::open(to, cache_bytes)?;
    for name in old.tree_names() {
        if name.as_ref() == SLED_DEFAULT_TREE {
            continue;
        }
        let tree_name = std::str::from_utf8(&name).map_err(io)?;
        let tree = new.open_tree(tree_name)?;
        for item in old.open_tree(&name).map_err(io)?.iter() {
            let (key, value) = item.map_err(io)?;
            tree.insert(key, value)?;
        }
    }
    new.reserve_ids_from(old.generate_id().map_err(io)?)?;
    new.flush()
}

#[cfg(test)]
mod tests;
