//! The record of a clean close of the embedded store, which lets the next open skip reading
//! back a journal whose every write is already in tables.
//!
//! fjall replays the whole active journal at open, up to 64 MB of it, even when every entry is
//! already in tables (it reads each entry and skips those at or below the tables' sequence
//! numbers): seconds at a large backlog. A graceful stop (`engine::Db::close`) shuts the
//! engine's write gate, has fjall write every memtable out to tables and waits until only
//! the active journal is left; then every write that journal holds is in tables, and
//! `record` writes its name, length and modification time to `<store>/clean-close`
//! (a new file, synced, renamed over, the directory synced: the record exists whole or not
//! at all).
//!
//! Before fjall opens the store again, `recover` empties (truncates) that journal if it is
//! still the only one and unchanged (same length and modification time), and removes the
//! record either way, durably, before anything can write to the journal again. An empty
//! active journal after every memtable was written out is a state fjall makes itself: a
//! rotation creates the next journal empty (zeros, which its reader truncates away at the
//! next open), and the old one is deleted once its writes are in tables. With nothing to
//! replay, fjall takes its sequence numbers from the tables (`Database::recover`: the highest
//! seqno of each tree, memtables and tables). A crash, a kill -9 or a close past its bound
//! leaves no record (or one naming a journal that was written to since, or no longer alone),
//! and the journal is replayed as before.
//!
//! `recover` holds fjall's own directory lock (`<store>/lock`) while it works, so it never
//! touches the journal of a store another process has open.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The record, the record being written, and fjall's lock file, in the store's directory.
const RECORD: &str = "clean-close";
const WRITING: &str = "clean-close.new";
const LOCK: &str = "lock";

/// A journal file as a clean close left it.
#[derive(Debug, PartialEq)]
struct Journal {
    name: String,
    len: u64,
    mtime_ns: u128,
}

impl Journal {
    fn of(path: &Path) -> std::io::Result<Journal> {
        let metadata = std::fs::metadata(path)?;
        let mtime_ns = metadata
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map_err(std::io::Error::other)?
            .as_nanos();
        Ok(Journal {
            name: path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string(),
            len: metadata.len(),
            mtime_ns,
        })
    }

    fn encode(&self) -> String {
        format!("{} {} {}\n", self.name, self.len, self.mtime_ns)
    }

    fn decode(text: &str) -> Option<Journal> {
        let mut fields = text.trim_end().split(' ');
        let journal = Journal {
            name: fields.next()?.to_string(),
            len: fields.next()?.parse().ok()?,
            mtime_ns: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(journal)
    }
}

/// The journal files in `dir`.
fn journals(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut journals = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jnl") {
            journals.push(path);
        }
    }
    Ok(journals)
}

