//! The sled implementation of `Store`: one `Db` in the data directory with a fixed set of
//! trees. Multi-tree writes are sled transactions; `flush` is a blocking fsync that callers
//! group-commit.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use super::codec::{account_key, be, be2, decode, delivery, encode, split2};
use super::{AttemptRecord, IdempotencyKey, InsertOutcome, OutboxEntry, Page, SecretBox, Store};
use crate::error::{Error, Result};
use crate::model::{ApiToken, Delivery, Event, ResponseRecord, Webhook, WebhookStats};

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    /// Seals webhook secrets before they reach disk.
    secrets: SecretBox,
    /// Decoded webhooks by id (None = deleted), so hot paths skip decoding and decryption.
    /// Writers update it after their commit; readers only fill gaps.
    cache: RwLock<HashMap<u64, Option<Arc<Webhook>>>>,
    /// id -> Webhook
    webhooks: Tree,
    /// account ++ 0 ++ id -> ()
    webhooks_by_account: Tree,
    /// id -> WebhookStats
    webhook_stats: Tree,
    /// id -> Event
    events: Tree,
    /// id -> the delivery's mutable state
    deliveries: Tree,
    /// id -> the delivery's request (written once)
    requests: Tree,
    /// due_ms ++ delivery id -> webhook id
    outbox: Tree,
    /// webhook id ++ !seq -> ResponseRecord (newest first)
    responses: Tree,
    /// sha256(token) -> ApiToken
    tokens: Tree,
    /// token id -> sha256(token)
    token_ids: Tree,
    /// account ++ 0 ++ key -> event id ++ created ms
    idempotency: Tree,
}

/// sled's page cache (its default is 1 GiB; a backlog of deliveries should not need that).
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("store: {e}"))
}

fn tx_error(e: TransactionError<Error>) -> Error {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => internal(e),
    }
}

/// Key, state part, request part of each delivery (see `codec::delivery`).
type EncodedDelivery<'a> = ([u8; 8], Vec<u8>, Vec<u8>, &'a Delivery);

fn encode_deliveries(deliveries: &[Delivery]) -> Result<Vec<EncodedDelivery<'_>>> {
    deliveries
        .iter()
        .map(|d| {
            Ok((
                be(d.id),
                delivery::encode_state(d)?,
                delivery::encode_request(d)?,
                d,
            ))
        })
        .collect()
}

