//! `EventTypeStore`: the part of the `Store` that keeps each account's event-type catalog
//! (names, descriptions, JSON Schemas), a supertrait so that each backend implements it in a
//! file of its own (`sled/event_types.rs`, `postgres/event_types.rs`). Types are keyed by
//! account and name; listings are in name order.

use async_trait::async_trait;

use crate::error::Result;
use crate::model::EventType;

/// The event-type catalog of every account.
#[async_trait]
pub trait EventTypeStore {
    /// Writes a new event type unless its account already has one of that name (then false,
    /// nothing written); durable.
    async fn insert_event_type(&self, event_type: &EventType) -> Result<bool>;
    /// Replaces an existing event type; false when there is none of that name; durable.
    async fn replace_event_type(&self, event_type: &EventType) -> Result<bool>;
    /// An account's event type by name.
    async fn get_event_type(&self, account_id: &str, name: &str) -> Result<Option<EventType>>;
    /// An account's event types in name order, after `after` (exclusive), at most `limit`.
    async fn list_event_types(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventType>>;
    /// Number of event types of an account.
    async fn count_event_types(&self, account_id: &str) -> Result<usize>;
    /// Deletes an event type; false when there was none; durable.
    async fn delete_event_type(&self, account_id: &str, name: &str) -> Result<bool>;
}
