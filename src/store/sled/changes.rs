//! The change log of the sled backend. The sequence numbers are sled's `generate_id`
//! (monotonic across crashes: sled persists its counter ahead of use and skips forward at
//! recovery), so a number a reader saw before a crash is never handed out again after it.
//!
//! Order without gaps: an append takes its sequence numbers under a short lock and marks
//! them unsettled, writes its entries, and settles them once they may be read: at once for
//! an attempt (whose record becomes durable at sled's own pace, as before), after the group
//! commit for an emit or a redelivery (QUEUED is shown only once durable). Readers stop
//! before the oldest unsettled number, so an entry that is still being written (or waiting
//! for its flush) holds back the later ones instead of being skipped: a reader never moves
//! past a number that could still appear. A crash loses unflushed entries (nothing
//! acknowledged was shown).
//!
//! Entries are appended to memory and written in pages by the flusher (`persist`, run before
//! each group-commit flush and when idle), up to `PAGE_ENTRIES` per sled write instead of one
//! write each: an emit's entries are on disk with the flush that acknowledges it; an
//! attempt's follow within the idle period, before sled's own flush. Readers read the pages,
//! then what is still in memory. Tree `change_pages`: `be(last sequence in the page)` ->
//! entries, each `be(sequence)`, account length (u16), account, length (u32) and the codec's
//! JSON of `Stored`; the account comes first so a reader skips other accounts' entries
//! without decoding them. Tree `changes` holds the entries older versions wrote, one per key
//! (`be(sequence)` -> account length (u16), account, `Stored`; still read, pruned, never
//! written), and, at `be(0)`, the horizon: the highest sequence number retention has deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::engine::{self, Bytes, Tree};
use serde::{Deserialize, Serialize};

use super::codec::{be, decode, encode};
use super::internal;
use crate::error::Result;
use crate::model::{DeliveryUpdate, now_ms};
use crate::store::change_log::{Change, ChangeCursor, ChangePage, StoredUpdate};

/// Key of the horizon (sequence numbers start at 1).
const HORIZON: [u8; 8] = [0; 8];

/// Entries one read looks at, at most (other accounts' are skipped without decoding).
const SCAN_BUDGET: usize = 4096;

/// Entries per page, at most.
const PAGE_ENTRIES: usize = 64;

/// An entry as stored after its account.
#[derive(Serialize, Deserialize)]
struct Stored {
    at_ms: i64,
    update: StoredUpdate,
}

/// The change log and the numbers handed out but not yet readable.
pub struct ChangeLog {
    db: engine::Db,
    /// The entries of older versions, and the horizon.
    tree: Tree,
    pages: Tree,
    numbers: Mutex<Numbers>,
    /// The highest sequence number pruned (0: none).
    horizon: AtomicU64,
}

struct Numbers {
    /// The last sequence number handed out (or found at open).
    last: u64,
    /// First numbers of appends not settled yet.
    unsettled: BTreeSet<u64>,
    /// Entries not written to a page yet, by sequence number: account and `Stored`.
    memory: BTreeMap<u64, (Box<str>, Vec<u8>)>,
}

/// An append whose entries are not readable yet; dropping it settles them (also when its
/// write failed: readers must not wait for it forever).
pub struct Unsettled<'a> {
    log: &'a ChangeLog,
    first: Option<u64>,
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(first) = self.first {
            self.log.lock().unsettled.remove(&first);
        }
    }
}

fn seq_of(key: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        key.try_into().map_err(|_| internal("corrupt change key"))?,
    ))
}

/// The account and the stored part of a value of the older layout.
fn split(value: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || internal("corrupt change entry");
    let (len, rest) = value.split_at_checked(2).ok_or_else(corrupt)?;
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    rest.split_at_checked(len).ok_or_else(corrupt)
}

/// One entry: sequence number, account, `Stored`.
type Raw<'a> = (u64, &'a [u8], &'a [u8]);

/// The entries of a page, in order.
fn page_entries(mut page: &[u8]) -> impl Iterator<Item = Result<Raw<'_>>> {
    std::iter::from_fn(move || {
        if page.is_empty() {
            return None;
        }
        let corrupt = || internal("corrupt change page");
        let mut take = |n: usize| -> Result<&[u8]> {
            let (taken, rest) = page.split_at_checked(n).ok_or_else(corrupt)?;
            page = rest;
            Ok(taken)
        };
        let entry = (|| {
            let seq = seq_of(take(8)?)?;
            let len = take(2)?;
            let account = take(u16::from_be_bytes([len[0], len[1]]) as usize)?;
            let len = take(4)?;
            let stored = take(u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize)?;
            Ok((seq, account, stored))
        })();
        if entry.is_err() {
            page = &[];
        }
        Some(entry)
    })
}

