//! The engine under the embedded store: a fjall database (one LSM tree per keyspace, one
//! journal shared by all of them) behind the few calls the backend makes, named after the sled
//! calls it made before, so the record layout and the modules above stay as they were.
//!
//! What the modules above rely on, and how fjall gives it:
//! - Durability in write order: every write goes to the one journal in the order it was made;
//!   `Db::flush` fsyncs it (outside fjall's journal lock, see `journal_sync`), so everything
//!   written before the call is durable when it returns, and a crash keeps a prefix of the
//!   writes (the crash states the modules' headers list).
//! - Open time and memory bounded by the work, not by the data: recovery replays only the
//!   journal not yet flushed into tables (`JOURNAL_BYTES` at most, the smallest fjall allows),
//!   and memory is the block cache plus the memtables (`MEMTABLE_BYTES` per keyspace, up to
//!   four sealed ones each while fjall's workers are behind: fjall then holds writers back).
//! - Memtables are sealed here, by `flush`, not by fjall's writers: in fjall 3.1.13 every
//!   insert into a memtable over its size posts a rotation request to the workers' bounded
//!   channel, and a worker handling one posts a flush to that same channel with a blocking
//!   send; under a fast writer the channel fills with requests and every worker blocks in
//!   that send, so nothing is ever flushed again (memtables and the journal grow without
//!   bound; fjall issue 260, pull request 323). So fjall's own limit is set far above ours
//!   (`FJALL_MEMTABLE_BYTES`, a backstop) and each tree counts the bytes written since its
//!   last seal; `flush` seals the trees past `MEMTABLE_BYTES`.
//! - `generate_id`: monotonic across crashes. The counter reserves `ID_BLOCK` numbers at a
//!   time, durably before handing any out, and starts after the reserved ones at open.
//! - `compare_and_swap`, `take` and `Batch::commit_with_update` are atomic with one another
//!   per tree (one lock per tree); a key that one of them writes is written only through them, or by a
//!   writer that cannot race them (noted where it is used).
//! - `close`: after it, no write lands (each write passes the `write_gate`, which the close
//!   shuts, and fails once it is shut), every write is in tables, and the one journal left
//!   is recorded so that the next open need not read it back (`clean_close`).
//! - `Batch`: writes to any trees that a crash keeps all of or none of, and that readers see
//!   all at once (fjall's `WriteBatch`: one journal entry framed by a start and an end marker
//!   with a checksum, which recovery drops whole when its end is missing; applied to the
//!   memtables under the journal lock at one sequence number, published after the last).
//!   Its bytes count towards each tree's seal at commit. `Batch::commit_with_update` is the
//!   batch's read-modify-write.

use std::collections::HashMap;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fjall::KeyspaceCreateOptions;

use super::clean_close;
use super::journal_sync::JournalSync;
use super::write_gate::WriteGate;

/// A key or a value read from the store.
pub type Bytes = fjall::Slice;

/// An engine error (the backend maps it to `Error::Internal`).
pub type Error = fjall::Error;

/// The result of an engine call.
pub type Result<T> = std::result::Result<T, Error>;

/// Journal bytes kept before the oldest memtables are flushed to tables (bounds recovery).
const JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// Bytes written to a tree after which `flush` seals its memtable (to be written to a table).
const MEMTABLE_BYTES: u64 = 4 * 1024 * 1024;

/// fjall's own memtable limit: a backstop far above `MEMTABLE_BYTES` (see the header).
const FJALL_MEMTABLE_BYTES: u64 = 64 * 1024 * 1024;

/// What an entry costs in a memtable besides its key and value (approximate).
const ENTRY_OVERHEAD: u64 = 32;

/// Ids reserved per durable write of the counter.
const ID_BLOCK: u64 = 1_000_000;

/// The keyspace of the engine's own records.
const META: &str = "__engine";

/// Key of the first id not yet reserved.
const RESERVED: &[u8] = b"ids_reserved";

/// The database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    db: fjall::Database,
    dir: PathBuf,
    gate: Arc<WriteGate>,
    journal: JournalSync,
    meta: fjall::Keyspace,
    ids: Mutex<Ids>,
    /// Every tree opened, by name, with the bytes written to it since its memtable was sealed.
    trees: Mutex<HashMap<String, (fjall::Keyspace, Arc<AtomicU64>)>>,
}

