//! Ordering-key queues in sled: tree `ordering`, `webhook id ++ queue ++ seq -> delivery id`
//! (`Ordering::queue`, 32 hex digits), `seq` from `generate_id` when the delivery is written
//! (so a queue lists in write order). A
//! queue's changes take `ordering_lock` (one process opens a sled store).
//!
//! Crash states: a delivery's queue entry is written in the batch that writes the delivery
//! (and its outbox entry, which only a head gets), under `ordering_lock` until that batch is
//! committed, so the head a queue's entries say is the one that got the outbox entry; making
//! a head final writes its state, then the next one's outbox entry, then drops its own queue
//! entry. A crash in between leaves a final delivery at the head of
//! its queue; `repair_ordering` (at open) drops such entries and gives each queue's first
//! unfinished delivery its outbox entry. A head cancelled while leased stays at the head,
//! final, until the write that lets go of it releases the next (see `store::ordering`); the
//! same repair releases it after a restart.

use std::collections::BTreeMap;
use std::sync::MutexGuard;

use super::codec::be;
use super::engine::Batch;
use super::{Loaded, SledStore, Trees, internal};
use crate::error::Result;
use crate::model::Delivery;
use crate::store::{OrderingBacklog, OrderingHead, OrderingStore, OutboxEntry};
use async_trait::async_trait;

/// Bytes of a queue's key prefix: webhook id and queue.
const QUEUE: usize = 8 + 32;

fn queue_prefix(webhook_id: u64, queue: &str) -> Vec<u8> {
    let mut prefix = be(webhook_id).to_vec();
    prefix.extend_from_slice(queue.as_bytes());
    prefix
}

fn id_of(value: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        value
            .try_into()
            .map_err(|_| internal("corrupt ordering entry"))?,
    ))
}

/// The ordering queues, locked for a batch of new deliveries until it is committed, and the
/// queues that batch adds to (it sees none of its own writes).
pub(super) struct Queues<'a> {
    _lock: MutexGuard<'a, ()>,
    added: Vec<Vec<u8>>,
}

