//! The fsync of the embedded store's journal, made outside fjall's journal lock.
//!
//! fjall 3.1's own `persist(SyncAll)` fsyncs while holding the journal's writer mutex, and
//! every insert takes that mutex, so with it every write of every emit waited out the group
//! commit's fsync. Here a durable flush is two steps:
//!
//! 1. `persist(Buffer)` under fjall's lock: the journal's buffered bytes go to the OS (short).
//!    Taking the lock also orders the flush after every insert that returned before it.
//! 2. `sync_data` of the journal file through a handle of our own, with no fjall lock held
//!    (an fsync covers the file, whatever descriptor it is made on), so inserts go on
//!    meanwhile.
//!
//! Why a rotation between the two steps leaves nothing unsynced: journals are
//! `<store>/<id>.jnl`, ids only grow, the active journal has the highest id and is never
//! deleted, and fjall rotates under its lock by fsyncing the active file (`SyncAll`) *before*
//! it creates the next one. After step 1 the bytes are in A, the file active then. Step 2
//! lists the directory and syncs the newest journal, N (through the handle it kept if N is
//! still the file it synced last). The listing comes after step 1, so N is A or a successor
//! of A, and a successor exists only once A was synced by its rotation: either way A is
//! durable. (A sealed journal may be deleted once its writes are in tables, which fjall
//! fsyncs; a newest file that vanishes between the listing and the open, rotated and
//! deleted meanwhile, is listed again.)
//!
//! The listing is a directory read, too dear for every flush: once it knows a journal, step 2
//! instead follows the rotations from it by name. A rotation of journal `n` creates `n + 1`
//! (fjall's `Writer::rotate`) and sealed journals are deleted oldest first, so after step 1:
//! if `n + 1` does not exist and `n` still does, no rotation has created a successor of `n`
//! yet, and `n` is the newest; if `n + 1` exists, the walk goes on from it. Should `n` itself
//! be gone (rotated and deleted meanwhile), the walk falls back to the listing.
//!
//! A failed fsync poisons the journal for good: the kernel may have dropped the pages it could
//! not write, and a later fsync would then succeed without them, so every later flush fails
//! (no acknowledgement can follow a lost write); the next start replays the journal.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use fjall::PersistMode;

/// The journal files of one fjall database, synced from outside its lock.
pub struct JournalSync {
    dir: PathBuf,
    /// The newest journal file seen, by id.
    active: Mutex<Option<(u64, File)>>,
    poisoned: AtomicBool,
}

impl JournalSync {
    /// The journals of the database in `dir`.
    pub fn new(dir: &Path) -> JournalSync {
        JournalSync {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            active: Mutex::new(None),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Makes every write to `db` made before the call durable.
    pub fn flush(&self, db: &fjall::Database) -> fjall::Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned());
        }
        db.persist(PersistMode::Buffer)?;
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let newest = match active.as_ref() {
                Some((known, _)) => self.successor(*known)?,
                None => self.newest_id()?,
            };
            let (id, file) = match active.take() {
                Some((id, file)) if id == newest => (id, file),
                _ => match File::open(self.path(newest)) {
                    Ok(file) => (newest, file),
                    // Rotated and deleted between the listing and the open: list again.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                },
            };
            if let Err(e) = file.sync_data() {
                self.poisoned.store(true, Ordering::Release);
                tracing::error!(error = %e, "the store's journal could not be synced; no write is acknowledged any more until a restart");
                return Err(e.into());
            }
            *active = Some((id, file));
            return Ok(());
        }
    }

    /// The newest journal, found from journal `known` by following the rotations since
    /// (see the module's header), or by a listing if `known` is gone.
    fn successor(&self, known: u64) -> fjall::Result<u64> {
        let mut id = known;
        while self.path(id + 1).try_exists()? {
            id += 1;
        }
        if self.path(id).try_exists()? {
            Ok(id)
        } else {
            self.newest_id()
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.jnl"))
    }

    /// The highest journal id in the directory (the active journal's).
    fn newest_id(&self) -> fjall::Result<u64> {
        let mut newest = None;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jnl"))
                .and_then(|n| n.parse::<u64>().ok());
            newest = newest.max(id);
        }
        newest.ok_or_else(|| {
            fjall::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the store has no journal file",
            ))
        })
    }
}

fn poisoned() -> fjall::Error {
    fjall::Error::Io(std::io::Error::other(
        "an earlier fsync of the store's journal failed",
    ))
}