fn push_entry(page: &mut Vec<u8>, seq: u64, account: &str, stored: &[u8]) -> Result<()> {
    let account_len = u16::try_from(account.len()).map_err(|_| internal("account id too long"))?;
    let stored_len = u32::try_from(stored.len()).map_err(|_| internal("change too long"))?;
    page.extend_from_slice(&be(seq));
    page.extend_from_slice(&account_len.to_be_bytes());
    page.extend_from_slice(account.as_bytes());
    page.extend_from_slice(&stored_len.to_be_bytes());
    page.extend_from_slice(stored);
    Ok(())
}

impl ChangeLog {
    /// The log in `tree` (older entries and the horizon) and `pages` of `db`.
    pub fn open(db: engine::Db, tree: Tree, pages: Tree) -> Result<ChangeLog> {
        let horizon = match tree.get(HORIZON).map_err(internal)? {
            Some(value) => seq_of(&value)?,
            None => 0,
        };
        let mut last = horizon;
        for tree in [&tree, &pages] {
            if let Some((key, _)) = tree.last().map_err(internal)? {
                last = last.max(seq_of(&key)?);
            }
        }
        Ok(ChangeLog {
            db,
            tree,
            pages,
            numbers: Mutex::new(Numbers {
                last,
                unsettled: BTreeSet::new(),
                memory: BTreeMap::new(),
            }),
            horizon: AtomicU64::new(horizon),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Numbers> {
        self.numbers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one entry per update of `account_id`; they become readable when the
    /// returned guard is dropped.
    pub fn append<'u>(
        &self,
        account_id: &str,
        updates: impl ExactSizeIterator<Item = &'u DeliveryUpdate>,
    ) -> Result<Unsettled<'_>> {
        if updates.len() == 0 {
            return Ok(Unsettled {
                log: self,
                first: None,
            });
        }
        let at_ms = now_ms();
        let stored: Vec<Vec<u8>> = updates
            .map(|update| {
                encode(&Stored {
                    at_ms,
                    update: update.into(),
                })
            })
            .collect::<Result<_>>()?;
        let account: Box<str> = account_id.into();
        let mut numbers = self.lock();
        let mut first = None;
        for stored in stored {
            // 0 (sled's very first id) is the horizon's key.
            let seq = match self.db.generate_id().map_err(internal)? {
                0 => self.db.generate_id().map_err(internal)?,
                id => id,
            };
            first.get_or_insert(seq);
            numbers.last = seq;
            numbers.memory.insert(seq, (account.clone(), stored));
        }
        let first = first.expect("at least one update");
        numbers.unsettled.insert(first);
        Ok(Unsettled {
            log: self,
            first: Some(first),
        })
    }

    /// Writes the entries still in memory to pages (the next flush makes them durable).
    pub fn persist(&self) -> Result<()> {
        let mut numbers = self.lock();
        while !numbers.memory.is_empty() {
            let mut page = Vec::new();
            let mut last = 0;
            for (seq, (account, stored)) in numbers.memory.iter().take(PAGE_ENTRIES) {
                push_entry(&mut page, *seq, account, stored)?;
                last = *seq;
            }
            self.pages.insert(be(last), page).map_err(internal)?;
            // Readers that copied them from memory meanwhile skip them in the page.
            numbers.memory = numbers.memory.split_off(&(last + 1));
        }
        Ok(())
    }

    /// The last sequence number readers may see: before the oldest unsettled one.
    fn readable_end(&self) -> u64 {
        let numbers = self.lock();
        match numbers.unsettled.first() {
            Some(first) => first - 1,
            None => numbers.last,
        }
    }

    /// Every entry readable later is after this cursor.
    pub fn head(&self) -> ChangeCursor {
        ChangeCursor {
            high: 0,
            low: self.readable_end(),
        }
    }

    /// Up to `limit` entries of `account_id` after `after`.
    pub fn read(&self, account_id: &str, after: ChangeCursor, limit: usize) -> Result<ChangePage> {
        let end = self.readable_end();
        let mut page = ChangePage {
            next: after,
            ..ChangePage::default()
        };
        if after.low < end {
            page.next.low = end;
            // Copied before the pages are read: an entry moved to a page meanwhile is in the
            // page, in this copy, or in both (read once).
            let memory: Vec<(u64, Vec<u8>)> = self
                .lock()
                .memory
                .range(after.low + 1..=end)
                .filter(|(_, (account, _))| **account == *account_id)
                .map(|(seq, (_, stored))| (*seq, stored.clone()))
                .collect();
            let mut reader = Reader {
                account_id,
                end,
                limit,
                visited: 0,
                seen: after.low,
                page: &mut page,
            };
            'read: {
                for item in self.tree.range(be(after.low + 1)..=be(end)) {
                    let (key, value) = item.map_err(internal)?;
                    let (account, stored) = split(&value)?;
                    if reader.take(seq_of(&key)?, account, stored)? {
                        break 'read;
                    }
                }
                for item in self.pages.range(be(after.low + 1)..) {
                    let (_, value) = item.map_err(internal)?;
                    for entry in page_entries(&value) {
                        let (seq, account, stored) = entry?;
                        if reader.take(seq, account, stored)? {
                            break 'read;
                        }
                    }
                }
                for (seq, stored) in &memory {
                    if reader.take(*seq, account_id.as_bytes(), stored)? {
                        break 'read;
                    }
                }
            }
        }
        // Checked after reading: retention moves the horizon before it deletes.
        if after.low < self.horizon.load(Ordering::Acquire) {
            page.changes.clear();
            page.expired = true;
            page.next = after;
        }
        Ok(page)
    }

    /// Deletes up to about `budget` of the oldest entries appended before `before_ms` (whole
    /// pages, at least one); returns how many, and whether the budget stopped it.
    pub fn prune(&self, before_ms: i64, budget: usize) -> Result<(u64, bool)> {
        let end = self.readable_end();
        let mut doomed: Vec<(&Tree, Bytes)> = Vec::new();
        let mut pruned = 0usize;
        let mut horizon = 0;
        let mut more = false;
        'scan: {
            for item in self.tree.range(be(1)..=be(end)) {
                let (key, value) = item.map_err(internal)?;
                let stored: Stored = decode(split(&value)?.1)?;
                if stored.at_ms >= before_ms {
                    break 'scan;
                }
                if pruned == budget {
                    more = true;
                    break 'scan;
                }
                horizon = seq_of(&key)?;
                pruned += 1;
                doomed.push((&self.tree, key));
            }
            for item in self.pages.range(..=be(end)) {
                let (key, value) = item.map_err(internal)?;
                // A page goes once its newest entry is old enough.
                let Some((_, _, newest)) = page_entries(&value).last().transpose()? else {
                    continue;
                };
                if decode::<Stored>(newest)?.at_ms >= before_ms {
                    break;
                }
                let count = page_entries(&value).count();
                if pruned > 0 && pruned + count > budget {
                    more = true;
                    break;
                }
                horizon = seq_of(&key)?;
                pruned += count;
                doomed.push((&self.pages, key));
            }
        }
        if doomed.is_empty() {
            return Ok((0, false));
        }
        // The horizon first: a reader that raced with the deletes sees it and says so.
        self.tree.insert(HORIZON, be(horizon)).map_err(internal)?;
        self.horizon.fetch_max(horizon, Ordering::AcqRel);
        for (tree, key) in &doomed {
            tree.remove(key).map_err(internal)?;
        }
        Ok((pruned as u64, more))
    }
}

