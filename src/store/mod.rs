//! Persistence: the backend-neutral `Store` trait the core and the delivery engine use,
//! the `Sealed` layer that encrypts secrets over any backend, and one module per backend
//! (`sled`, embedded, named after its first engine, the only importer of fjall and sled;
//! `postgres`, for several instances on one database, the only importer of sqlx). Callers
//! never see key bytes, rows or driver types.
//!
//! Durability is the backend's business behind the trait: a write that an API acknowledges
//! (`put_webhook`, `insert_events`, ...) returns only once it is durable, and the backend
//! gathers concurrent callers into one durable step (embedded: one fsync on its flusher thread;
//! a network database: one transaction for many events).

mod catalog;
pub mod change_log;
pub mod changes;
pub mod health;
mod lease;
mod ordering;
mod postgres;
mod queries;
mod sealed;
mod secrets;
pub mod sled;
mod trim;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod conformance_queries;

pub use catalog::EventTypeStore;
pub use lease::{Claim, Lease, Owner};
pub use ordering::{OrderingBacklog, OrderingHead, OrderingStore};
pub use postgres::{POOL_SIZE as PG_POOL_SIZE, PostgresStore};
pub use queries::{Cancelled, DeliveryQuery, EventQuery, Keyset};
pub use sealed::Sealed;
pub use secrets::SecretBox;
pub use sled::{SLED_CACHE_BYTES, SledStore};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{ApiToken, BreakerStep, Delivery, Event, ResponseRecord, Webhook, WebhookStats};
use change_log::{ChangeCursor, ChangePage};

/// Which slice of a listing to return: skip `offset` items after the cursor, then up to `limit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page {
    /// Start after this item's key (opaque to callers; taken from a previous page).
    pub after: Option<u64>,
    /// Items to skip (page-number pagination).
    pub offset: usize,
    /// Items to return at most.
    pub limit: usize,
}

/// Result of persisting an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The event and its deliveries were written.
    Inserted,
    /// The idempotency key was used by this earlier event within its lifetime; nothing written.
    Duplicate(u64),
}

/// An idempotency key of an account, with how long it holds.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKey<'a> {
    /// Owning account.
    pub account_id: &'a str,
    /// The caller's key.
    pub key: &'a str,
    /// Earlier uses older than this (ms) are forgotten.
    pub ttl_ms: i64,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord<'a> {
    /// The delivery after the attempt (state, attempts, next_attempt_ms, last status).
    pub delivery: &'a Delivery,
    /// Due time of the outbox entry the attempt came from (removed).
    pub previous_due_ms: i64,
    /// The attempt's log entry (None when there is nothing to log, e.g. a cancelled delivery).
    pub response: Option<&'a ResponseRecord>,
    /// Whether the attempt succeeded (updates last_success) or failed (last_failure).
    pub succeeded: bool,
    /// What it says about the endpoint, for the breaker kept in the stats (see
    /// `WebhookStats::record`; only a logged attempt moves it).
    pub breaker: BreakerStep,
    /// A retry's entry stays leased with this lease (the caller keeps it in memory); None
    /// releases it to any instance.
    pub lease: Option<Lease>,
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted (with their deliveries).
    pub events: u64,
    /// Idempotency keys deleted.
    pub idempotency_keys: u64,
    /// The pass stopped at its budget: there may be more to prune right away.
    pub more: bool,
}

/// A durable "deliver this at that time" entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Due time, ms since the epoch.
    pub due_ms: i64,
    /// Delivery to attempt.
    pub delivery_id: u64,
    /// Its webhook (for per-endpoint fairness without loading the delivery).
    pub webhook_id: u64,
}

/// An event to persist with its deliveries, unless its idempotency key names a live
/// earlier event.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// The event (its `delivery_ids` list `deliveries`).
    pub event: &'a Event,
    /// Its deliveries; those not final get an outbox entry.
    pub deliveries: &'a [Delivery],
    /// The caller's idempotency key, if any.
    pub idempotency: Option<IdempotencyKey<'a>>,
}