impl Trees {
    /// Locks the ordering queues (`Queues`).
    pub(super) fn lock_queues(&self) -> Queues<'_> {
        Queues {
            _lock: self.ordering_lock.lock().unwrap_or_else(|e| e.into_inner()),
            added: Vec::new(),
        }
    }

    /// Puts an unfinished ordered delivery at the back of its queue, in `batch`; true when it
    /// is the head (nothing unfinished before it) and so gets its outbox entry now.
    /// Deliveries without a key are always "heads".
    pub(super) fn enqueue_ordered(
        &self,
        batch: &mut Batch,
        queues: &mut Queues<'_>,
        delivery: &Delivery,
    ) -> Result<bool> {
        let Some(ordering) = &delivery.ordering else {
            return Ok(true);
        };
        if delivery.state.is_final() {
            return Ok(true);
        }
        let prefix = queue_prefix(delivery.webhook_id, &ordering.queue);
        let head =
            !queues.added.contains(&prefix) && self.ordering.scan_prefix(&prefix).next().is_none();
        let mut entry = prefix.clone();
        entry.extend_from_slice(&be(self.next_id()?));
        batch.insert(&self.ordering, entry, be(delivery.id));
        queues.added.push(prefix);
        Ok(head)
    }

    /// After a delivery of a queue became final (its state is written): if it headed its
    /// queue, gives the next unfinished one its outbox entry, born leased to this instance
    /// (its worker or core schedules it at once), then takes this one out of the queue.
    /// Entries of final or missing deliveries met on the way (a crash's leftovers) go too.
    pub(super) fn release_ordered(&self, delivery: &Delivery) -> Result<()> {
        if delivery.ordering.is_none() || !delivery.state.is_final() {
            return Ok(());
        }
        self.leave_queue(delivery)
    }

    /// Takes a delivery out of its queue (`release_ordered`; an orphan dropped unfinished).
    pub(super) fn leave_queue(&self, delivery: &Delivery) -> Result<()> {
        let Some(ordering) = &delivery.ordering else {
            return Ok(());
        };
        let prefix = queue_prefix(delivery.webhook_id, &ordering.queue);
        let _queue = self.ordering_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = self.ordering.scan_prefix(&prefix);
        let mut own = Vec::new();
        // Until its own entry is found, the one ending is behind the head.
        let mut was_head = true;
        let mut next = None;
        for item in entries.by_ref() {
            let (entry, value) = item.map_err(internal)?;
            let id = id_of(&value)?;
            if id == delivery.id {
                own.push(entry);
                if next.is_some() {
                    break;
                }
            } else if next.is_none() {
                was_head = !own.is_empty();
                next = Some((entry, id));
                if !own.is_empty() {
                    break;
                }
            }
        }
        if was_head {
            let lease = self.owner.lease_from(crate::model::now_ms());
            let candidates = next.into_iter().map(Ok).chain(entries.map(|item| {
                let (entry, value) = item.map_err(internal)?;
                Ok((entry, id_of(&value)?))
            }));
            for candidate in candidates {
                let (entry, id) = candidate?;
                match self.load_delivery(id)? {
                    Some(Loaded::Delivery(next)) if !next.state.is_final() => {
                        self.put_outbox_entry(&next, Some(lease))?;
                        break;
                    }
                    Some(Loaded::Orphan(orphan)) => {
                        // Never attempted: it goes with its queue entry.
                        let mut batch = self.db.batch();
                        self.remove_orphan_in(&mut batch, &orphan);
                        batch.remove(&self.ordering, entry);
                        batch.commit().map_err(internal)?;
                        self.outbox.set_lease(orphan.id, None);
                    }
                    _ => {
                        self.ordering.remove(entry).map_err(internal)?;
                    }
                }
            }
        }
        for entry in own {
            self.ordering.remove(entry).map_err(internal)?;
        }
        Ok(())
    }

    /// Repairs what a crash can leave in the queues: final or missing deliveries at a head
    /// are dropped, and each queue's first unfinished delivery gets its outbox entry.
    pub(super) fn repair_ordering(&self) -> Result<()> {
        let mut settled: Option<Vec<u8>> = None;
        for item in self.ordering.iter() {
            let (entry, value) = item.map_err(internal)?;
            let queue = entry[..QUEUE.min(entry.len())].to_vec();
            if settled.as_ref() == Some(&queue) {
                continue;
            }
            match self.get_delivery(id_of(&value)?)? {
                Some(delivery) if !delivery.state.is_final() => {
                    self.put_outbox_entry(&delivery, None)?;
                    settled = Some(queue);
                }
                _ => {
                    self.ordering.remove(&entry).map_err(internal)?;
                }
            }
        }
        Ok(())
    }

    /// A webhook's ordered deliveries waiting behind their queues' heads (which have outbox
    /// entries), counted up to `cap`.
    pub(super) fn count_behind_heads(&self, webhook_id: u64, cap: usize) -> Result<usize> {
        let mut behind = 0;
        let mut queue: Option<Vec<u8>> = None;
        for key in self.ordering.scan_prefix(be(webhook_id)).keys() {
            if behind >= cap {
                break;
            }
            let key = key.map_err(internal)?;
            let this = &key[..QUEUE.min(key.len())];
            if queue.as_deref() == Some(this) {
                behind += 1;
            } else {
                queue = Some(this.to_vec());
            }
        }
        Ok(behind)
    }

    fn ordering_backlog(&self) -> Result<OrderingBacklog> {
        // Per queue: its head's id and how many wait behind it.
        let mut queues: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
        for item in self.ordering.iter() {
            let (entry, value) = item.map_err(internal)?;
            let queue = entry[..QUEUE.min(entry.len())].to_vec();
            let id = id_of(&value)?;
            queues
                .entry(queue)
                .and_modify(|(_, waiting)| *waiting += 1)
                .or_insert((id, 0));
        }
        let mut backlog = OrderingBacklog::default();
        for (head, waiting) in queues.into_values() {
            if waiting == 0 {
                continue;
            }
            backlog.blocked_keys += 1;
            if let Some(delivery) = self.get_delivery(head)? {
                let due = delivery.next_attempt_ms;
                backlog.oldest_blocked_head_ms = Some(
                    backlog
                        .oldest_blocked_head_ms
                        .map_or(due, |oldest| oldest.min(due)),
                );
            }
        }
        Ok(backlog)
    }
}

