//! The operator queries of the `Store` trait (listing events and deliveries, cancelling a
//! delivery): their backend-neutral arguments and results. Each backend answers them from
//! indexes of its own (`sled/queries.rs`, `postgres/queries.rs`), newest first, by keyset.

use crate::model::{Delivery, DeliveryState};

/// A position in a newest-first listing: `(created_at_ms, id)` of the last item returned;
/// the next page holds the items strictly before it in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Keyset {
    /// Creation time of the last item, ms since the epoch.
    pub created_at_ms: i64,
    /// Its id (ties of one millisecond are ordered by id).
    pub id: u64,
}

/// Which events of an account to list.
#[derive(Debug, Clone, Copy)]
pub struct EventQuery<'a> {
    /// Owning account.
    pub account_id: &'a str,
    /// Only this type.
    pub event_type: Option<&'a str>,
    /// Created at or after (ms).
    pub created_after_ms: Option<i64>,
    /// Created before (ms).
    pub created_before_ms: Option<i64>,
    /// Continue after this item.
    pub after: Option<Keyset>,
    /// Items at most.
    pub limit: usize,
}

/// Which deliveries of an account to list.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryQuery<'a> {
    /// Owning account.
    pub account_id: &'a str,
    /// Only this webhook's (already checked to be the account's).
    pub webhook_id: Option<u64>,
    /// Only these states (OR); empty = every state.
    pub states: &'a [DeliveryState],
    /// Created at or after (ms).
    pub created_after_ms: Option<i64>,
    /// Created before (ms).
    pub created_before_ms: Option<i64>,
    /// Continue after this item.
    pub after: Option<Keyset>,
    /// Items at most.
    pub limit: usize,
}

impl EventQuery<'_> {
    /// Whether an event created at `created_at_ms` with id `id` is in the query's window.
    pub fn window_holds(&self, created_at_ms: i64, id: u64) -> bool {
        window_holds(
            self.created_after_ms,
            self.created_before_ms,
            self.after,
            created_at_ms,
            id,
        )
    }
}

impl DeliveryQuery<'_> {
    /// Whether a delivery in `state` passes the state filter.
    pub fn state_holds(&self, state: DeliveryState) -> bool {
        self.states.is_empty() || self.states.contains(&state)
    }

    /// Whether a delivery created at `created_at_ms` with id `id` is in the query's window.
    pub fn window_holds(&self, created_at_ms: i64, id: u64) -> bool {
        window_holds(
            self.created_after_ms,
            self.created_before_ms,
            self.after,
            created_at_ms,
            id,
        )
    }
}

fn window_holds(
    after_ms: Option<i64>,
    before_ms: Option<i64>,
    cursor: Option<Keyset>,
    created_at_ms: i64,
    id: u64,
) -> bool {
    after_ms.is_none_or(|a| created_at_ms >= a)
        && before_ms.is_none_or(|b| created_at_ms < b)
        && cursor.is_none_or(|c| Keyset { created_at_ms, id } < c)
}

/// What `cancel_delivery` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// There is no such delivery.
    Missing,
    /// It was QUEUED or RETRYING and is CANCELLED now.
    Now(Delivery),
    /// It was already final (CANCELLED or another final state); unchanged.
    AlreadyFinal(Delivery),
}