/// The journal of `dir` if it is the only one.
fn only_journal(dir: &Path) -> std::io::Result<Option<Journal>> {
    match journals(dir)?.as_slice() {
        [only] => Journal::of(only).map(Some),
        _ => Ok(None),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Records the one journal of the store in `dir`, once every write it holds is in tables.
pub fn record(dir: &Path) -> std::io::Result<()> {
    let journal = only_journal(dir)?.ok_or_else(|| {
        std::io::Error::other("the store has more than one journal; nothing recorded")
    })?;
    let writing = dir.join(WRITING);
    let mut file = File::create(&writing)?;
    file.write_all(journal.encode().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&writing, dir.join(RECORD))?;
    sync_dir(dir)
}

/// Before the engine opens the store in `dir`: empties the journal a clean close recorded if
/// it is unchanged and still the only one, and removes the record either way. Returns
/// whether it emptied the journal.
pub fn recover(dir: &Path) -> fjall::Result<bool> {
    let path = dir.join(RECORD);
    if !path.try_exists()? {
        return Ok(false);
    }
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK))?;
    lock.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => fjall::Error::Locked,
        std::fs::TryLockError::Error(e) => e.into(),
    })?;
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => Journal::decode(&text),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let unchanged = recorded.is_some() && only_journal(dir)? == recorded;
    if let Some(journal) = recorded.filter(|_| unchanged) {
        let file = OpenOptions::new()
            .write(true)
            .open(dir.join(journal.name))?;
        file.set_len(0)?;
        file.sync_all()?;
    }
    std::fs::remove_file(&path)?;
    sync_dir(dir)?;
    Ok(unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::engine::Db;
    use std::time::Duration;

    fn journal_len(dir: &Path) -> u64 {
        let journals = journals(dir).unwrap();
        assert_eq!(journals.len(), 1, "{journals:?}");
        std::fs::metadata(&journals[0]).unwrap().len()
    }

    /// A store in `dir` with `n` keys written, closed cleanly.
    fn closed_store(dir: &Path, n: u32) {
        let db = Db::open(dir, 1 << 20).unwrap();
        let tree = db.open_tree("t").unwrap();
        for i in 0..n {
            tree.insert(i.to_be_bytes(), b"value").unwrap();
        }
        assert!(db.close(Duration::from_secs(10)).unwrap());
        assert!(dir.join(RECORD).exists());
    }

    fn assert_holds(dir: &Path, n: u32) -> Db {
        let db = Db::open(dir, 1 << 20).unwrap();
        let tree = db.open_tree("t").unwrap();
        assert_eq!(tree.len().unwrap(), n as usize);
        assert!(!dir.join(RECORD).exists(), "the record is removed");
        db
    }

    #[test]
    fn an_unchanged_journal_is_emptied_and_its_writes_are_read_from_tables() {
        let dir = tempfile::tempdir().unwrap();
        closed_store(dir.path(), 1000);
        let db = assert_holds(dir.path(), 1000);
        assert_eq!(journal_len(dir.path()), 0, "nothing left to replay");
        // Sequence numbers go on from the tables: a new write is newer than the old ones.
        let tree = db.open_tree("t").unwrap();
        tree.insert(0u32.to_be_bytes(), b"new").unwrap();
        assert_eq!(&*tree.get(0u32.to_be_bytes()).unwrap().unwrap(), b"new");
        drop(tree);
        drop(db);
        let db = assert_holds(dir.path(), 1000);
        let tree = db.open_tree("t").unwrap();
        assert_eq!(&*tree.get(0u32.to_be_bytes()).unwrap().unwrap(), b"new");
    }

    #[test]
    fn a_journal_changed_since_the_close_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        closed_store(dir.path(), 1000);
        let journal = journals(dir.path()).unwrap().remove(0);
        File::options()
            .write(true)
            .open(&journal)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(1))
            .unwrap();
        drop(assert_holds(dir.path(), 1000));
        assert!(
            journal_len(dir.path()) > 0,
            "the journal was kept and replayed"
        );
    }

    #[test]
    fn a_store_closed_without_a_record_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), 1 << 20).unwrap();
            let tree = db.open_tree("t").unwrap();
            tree.insert(b"k", b"v").unwrap();
            db.flush().unwrap();
        }
        let db = assert_holds(dir.path(), 1);
        assert!(journal_len(dir.path()) > 0);
        drop(db);
    }

    #[test]
    fn a_closed_store_takes_no_more_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), 1 << 20).unwrap();
        let tree = db.open_tree("t").unwrap();
        assert!(db.close(Duration::from_secs(10)).unwrap());
        let error = tree.insert(b"k", b"v").unwrap_err().to_string();
        assert!(error.contains("the store is closed"), "{error}");
        let mut batch = db.batch();
        batch.insert(&tree, b"k", b"v");
        assert!(batch.commit().is_err());
        assert!(tree.get(b"k").unwrap().is_none());
    }

    #[test]
    fn a_record_reads_back_as_written_and_a_malformed_one_as_none() {
        assert_eq!(Journal::decode("1.jnl 12"), None);
        assert_eq!(Journal::decode("1.jnl 12 34 5"), None);
        let journal = Journal {
            name: "7.jnl".into(),
            len: 12,
            mtime_ns: 34,
        };
        assert_eq!(Journal::decode(&journal.encode()), Some(journal));
    }
}
