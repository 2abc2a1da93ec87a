//! The embedded store's outbox: one key per delivery still to attempt, `webhook id ++ due ms ++ delivery
//! id` (empty value), so each webhook's entries are in due order and a claim visits the
//! webhooks with entries by seeking from one to the next (a loose index scan) instead of
//! walking the whole backlog. Leases live in memory: one process uses the directory, so
//! nothing is leased after `open`; the map holds only what is leased (the claim window and
//! fresh writes), and expired leases are swept as it grows. A claim passes over a webhook
//! whose stored circuit breaker is open, and takes one entry (the probe) of one whose open
//! period has passed, as the PostgreSQL claim does. Claims seek past the ranges they found
//! empty before (`gaps`: the removal markers of delivered entries stay in the tree until
//! compaction drops them).
//!
//! Older data directories kept the outbox as `due ++ delivery -> webhook` in the tree
//! `outbox`; `open` moves those entries over (each written here before it is removed there,
//! so a crash in between only leaves entries to move again) and drops that tree.

use std::collections::HashMap;
use std::sync::Mutex;

use super::codec::{be, split2};
use super::engine::{Batch, Db, Tree};
use super::gaps::{self, Gaps};
use super::internal;
use crate::error::Result;
use crate::store::{Claim, Lease, OutboxEntry};

/// Name of the tree of the older layout.
const OLD_TREE: &str = "outbox";

/// The outbox tree and the leases on its entries.
pub struct Outbox {
    tree: Tree,
    leases: Mutex<Leases>,
}

#[derive(Default)]
struct Leases {
    by_delivery: HashMap<u64, Lease>,
    /// Size of the map after the last sweep of expired leases.
    swept_len: usize,
    /// The webhook the next claim starts from (webhooks take turns when a claim's limit binds).
    cursor: u64,
    /// The key ranges found empty.
    gaps: Gaps,
}

fn key(webhook_id: u64, due_ms: i64, delivery_id: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&be(webhook_id));
    key[8..16].copy_from_slice(&be(due_ms.max(0) as u64));
    key[16..].copy_from_slice(&be(delivery_id));
    key
}

fn entry_of(key: &[u8]) -> Result<OutboxEntry> {
    let (webhook_id, due) = split2(
        key.get(..16)
            .ok_or_else(|| internal("corrupt outbox key"))?,
    )?;
    let delivery_id = key
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| internal("corrupt outbox key"))?;
    Ok(OutboxEntry {
        due_ms: due as i64,
        delivery_id,
        webhook_id,
    })
}

impl Outbox {
    /// Opens the outbox of `db`, moving entries of the older layout over.
    pub fn open(db: &Db) -> Result<Outbox> {
        let tree = db.open_tree("outbox_by_webhook").map_err(internal)?;
        if db.tree_exists(OLD_TREE) {
            let old = db.open_tree(OLD_TREE).map_err(internal)?;
            for item in old.iter() {
                let (old_key, value) = item.map_err(internal)?;
                let (due, delivery_id) = split2(&old_key)?;
                let webhook_id = value
                    .as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| internal("corrupt outbox entry"))?;
                tree.insert(key(webhook_id, due as i64, delivery_id), [])
                    .map_err(internal)?;
                old.remove(old_key).map_err(internal)?;
            }
            db.flush().map_err(internal)?;
            db.drop_tree(OLD_TREE).map_err(internal)?;
        }
        Ok(Outbox {
            tree,
            leases: Mutex::default(),
        })
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes an entry; with a lease, it is leased (else whatever lease it had ends).
    pub fn put(&self, entry: OutboxEntry, lease: Option<Lease>) -> Result<()> {
        let key = key(entry.webhook_id, entry.due_ms, entry.delivery_id);
        self.tree.insert(key, []).map_err(internal)?;
        self.written(entry, lease);
        Ok(())
    }

    /// Adds an entry to `batch`; `written` once the batch is committed.
    pub fn put_in(&self, batch: &mut Batch, entry: OutboxEntry) {
        let key = key(entry.webhook_id, entry.due_ms, entry.delivery_id);
        batch.insert(&self.tree, key, []);
    }

