//! The embedded backend of `Store` (named `sled` after the engine it first ran on; the
//! engine is now fjall, see `engine`): one database in the data directory with a fixed set of
//! trees. Engine calls are cheap and run inline on the caller's task; the durable writes end
//! with a group commit (`group_commit`: one blocking fsync of the journal on a dedicated
//! thread for every caller that asked meanwhile). It stores what it is given: the `Sealed`
//! layer above it has already encrypted the secrets. A data directory written by the sled
//! versions is moved over once at open (`migrate`).
//!
//! An emit's records are one atomic write (`engine::Batch`, `NewRecords`): its event, each
//! delivery's request record, index entries, ordering entry and outbox entry, and the
//! idempotency key's claim; a redelivery's records with its event's new delivery list. A
//! crash keeps all of them or none, and readers see none of them before the commit. What is
//! kept in memory (outbox leases, claims' gaps) follows the commit. The other writes are
//! single-key operations in an order that keeps every crash state readable (the journal
//! keeps a prefix of them): an index or outbox entry may point at a record that a crash kept
//! from being written (readers skip it; `open` repairs indexes), a record never exists
//! without what makes it reachable. Nothing is acknowledged before the group commit's flush,
//! which makes every earlier write durable.
//!
//! Versions before the batch wrote an emit record by record, its event last, so their data
//! directories can hold deliveries of an event a crash kept from being written: orphans of
//! an emit never acknowledged. A delivery whose event is missing does not exist for any
//! reader (`Trees::get_delivery`), and the reads that meet one drop what is left of it
//! (`Trees::drop_orphan`): the worker's when it claims the orphan's outbox entry (so it is
//! never attempted), a listing's, an ordering queue's when it passes over it. A listing also
//! drops an event index entry whose event is missing. No scan at open looks for them. A
//! prune removes an event with its deliveries in one batch, only if the event is unchanged
//! since it was read, so a redelivery committed meanwhile never loses its event.

mod changes;
mod clean_close;
mod codec;
mod engine;
mod event_types;
mod gaps;
mod group_commit;
mod journal_sync;
mod migrate;
mod ordering;
mod outbox;
mod queries;
mod stats;
mod tuning;
mod write_gate;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use prometheus::Histogram;

use super::change_log::{ChangeCursor, ChangePage, update_of};
use super::trim::{TrimCursors, TrimWindow};
use super::{
    AttemptRecord, Cancelled, Claim, DeliveryQuery, EventQuery, IdempotencyKey, InsertOutcome,
    Lease, NewEvent, OutboxEntry, Owner, Page, Pruned, Store,
};
use crate::error::{Error, Result};
use crate::model::{
    ApiToken, Delivery, DeliveryState, Event, ResponseRecord, Webhook, WebhookStats,
};
use changes::ChangeLog;
use codec::{account_key, be, be2, decode, delivery, encode, event, split2};
use engine::Tree;
use group_commit::GroupCommit;
use outbox::Outbox;
pub use tuning::SLED_CACHE_BYTES;

/// The embedded store.
pub struct SledStore {
    trees: Arc<Trees>,
    commit: GroupCommit,
}

/// The database and its trees, with the synchronous operations the trait methods run.
struct Trees {
    db: engine::Db,
    /// Decoded webhooks by id (None = deleted), so hot paths skip decoding.
    /// Writers update it after their commit; readers only fill gaps.
    cache: RwLock<HashMap<u64, Option<Arc<Webhook>>>>,
    /// id -> Webhook
    webhooks: Tree,
    /// account ++ 0 ++ id -> ()
    webhooks_by_account: Tree,
    /// id -> WebhookStats, kept in memory and written back by the flusher (`stats`).
    stats: stats::Stats,
    /// id -> Event
    events: Tree,
    /// id -> the delivery's mutable state
    deliveries: Tree,
    /// id -> the delivery's request (written once)
    requests: Tree,
    /// The deliveries still to attempt, per webhook in due order, and their leases.
    outbox: Outbox,
    /// This instance: new outbox entries are leased to it.
    owner: Owner,
    /// webhook id ++ !seq -> ResponseRecord (newest first)
    responses: Tree,
    /// Where each webhook's log was last trimmed.
    trims: TrimCursors,
    /// sha256(token) -> ApiToken
    tokens: Tree,
    /// token id -> sha256(token)
    token_ids: Tree,
    /// account ++ 0 ++ key -> event id ++ created ms
    idempotency: Tree,
    /// account ++ 0 ++ name -> EventType
    event_types: Tree,
    /// The change log of delivery states (`changes`).
    changes: ChangeLog,
    /// webhook id ++ queue hash ++ seq -> delivery id (see `ordering`)
    ordering: Tree,
    /// Changes of the ordering queues take it in turn.
    ordering_lock: Mutex<()>,
    /// Emits with the same idempotency key take the same lock (check, write, claim).
    idempotency_locks: Vec<Mutex<()>>,
    idempotency_hasher: RandomState,
    /// Where the last retention pass stopped in `events` and in `idempotency`.
    prune_cursors: Mutex<(Option<u64>, Option<Vec<u8>>)>,
    /// The operator queries' index trees (`queries`).
    indexes: queries::Indexes,
}

/// Stripes of `idempotency_locks`.
const IDEMPOTENCY_LOCKS: usize = 64;

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("store: {e}"))
}

/// Key and request part (with the initial state) of each delivery (see `codec::delivery`).
type EncodedDelivery<'a> = ([u8; 8], Vec<u8>, &'a Delivery);

/// `event_data`: the JSON text of their event's data, which a body equal to it refers to.
fn encode_deliveries<'a>(
    deliveries: &'a [Delivery],
    event_data: Option<&str>,
) -> Result<Vec<EncodedDelivery<'a>>> {
    deliveries
        .iter()
        .map(|d| Ok((be(d.id), delivery::encode_request(d, event_data)?, d)))
        .collect()
}

/// The outbox entry of a delivery still to be attempted, at its due time; None when it is
/// final (nothing more to attempt).
fn due_entry(delivery: &Delivery) -> Option<OutboxEntry> {
    (!delivery.state.is_final()).then(|| outbox_entry(delivery))
}

