//! `Sealed`: the layer over any backend that encrypts secrets on the way in and decrypts
//! them on the way out (`SecretBox`), so no backend ever sees a secret in clear: webhook
//! passwords, authorization headers, Cloudflare and signing secrets, custom header values,
//! credentials in target URLs, and the URL credentials of a delivery's rendered request.
//! Everything else passes through unchanged.

use std::sync::Arc;

use async_trait::async_trait;

use super::change_log::{ChangeCursor, ChangePage};
use super::{
    AttemptRecord, Cancelled, Claim, DeliveryQuery, EventQuery, EventTypeStore, InsertOutcome,
    Lease, NewEvent, OrderingBacklog, OrderingHead, OrderingStore, OutboxEntry, Page, Pruned,
    SecretBox, Store,
};
use crate::error::Result;
use crate::model::{ApiToken, Delivery, Event, EventType, ResponseRecord, Webhook, WebhookStats};

/// A backend whose secrets are sealed with one key.
pub struct Sealed {
    backend: Arc<dyn Store>,
    secrets: SecretBox,
}

impl Sealed {
    /// `backend` with secrets sealed by `secrets`.
    pub fn new(backend: Arc<dyn Store>, secrets: SecretBox) -> Sealed {
        Sealed { backend, secrets }
    }
}

#[async_trait]
impl Store for Sealed {
    async fn next_id(&self) -> Result<u64> {
        self.backend.next_id().await
    }

    async fn put_webhook(&self, webhook: &Webhook) -> Result<()> {
        let sealed = self.secrets.seal_webhook(webhook);
        self.backend.put_webhook(&sealed).await
    }

    async fn get_webhook(&self, id: u64) -> Result<Option<Webhook>> {
        let stored = self.backend.get_webhook(id).await?;
        stored.map(|w| self.secrets.open_webhook(w)).transpose()
    }

    async fn delete_webhook(&self, id: u64) -> Result<bool> {
        self.backend.delete_webhook(id).await
    }

    async fn list_webhooks(&self, account_id: &str, page: Page) -> Result<Vec<Webhook>> {
        let stored = self.backend.list_webhooks(account_id, page).await?;
        stored
            .into_iter()
            .map(|w| self.secrets.open_webhook(w))
            .collect()
    }

    async fn count_all_webhooks(&self) -> Result<usize> {
        self.backend.count_all_webhooks().await
    }

    async fn count_webhooks(&self, account_id: &str) -> Result<usize> {
        self.backend.count_webhooks(account_id).await
    }

    async fn webhook_stats(&self, id: u64) -> Result<WebhookStats> {
        self.backend.webhook_stats(id).await
    }

    async fn count_waiting(&self, webhook_id: u64, cap: usize) -> Result<usize> {
        self.backend.count_waiting(webhook_id, cap).await
    }

    async fn put_token(&self, hash: &[u8; 32], token: &ApiToken) -> Result<()> {
        self.backend.put_token(hash, token).await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        self.backend.token_by_hash(hash).await
    }

    async fn delete_token(&self, id: u64) -> Result<bool> {
        self.backend.delete_token(id).await
    }

    async fn insert_events(&self, events: &[NewEvent<'_>]) -> Result<Vec<InsertOutcome>> {
        let sealed: Vec<_> = events
            .iter()
            .map(|e| self.secrets.seal_deliveries(e.deliveries))
            .collect();
        let events: Vec<NewEvent<'_>> = events
            .iter()
            .zip(&sealed)
            .map(|(e, deliveries)| NewEvent { deliveries, ..*e })
            .collect();
        self.backend.insert_events(&events).await
    }

    async fn get_event(&self, id: u64) -> Result<Option<Event>> {
        self.backend.get_event(id).await
    }

    async fn get_delivery(&self, id: u64) -> Result<Option<Delivery>> {
        let stored = self.backend.get_delivery(id).await?;
        stored.map(|d| self.secrets.open_delivery(d)).transpose()
    }

    async fn insert_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        let sealed = self.secrets.seal_deliveries(deliveries);
        self.backend.insert_deliveries(&sealed).await
    }

    async fn record_attempt(&self, record: AttemptRecord<'_>) -> Result<WebhookStats> {
        let delivery = self.secrets.seal_delivery(record.delivery);
        let record = AttemptRecord {
            delivery: &delivery,
            ..record
        };
        self.backend.record_attempt(record).await
    }