/// A read in progress over the entries in sequence order.
struct Reader<'a> {
    account_id: &'a str,
    /// The readable end.
    end: u64,
    limit: usize,
    /// Entries looked at.
    visited: usize,
    /// The last sequence number looked at (or the cursor read from).
    seen: u64,
    page: &'a mut ChangePage,
}

impl Reader<'_> {
    /// Looks at one entry; true: the read is over.
    fn take(&mut self, seq: u64, account: &[u8], stored: &[u8]) -> Result<bool> {
        if seq <= self.seen {
            return Ok(false); // before the cursor, or read already
        }
        if seq > self.end {
            return Ok(true);
        }
        if self.visited == SCAN_BUDGET {
            // The rest next time: a read never runs long on the caller's task.
            self.page.next.low = seq - 1;
            return Ok(true);
        }
        self.visited += 1;
        self.seen = seq;
        if account != self.account_id.as_bytes() {
            return Ok(false);
        }
        let stored: Stored = decode(stored)?;
        let cursor = ChangeCursor { high: 0, low: seq };
        self.page.changes.push(Change {
            cursor,
            account_id: self.account_id.to_string(),
            update: stored.update.into(),
        });
        if self.page.changes.len() == self.limit {
            self.page.next = cursor;
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeliveryState;

    fn update(delivery_id: u64) -> DeliveryUpdate {
        DeliveryUpdate {
            event_id: 1,
            webhook_id: 2,
            delivery_id,
            url: "http://x/hook".into(),
            state: DeliveryState::Queued,
            attempt: 0,
            status_code: None,
            error: String::new(),
            next_attempt_ms: None,
        }
    }

    fn log_of(db: &engine::Db) -> ChangeLog {
        ChangeLog::open(
            db.clone(),
            db.open_tree("changes").unwrap(),
            db.open_tree("change_pages").unwrap(),
        )
        .unwrap()
    }

    /// Every delivery id of `account`'s entries after `from`, read `limit` at a time.
    fn read_all(log: &ChangeLog, account: &str, limit: usize) -> Vec<u64> {
        let mut at = ChangeCursor::START;
        let mut ids = Vec::new();
        loop {
            let page = log.read(account, at, limit).unwrap();
            assert!(!page.expired);
            ids.extend(page.changes.iter().map(|c| c.update.delivery_id));
            if page.next == at {
                return ids;
            }
            at = page.next;
        }
    }

    #[test]
    fn entries_read_the_same_from_memory_and_from_pages_across_page_ends() {
        let db = engine::Db::temporary();
        let log = log_of(&db);
        let updates: Vec<DeliveryUpdate> = (1..=150).map(update).collect();
        for chunk in updates.chunks(7) {
            drop(log.append("acme", chunk.iter()).unwrap());
            drop(log.append("other", std::iter::once(&update(999))).unwrap());
        }
        let expected: Vec<u64> = (1..=150).collect();
        assert_eq!(read_all(&log, "acme", 10), expected);
        let half = log.read("acme", ChangeCursor::START, 75).unwrap();
        log.persist().unwrap();
        assert!(log.lock().memory.is_empty());
        assert!(db.open_tree("change_pages").unwrap().len().unwrap() >= 3);
        assert_eq!(read_all(&log, "acme", 10), expected);
        assert_eq!(read_all(&log, "acme", 1_000), expected);
        // A reader that stopped in memory goes on in the pages.
        let rest = log.read("acme", half.next, 1_000).unwrap();
        let rest: Vec<u64> = rest.changes.iter().map(|c| c.update.delivery_id).collect();
        assert_eq!(rest, (76..=150).collect::<Vec<_>>());
        // And a log opened again finds them, and numbers after them.
        drop(log);
        let reopened = log_of(&db);
        assert_eq!(read_all(&reopened, "acme", 10), expected);
        assert!(reopened.head().low >= 150 + 22);
    }

    #[test]
    fn entries_of_the_older_layout_are_read_and_pruned_before_the_pages() {
        let db = engine::Db::temporary();
        let old = db.open_tree("changes").unwrap();
        for (seq, id) in [(5u64, 1u64), (6, 2)] {
            let stored = encode(&Stored {
                at_ms: 1_000,
                update: (&update(id)).into(),
            })
            .unwrap();
            let mut value = 4u16.to_be_bytes().to_vec();
            value.extend_from_slice(b"acme");
            value.extend_from_slice(&stored);
            old.insert(be(seq), value).unwrap();
        }
        // They took their numbers from the same counter.
        while db.generate_id().unwrap() < 6 {}
        let log = log_of(&db);
        drop(log.append("acme", [update(3), update(4)].iter()).unwrap());
        log.persist().unwrap();
        drop(log.append("acme", std::iter::once(&update(5))).unwrap());
        assert_eq!(read_all(&log, "acme", 2), [1, 2, 3, 4, 5]);

        // Everything is older than a time in the future; the old entries go first.
        let (pruned, more) = log.prune(now_ms() + 60_000, 2).unwrap();
        assert_eq!((pruned, more), (2, true));
        assert!(log.read("acme", ChangeCursor::START, 10).unwrap().expired);
        let (pruned, more) = log.prune(now_ms() + 60_000, 10).unwrap();
        assert_eq!(
            (pruned, more),
            (2, false),
            "the page; what is in memory stays"
        );
        assert_eq!(old.len().unwrap(), 1, "only the horizon is left");
        let head = log.head();
        let after_horizon = ChangeCursor {
            high: 0,
            low: log.horizon.load(Ordering::Acquire),
        };
        let rest = log.read("acme", after_horizon, 10).unwrap();
        assert_eq!(rest.changes.len(), 1);
        assert_eq!(rest.changes[0].update.delivery_id, 5);
        assert_eq!(rest.next, head.max(rest.changes[0].cursor));
    }
}
