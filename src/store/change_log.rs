//! The durable change log of delivery states, backend-neutral part: what one entry holds,
//! the cursor that orders entries, and a page read from a cursor. Every backend appends an
//! entry in the same durable step as the state change it records (`insert_events`' QUEUED
//! and SKIPPED, `insert_deliveries`' redelivery, `record_attempt`'s attempt) and hands out
//! entries only in cursor order and only once no entry with a smaller cursor can appear any
//! more, so a reader that resumes after the last cursor it saw misses nothing and repeats
//! nothing. Each backend's module says how it keeps that promise (`sled/changes.rs`,
//! `postgres/changes.rs`). Retention prunes the log from its oldest end and remembers how
//! far it pruned (the horizon): a cursor below the horizon has lost entries for good.

use crate::model::{Delivery, DeliveryUpdate};
use crate::userinfo;

/// A position in the change log: every entry has one, and they are totally ordered. Its
/// meaning is the backend's (sled: `(0, sequence)`; PostgreSQL: `(transaction id,
/// sequence)`); `ChangeCursor::START` is before every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChangeCursor {
    /// Major part.
    pub high: u64,
    /// Minor part.
    pub low: u64,
}

impl ChangeCursor {
    /// Before every entry.
    pub const START: ChangeCursor = ChangeCursor { high: 0, low: 0 };
}

/// One recorded change of a delivery's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its position in the log.
    pub cursor: ChangeCursor,
    /// The account the delivery belongs to.
    pub account_id: String,
    /// The change, as status streams carry it (the URL's credentials masked).
    pub update: DeliveryUpdate,
}

/// The entries of an account after a cursor, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ChangePage {
    /// Up to the limit asked for; empty when nothing new is readable yet.
    pub changes: Vec<Change>,
    /// The cursor asked from is older than the horizon: entries after it were pruned (and
    /// `changes` is empty).
    pub expired: bool,
    /// Where the next read continues: the cursor of the last entry read, or (when the page
    /// is empty or ends at the readable end of the log) the end of what this account could
    /// read, so that other accounts' entries are not scanned again.
    pub next: ChangeCursor,
}

/// The entry describing a delivery's current state (the message an EmitEvent stream sends
/// for it: QUEUED with attempt 0, an attempt's outcome with its number), its URL masked.
pub fn update_of(delivery: &Delivery) -> DeliveryUpdate {
    let mut update = DeliveryUpdate::of(delivery);
    update.url = userinfo::mask(&update.url);
    update
}

/// How an entry is stored by the backends (both keep JSON of this).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredUpdate {
    /// Event.
    pub event_id: u64,
    /// Webhook.
    pub webhook_id: u64,
    /// Delivery.
    pub delivery_id: u64,
    /// Target URL, credentials masked.
    pub url: String,
    /// New state.
    pub state: crate::model::DeliveryState,
    /// Attempt reported.
    pub attempt: u32,
    /// HTTP status of the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Failure or skip reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Next attempt time for RETRYING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<i64>,
}

impl From<&DeliveryUpdate> for StoredUpdate {
    fn from(u: &DeliveryUpdate) -> StoredUpdate {
        StoredUpdate {
            event_id: u.event_id,
            webhook_id: u.webhook_id,
            delivery_id: u.delivery_id,
            url: u.url.clone(),
            state: u.state,
            attempt: u.attempt,
            status_code: u.status_code,
            error: u.error.clone(),
            next_attempt_ms: u.next_attempt_ms,
        }
    }
}

impl From<StoredUpdate> for DeliveryUpdate {
    fn from(s: StoredUpdate) -> DeliveryUpdate {
        DeliveryUpdate {
            event_id: s.event_id,
            webhook_id: s.webhook_id,
            delivery_id: s.delivery_id,
            url: s.url,
            state: s.state,
            attempt: s.attempt,
            status_code: s.status_code,
            error: s.error,
            next_attempt_ms: s.next_attempt_ms,
        }
    }
}