#[async_trait]
impl OrderingStore for SledStore {
    async fn ordering_head(&self, webhook_id: u64, queue: &str) -> Result<Option<OrderingHead>> {
        let prefix = queue_prefix(webhook_id, queue);
        let Some(item) = self.trees.ordering.scan_prefix(prefix).next() else {
            return Ok(None);
        };
        let (_, value) = item.map_err(internal)?;
        let Some(delivery) = self.trees.get_delivery(id_of(&value)?)? else {
            return Ok(None);
        };
        Ok(Some(OrderingHead {
            entry: OutboxEntry {
                due_ms: delivery.next_attempt_ms,
                delivery_id: delivery.id,
                webhook_id: delivery.webhook_id,
            },
            lease: self.trees.outbox.lease(delivery.id),
        }))
    }

    async fn ordering_backlog(&self) -> Result<OrderingBacklog> {
        self.blocking(Trees::ordering_backlog).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeliveryState, Ordering};

    fn ordered(id: u64) -> Delivery {
        Delivery {
            next_attempt_ms: 1_000 + id as i64,
            ordering: Some(Ordering::new("K", "https://example.com/hook")),
            ..Delivery::queued(
                id,
                1,
                7,
                "https://example.com/hook".into(),
                "acme".into(),
                1_000,
            )
        }
    }

    /// The deliveries the outbox holds, claimed at `now_ms` (after every earlier claim's
    /// lease and the writes' own leases).
    fn outbox_ids(trees: &Trees, now_ms: i64) -> Vec<u64> {
        let claim = crate::store::Claim {
            lease: crate::store::Lease {
                owner: 9,
                until_ms: now_ms,
            },
            now_ms,
            due_before_ms: i64::MAX,
            per_webhook: 100,
            limit: 100,
            skip: &[],
        };
        let claimed = trees.outbox.claim(claim, |_| Ok(None)).unwrap();
        claimed.iter().map(|e| e.delivery_id).collect()
    }

    #[test]
    fn a_crash_between_a_heads_final_state_and_the_release_is_repaired_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let owner = crate::store::Owner::random(std::time::Duration::from_secs(30));
        let trees = Trees::open(dir.path(), crate::store::SLED_CACHE_BYTES, owner).unwrap();
        let (first, second) = (ordered(10), ordered(11));
        // One emit: the first is its key's head, the second waits behind it.
        let event = crate::model::Event {
            id: 1,
            account_id: "acme".into(),
            event_type: "alert group created".into(),
            data: serde_json::json!({}),
            created_at_ms: 1_000,
            delivery_ids: vec![first.id, second.id],
            operational: false,
        };
        let emitted = trees.insert_event(&event, &[first.clone(), second.clone()], None);
        assert_eq!(emitted.unwrap(), crate::store::InsertOutcome::Inserted);
        let later = crate::model::now_ms() + 3_600_000;
        assert_eq!(outbox_ids(&trees, later), [first.id]);
        // The first became final, and the crash came before the second's release.
        let mut done = first.clone();
        done.state = DeliveryState::Succeeded;
        let state = crate::store::sled::codec::delivery::encode_state(&done).unwrap();
        trees.deliveries.insert(be(first.id), state).unwrap();
        trees
            .remove_outbox_entry(crate::store::OutboxEntry {
                due_ms: first.next_attempt_ms,
                delivery_id: first.id,
                webhook_id: first.webhook_id,
            })
            .unwrap();
        assert!(outbox_ids(&trees, later + 1).is_empty());

        trees.repair_ordering().unwrap();
        assert_eq!(outbox_ids(&trees, later + 2), [second.id]);
        assert_eq!(trees.ordering.len().unwrap(), 1);
    }
}
