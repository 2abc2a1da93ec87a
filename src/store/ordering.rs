//! `OrderingStore`: what the `Store` keeps for ordering keys, a supertrait so each backend
//! implements it in a file of its own (`sled/ordering.rs`, `postgres/ordering.rs`).
//!
//! A delivery with an ordering key joins its queue (webhook, `Ordering::queue`: target URL and
//! key) when it is written; only the queue's head has an outbox entry, the others are
//! written without one (the claim cannot take them). The write that makes the head final
//! (`record_attempt` of a final state, whatever ended it) also gives the next one its outbox
//! entry, in the same durable step (PostgreSQL: one transaction under the queue's advisory lock; sled: ordered
//! single-key writes that `open` repairs), born leased to the instance that made the write,
//! which schedules it at once (`OrderingHead` tells it the head is its own to attempt); should
//! it not, any instance claims it once that lease ends. A cancel of a head whose entry is
//! leased (its attempt may be in flight) leaves the release to the write that lets go of it:
//! its attempt's `record_attempt`, or `remove_outbox_entry` of its entry (by its holder, or by
//! whoever claims it once the lease ended), so the next never overlaps that attempt. The
//! methods here only read.

use async_trait::async_trait;

use super::{Lease, OutboxEntry};
use crate::error::Result;

/// The queues of ordered deliveries that wait behind an unfinished head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderingBacklog {
    /// Queues with at least one delivery waiting behind its head.
    pub blocked_keys: u64,
    /// When the oldest head of such a queue was due (ms since the epoch).
    pub oldest_blocked_head_ms: Option<i64>,
}

/// The head of a queue: the one delivery of its webhook, key and URL that may be attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderingHead {
    /// Its outbox entry (due time as stored).
    pub entry: OutboxEntry,
    /// The lease on that entry (None: unleased, or no entry).
    pub lease: Option<Lease>,
}

impl OrderingHead {
    /// Whether `owner` holds the head's lease: only then does it attempt the head (another
    /// instance may have been handed the same delivery by the write that released it).
    pub fn is_held_by(&self, owner: u64) -> bool {
        self.lease.is_some_and(|lease| lease.owner == owner)
    }
}

/// Ordering-key queues.
#[async_trait]
pub trait OrderingStore {
    /// The head of a webhook's queue (`Ordering::queue`; None when the queue is empty).
    async fn ordering_head(&self, webhook_id: u64, queue: &str) -> Result<Option<OrderingHead>>;
    /// How many queues are blocked behind a head, and since when.
    async fn ordering_backlog(&self) -> Result<OrderingBacklog>;
}
