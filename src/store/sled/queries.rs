//! The operator queries on the embedded store: secondary index trees kept by the write paths, listed
//! newest first by keyset, and cancellation.
//!
//! - `events_by_account`: account ++ 0 ++ created ms ++ event id -> event type
//! - `deliveries_by_account`: account ++ 0 ++ created ms ++ delivery id -> state ++ webhook id
//! - `deliveries_by_webhook`: webhook id ++ created ms ++ delivery id -> state
//!
//! The values let a listing filter by type or state without loading a record. A delivery's
//! entries are written once, with the state it is created in: attempts and cancellation
//! write only its small state record, so a listing filtering by state takes the state from
//! that record when there is one (entries written by older versions may hold a later state;
//! the record wins there too). A record is loaded only when it is returned, and checked
//! again then (its record is the truth).
//! Index entries are written in the batch that writes the records they point at, and
//! removed after them, so a crash leaves at most an entry without its record, which listings
//! skip.
//!
//! Cancellation and attempts of one delivery take the same lock stripe: a cancel cannot
//! slip between an attempt's check of the state and its write.

use std::sync::{Mutex, MutexGuard};

use super::engine::{self, Batch, Bytes, Tree};

use super::codec::{account_key, be, decode};
use super::{Loaded, Trees, internal};
use crate::error::Result;
use crate::model::{Delivery, DeliveryState, Event};
use crate::store::{Cancelled, DeliveryQuery, EventQuery, Keyset};

/// Lock stripes of `Indexes::locks`.
const DELIVERY_LOCKS: usize = 64;

/// The index trees and the per-delivery lock stripes.
pub(super) struct Indexes {
    events_by_account: Tree,
    deliveries_by_account: Tree,
    deliveries_by_webhook: Tree,
    locks: Vec<Mutex<()>>,
}

/// The one-byte code of a state in index values.
fn state_code(state: DeliveryState) -> u8 {
    DeliveryState::ALL
        .iter()
        .position(|s| *s == state)
        .map_or(u8::MAX, |i| i as u8)
}

fn state_of_code(code: u8) -> Option<DeliveryState> {
    DeliveryState::ALL.get(usize::from(code)).copied()
}

/// created ms ++ id: the order of the listings.
fn order_key(created_at_ms: i64, id: u64) -> [u8; 16] {
    super::codec::be2(created_at_ms.max(0) as u64, id)
}

fn with_prefix(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + suffix.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(suffix);
    key
}

/// The id at the end of an index key (its last 8 bytes).
fn id_of(key: &[u8]) -> Result<u64> {
    let at = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| internal("corrupt index key"))?;
    Ok(u64::from_be_bytes(key[at..].try_into().map_err(internal)?))
}

/// The keys of `prefix` within a time window and before a keyset cursor, newest first.
fn window(
    tree: &Tree,
    prefix: &[u8],
    after_ms: Option<i64>,
    before_ms: Option<i64>,
    cursor: Option<Keyset>,
) -> impl DoubleEndedIterator<Item = engine::Result<(Bytes, Bytes)>> {
    let start = with_prefix(prefix, &order_key(after_ms.unwrap_or(0), 0));
    let by_time = before_ms.map(|b| with_prefix(prefix, &order_key(b, 0)));
    let by_cursor = cursor.map(|c| with_prefix(prefix, &order_key(c.created_at_ms, c.id)));
    // Exclusive end: the smaller of the two bounds, else the end of the prefix.
    let end = match (by_time, by_cursor) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => with_prefix(prefix, &[0xff; 17]),
    };
    let start = start.min(end.clone());
    tree.range(start..end)
}

impl Indexes {
    pub(super) fn open(db: &engine::Db) -> Result<Indexes> {
        let tree = |name: &str| db.open_tree(name).map_err(internal);
        Ok(Indexes {
            events_by_account: tree("events_by_account")?,
            deliveries_by_account: tree("deliveries_by_account")?,
            deliveries_by_webhook: tree("deliveries_by_webhook")?,
            locks: (0..DELIVERY_LOCKS).map(|_| Mutex::new(())).collect(),
        })
    }