/// The next id to hand out and the first one not reserved.
struct Ids {
    next: u64,
    reserved: u64,
}

/// The other holder of the directory's lock (`Db::open`).
pub fn is_locked(e: &Error) -> bool {
    matches!(e, fjall::Error::Locked)
}

/// Keyspace settings. Manual journal persistence: an insert leaves its journal entry in
/// fjall's 8 KiB journal buffer (written to the OS when it fills) instead of making one
/// `write` per insert under the journal lock; `flush` hands the rest to the OS before its
/// fsync. A crash still keeps a prefix of the writes: fjall syncs the journal before it
/// writes a memtable out to a table (fjall issue 329), so no table holds a write the journal
/// lost. (Read at creation: keyspaces created before keep the per-insert write.) How tables
/// are kept and compacted: `tuning::tables`.
fn keyspace_options() -> KeyspaceCreateOptions {
    super::tuning::tables(
        KeyspaceCreateOptions::default()
            .max_memtable_size(FJALL_MEMTABLE_BYTES)
            .manual_journal_persist(true),
    )
}

impl Db {
    /// Opens (creating if needed) the database at `path` with a block cache of `cache_bytes`;
    /// a journal that a clean close left unchanged is not read back (`clean_close`).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Db> {
        if clean_close::recover(path)? {
            tracing::info!(store = %path.display(), "the store was closed cleanly: its journal is not replayed");
        }
        Db::open_with(path, fjall::Database::builder(path).cache_size(cache_bytes))
    }

    /// A database in a new directory that is removed when it is dropped.
    #[cfg(test)]
    pub fn temporary() -> Db {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        Db::open_with(&dir, fjall::Database::builder(&dir).temporary(true))
            .expect("a temporary store")
    }

    fn open_with(path: &Path, builder: fjall::DatabaseBuilder<fjall::Database>) -> Result<Db> {
        let db = builder.max_journaling_size(JOURNAL_BYTES).open()?;
        let meta = db.keyspace(META, keyspace_options)?;
        let reserved = match meta.get(RESERVED)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("corrupt id counter"))?,
            ),
            None => 0,
        };
        Ok(Db {
            inner: Arc::new(Inner {
                db,
                dir: path.to_path_buf(),
                gate: Arc::default(),
                journal: JournalSync::new(path),
                meta,
                ids: Mutex::new(Ids {
                    next: reserved,
                    reserved,
                }),
                trees: Mutex::default(),
            }),
        })
    }

    /// The tree (keyspace) called `name`, created if needed.
    pub fn open_tree(&self, name: &str) -> Result<Tree> {
        let keyspace = self.inner.db.keyspace(name, keyspace_options)?;
        let mut trees = self.trees();
        let (_, unsealed) = trees
            .entry(name.to_string())
            .or_insert_with(|| (keyspace.clone(), Arc::default()));
        Ok(Tree {
            keyspace,
            gate: Arc::clone(&self.inner.gate),
            atomic: Arc::default(),
            unsealed: Arc::clone(unsealed),
        })
    }

    /// Whether a tree called `name` exists.
    pub fn tree_exists(&self, name: &str) -> bool {
        self.inner.db.keyspace_exists(name)
    }

    /// The names of the trees.
    #[cfg(test)]
    pub fn tree_names(&self) -> Vec<String> {
        let names = self.inner.db.list_keyspace_names();
        names
            .iter()
            .map(|n| n.to_string())
            .filter(|n| n != META)
            .collect()
    }

    /// Deletes the tree called `name` and what it holds.
    pub fn drop_tree(&self, name: &str) -> Result<()> {
        let tree = self.open_tree(name)?;
        let _open = self.inner.gate.pass()?;
        self.trees().remove(name);
        self.inner.db.delete_keyspace(tree.keyspace)
    }

    /// A new id, never handed out before (also across crashes).
    pub fn generate_id(&self) -> Result<u64> {
        let mut ids = self.inner.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.next == ids.reserved {
            let reserved = ids.reserved + ID_BLOCK;
            self.write_reserved(reserved)?;
            self.flush()?;
            ids.reserved = reserved;
        }
        ids.next += 1;
        Ok(ids.next - 1)
    }

    /// Makes ids start at `next` at least (a migration carries the old counter over).
    pub fn reserve_ids_from(&self, next: u64) -> Result<()> {
        let mut ids = self.inner.ids.lock().unwrap_or_else(|e| e.into_inner());
        if next > ids.reserved {
            self.write_reserved(next)?;
            self.flush()?;
            *ids = Ids {
                next,
                reserved: next,
            };
        }
        Ok(())
    }

    /// Writes the first id not reserved.
    fn write_reserved(&self, reserved: u64) -> Result<()> {
        let _open = self.inner.gate.pass()?;
        self.inner.meta.insert(RESERVED, reserved.to_be_bytes())
    }

    /// An empty batch of writes (see the header).
    pub fn batch(&self) -> Batch {
        Batch {
            gate: Arc::clone(&self.inner.gate),
            // No write to the OS per batch: like the keyspaces' inserts, it waits in fjall's
            // journal buffer for `flush` (see `keyspace_options`).
            inner: self.inner.db.batch().durability(None),
            wrote: Vec::new(),
        }
    }

    fn trees(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (fjall::Keyspace, Arc<AtomicU64>)>> {
        self.inner.trees.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every write made before the call durable (an fsync of the journal), then seals
    /// the memtables past `MEMTABLE_BYTES` so fjall's workers write them to tables.
    pub fn flush(&self) -> Result<()> {
        self.inner.journal.flush(&self.inner.db)?;
        let full: Vec<_> = self
            .trees()
            .values()
            .filter(|(_, unsealed)| unsealed.load(Ordering::Relaxed) >= MEMTABLE_BYTES)
            .map(|(keyspace, unsealed)| (keyspace.clone(), Arc::clone(unsealed)))
            .collect();
        for (keyspace, unsealed) in full {
            unsealed.store(0, Ordering::Relaxed);
            keyspace.rotate_memtable()?;
        }
        Ok(())
    }
}

impl Db {
    /// Closes the database for writes: every later write fails; every earlier one is made
    /// durable, and written out to tables by fjall within `bound`, after which the journal
    /// left is recorded (`clean_close`). Returns whether it was (false: the bound passed
    /// first, and the next open replays the journal as after a crash).
    pub fn close(&self, bound: Duration) -> Result<bool> {
        self.inner.gate.shut();
        self.inner.journal.flush(&self.inner.db)?;
        let deadline = Instant::now() + bound;
        while !self.written_out()? {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        clean_close::record(&self.inner.dir)?;
        Ok(true)
    }

    /// Seals every memtable that holds writes (fjall's workers write it to a table); true
    /// once none holds any, none waits to be written and only the active journal is left.
    fn written_out(&self) -> Result<bool> {
        let db = &self.inner.db;
        let mut pending = db.outstanding_flushes() > 0 || db.journal_count() > 1;
        for name in db.list_keyspace_names() {
            let keyspace = db.keyspace(&name, keyspace_options)?;
            pending |= keyspace.rotate_memtable()? || keyspace.sealed_memtable_count() > 0;
        }
        Ok(!pending)
    }
}

fn corrupt(what: &str) -> Error {
    fjall::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}

/// A compare-and-swap that found another value: the current one.
#[derive(Debug)]
pub struct CompareAndSwapError {
    pub current: Option<Bytes>,
}

/// One ordered map of keys to values.
#[derive(Clone)]
pub struct Tree {
    keyspace: fjall::Keyspace,
    gate: Arc<WriteGate>,
    /// Taken by the read-modify-write calls.
    atomic: Arc<Mutex<()>>,
    /// Bytes written since the memtable was last sealed (shared by the tree's handles).
    unsealed: Arc<AtomicU64>,
}

impl Tree {
    fn atomic(&self) -> std::sync::MutexGuard<'_, ()> {
        self.atomic.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let _open = self.gate.pass()?;
        self.wrote(key.len() + value.len());
        self.keyspace.insert(key, value)
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let _open = self.gate.pass()?;
        self.wrote(key.as_ref().len());
        self.keyspace.remove(key.as_ref())
    }

    fn wrote(&self, bytes: usize) {
        self.unsealed
            .fetch_add(bytes as u64 + ENTRY_OVERHEAD, Ordering::Relaxed);
    }

    /// Removes a key and returns the value it had.
    pub fn take(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let _atomic = self.atomic();
        let old = self.keyspace.get(key.as_ref())?;
        if old.is_some() {
            self.remove(key)?;
        }
        Ok(old)
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.keyspace.get(key)
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.keyspace.contains_key(key)
    }

    /// Writes `new` (None: removes) if the key holds `old` (None: absent).
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl AsRef<[u8]>>,
    ) -> Result<std::result::Result<(), CompareAndSwapError>> {
        let key = key.as_ref();
        let _atomic = self.atomic();
        let current = self.keyspace.get(key)?;
        if current.as_deref() != old.as_ref().map(|o| o.as_ref()) {
            return Ok(Err(CompareAndSwapError { current }));
        }
        match new {
            Some(new) => self.insert(key, new)?,
            None => self.remove(key)?,
        }
        Ok(Ok(()))
    }

    pub fn iter(&self) -> Iter {
        Iter(self.keyspace.iter())
    }

    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        Iter(self.keyspace.range(range))
    }

    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        Iter(self.keyspace.prefix(prefix))
    }

    pub fn last(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.keyspace
            .last_key_value()
            .map(|g| g.into_inner())
            .transpose()
    }

    /// The number of keys (a scan).
    pub fn len(&self) -> Result<usize> {
        self.keyspace.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> Result<bool> {
        self.keyspace.is_empty()
    }
}

