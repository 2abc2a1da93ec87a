//! `OrderingStore`: what the `Store` keeps for ordering keys, a supertrait so each backend
//! implements it in a file of its own (`sled/ordering.rs`, `postgres/ordering.rs`).
//!
//! A delivery with an ordering key joins its queue (webhook, `Ordering::queue`: target URL and
//! key) when it is
//! written; only the queue's head has an outbox entry, the others are written without one
//! (the claim cannot take them). The write that makes the head final (`record_attempt` of a
//! final state, whatever ended it) also gives the next one its outbox entry, in the same
//! durable step (PostgreSQL: one transaction under the queue's advisory lock; sled: ordered
//! single-key writes that `open` repairs). The methods here only read.

use async_trait::async_trait;

use super::OutboxEntry;
use crate::error::Result;

/// The queues of ordered deliveries that wait behind an unfinished head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderingBacklog {
    /// Queues with at least one delivery waiting behind its head.
    pub blocked_keys: u64,
    /// When the oldest head of such a queue was due (ms since the epoch).
    pub oldest_blocked_head_ms: Option<i64>,
}

/// Ordering-key queues.
#[async_trait]
pub trait OrderingStore {
    /// The outbox entry of the head of a webhook's queue (`Ordering::queue`; None when the
    /// queue is empty).
    async fn ordering_head(&self, webhook_id: u64, queue: &str) -> Result<Option<OutboxEntry>>;
    /// How many queues are blocked behind a head, and since when.
    async fn ordering_backlog(&self) -> Result<OrderingBacklog>;
}