    /// The lock stripe of a delivery (held by cancel and by `record_attempt`).
    pub(super) fn lock(&self, delivery_id: u64) -> MutexGuard<'_, ()> {
        self.locks[(delivery_id % DELIVERY_LOCKS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Indexes a new event (in the batch that writes it).
    pub(super) fn add_event(&self, batch: &mut Batch, event: &Event) {
        let key = account_key(&event.account_id, &order_key(event.created_at_ms, event.id));
        batch.insert(&self.events_by_account, key, event.event_type.as_bytes());
    }

    /// Indexes a new delivery with the state it is created in (in the batch that writes it).
    pub(super) fn add_delivery(&self, batch: &mut Batch, d: &Delivery) {
        let order = order_key(d.created_at_ms, d.id);
        let code = state_code(d.state);
        let mut by_account = vec![code];
        by_account.extend_from_slice(&be(d.webhook_id));
        batch.insert(
            &self.deliveries_by_account,
            account_key(&d.account_id, &order),
            by_account,
        );
        batch.insert(
            &self.deliveries_by_webhook,
            with_prefix(&be(d.webhook_id), &order),
            [code],
        );
    }

    /// Drops a deleted event's entry in `batch`.
    pub(super) fn remove_event_in(
        &self,
        batch: &mut Batch,
        account_id: &str,
        created_at_ms: i64,
        id: u64,
    ) {
        batch.remove(
            &self.events_by_account,
            account_key(account_id, &order_key(created_at_ms, id)),
        );
    }

    /// Drops a delivery's entries in `batch`.
    pub(super) fn remove_delivery_in(&self, batch: &mut Batch, d: &Delivery) {
        let order = order_key(d.created_at_ms, d.id);
        batch.remove(
            &self.deliveries_by_account,
            account_key(&d.account_id, &order),
        );
        batch.remove(
            &self.deliveries_by_webhook,
            with_prefix(&be(d.webhook_id), &order),
        );
    }
}

/// The part of a stored delivery state record the cancel check reads.
#[derive(serde::Deserialize)]
struct StateHead {
    state: DeliveryState,
}

impl Trees {
    pub(super) fn list_events(&self, q: &EventQuery<'_>) -> Result<Vec<Event>> {
        let prefix = account_key(q.account_id, &[]);
        let tree = &self.indexes.events_by_account;
        let mut out = Vec::new();
        let keys = window(
            tree,
            &prefix,
            q.created_after_ms,
            q.created_before_ms,
            q.after,
        );
        for item in keys.rev() {
            if out.len() >= q.limit {
                break;
            }
            let (key, event_type) = item.map_err(internal)?;
            if q.event_type
                .is_some_and(|t| t.as_bytes() != event_type.as_ref())
            {
                continue;
            }
            let Some(event) = self.get_event(id_of(&key)?)? else {
                // Left by a version before the batch (a crash kept the record from being
                // written, or came between a prune's writes): it goes.
                tree.remove(&key).map_err(internal)?;
                continue;
            };
            if event.account_id == q.account_id && q.window_holds(event.created_at_ms, event.id) {
                out.push(event);
            }
        }
        Ok(out)
    }

    pub(super) fn list_deliveries(&self, q: &DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        let (tree, prefix) = match q.webhook_id {
            Some(webhook_id) => (&self.indexes.deliveries_by_webhook, be(webhook_id).to_vec()),
            None => (
                &self.indexes.deliveries_by_account,
                account_key(q.account_id, &[]),
            ),
        };
        let mut out = Vec::new();
        let keys = window(
            tree,
            &prefix,
            q.created_after_ms,
            q.created_before_ms,
            q.after,
        );
        for item in keys.rev() {
            if out.len() >= q.limit {
                break;
            }
            let (key, value) = item.map_err(internal)?;
            let id = id_of(&key)?;
            if !q.states.is_empty() {
                let indexed = value.first().copied().and_then(state_of_code);
                if self
                    .state_now(id, indexed)?
                    .is_some_and(|s| !q.state_holds(s))
                {
                    continue;
                }
            }
            let delivery = match self.load_delivery(id)? {
                Some(Loaded::Delivery(delivery)) => delivery,
                Some(Loaded::Orphan(orphan)) => {
                    self.drop_orphan(&orphan)?;
                    continue;
                }
                None => continue,
            };
            if delivery.account_id == q.account_id
                && q.state_holds(delivery.state)
                && q.window_holds(delivery.created_at_ms, delivery.id)
            {
                out.push(delivery);
            }
        }
        Ok(out)
    }

    pub(super) fn cancel_delivery(&self, id: u64, at_ms: i64) -> Result<Cancelled> {
        let _same_delivery = self.indexes.lock(id);
        let Some(mut delivery) = self.get_delivery(id)? else {
            return Ok(Cancelled::Missing);
        };
        if delivery.state.is_final() {
            return Ok(Cancelled::AlreadyFinal(delivery));
        }
        let due_ms = delivery.next_attempt_ms;
        delivery.state = DeliveryState::Cancelled;
        delivery.updated_at_ms = at_ms;
        // The state first: an outbox entry left by a crash is dropped by the worker.
        let state = super::codec::delivery::encode_state(&delivery)?;
        self.deliveries.insert(be(id), state).map_err(internal)?;
        let leased = self
            .outbox
            .lease(id)
            .is_some_and(|lease| lease.until_ms > crate::model::now_ms());
        if delivery.ordering.is_some() && leased {
            // An ordered head held by the worker, maybe on the wire: the next of its queue
            // waits until the worker lets go of it (its attempt recorded, or the cancel
            // found before one: `drop_stale_entry`), so the two never overlap. After a
            // restart `repair_ordering` releases it.
            return Ok(Cancelled::Now(delivery));
        }
        self.release_ordered(&delivery)?;
        self.remove_outbox_entry(crate::store::OutboxEntry {
            due_ms,
            delivery_id: id,
            webhook_id: delivery.webhook_id,
        })?;
        Ok(Cancelled::Now(delivery))
    }

    /// A delivery's state: its state record's, else (never attempted nor cancelled) the
    /// one it was created in, `created`.
    fn state_now(&self, id: u64, created: Option<DeliveryState>) -> Result<Option<DeliveryState>> {
        match self.deliveries.get(be(id)).map_err(internal)? {
            Some(state) => Ok(Some(decode::<StateHead>(&state)?.state)),
            None => Ok(created),
        }
    }

    /// Whether a delivery's stored state is CANCELLED (call under its lock stripe).
    pub(super) fn is_cancelled(&self, id: u64) -> Result<bool> {
        // A delivery created cancelled does not exist: it is not in the outbox.
        Ok(self.state_now(id, None)? == Some(DeliveryState::Cancelled))
    }
}