/// Writes made together: a crash keeps all of them or none, and readers see none of them
/// before the commit and all of them after it.
pub struct Batch {
    gate: Arc<WriteGate>,
    inner: fjall::OwnedWriteBatch,
    /// The bytes each write adds to its tree's memtable, counted at the commit.
    wrote: Vec<(Arc<AtomicU64>, u64)>,
}

impl Batch {
    pub fn insert(&mut self, tree: &Tree, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.counted(tree, key.len() + value.len());
        self.inner.insert(&tree.keyspace, key, value);
    }

    pub fn remove(&mut self, tree: &Tree, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        self.counted(tree, key.len());
        self.inner.remove(&tree.keyspace, key);
    }

    fn counted(&mut self, tree: &Tree, bytes: usize) {
        self.wrote
            .push((Arc::clone(&tree.unsealed), bytes as u64 + ENTRY_OVERHEAD));
    }

    /// Makes the writes, all at once.
    pub fn commit(self) -> Result<()> {
        let _open = self.gate.pass()?;
        self.inner.commit()?;
        for (unsealed, bytes) in self.wrote {
            unsealed.fetch_add(bytes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Commits with the value of `key` in `tree` replaced by `f` of it, read under the tree's
    /// read-modify-write lock, held until the commit (atomic with the tree's
    /// `compare_and_swap` and `take`). When `f` gives None nothing is
    /// written, the batch's other writes neither; returns whether the batch was committed.
    pub fn commit_with_update(
        mut self,
        tree: &Tree,
        key: impl AsRef<[u8]>,
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<bool> {
        let key = key.as_ref();
        let _atomic = tree.atomic();
        let current = tree.keyspace.get(key)?;
        let Some(new) = f(current.as_deref()) else {
            return Ok(false);
        };
        self.insert(tree, key, new);
        self.commit()?;
        Ok(true)
    }

    /// Commits with `key` removed from `tree` if its value is still `expected`, checked
    /// under the tree's read-modify-write lock held until the commit (atomic with
    /// `commit_with_update`, `compare_and_swap` and `take`). When the value changed nothing
    /// is written, the batch's other writes neither; returns whether the batch was committed.
    pub fn commit_removing(
        mut self,
        tree: &Tree,
        key: impl AsRef<[u8]>,
        expected: &[u8],
    ) -> Result<bool> {
        let key = key.as_ref();
        let _atomic = tree.atomic();
        if tree.keyspace.get(key)?.as_deref() != Some(expected) {
            return Ok(false);
        }
        self.remove(tree, key);
        self.commit()?;
        Ok(true)
    }
}

/// Key-value pairs in key order (both ways).
pub struct Iter(fjall::Iter);

impl Iter {
    /// The keys only.
    pub fn keys(self) -> impl DoubleEndedIterator<Item = Result<Bytes>> {
        self.0.map(|g| g.key())
    }
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|g| g.into_inner())
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|g| g.into_inner())
    }
}