/// The outbox entry of a delivery at its due time.
fn outbox_entry(delivery: &Delivery) -> OutboxEntry {
    OutboxEntry {
        due_ms: delivery.next_attempt_ms,
        delivery_id: delivery.id,
        webhook_id: delivery.webhook_id,
    }
}

/// A delivery's records as stored.
enum Loaded {
    Delivery(Delivery),
    /// A delivery whose event is missing: the orphan of an emit that a version before the
    /// batch (`NewRecords`) left half written at a crash, before its event, so that emit was
    /// never acknowledged. It is never attempted (its body may refer to the missing event's
    /// data) and readers do not see it.
    Orphan(Delivery),
}

/// The records of new deliveries and of what they belong to, written in one batch (a crash
/// keeps all of them or none). The ordering queues stay locked from the first ordered
/// delivery until the commit; outbox entries are leased to this instance once committed.
struct NewRecords<'a> {
    trees: &'a Trees,
    batch: engine::Batch,
    queues: Option<ordering::Queues<'a>>,
    /// The outbox entries written.
    entries: Vec<OutboxEntry>,
}

impl<'a> NewRecords<'a> {
    fn new(trees: &'a Trees) -> NewRecords<'a> {
        NewRecords {
            trees,
            batch: trees.db.batch(),
            queues: None,
            entries: Vec::new(),
        }
    }

    /// A new delivery: its index entries, its request record (which carries its initial
    /// state; attempts add a state record), its place in its ordering queue, and its outbox
    /// entry unless it is final or waits behind an unfinished one of its queue.
    fn delivery(&mut self, key: &[u8; 8], request: &[u8], delivery: &Delivery) -> Result<()> {
        let trees = self.trees;
        trees.indexes.add_delivery(&mut self.batch, delivery);
        self.batch.insert(&trees.requests, key, request);
        let head = match &delivery.ordering {
            Some(_) if !delivery.state.is_final() => {
                let queues = self.queues.get_or_insert_with(|| trees.lock_queues());
                trees.enqueue_ordered(&mut self.batch, queues, delivery)?
            }
            _ => true,
        };
        if let Some(entry) = due_entry(delivery).filter(|_| head) {
            trees.outbox.put_in(&mut self.batch, entry);
            self.entries.push(entry);
        }
        Ok(())
    }

    fn commit(self) -> Result<()> {
        self.commit_then(|batch| batch.commit().map(|()| true))
            .map(drop)
    }

    /// `engine::Batch::commit_with_update`.
    fn commit_with_update(
        self,
        tree: &Tree,
        key: impl AsRef<[u8]>,
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<bool> {
        self.commit_then(|batch| batch.commit_with_update(tree, key, f))
    }

    /// Commits the batch with `commit` (true: committed), then leases the outbox entries to
    /// this instance (its core or worker schedules them at once), then unlocks the queues.
    fn commit_then(
        self,
        commit: impl FnOnce(engine::Batch) -> engine::Result<bool>,
    ) -> Result<bool> {
        let NewRecords {
            trees,
            batch,
            queues,
            entries,
        } = self;
        let committed = commit(batch).map_err(internal)?;
        if committed {
            let lease = trees.owner.lease_from(crate::model::now_ms());
            for entry in entries {
                trees.outbox.written(entry, Some(lease));
            }
        }
        drop(queues);
        Ok(committed)
    }
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir` and starts its flusher thread,
    /// which reports each flush's duration to `flush_seconds`; the outbox entries it writes
    /// are leased to `owner`. Fails with a clear message when the directory is unusable or
    /// already opened by another process.
    /// `cache_bytes` is the engine's block cache.
    pub fn open(
        dir: &Path,
        cache_bytes: u64,
        owner: Owner,
        flush_seconds: Histogram,
    ) -> Result<SledStore> {
        let trees = Arc::new(Trees::open(dir, cache_bytes, owner)?);
        let commit = GroupCommit::start(trees.db.clone(), flush_seconds, {
            let trees = Arc::clone(&trees);
            move || {
                trees.stats.persist()?;
                trees.changes.persist()
            }
        })?;
        Ok(SledStore { trees, commit })
    }

    /// Runs `work` on the blocking pool (for long scans).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Trees) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let trees = Arc::clone(&self.trees);
        tokio::task::spawn_blocking(move || work(&trees))
            .await
            .map_err(|e| internal(format!("store task: {e}")))?
    }
}

impl Trees {
    fn open(dir: &Path, cache_bytes: u64, owner: Owner) -> Result<Trees> {
        let db = migrate::open(dir, cache_bytes).map_err(|e| {
            if engine::is_locked(&e) {
                Error::Conflict(format!(
                    "another webhookd is using {}; stop it or choose another --data-dir",
                    dir.display()
                ))
            } else {
                Error::Internal(format!("cannot open the store in {}: {e}", dir.display()))
            }
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(internal);
        Trees {
            webhooks: tree("webhooks")?,
            webhooks_by_account: tree("webhooks_by_account")?,
            stats: stats::Stats::new(tree("webhook_stats")?, tree("responses")?),
            events: tree("events")?,
            deliveries: tree("deliveries")?,
            requests: tree("requests")?,
            outbox: Outbox::open(&db)?,
            owner,
            responses: tree("responses")?,
            tokens: tree("tokens")?,
            token_ids: tree("token_ids")?,
            idempotency: tree("idempotency")?,
            event_types: tree("event_types")?,
            changes: ChangeLog::open(db.clone(), tree("changes")?, tree("change_pages")?)?,
            ordering: tree("ordering")?,
            ordering_lock: Mutex::default(),
            idempotency_locks: (0..IDEMPOTENCY_LOCKS).map(|_| Mutex::new(())).collect(),
            idempotency_hasher: RandomState::new(),
            prune_cursors: Mutex::default(),
            trims: TrimCursors::default(),
            indexes: queries::Indexes::open(&db)?,
            cache: RwLock::default(),
            db,
        }
        .repaired()
    }

    /// Drops account index entries whose webhook a crash kept from being written (or left
    /// behind while deleting it), so counts and listings agree.
    fn repaired(self) -> Result<Trees> {
        for key in self.webhooks_by_account.iter().keys() {
            let key = key.map_err(internal)?;
            let id = key.len().checked_sub(8).map(|at| &key[at..]);
            let exists = match id {
                Some(id) => self.webhooks.contains_key(id).map_err(internal)?,
                None => false,
            };
            if !exists {
                self.webhooks_by_account.remove(&key).map_err(internal)?;
            }
        }
        self.repair_ordering()?;
        Ok(self)
    }

    /// The outbox entry of a delivery still to be attempted, at its due time.
    fn put_outbox_entry(&self, delivery: &Delivery, lease: Option<Lease>) -> Result<()> {
        match due_entry(delivery) {
            Some(entry) => self.outbox.put(entry, lease),
            None => Ok(()),
        }
    }

    /// Writes an event and its deliveries, and the claim of its idempotency key (its key and
    /// value), in one batch.
    fn write_event(
        &self,
        event: &Event,
        value: &[u8],
        deliveries: &[EncodedDelivery<'_>],
        claim: Option<(&[u8], [u8; 16])>,
    ) -> Result<()> {
        let mut records = NewRecords::new(self);
        self.indexes.add_event(&mut records.batch, event);
        for (key, request, delivery) in deliveries {
            records.delivery(key, request, delivery)?;
        }
        records.batch.insert(&self.events, be(event.id), value);
        if let Some((key, value)) = claim {
            records.batch.insert(&self.idempotency, key, value);
        }
        records.commit()
    }

    fn idempotency_lock(&self, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        let stripe = self.idempotency_hasher.hash_one(key) as usize % IDEMPOTENCY_LOCKS;
        self.idempotency_locks[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn get<T: serde::de::DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>> {
        tree.get(key)
            .map_err(internal)?
            .map(|v| decode(&v))
            .transpose()
    }

    fn next_id(&self) -> Result<u64> {
        self.db.generate_id().map_err(internal)
    }

    fn put_webhook(&self, webhook: &Webhook) -> Result<()> {
        let value = encode(webhook)?;
        let index = account_key(&webhook.account_id, &be(webhook.id));
        // Writers hold the cache lock across commit and update, so the cache follows commit order.
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        self.webhooks_by_account
            .insert(index.as_slice(), [])
            .map_err(internal)?;
        self.webhooks
            .insert(be(webhook.id), value)
            .map_err(internal)?;
        cache.insert(webhook.id, Some(Arc::new(webhook.clone())));
        Ok(())
    }

    fn get_webhook(&self, id: u64) -> Result<Option<Webhook>> {
        if let Some(cached) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(cached.as_deref().cloned());
        }
        let loaded: Option<Webhook> = Self::get(&self.webhooks, &be(id))?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        // A writer that committed meanwhile has already put the newer value here.
        let entry = cache.entry(id).or_insert_with(|| loaded.map(Arc::new));
        Ok(entry.as_deref().cloned())
    }

    fn delete_webhook(&self, id: u64) -> Result<bool> {
        let Some(webhook) = self.get_webhook(id)? else {
            return Ok(false);
        };
        let index = account_key(&webhook.account_id, &be(id));
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let existed = self.webhooks.take(be(id)).map_err(internal)?.is_some();
        self.webhooks_by_account
            .remove(index.as_slice())
            .map_err(internal)?;
        self.stats.remove(id)?;
        cache.insert(id, None);
        drop(cache);
        self.trims.forget(id);
        for key in self.responses.scan_prefix(be(id)).keys() {
            self.responses
                .remove(key.map_err(internal)?)
                .map_err(internal)?;
        }
        Ok(existed)
    }

    fn list_webhooks(&self, account_id: &str, page: Page) -> Result<Vec<Webhook>> {
        let prefix = account_key(account_id, &[]);
        let start = match page.after {
            Some(after) => account_key(account_id, &be(after.saturating_add(1))),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        let keys = self.webhooks_by_account.range(start..).keys();
        for key in keys.skip(page.offset) {
            let key = key.map_err(internal)?;
            if !key.starts_with(&prefix) || out.len() == page.limit {
                break;
            }
            let id = u64::from_be_bytes(key[prefix.len()..].try_into().map_err(internal)?);
            if let Some(webhook) = self.get_webhook(id)? {
                out.push(webhook);
            }
        }
        Ok(out)
    }

    fn count_all_webhooks(&self) -> Result<usize> {
        self.webhooks.len().map_err(internal)
    }

    fn count_webhooks(&self, account_id: &str) -> Result<usize> {
        Ok(self
            .webhooks_by_account
            .scan_prefix(account_key(account_id, &[]))
            .count())
    }

    fn webhook_stats(&self, id: u64) -> Result<WebhookStats> {
        self.stats.get(id)
    }

    fn put_token(&self, hash: &[u8; 32], token: &ApiToken) -> Result<()> {
        let value = encode(token)?;
        // The id first: a token that exists can always be revoked by id.
        self.token_ids
            .insert(be(token.id), hash.as_slice())
            .map_err(internal)?;
        self.tokens
            .insert(hash.as_slice(), value)
            .map_err(internal)?;
        Ok(())
    }

    fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        Self::get(&self.tokens, hash)
    }

    fn delete_token(&self, id: u64) -> Result<bool> {
        let Some(hash) = self.token_ids.get(be(id)).map_err(internal)? else {
            return Ok(false);
        };
        // The token first: once it is gone nothing authenticates with it.
        self.tokens.remove(&hash).map_err(internal)?;
        self.token_ids.remove(be(id)).map_err(internal)?;
        Ok(true)
    }

    fn insert_event(
        &self,
        event: &Event,
        deliveries: &[Delivery],
        idempotency: Option<IdempotencyKey<'_>>,
    ) -> Result<InsertOutcome> {
        let (event_value, data_at) = event::encode(event)?;
        let data = std::str::from_utf8(&event_value[data_at..]).map_err(internal)?;
        let delivery_values = encode_deliveries(deliveries, Some(data))?;
        let Some(idempotency) = idempotency else {
            self.write_event(event, &event_value, &delivery_values, None)?;
            return Ok(InsertOutcome::Inserted);
        };
        let key = account_key(idempotency.account_id, idempotency.key.as_bytes());
        // Same-key emits are serialised here, until the batch that claims the key with the
        // event's records is committed.
        let _same_key = self.idempotency_lock(&key);
        if let Some(previous) = self.idempotency.get(&key).map_err(internal)? {
            let (event_id, created_ms) = split2(&previous)?;
            let live = event.created_at_ms - (created_ms as i64) < idempotency.ttl_ms;
            if live && self.events.contains_key(be(event_id)).map_err(internal)? {
                return Ok(InsertOutcome::Duplicate(event_id));
            }
        }
        let claim = be2(event.id, event.created_at_ms as u64);
        self.write_event(event, &event_value, &delivery_values, Some((&key, claim)))?;
        Ok(InsertOutcome::Inserted)
    }

    fn get_event(&self, id: u64) -> Result<Option<Event>> {
        self.events
            .get(be(id))
            .map_err(internal)?
            .map(|v| event::decode_event(&v))
            .transpose()
    }

    /// The JSON text of an event's data (None: the event is gone).
    fn event_data(&self, id: u64) -> Result<Option<String>> {
        self.events
            .get(be(id))
            .map_err(internal)?
            .map(|v| event::data(&v))
            .transpose()
    }

    /// A delivery: None when it is missing, or an orphan (see `load_delivery`).
    fn get_delivery(&self, id: u64) -> Result<Option<Delivery>> {
        Ok(match self.load_delivery(id)? {
            Some(Loaded::Delivery(delivery)) => Some(delivery),
            Some(Loaded::Orphan(_)) | None => None,
        })
    }

    /// A delivery's records, and whether its event exists (see `Loaded`).
    fn load_delivery(&self, id: u64) -> Result<Option<Loaded>> {
        let key = be(id);
        let Some(request) = self.requests.get(key).map_err(internal)? else {
            return Ok(None);
        };
        let state = self.deliveries.get(key).map_err(internal)?;
        // A body stored as its event's data reads the event anyway.
        let mut event_read = None;
        let delivery = delivery::decode_delivery(id, state.as_deref(), &request, |event_id| {
            let data = self.event_data(event_id)?;
            event_read = Some(data.is_some());
            Ok(data)
        })?;
        let has_event = match event_read {
            Some(found) => found,
            None => self
                .events
                .contains_key(be(delivery.event_id))
                .map_err(internal)?,
        };
        Ok(Some(if has_event {
            Loaded::Delivery(delivery)
        } else {
            Loaded::Orphan(delivery)
        }))
    }

    /// Drops what is left of an orphan (see `Loaded`), so it is never attempted: its outbox
    /// entry, index entries and records in one batch, then its place in its ordering queue
    /// (which lets the next one of the queue go if it was the head). A crash in between
    /// leaves a queue entry without its delivery, which `repair_ordering` drops at open.
    fn drop_orphan(&self, orphan: &Delivery) -> Result<()> {
        let mut batch = self.db.batch();
        self.remove_orphan_in(&mut batch, orphan);
        batch.commit().map_err(internal)?;
        self.outbox.set_lease(orphan.id, None);
        self.leave_queue(orphan)
    }

    /// An orphan's outbox entry, index entries and records, removed in `batch` (its lease
    /// goes after the commit).
    fn remove_orphan_in(&self, batch: &mut engine::Batch, orphan: &Delivery) {
        self.outbox.remove_in(batch, outbox_entry(orphan));
        self.indexes.remove_delivery_in(batch, orphan);
        batch.remove(&self.requests, be(orphan.id));
        batch.remove(&self.deliveries, be(orphan.id));
    }

    /// The account of a delivery: its webhook's (cached), else its event's, else "" (both
    /// gone: nobody's watcher shows it).
    fn account_of(&self, delivery: &Delivery) -> Result<String> {
        if !delivery.account_id.is_empty() {
            return Ok(delivery.account_id.clone());
        }
        if let Some(webhook) = self.get_webhook(delivery.webhook_id)? {
            return Ok(webhook.account_id);
        }
        Ok(self
            .get_event(delivery.event_id)?
            .map(|e| e.account_id)
            .unwrap_or_default())
    }

    /// Writes new deliveries of an event with the event's longer delivery list, in one batch.
    fn insert_deliveries(&self, event_id: u64, new: &[Delivery]) -> Result<()> {
        let mut records = NewRecords::new(self);
        for (key, request, delivery) in &encode_deliveries(new, None)? {
            records.delivery(key, request, delivery)?;
        }
        let mut failure = None;
        let committed = records.commit_with_update(&self.events, be(event_id), |old| {
            match event::with_deliveries(old?, new.iter().map(|d| d.id)) {
                Ok(value) => Some(value),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if !committed {
            return Err(Error::NotFound {
                kind: "event",
                id: event_id.to_string(),
            });
        }
        Ok(())
    }

    fn record_attempt(&self, record: AttemptRecord<'_>) -> Result<WebhookStats> {
        // The order keeps every crash state consistent: the log first (a repeat after a crash
        // only logs the attempt twice; the stats are written back later), then the retry's outbox entry,
        // then the state, and the old outbox entry last; `attempt` drops entries whose due
        // time no longer matches the state (see `remove_outbox_entry`).
        let _same_delivery = self.indexes.lock(record.delivery.id);
        // A delivery cancelled while its attempt was in flight stays cancelled, whatever the
        // attempt says (it is logged; no retry is kept). Its cancel, under the same lock,
        // may have left its ordering queue to this write (`cancel_delivery`).
        let kept_cancelled = self.is_cancelled(record.delivery.id)?.then(|| Delivery {
            state: DeliveryState::Cancelled,
            ..record.delivery.clone()
        });
        let delivery = kept_cancelled.as_ref().unwrap_or(record.delivery);
        let stats = match record.response {
            None => self.webhook_stats(delivery.webhook_id)?,
            Some(response) => {
                let at_ms = response.timestamp_ms;
                // The stats hand out the entry's sequence number (a crash in between leaves a gap).
                let stats = self.stats.update(delivery.webhook_id, |stats| {
                    stats.record(at_ms, record.succeeded, record.breaker)
                })?;
                let key = be2(delivery.webhook_id, !stats.response_seq);
                let value = delivery::encode_response(response, delivery)?;
                self.responses.insert(key, value).map_err(internal)?;
                stats
            }
        };
        self.put_outbox_entry(delivery, record.lease)?;
        let state = delivery::encode_state(delivery)?;
        self.deliveries
            .insert(be(delivery.id), state)
            .map_err(internal)?;
        self.release_ordered(delivery)?;
        if delivery.state.is_final() || delivery.next_attempt_ms != record.previous_due_ms {
            self.outbox.remove(OutboxEntry {
                due_ms: record.previous_due_ms,
                ..outbox_entry(delivery)
            })?;
        }
        if delivery.state.is_final() {
            self.outbox.set_lease(delivery.id, None);
        }
        // Readable at once, like the state itself (durable at the flusher's pace).
        let account = self.account_of(delivery)?;
        drop(
            self.changes
                .append(&account, std::iter::once(&update_of(delivery)))?,
        );
        Ok(stats)
    }

    fn remove_outbox_entry(&self, entry: OutboxEntry) -> Result<()> {
        self.outbox.remove(entry)?;
        self.outbox.set_lease(entry.delivery_id, None);
        Ok(())
    }

    /// `Store::remove_outbox_entry`: the stale entry goes, and a final delivery still
    /// heading its ordering queue (cancelled while leased: its cancel left the release to
    /// whoever let go of it) releases the next one.
    fn drop_stale_entry(&self, entry: OutboxEntry) -> Result<()> {
        let _same_delivery = self.indexes.lock(entry.delivery_id);
        self.remove_outbox_entry(entry)?;
        match self.get_delivery(entry.delivery_id)? {
            Some(delivery) if delivery.state.is_final() => self.release_ordered(&delivery),
            _ => Ok(()),
        }
    }

    fn list_responses(&self, webhook_id: u64, page: Page) -> Result<Vec<(u64, ResponseRecord)>> {
        let start = match page.after {
            Some(after) => be2(webhook_id, after.saturating_add(1)),
            None => be2(webhook_id, 0),
        };
        let end = be2(webhook_id, u64::MAX);
        self.responses
            .range(start..=end)
            .skip(page.offset)
            .take(page.limit)
            .map(|item| {
                let (key, value) = item.map_err(internal)?;
                let record = delivery::decode_response(&value, |delivery_id| {
                    match self.requests.get(be(delivery_id)).map_err(internal)? {
                        Some(request) => {
                            delivery::request_body(&request, |event_id| self.event_data(event_id))
                        }
                        None => Ok(None),
                    }
                })?;
                Ok((split2(&key)?.1, record))
            })
            .collect()
    }

    fn count_responses(&self, webhook_id: u64) -> Result<usize> {
        Ok(self.responses.scan_prefix(be(webhook_id)).count())
    }

    fn trim_responses(&self, webhook_id: u64, newest_seq: u64, keep: u64) -> Result<()> {
        let Some(cutoff) = newest_seq.checked_sub(keep) else {
            return Ok(());
        };
        let trimmed = match self.trims.begin(webhook_id, cutoff) {
            TrimWindow::Nothing => Ok(()),
            // Keys are webhook ++ !seq, newest first: entries at or below the cutoff sort
            // last, so the range visits exactly the entries to drop (and the tombstones of
            // any earlier trims, once per process).
            TrimWindow::All { upto } => self
                .responses
                .range(be2(webhook_id, !upto)..=be2(webhook_id, u64::MAX))
                .keys()
                .try_for_each(|key| self.responses.remove(key?)),
            // Blind deletes of the seqs since the last trim: no read meets a tombstone.
            TrimWindow::Between { after, upto } => {
                (after + 1..=upto).try_for_each(|seq| self.responses.remove(be2(webhook_id, !seq)))
            }
        };
        trimmed.map_err(|e| {
            self.trims.forget(webhook_id);
            internal(e)
        })
    }

    fn prune(&self, events_before_ms: i64, keys_before_ms: i64, budget: usize) -> Result<Pruned> {
        let mut cursors = self.prune_cursors.lock().unwrap_or_else(|e| e.into_inner());
        let mut pruned = Pruned::default();
        // Events: ids grow with creation time, so the pass ends at the first recent one.
        let start = cursors
            .0
            .take()
            .map_or([0u8; 8], |id| be(id.saturating_add(1)));
        for (visited, item) in self.events.range(start..).enumerate() {
            let (key, value) = item.map_err(internal)?;
            let head = event::head(&value)?;
            if head.created_at_ms >= events_before_ms {
                break;
            }
            if visited == budget {
                pruned.more = true;
                break;
            }
            let id = u64::from_be_bytes(key.as_ref().try_into().map_err(internal)?);
            cursors.0 = Some(id);
            let mut finished = true;
            let mut deliveries = Vec::with_capacity(head.delivery_ids.len());
            for delivery_id in &head.delivery_ids {
                if let Some(delivery) = self.get_delivery(*delivery_id)? {
                    finished &= delivery.state.is_final();
                    deliveries.push(delivery);
                }
            }
            if !finished {
                continue;
            }
            // The event goes with its deliveries in one batch, only if it is unchanged: a
            // redelivery committed since it was read (a new unfinished delivery in its list)
            // keeps all of it for a later pass, and never loses its event.
            let mut batch = self.db.batch();
            for delivery_id in &head.delivery_ids {
                batch.remove(&self.deliveries, be(*delivery_id));
                batch.remove(&self.requests, be(*delivery_id));
            }
            for delivery in &deliveries {
                self.indexes.remove_delivery_in(&mut batch, delivery);
            }
            self.indexes
                .remove_event_in(&mut batch, &head.account_id, head.created_at_ms, id);
            if batch
                .commit_removing(&self.events, &key, &value)
                .map_err(internal)?
            {
                pruned.events += 1;
            }
        }
        if !pruned.more {
            cursors.0 = None;
        }
        // Idempotency keys, in key order.
        let start = cursors.1.take().unwrap_or_default();
        let mut stopped = false;
        for (visited, item) in self.idempotency.range(start..).enumerate() {
            let (key, value) = item.map_err(internal)?;
            if visited == budget {
                cursors.1 = Some(key.to_vec());
                stopped = true;
                break;
            }
            let (_, used_ms) = split2(&value)?;
            if (used_ms as i64) < keys_before_ms {
                self.idempotency.remove(&key).map_err(internal)?;
                pruned.idempotency_keys += 1;
            }
        }
        pruned.more |= stopped;
        Ok(pruned)
    }
}

#[async_trait]
impl Store for SledStore {
    async fn next_id(&self) -> Result<u64> {
        self.trees.next_id()
    }

    async fn put_webhook(&self, webhook: &Webhook) -> Result<()> {
        self.trees.put_webhook(webhook)?;
        self.commit.durable().await
    }

    async fn get_webhook(&self, id: u64) -> Result<Option<Webhook>> {
        self.trees.get_webhook(id)
    }

    async fn delete_webhook(&self, id: u64) -> Result<bool> {
        let existed = self.trees.delete_webhook(id)?;
        self.commit.durable().await?;
        Ok(existed)
    }

    async fn list_webhooks(&self, account_id: &str, page: Page) -> Result<Vec<Webhook>> {
        self.trees.list_webhooks(account_id, page)
    }

    async fn count_all_webhooks(&self) -> Result<usize> {
        self.trees.count_all_webhooks()
    }

    async fn count_webhooks(&self, account_id: &str) -> Result<usize> {
        self.trees.count_webhooks(account_id)
    }

    async fn webhook_stats(&self, id: u64) -> Result<WebhookStats> {
        self.trees.webhook_stats(id)
    }

    /// The webhook's outbox entries and the ordered deliveries behind its queues' heads.
    async fn count_waiting(&self, webhook_id: u64, cap: usize) -> Result<usize> {
        self.blocking(move |trees| {
            let due = trees.outbox.count(webhook_id, cap)?;
            let behind = trees.count_behind_heads(webhook_id, cap - due)?;
            Ok(due + behind)
        })
        .await
    }

    async fn put_token(&self, hash: &[u8; 32], token: &ApiToken) -> Result<()> {
        self.trees.put_token(hash, token)?;
        self.commit.durable().await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        self.trees.token_by_hash(hash)
    }

    async fn delete_token(&self, id: u64) -> Result<bool> {
        let existed = self.trees.delete_token(id)?;
        self.commit.durable().await?;
        Ok(existed)
    }

    async fn insert_events(&self, events: &[NewEvent<'_>]) -> Result<Vec<InsertOutcome>> {
        let mut outcomes = Vec::with_capacity(events.len());
        // The QUEUED and SKIPPED entries become readable once the flush made them durable.
        let mut unsettled = Vec::new();
        for e in events {
            let outcome = self
                .trees
                .insert_event(e.event, e.deliveries, e.idempotency)?;
            if outcome == InsertOutcome::Inserted {
                let updates: Vec<_> = e.deliveries.iter().map(update_of).collect();
                unsettled.push(
                    self.trees
                        .changes
                        .append(&e.event.account_id, updates.iter())?,
                );
            }
            outcomes.push(outcome);
        }
        // Also for duplicates: the earlier event may still wait for its own flush.
        self.commit.durable().await?;
        drop(unsettled);
        Ok(outcomes)
    }

    async fn get_event(&self, id: u64) -> Result<Option<Event>> {
        self.trees.get_event(id)
    }

    /// An orphan met here (see `Loaded`) is dropped: this is the worker's read of a claimed
    /// entry, before any attempt.
    async fn get_delivery(&self, id: u64) -> Result<Option<Delivery>> {
        match self.trees.load_delivery(id)? {
            Some(Loaded::Delivery(delivery)) => Ok(Some(delivery)),
            Some(Loaded::Orphan(orphan)) => {
                self.trees.drop_orphan(&orphan)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn insert_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        let mut unsettled = Vec::new();
        for same_event in deliveries.chunk_by(|a, b| a.event_id == b.event_id) {
            self.trees
                .insert_deliveries(same_event[0].event_id, same_event)?;
            let account = self.trees.account_of(&same_event[0])?;
            let updates: Vec<_> = same_event.iter().map(update_of).collect();
            unsettled.push(self.trees.changes.append(&account, updates.iter())?);
        }
        let durable = self.commit.durable().await;
        drop(unsettled);
        durable
    }

    async fn record_attempt(&self, record: AttemptRecord<'_>) -> Result<WebhookStats> {
        self.trees.record_attempt(record)
    }

    async fn remove_outbox_entry(&self, entry: OutboxEntry) -> Result<()> {
        self.trees.drop_stale_entry(entry)
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<OutboxEntry>> {
        let trees = &self.trees;
        trees.outbox.claim(claim, |webhook_id| {
            Ok(trees.webhook_stats(webhook_id)?.breaker.open_until_ms)
        })
    }

    async fn renew_leases(&self, lease: Lease, delivery_ids: &[u64]) -> Result<()> {
        self.trees.outbox.renew(lease, delivery_ids);
        Ok(())
    }

    async fn release_leases(&self, owner: u64, delivery_ids: &[u64]) -> Result<()> {
        self.trees.outbox.release(owner, delivery_ids);
        Ok(())
    }

    async fn list_responses(
        &self,
        webhook_id: u64,
        page: Page,
    ) -> Result<Vec<(u64, ResponseRecord)>> {
        self.trees.list_responses(webhook_id, page)
    }

    async fn count_responses(&self, webhook_id: u64) -> Result<usize> {
        self.trees.count_responses(webhook_id)
    }

    async fn trim_responses(&self, webhook_id: u64, newest_seq: u64, keep: u64) -> Result<()> {
        self.trees.trim_responses(webhook_id, newest_seq, keep)
    }

    async fn prune(
        &self,
        events_before_ms: i64,
        keys_before_ms: i64,
        budget: usize,
    ) -> Result<Pruned> {
        self.blocking(move |trees| trees.prune(events_before_ms, keys_before_ms, budget))
            .await
    }

    async fn list_events(&self, query: &EventQuery<'_>) -> Result<Vec<Event>> {
        self.trees.list_events(query)
    }

    async fn list_deliveries(&self, query: &DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        self.trees.list_deliveries(query)
    }

    async fn cancel_delivery(&self, id: u64, at_ms: i64) -> Result<Cancelled> {
        let cancelled = self.trees.cancel_delivery(id, at_ms)?;
        // Readable once durable, like the cancellation itself.
        let _unsettled = match &cancelled {
            Cancelled::Now(delivery) => {
                let account = self.trees.account_of(delivery)?;
                Some(
                    self.trees
                        .changes
                        .append(&account, std::iter::once(&update_of(delivery)))?,
                )
            }
            _ => None,
        };
        self.commit.durable().await?;
        Ok(cancelled)
    }

    async fn read_changes(
        &self,
        account_id: &str,
        after: ChangeCursor,
        limit: usize,
    ) -> Result<ChangePage> {
        self.trees.changes.read(account_id, after, limit)
    }

    async fn change_head(&self) -> Result<ChangeCursor> {
        Ok(self.trees.changes.head())
    }

    async fn prune_changes(&self, before_ms: i64, budget: usize) -> Result<(u64, bool)> {
        self.blocking(move |trees| trees.changes.prune(before_ms, budget))
            .await
    }

    async fn close(&self) -> Result<()> {
        self.commit.close().await
    }

    /// Always: the database is in this process.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod upgrade_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{OWNER, TestBackend, conformance_suite};

    async fn backend() -> Option<TestBackend> {
        let dir = tempfile::tempdir().unwrap();
        let flush_seconds = Histogram::with_opts(prometheus::HistogramOpts::new("f", "f")).unwrap();
        let store = SledStore::open(dir.path(), SLED_CACHE_BYTES, OWNER, flush_seconds).unwrap();
        Some(TestBackend {
            store: Arc::new(store),
            guard: Box::new(dir),
        })
    }

    conformance_suite!(backend);

    fn owner() -> Owner {
        Owner::random(std::time::Duration::from_secs(30))
    }

    fn open(dir: &Path) -> Trees {
        Trees::open(dir, SLED_CACHE_BYTES, owner()).unwrap()
    }

    /// Opens `dir` again once the previous `Db` of this process let go of its file lock
    /// (sled's background threads release it a moment after the last handle is dropped).
    fn reopen(dir: &Path) -> Trees {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Trees::open(dir, SLED_CACHE_BYTES, owner()) {
                Err(Error::Conflict(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other.unwrap(),
            }
        }
    }

    fn event(id: u64, created_at_ms: i64) -> Event {
        Event {
            id,
            account_id: "acme".into(),
            event_type: "alert group created".into(),
            data: serde_json::json!({}),
            created_at_ms,
            delivery_ids: vec![],
            operational: false,
        }
    }

    /// A SledStore on `dir`, once the previous `Db` of this process let go of its lock.
    fn open_store(dir: &Path) -> SledStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let flush_seconds =
                Histogram::with_opts(prometheus::HistogramOpts::new("f", "f")).unwrap();
            match SledStore::open(dir, SLED_CACHE_BYTES, owner(), flush_seconds) {
                Err(Error::Conflict(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other.unwrap(),
            }
        }
    }

    fn posting(id: u64, event: &Event, body: &str, ordering: Option<&str>) -> Delivery {
        let url = "http://127.0.0.1:9/hook";
        Delivery {
            request: Some(crate::model::RenderedRequest {
                method: "POST".into(),
                url: url.into(),
                headers: vec![],
                body: Some(body.into()),
                traceparent: None,
            }),
            ordering: ordering.map(|key| crate::model::Ordering::new(key, url)),
            ..Delivery::queued(id, event.id, 7, url.into(), "acme".into(), 1_000)
        }
    }

    /// The first ten deliveries of account "acme", of one webhook or all.
    fn acme_deliveries(webhook_id: Option<u64>) -> DeliveryQuery<'static> {
        DeliveryQuery {
            account_id: "acme",
            webhook_id,
            states: &[],
            created_after_ms: None,
            created_before_ms: None,
            after: None,
            limit: 10,
        }
    }

    /// What a version that wrote an emit record by record, its event last, left when a crash
    /// came before the event: the deliveries' index entries, request records, queue entries
    /// and outbox entries (a queue's head only).
    fn write_emit_cut_before_its_event(trees: &Trees, event: &Event, deliveries: &[Delivery]) {
        let data = event.data.to_string();
        let mut batch = trees.db.batch();
        trees.indexes.add_event(&mut batch, event);
        batch.commit().unwrap();
        for d in deliveries {
            let mut batch = trees.db.batch();
            trees.indexes.add_delivery(&mut batch, d);
            batch.commit().unwrap();
            let request = delivery::encode_request(d, Some(&data)).unwrap();
            trees.requests.insert(be(d.id), request).unwrap();
            let mut queues = trees.lock_queues();
            let mut batch = trees.db.batch();
            let head = trees.enqueue_ordered(&mut batch, &mut queues, d).unwrap();
            batch.commit().unwrap();
            drop(queues);
            if head {
                trees.outbox.put(outbox_entry(d), None).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn deliveries_an_older_version_left_without_their_event_are_never_attempted() {
        let dir = tempfile::tempdir().unwrap();
        let lost = Event {
            data: serde_json::json!({"alert_group": {"id": "I1"}}),
            delivery_ids: vec![11, 12],
            ..event(10, 1_000)
        };
        // A forward_all body (stored as the event's data, which is gone) and a templated one,
        // the first heading its ordering queue.
        let lost_deliveries = [
            posting(11, &lost, &lost.data.to_string(), Some("K")),
            posting(12, &lost, "{\"templated\": true}", None),
        ];
        let next = Event {
            delivery_ids: vec![21],
            ..event(20, 2_000)
        };
        let next_delivery = posting(21, &next, "{\"next\": true}", Some("K"));
        {
            let store = open_store(dir.path());
            write_emit_cut_before_its_event(&store.trees, &lost, &lost_deliveries);
            // A later emit of the same ordering key waits behind the lost one.
            let emitted = store
                .insert_events(&[NewEvent {
                    event: &next,
                    deliveries: std::slice::from_ref(&next_delivery),
                    idempotency: None,
                }])
                .await
                .unwrap();
            assert_eq!(emitted, [InsertOutcome::Inserted]);
            assert_eq!(store.trees.outbox.count(7, 10).unwrap(), 2);
        }

        // After the restart the claim still finds the lost deliveries' entries; the worker's
        // read of each finds nothing, so it never sends them, and they are gone.
        let store = open_store(dir.path());
        let now = crate::model::now_ms();
        let claim = Claim {
            lease: OWNER.lease_from(now),
            now_ms: now,
            due_before_ms: i64::MAX,
            per_webhook: 10,
            limit: 10,
            skip: &[],
        };
        let mut claimed: Vec<u64> = store
            .claim(claim)
            .await
            .unwrap()
            .iter()
            .map(|e| e.delivery_id)
            .collect();
        claimed.sort();
        assert_eq!(claimed, [11, 12, 21]);
        assert_eq!(store.get_delivery(11).await.unwrap(), None);
        assert_eq!(store.get_delivery(12).await.unwrap(), None);
        assert_eq!(
            store.get_delivery(21).await.unwrap(),
            Some(next_delivery.clone())
        );

        assert_eq!(store.trees.outbox.count(7, 10).unwrap(), 1);
        for id in [11, 12] {
            assert!(!store.trees.requests.contains_key(be(id)).unwrap());
        }
        let all = acme_deliveries(None);
        assert_eq!(
            store.list_deliveries(&all).await.unwrap(),
            std::slice::from_ref(&next_delivery)
        );
        let by_webhook = acme_deliveries(Some(7));
        assert_eq!(
            store.list_deliveries(&by_webhook).await.unwrap(),
            [next_delivery]
        );
        // The later delivery of the key heads its queue alone.
        assert_eq!(store.trees.ordering.len().unwrap(), 1);
    }

    #[tokio::test]
    async fn listings_drop_what_an_older_version_left_of_an_emit_cut_before_its_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let lost = Event {
            delivery_ids: vec![11],
            ..event(10, 1_000)
        };
        let orphan = posting(11, &lost, "{\"templated\": true}", None);
        write_emit_cut_before_its_event(&store.trees, &lost, std::slice::from_ref(&orphan));

        let deliveries = acme_deliveries(None);
        assert!(store.list_deliveries(&deliveries).await.unwrap().is_empty());
        let events = EventQuery {
            account_id: "acme",
            event_type: None,
            created_after_ms: None,
            created_before_ms: None,
            after: None,
            limit: 10,
        };
        assert!(store.list_events(&events).await.unwrap().is_empty());

        // Nothing of the cut emit is left: records, outbox entry, index entries.
        assert!(!store.trees.requests.contains_key(be(11)).unwrap());
        assert_eq!(store.trees.outbox.count(7, 10).unwrap(), 0);
        for index in [
            "events_by_account",
            "deliveries_by_account",
            "deliveries_by_webhook",
        ] {
            let tree = store.trees.db.open_tree(index).unwrap();
            assert!(tree.is_empty().unwrap(), "{index}");
        }
    }

    #[test]
    fn a_removal_of_a_value_changed_since_it_was_read_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let trees = &store.trees;
        trees.events.insert(be(10), b"read").unwrap();
        trees.requests.insert(be(11), b"request").unwrap();
        // A redelivery rewrote the event after the prune read it.
        trees.events.insert(be(10), b"rewritten").unwrap();

        let mut batch = trees.db.batch();
        batch.remove(&trees.requests, be(11));
        assert!(
            !batch
                .commit_removing(&trees.events, be(10), b"read")
                .unwrap()
        );
        assert!(trees.events.contains_key(be(10)).unwrap());
        assert!(trees.requests.contains_key(be(11)).unwrap());

        let mut batch = trees.db.batch();
        batch.remove(&trees.requests, be(11));
        assert!(
            batch
                .commit_removing(&trees.events, be(10), b"rewritten")
                .unwrap()
        );
        assert!(!trees.events.contains_key(be(10)).unwrap());
        assert!(!trees.requests.contains_key(be(11)).unwrap());
    }

    #[tokio::test]
    async fn a_redelivery_that_fails_midway_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        // An event record that the copy cannot be added to (a value of no known version).
        let broken = event(10, 1_000);
        store.trees.events.insert(be(10), b"\x09?").unwrap();
        let copy = posting(11, &broken, "{}", Some("K"));
        let failed = store.insert_deliveries(std::slice::from_ref(&copy)).await;
        assert!(failed.is_err());

        assert_eq!(store.get_delivery(11).await.unwrap(), None);
        assert!(!store.trees.requests.contains_key(be(11)).unwrap());
        assert_eq!(store.trees.outbox.count(7, 10).unwrap(), 0);
        assert!(store.trees.ordering.is_empty().unwrap());
        let all = acme_deliveries(Some(7));
        assert!(store.list_deliveries(&all).await.unwrap().is_empty());
    }

    #[test]
    fn an_outbox_of_the_older_layout_is_moved_over_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path().join("db")).unwrap();
            // due ++ delivery -> webhook, as older versions wrote it.
            let old = db.open_tree("outbox").unwrap();
            old.insert(be2(5_000, 42), &be(7)).unwrap();
            db.flush().unwrap();
        }
        let store = reopen(dir.path());
        let claim = Claim {
            lease: OWNER.lease_from(0),
            now_ms: 1,
            due_before_ms: i64::MAX,
            per_webhook: 10,
            limit: 10,
            skip: &[],
        };
        let claimed = store.outbox.claim(claim, |_| Ok(None)).unwrap();
        let expected = OutboxEntry {
            due_ms: 5_000,
            delivery_id: 42,
            webhook_id: 7,
        };
        assert_eq!(claimed, [expected]);
        assert!(!store.db.tree_exists("outbox"));
    }

    #[test]
    fn an_account_index_entry_left_without_its_webhook_is_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            // What a crash between the two writes of put_webhook leaves behind.
            store
                .webhooks_by_account
                .insert(account_key("acme", &be(42)), [])
                .unwrap();
            assert_eq!(store.count_webhooks("acme").unwrap(), 1);
            store.db.flush().unwrap();
        }
        let store = reopen(dir.path());
        assert_eq!(store.count_webhooks("acme").unwrap(), 0);
    }

    #[test]
    fn an_idempotency_key_whose_event_was_never_written_does_not_swallow_the_retry() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let key = || IdempotencyKey {
            account_id: "acme",
            key: "order-1",
            ttl_ms: 60_000,
        };
        // A key naming an event a crash kept from being written.
        store
            .idempotency
            .insert(account_key("acme", b"order-1"), be2(7, 1_000))
            .unwrap();
        let first = store.insert_event(&event(8, 2_000), &[], Some(key()));
        assert_eq!(first.unwrap(), InsertOutcome::Inserted);
        let again = store.insert_event(&event(9, 3_000), &[], Some(key()));
        assert_eq!(again.unwrap(), InsertOutcome::Duplicate(8));
        assert!(store.get_event(9).unwrap().is_none());
    }
}