    /// After an entry was written: claims look for it again, and with a lease it is leased
    /// (else whatever lease it had ends).
    pub fn written(&self, entry: OutboxEntry, lease: Option<Lease>) {
        // Written first: a claim that skipped the range before the cut did not look yet.
        let mut leases = self.leases();
        leases
            .gaps
            .written(key(entry.webhook_id, entry.due_ms, entry.delivery_id));
        match lease {
            Some(lease) => leases.by_delivery.insert(entry.delivery_id, lease),
            None => leases.by_delivery.remove(&entry.delivery_id),
        };
    }

    /// Leases a delivery's entry (None: ends its lease).
    pub fn set_lease(&self, delivery_id: u64, lease: Option<Lease>) {
        let mut leases = self.leases();
        match lease {
            Some(lease) => leases.by_delivery.insert(delivery_id, lease),
            None => leases.by_delivery.remove(&delivery_id),
        };
    }

    /// The lease on a delivery's entry, if any.
    pub fn lease(&self, delivery_id: u64) -> Option<Lease> {
        self.leases().by_delivery.get(&delivery_id).copied()
    }

    /// Removes an entry, keeping its delivery's lease (a moved entry keeps it).
    pub fn remove(&self, entry: OutboxEntry) -> Result<()> {
        self.tree
            .remove(key(entry.webhook_id, entry.due_ms, entry.delivery_id))
            .map_err(internal)?;
        Ok(())
    }

    /// Adds an entry's removal to `batch` (its lease is left as it is).
    pub fn remove_in(&self, batch: &mut Batch, entry: OutboxEntry) {
        batch.remove(
            &self.tree,
            key(entry.webhook_id, entry.due_ms, entry.delivery_id),
        );
    }

    /// A webhook's entries, counted up to `cap`.
    pub fn count(&self, webhook_id: u64, cap: usize) -> Result<usize> {
        let mut n = 0;
        for key in self.tree.scan_prefix(be(webhook_id)).keys().take(cap) {
            key.map_err(internal)?;
            n += 1;
        }
        Ok(n)
    }

    /// See `Store::claim`.
    /// `open_until` tells a webhook's stored breaker (the end of its open period while it is
    /// tripped).
    pub fn claim(
        &self,
        claim: Claim<'_>,
        open_until: impl Fn(u64) -> Result<Option<i64>>,
    ) -> Result<Vec<OutboxEntry>> {
        let mut leases = self.leases();
        let leases = &mut *leases;
        if leases.by_delivery.len() > 2 * leases.swept_len + 1024 {
            leases
                .by_delivery
                .retain(|_, lease| lease.until_ms >= claim.now_ms);
            leases.swept_len = leases.by_delivery.len();
        }
        let mut claimed = Vec::new();
        // From the cursor to the last webhook, then from the first up to the cursor.
        let start = leases.cursor;
        let mut next = Some(start);
        let mut wrapped = false;
        while claimed.len() < claim.limit {
            let Some(from) = next else {
                if wrapped || start == 0 {
                    break;
                }
                wrapped = true;
                next = Some(0);
                continue;
            };
            let seek = leases.gaps.skip(key(from, 0, 0));
            let Some(first) = self.tree.range(seek..).keys().next() else {
                leases.gaps.empty(seek, [u8::MAX; 24]);
                next = None;
                continue;
            };
            let first = first.map_err(internal)?;
            let webhook_id = entry_of(&first)?.webhook_id;
            if let Ok(first) = first.as_ref().try_into() {
                leases.gaps.empty(seek, first);
            }
            if wrapped && webhook_id >= start {
                break;
            }
            next = webhook_id.checked_add(1);
            if claim.skip.contains(&webhook_id) {
                continue;
            }
            let per_webhook = match open_until(webhook_id)? {
                None => claim.per_webhook,
                Some(until) if until <= claim.now_ms => claim.per_webhook.min(1),
                Some(_) => continue,
            };
            let start = leases.gaps.skip(key(webhook_id, 0, 0));
            let last = key(webhook_id, claim.due_before_ms, u64::MAX);
            let mut taken = 0;
            // Past `last` already: nothing due (and nothing to learn).
            let mut seen = start > last;
            let due = (!seen).then(|| self.tree.range(start..=last).keys());
            for item in due.into_iter().flatten() {
                let item = item.map_err(internal)?;
                if !seen {
                    seen = true;
                    if let Ok(first) = item.as_ref().try_into() {
                        leases.gaps.empty(start, first);
                    }
                }
                if taken == per_webhook || claimed.len() == claim.limit {
                    break;
                }
                let entry = entry_of(&item)?;
                let held = leases.by_delivery.get(&entry.delivery_id);
                if held.is_some_and(|l| l.until_ms >= claim.now_ms) {
                    continue;
                }
                leases.by_delivery.insert(entry.delivery_id, claim.lease);
                claimed.push(entry);
                taken += 1;
            }
            if !seen {
                leases.gaps.empty(start, gaps::successor(&last));
            }
            // The next claim starts after a webhook that got its share.
            if taken > 0 {
                leases.cursor = webhook_id.saturating_add(1);
            }
        }
        Ok(claimed)
    }