/// Everything webhookd persists. Writes documented as durable return once they survive a
/// crash; the others become durable at the backend's own pace (a lost attempt record means
/// the attempt is made again: delivery is at-least-once). The event-type catalog's methods
/// are in the supertrait `EventTypeStore`, the ordering-key queues' in `OrderingStore`.
#[async_trait]
pub trait Store: EventTypeStore + OrderingStore + Send + Sync + 'static {
    /// A new unique id (increasing within one process).
    async fn next_id(&self) -> Result<u64>;

    /// Inserts or replaces a webhook; durable.
    async fn put_webhook(&self, webhook: &Webhook) -> Result<()>;
    /// A webhook by id, whatever its account.
    async fn get_webhook(&self, id: u64) -> Result<Option<Webhook>>;
    /// Deletes a webhook, its stats and its response log; false when it did not exist;
    /// durable.
    async fn delete_webhook(&self, id: u64) -> Result<bool>;
    /// Webhooks of an account in creation order.
    async fn list_webhooks(&self, account_id: &str, page: Page) -> Result<Vec<Webhook>>;
    /// Number of webhooks of every account.
    async fn count_all_webhooks(&self) -> Result<usize>;
    /// Number of webhooks of an account.
    async fn count_webhooks(&self, account_id: &str) -> Result<usize>;
    /// Delivery outcome times of a webhook.
    async fn webhook_stats(&self, id: u64) -> Result<WebhookStats>;
    /// A webhook's deliveries still to deliver (due, retrying, or waiting behind their
    /// ordering key), whichever instance holds them, counted up to `cap`.
    async fn count_waiting(&self, webhook_id: u64, cap: usize) -> Result<usize>;

    /// Stores a token under the hash of its secret; durable.
    async fn put_token(&self, hash: &[u8; 32], token: &ApiToken) -> Result<()>;
    /// The token whose secret hashes to `hash`.
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>>;
    /// Revokes a token; false when it did not exist; durable.
    async fn delete_token(&self, id: u64) -> Result<bool>;

    /// Writes each event with its deliveries and their outbox entries (leased to the
    /// store's `Owner`: the writer schedules them itself), unless its
    /// idempotency key names a live earlier event (which is then durable too). Returns one
    /// outcome per event, in order, once every one is durable: this is an emit's
    /// acknowledgement point.
    async fn insert_events(&self, events: &[NewEvent<'_>]) -> Result<Vec<InsertOutcome>>;
    /// An event by id.
    async fn get_event(&self, id: u64) -> Result<Option<Event>>;
    /// A delivery by id.
    async fn get_delivery(&self, id: u64) -> Result<Option<Delivery>>;
    /// Writes new deliveries of existing events (redelivery) with their outbox entries
    /// (leased to the store's `Owner`) and adds them to their events; NOT_FOUND when an event is gone; durable.
    async fn insert_deliveries(&self, deliveries: &[Delivery]) -> Result<()>;
    /// Records an attempt: delivery state, outbox entry moved or removed, log entry, stats
    /// and breaker (`WebhookStats::record`, atomic per webhook across instances). Returns
    /// the webhook's stats after the attempt.
    async fn record_attempt(&self, record: AttemptRecord<'_>) -> Result<WebhookStats>;
    /// Drops an outbox entry that no longer matches its delivery (left by a crash between
    /// the writes of `record_attempt`, or kept by `cancel_delivery`), and its lease; a final
    /// delivery still heading its ordering queue releases the next one (born leased to the
    /// store's `Owner`).
    async fn remove_outbox_entry(&self, entry: OutboxEntry) -> Result<()>;
    /// Leases due entries not leased by anyone (or whose lease expired) to `claim.lease`:
    /// for each webhook with due entries, not skipped, its earliest due up to
    /// `per_webhook`, at most `limit` in all; webhooks take turns when the limit binds.
    /// Bounded work: never a scan of the whole outbox.
    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<OutboxEntry>>;
    /// Extends to `lease` the leases `lease.owner` holds on these deliveries' entries.
    async fn renew_leases(&self, lease: Lease, delivery_ids: &[u64]) -> Result<()>;
    /// Ends the leases `owner` holds on these deliveries' entries: any instance may claim them.
    async fn release_leases(&self, owner: u64, delivery_ids: &[u64]) -> Result<()>;

    /// A webhook's attempts, newest first, with their log keys.
    async fn list_responses(
        &self,
        webhook_id: u64,
        page: Page,
    ) -> Result<Vec<(u64, ResponseRecord)>>;
    /// Number of logged attempts of a webhook.
    async fn count_responses(&self, webhook_id: u64) -> Result<usize>;
    /// Drops a webhook's log entries older than the newest `keep`, `newest_seq` being the
    /// sequence number of its newest entry (`WebhookStats::response_seq`).
    async fn trim_responses(&self, webhook_id: u64, newest_seq: u64, keep: u64) -> Result<()>;

    /// One bounded pass of retention: deletes events created before `events_before_ms` whose
    /// deliveries are all final (with those deliveries), and idempotency keys used before
    /// `keys_before_ms`. Visits at most `budget` records of each kind, continuing where the
    /// previous pass stopped.
    async fn prune(
        &self,
        events_before_ms: i64,
        keys_before_ms: i64,
        budget: usize,
    ) -> Result<Pruned>;

    /// The account's events matching `query`, newest first (operator API).
    async fn list_events(&self, query: &EventQuery<'_>) -> Result<Vec<Event>>;
    /// The account's deliveries matching `query`, newest first (operator API).
    async fn list_deliveries(&self, query: &DeliveryQuery<'_>) -> Result<Vec<Delivery>>;
    /// Cancels a delivery that is not final: state CANCELLED at `at_ms`, outbox entry
    /// removed; durable. A later `record_attempt` of an attempt that was in flight keeps
    /// it CANCELLED whatever it says. The head of an ordering queue whose entry is leased
    /// (its attempt may be in flight) keeps its entry and its place: the next one is
    /// released by that `record_attempt`, or by `remove_outbox_entry` of its entry.
    async fn cancel_delivery(&self, id: u64, at_ms: i64) -> Result<Cancelled>;
    /// Up to `limit` change log entries of an account after `after`, oldest first (see
    /// `change_log`): only entries no earlier one can still join, so reading on from the
    /// page's `next` misses and repeats nothing.
    async fn read_changes(
        &self,
        account_id: &str,
        after: ChangeCursor,
        limit: usize,
    ) -> Result<ChangePage>;
    /// The change log's present: every entry readable later is after this cursor.
    async fn change_head(&self) -> Result<ChangeCursor>;
    /// Deletes up to `budget` of the oldest change log entries written before `before_ms`;
    /// returns how many, and whether there may be more right away.
    async fn prune_changes(&self, before_ms: i64, budget: usize) -> Result<(u64, bool)>;

    /// Makes every write so far durable and ends the store's use by this process, once, at
    /// a graceful stop: a write after it fails (sled: see `sled::engine::Db::close`; the next
    /// open then has no journal to replay).
    async fn close(&self) -> Result<()>;

    /// Follows the delivery changes committed by every instance sharing this store (see
    /// `changes`); None when the backend has no other writer (sled).
    fn changes(&self) -> Option<changes::Changes> {
        None
    }

    /// Whether the backend answers now (the health monitor's probe).
    async fn ping(&self) -> Result<()>;

    /// Resolves, with the error to stop with, once this instance can no longer share the
    /// store safely (PostgreSQL: another live instance took its instance id); never on sled.
    async fn must_stop(&self) -> Error {
        std::future::pending().await
    }
}
