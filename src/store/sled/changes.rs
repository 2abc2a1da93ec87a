//! The change log of the sled backend: the `changes` tree, `be(sequence) -> entry`. The
//! sequence numbers are sled's `generate_id` (monotonic across crashes: sled persists its
//! counter ahead of use and skips forward at recovery), so a number a reader saw before a
//! crash is never handed out again after it.
//!
//! Order without gaps: an append takes its sequence numbers under a short lock and marks
//! them unsettled, writes its entries, and settles them once they may be read: at once for
//! an attempt (whose record becomes durable at sled's own pace, as before), after the group
//! commit for an emit or a redelivery (QUEUED is shown only once durable). Readers stop
//! before the oldest unsettled number, so an entry that is still being written (or waiting
//! for its flush) holds back the later ones instead of being skipped: a reader never moves
//! past a number that could still appear. A crash loses unflushed entries together with the
//! writes they record (nothing acknowledged was shown).
//!
//! Value: account length (u16, big-endian), account, then the codec's JSON of `Stored`. The
//! account comes first so a reader skips other accounts' entries without decoding them. Key
//! `be(0)` holds the horizon: the highest sequence number retention has deleted.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sled::Tree;

use super::codec::{be, decode, encode};
use super::internal;
use crate::error::Result;
use crate::model::{DeliveryUpdate, now_ms};
use crate::store::change_log::{Change, ChangeCursor, ChangePage, StoredUpdate};

/// Key of the horizon (sequence numbers start at 1).
const HORIZON: [u8; 8] = [0; 8];

/// Entries one read looks at, at most (other accounts' are skipped without decoding).
const SCAN_BUDGET: usize = 4096;

/// An entry as stored after its account.
#[derive(Serialize, Deserialize)]
struct Stored {
    at_ms: i64,
    update: StoredUpdate,
}

/// The change log and the numbers handed out but not yet readable.
pub struct ChangeLog {
    db: sled::Db,
    tree: Tree,
    numbers: Mutex<Numbers>,
    /// The highest sequence number pruned (0: none).
    horizon: AtomicU64,
}

struct Numbers {
    /// The last sequence number handed out (or found at open).
    last: u64,
    /// First numbers of appends not settled yet.
    unsettled: BTreeSet<u64>,
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

/// The account and the stored part of a value.
fn split(value: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || internal("corrupt change entry");
    let (len, rest) = value.split_at_checked(2).ok_or_else(corrupt)?;
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    rest.split_at_checked(len).ok_or_else(corrupt)
}

impl ChangeLog {
    /// The log in `tree` of `db`.
    pub fn open(db: sled::Db, tree: Tree) -> Result<ChangeLog> {
        let horizon = match tree.get(HORIZON).map_err(internal)? {
            Some(value) => seq_of(&value)?,
            None => 0,
        };
        let last = match tree.last().map_err(internal)? {
            Some((key, _)) => seq_of(&key)?,
            None => 0,
        };
        Ok(ChangeLog {
            db,
            tree,
            numbers: Mutex::new(Numbers {
                last: last.max(horizon),
                unsettled: BTreeSet::new(),
            }),
            horizon: AtomicU64::new(horizon),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Numbers> {
        self.numbers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one entry per update of `account_id`; they become readable when the returned
    /// guard is dropped.
    pub fn append<'u>(
        &self,
        account_id: &str,
        updates: impl ExactSizeIterator<Item = &'u DeliveryUpdate>,
    ) -> Result<Unsettled<'_>> {
        let count = updates.len();
        if count == 0 {
            return Ok(Unsettled {
                log: self,
                first: None,
            });
        }
        let numbers = {
            let mut numbers = self.lock();
            let mut taken = Vec::with_capacity(count);
            while taken.len() < count {
                // 0 (sled's very first id) is the horizon's key.
                match self.db.generate_id().map_err(internal)? {
                    0 => {}
                    id => taken.push(id),
                }
            }
            numbers.last = taken[taken.len() - 1];
            numbers.unsettled.insert(taken[0]);
            taken
        };
        let pending = Unsettled {
            log: self,
            first: Some(numbers[0]),
        };
        let account = account_id.as_bytes();
        let len = u16::try_from(account.len()).map_err(|_| internal("account id too long"))?;
        let at_ms = now_ms();
        for (seq, update) in numbers.into_iter().zip(updates) {
            let stored = encode(&Stored {
                at_ms,
                update: update.into(),
            })?;
            let mut value = Vec::with_capacity(2 + account.len() + stored.len());
            value.extend_from_slice(&len.to_be_bytes());
            value.extend_from_slice(account);
            value.extend_from_slice(&stored);
            self.tree.insert(be(seq), value).map_err(internal)?;
        }
        Ok(pending)
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
            let entries = self.tree.range(be(after.low + 1)..=be(end));
            for (visited, item) in entries.enumerate() {
                let (key, value) = item.map_err(internal)?;
                let cursor = ChangeCursor {
                    high: 0,
                    low: seq_of(&key)?,
                };
                if visited == SCAN_BUDGET {
                    // The rest next time: a read never runs long on the caller's task.
                    page.next.low = cursor.low - 1;
                    break;
                }
                let (account, stored) = split(&value)?;
                if account != account_id.as_bytes() {
                    continue;
                }
                let stored: Stored = decode(stored)?;
                page.changes.push(Change {
                    cursor,
                    account_id: account_id.to_string(),
                    update: stored.update.into(),
                });
                if page.changes.len() == limit {
                    page.next = cursor;
                    break;
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

    /// Deletes up to `budget` of the oldest entries appended before `before_ms`; returns
    /// how many, and whether the budget stopped it.
    pub fn prune(&self, before_ms: i64, budget: usize) -> Result<(u64, bool)> {
        let end = self.readable_end();
        let mut doomed = Vec::new();
        let mut more = false;
        for item in self.tree.range(be(1)..=be(end)) {
            let (key, value) = item.map_err(internal)?;
            let stored: Stored = decode(split(&value)?.1)?;
            if stored.at_ms >= before_ms {
                break;
            }
            if doomed.len() == budget {
                more = true;
                break;
            }
            doomed.push(key);
        }
        let Some(last) = doomed.last() else {
            return Ok((0, false));
        };
        // The horizon first: a reader that raced with the deletes sees it and says so.
        let horizon = seq_of(last)?;
        self.tree.insert(HORIZON, &be(horizon)).map_err(internal)?;
        self.horizon.fetch_max(horizon, Ordering::AcqRel);
        for key in &doomed {
            self.tree.remove(key).map_err(internal)?;
        }
        Ok((doomed.len() as u64, more))
    }
}