    /// See `Store::renew_leases`.
    pub fn renew(&self, lease: Lease, delivery_ids: &[u64]) {
        let mut leases = self.leases();
        for id in delivery_ids {
            if let Some(held) = leases.by_delivery.get_mut(id)
                && held.owner == lease.owner
            {
                *held = lease;
            }
        }
    }

    /// See `Store::release_leases`.
    pub fn release(&self, owner: u64, delivery_ids: &[u64]) {
        let mut leases = self.leases();
        for id in delivery_ids {
            if leases.by_delivery.get(id).is_some_and(|l| l.owner == owner) {
                leases.by_delivery.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_webhook_then_due_then_delivery() {
        assert!(key(1, 900, 5) < key(2, 0, 0));
        assert!(key(1, 100, 9) < key(1, 200, 1));
        let entry = entry_of(&key(7, 1_000, 42)).unwrap();
        assert_eq!(
            (entry.webhook_id, entry.due_ms, entry.delivery_id),
            (7, 1_000, 42)
        );
        assert!(entry_of(b"short").is_err());
    }

    fn entry(webhook_id: u64, due_ms: i64, delivery_id: u64) -> OutboxEntry {
        OutboxEntry {
            due_ms,
            delivery_id,
            webhook_id,
        }
    }

    fn claim_all(outbox: &Outbox, now_ms: i64) -> Vec<OutboxEntry> {
        let claim = Claim {
            lease: crate::store::conformance::OWNER.lease_from(now_ms),
            now_ms,
            due_before_ms: now_ms,
            per_webhook: 100,
            limit: 100,
            skip: &[],
        };
        outbox.claim(claim, |_| Ok(None)).unwrap()
    }

    #[test]
    fn an_entry_written_where_a_claim_found_nothing_is_claimed_next_time() {
        let db = Db::temporary();
        let outbox = Outbox::open(&db).unwrap();
        let delivered: Vec<_> = (1..=50).map(|i| entry(7, 1_000 + i, i as u64)).collect();
        for e in &delivered {
            outbox.put(*e, None).unwrap();
        }
        assert_eq!(claim_all(&outbox, 5_000), delivered);
        for e in &delivered {
            outbox.remove(*e).unwrap();
            outbox.set_lease(e.delivery_id, None);
        }
        // Nothing left: the claims record webhook 7's range, and what follows it, as empty.
        assert!(claim_all(&outbox, 5_000).is_empty());
        assert!(claim_all(&outbox, 5_000).is_empty());

        // A redelivery due inside the range found empty, and a new webhook after it.
        let redelivered = entry(7, 1_010, 99);
        let other = entry(9, 1_000, 100);
        outbox.put(redelivered, None).unwrap();
        outbox.put(other, None).unwrap();
        let mut claimed = claim_all(&outbox, 10_000);
        claimed.sort_by_key(|e| e.delivery_id);
        assert_eq!(claimed, [redelivered, other]);
    }
}