fn due_key(due_ms: i64) -> u64 {
    due_ms.max(0) as u64
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir`, sealing secrets with `secrets`.
    /// Fails with a clear message when the directory is unusable or already opened by
    /// another process.
    pub fn open(dir: &Path, secrets: SecretBox) -> Result<SledStore> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(Some(500))
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| {
                Error::Internal(format!("cannot open the store in {}: {e}", dir.display()))
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(internal);
        Ok(SledStore {
            webhooks: tree("webhooks")?,
            webhooks_by_account: tree("webhooks_by_account")?,
            webhook_stats: tree("webhook_stats")?,
            events: tree("events")?,
            deliveries: tree("deliveries")?,
            requests: tree("requests")?,
            outbox: tree("outbox")?,
            responses: tree("responses")?,
            tokens: tree("tokens")?,
            token_ids: tree("token_ids")?,
            idempotency: tree("idempotency")?,
            secrets,
            cache: RwLock::default(),
            db,
        })
    }

    fn get<T: serde::de::DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>> {
        tree.get(key)
            .map_err(internal)?
            .map(|v| decode(&v))
            .transpose()
    }
}

impl Store for SledStore {
    fn next_id(&self) -> Result<u64> {
        self.db.generate_id().map_err(internal)
    }

    fn put_webhook(&self, webhook: &Webhook) -> Result<()> {
        let value = encode(&self.secrets.seal_webhook(webhook))?;
        let index = account_key(&webhook.account_id, &be(webhook.id));
        // Writers hold the cache lock across commit and update, so the cache follows commit order.
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        (&self.webhooks, &self.webhooks_by_account)
            .transaction(|(webhooks, by_account)| {
                webhooks.insert(&be(webhook.id), value.as_slice())?;
                by_account.insert(index.as_slice(), &[])?;
                Ok::<_, ConflictableTransactionError<Error>>(())
            })
            .map_err(tx_error)?;
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
        let loaded = Self::get(&self.webhooks, &be(id))?
            .map(|stored| self.secrets.open_webhook(stored))
            .transpose()?;
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
        let existed = (
            &self.webhooks,
            &self.webhooks_by_account,
            &self.webhook_stats,
        )
            .transaction(|(webhooks, by_account, stats)| {
                by_account.remove(index.as_slice())?;
                stats.remove(&be(id))?;
                Ok::<_, ConflictableTransactionError<Error>>(webhooks.remove(&be(id))?.is_some())
            })
            .map_err(tx_error)?;
        cache.insert(id, None);
        drop(cache);
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
        Ok(self.webhooks.len())
    }

    fn count_webhooks(&self, account_id: &str) -> Result<usize> {
        Ok(self
            .webhooks_by_account
            .scan_prefix(account_key(account_id, &[]))
            .count())
    }

    fn webhook_stats(&self, id: u64) -> Result<WebhookStats> {
        Ok(Self::get(&self.webhook_stats, &be(id))?.unwrap_or_default())
    }

    fn put_token(&self, hash: &[u8; 32], token: &ApiToken) -> Result<()> {
        let value = encode(token)?;
        (&self.tokens, &self.token_ids)
            .transaction(|(tokens, ids)| {
                tokens.insert(hash.as_slice(), value.as_slice())?;
                ids.insert(&be(token.id), hash.as_slice())?;
                Ok::<_, ConflictableTransactionError<Error>>(())
            })
            .map_err(tx_error)
    }

    fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        Self::get(&self.tokens, hash)
    }

    fn delete_token(&self, id: u64) -> Result<bool> {
        (&self.tokens, &self.token_ids)
            .transaction(|(tokens, ids)| {
                let Some(hash) = ids.remove(&be(id))? else {
                    return Ok(false);
                };
                tokens.remove(hash)?;
                Ok::<_, ConflictableTransactionError<Error>>(true)
            })
            .map_err(tx_error)
    }

    fn insert_event(
        &self,
        event: &Event,
        deliveries: &[Delivery],
        idempotency: Option<IdempotencyKey<'_>>,
    ) -> Result<InsertOutcome> {
        let event_value = encode(event)?;
        let delivery_values = encode_deliveries(deliveries)?;
        let idempotency_key = idempotency
            .as_ref()
            .map(|i| account_key(i.account_id, i.key.as_bytes()));
        (
            &self.events,
            &self.deliveries,
            &self.requests,
            &self.outbox,
            &self.idempotency,
        )
            .transaction(|(events, deliveries, requests, outbox, keys)| {
                if let (Some(key), Some(idem)) = (&idempotency_key, &idempotency) {
                    if let Some(previous) = keys.get(key.as_slice())? {
                        let (event_id, created_ms) =
                            split2(&previous).map_err(ConflictableTransactionError::Abort)?;
                        if event.created_at_ms - (created_ms as i64) < idem.ttl_ms {
                            return Ok(InsertOutcome::Duplicate(event_id));
                        }
                    }
                    keys.insert(key.as_slice(), &be2(event.id, event.created_at_ms as u64))?;
                }
                events.insert(&be(event.id), event_value.as_slice())?;
                for (key, state, request, delivery) in &delivery_values {
                    deliveries.insert(key, state.as_slice())?;
                    requests.insert(key, request.as_slice())?;
                    if !delivery.state.is_final() {
                        outbox.insert(
                            &be2(due_key(delivery.next_attempt_ms), delivery.id),
                            &be(delivery.webhook_id),
                        )?;
                    }
                }
                Ok(InsertOutcome::Inserted)
            })
            .map_err(tx_error)
    }

    fn get_event(&self, id: u64) -> Result<Option<Event>> {
        Self::get(&self.events, &be(id))
    }

    fn get_delivery(&self, id: u64) -> Result<Option<Delivery>> {
        let key = be(id);
        let (Some(state), Some(request)) = (
            self.deliveries.get(key).map_err(internal)?,
            self.requests.get(key).map_err(internal)?,
        ) else {
            return Ok(None);
        };
        delivery::decode_delivery(id, &state, &request).map(Some)
    }

    fn insert_deliveries(&self, event_id: u64, new: &[Delivery]) -> Result<()> {
        let values = encode_deliveries(new)?;
        (&self.events, &self.deliveries, &self.requests, &self.outbox)
            .transaction(|(events, deliveries, requests, outbox)| {
                let Some(bytes) = events.get(be(event_id))? else {
                    return Err(ConflictableTransactionError::Abort(Error::NotFound {
                        kind: "event",
                        id: event_id.to_string(),
                    }));
                };
                let mut event: Event =
                    decode(&bytes).map_err(ConflictableTransactionError::Abort)?;
                for (key, state, request, delivery) in &values {
                    deliveries.insert(key, state.as_slice())?;
                    requests.insert(key, request.as_slice())?;
                    outbox.insert(
                        &be2(due_key(delivery.next_attempt_ms), delivery.id),
                        &be(delivery.webhook_id),
                    )?;
                    event.delivery_ids.push(delivery.id);
                }
                let event_value = encode(&event).map_err(ConflictableTransactionError::Abort)?;
                events.insert(&be(event_id), event_value)?;
                Ok(())
            })
            .map_err(tx_error)
    }

    fn record_attempt(&self, record: AttemptRecord<'_>) -> Result<WebhookStats> {
        // Ordered single-key writes instead of a transaction (sled serialises transactions
        // globally). The order keeps every crash prefix consistent: the log and stats first
        // (a repeat after a crash only logs the attempt twice), then the retry's outbox entry,
        // then the state, and the old outbox entry last; `attempt` drops entries whose due
        // time no longer matches the state (see `remove_outbox_entry`).
        let delivery = record.delivery;
        let webhook_key = be(delivery.webhook_id);
        let mut stats = self.webhook_stats(delivery.webhook_id)?;
        if let Some(response) = record.response {
            let key = be2(delivery.webhook_id, !self.next_id()?);
            let value = delivery::encode_response(response, delivery)?;
            self.responses.insert(key, value).map_err(internal)?;
            let at_ms = response.timestamp_ms;
            let updated = self
                .webhook_stats
                .update_and_fetch(webhook_key, |old| {
                    let mut current: WebhookStats =
                        old.and_then(|b| decode(b).ok()).unwrap_or_default();
                    current.logged_responses += 1;
                    if record.succeeded {
                        current.last_success_ms = Some(at_ms);
                        current.failing_since_ms = None;
                    } else {
                        current.last_failure_ms = Some(at_ms);
                        current.failing_since_ms.get_or_insert(at_ms);
                    }
                    encode(&current).ok()
                })
                .map_err(internal)?;
            if let Some(bytes) = updated {
                stats = decode(&bytes)?;
            }
        }
        if !delivery.state.is_final() {
            let due = be2(due_key(delivery.next_attempt_ms), delivery.id);
            self.outbox.insert(due, &webhook_key).map_err(internal)?;
        }
        let state = delivery::encode_state(delivery)?;
        self.deliveries
            .insert(be(delivery.id), state)
            .map_err(internal)?;
        if delivery.state.is_final() || delivery.next_attempt_ms != record.previous_due_ms {
            self.remove_outbox_entry(record.previous_due_ms, delivery.id)?;
        }
        Ok(stats)
    }

    fn remove_outbox_entry(&self, due_ms: i64, delivery_id: u64) -> Result<()> {
        self.outbox
            .remove(be2(due_key(due_ms), delivery_id))
            .map(|_| ())
            .map_err(internal)
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.outbox
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(internal)?;
                let (due, delivery_id) = split2(&key)?;
                let webhook_id = u64::from_be_bytes(
                    value
                        .as_ref()
                        .try_into()
                        .map_err(|_| internal("corrupt outbox entry"))?,
                );
                Ok(OutboxEntry {
                    due_ms: due as i64,
                    delivery_id,
                    webhook_id,
                })
            })
            .collect()
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
                        Some(request) => delivery::request_body(&request),
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

    fn trim_responses(&self, webhook_id: u64, keep: usize) -> Result<()> {
        let mut removed = 0u64;
        // Keys are webhook ++ !seq: the oldest entries sort last. Walk forward past the
        // newest `keep` (sled's reverse iteration re-descends the tree at every step and
        // cost 85% of the CPU under load).
        for key in self.responses.scan_prefix(be(webhook_id)).keys().skip(keep) {
            self.responses
                .remove(key.map_err(internal)?)
                .map_err(internal)?;
            removed += 1;
        }
        self.webhook_stats
            .transaction(|stats| {
                if let Some(bytes) = stats.get(be(webhook_id))? {
                    let mut current: WebhookStats =
                        decode(&bytes).map_err(ConflictableTransactionError::Abort)?;
                    current.logged_responses = current.logged_responses.saturating_sub(removed);
                    let value = encode(&current).map_err(ConflictableTransactionError::Abort)?;
                    stats.insert(&be(webhook_id), value)?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(internal)
    }
}