    async fn remove_outbox_entry(&self, entry: OutboxEntry) -> Result<()> {
        self.backend.remove_outbox_entry(entry).await
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<OutboxEntry>> {
        self.backend.claim(claim).await
    }

    async fn renew_leases(&self, lease: Lease, delivery_ids: &[u64]) -> Result<()> {
        self.backend.renew_leases(lease, delivery_ids).await
    }

    async fn release_leases(&self, owner: u64, delivery_ids: &[u64]) -> Result<()> {
        self.backend.release_leases(owner, delivery_ids).await
    }

    async fn list_responses(
        &self,
        webhook_id: u64,
        page: Page,
    ) -> Result<Vec<(u64, ResponseRecord)>> {
        self.backend.list_responses(webhook_id, page).await
    }

    async fn count_responses(&self, webhook_id: u64) -> Result<usize> {
        self.backend.count_responses(webhook_id).await
    }

    async fn trim_responses(&self, webhook_id: u64, newest_seq: u64, keep: u64) -> Result<()> {
        self.backend
            .trim_responses(webhook_id, newest_seq, keep)
            .await
    }

    async fn prune(
        &self,
        events_before_ms: i64,
        keys_before_ms: i64,
        budget: usize,
    ) -> Result<Pruned> {
        self.backend
            .prune(events_before_ms, keys_before_ms, budget)
            .await
    }

    async fn list_events(&self, query: &EventQuery<'_>) -> Result<Vec<Event>> {
        self.backend.list_events(query).await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        let stored = self.backend.list_deliveries(query).await?;
        stored
            .into_iter()
            .map(|d| self.secrets.open_delivery(d))
            .collect()
    }

    async fn cancel_delivery(&self, id: u64, at_ms: i64) -> Result<Cancelled> {
        Ok(match self.backend.cancel_delivery(id, at_ms).await? {
            Cancelled::Missing => Cancelled::Missing,
            Cancelled::Now(d) => Cancelled::Now(self.secrets.open_delivery(d)?),
            Cancelled::AlreadyFinal(d) => Cancelled::AlreadyFinal(self.secrets.open_delivery(d)?),
        })
    }

    async fn read_changes(
        &self,
        account_id: &str,
        after: ChangeCursor,
        limit: usize,
    ) -> Result<ChangePage> {
        self.backend.read_changes(account_id, after, limit).await
    }

    async fn change_head(&self) -> Result<ChangeCursor> {
        self.backend.change_head().await
    }

    async fn prune_changes(&self, before_ms: i64, budget: usize) -> Result<(u64, bool)> {
        self.backend.prune_changes(before_ms, budget).await
    }

    async fn close(&self) -> Result<()> {
        self.backend.close().await
    }

    fn changes(&self) -> Option<super::changes::Changes> {
        self.backend.changes()
    }

    async fn must_stop(&self) -> crate::error::Error {
        self.backend.must_stop().await
    }

    async fn ping(&self) -> Result<()> {
        self.backend.ping().await
    }
}

/// Event types hold no secrets: they pass through.
#[async_trait]
impl EventTypeStore for Sealed {
    async fn insert_event_type(&self, event_type: &EventType) -> Result<bool> {
        self.backend.insert_event_type(event_type).await
    }

    async fn replace_event_type(&self, event_type: &EventType) -> Result<bool> {
        self.backend.replace_event_type(event_type).await
    }

    async fn get_event_type(&self, account_id: &str, name: &str) -> Result<Option<EventType>> {
        self.backend.get_event_type(account_id, name).await
    }

    async fn list_event_types(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventType>> {
        self.backend
            .list_event_types(account_id, after, limit)
            .await
    }

    async fn count_event_types(&self, account_id: &str) -> Result<usize> {
        self.backend.count_event_types(account_id).await
    }

    async fn delete_event_type(&self, account_id: &str, name: &str) -> Result<bool> {
        self.backend.delete_event_type(account_id, name).await
    }
}

/// Ordering queues hold ids only: they pass through.
#[async_trait]
impl OrderingStore for Sealed {
    async fn ordering_head(&self, webhook_id: u64, queue: &str) -> Result<Option<OrderingHead>> {
        self.backend.ordering_head(webhook_id, queue).await
    }

    async fn ordering_backlog(&self) -> Result<OrderingBacklog> {
        self.backend.ordering_backlog().await
    }
}
