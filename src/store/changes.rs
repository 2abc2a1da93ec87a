//! Changes of delivery state as the store sees them commit: how a process learns of the
//! deliveries another process attempts. A backend shared by several instances (PostgreSQL)
//! publishes every committed change; the embedded one (sled) has no other writer and
//! publishes nothing: its process feeds its hub itself.
//!
//! Its one follower is the status hub (`delivery::hub::Hub::follow_store`): it publishes the
//! changes of watched events to their status streams and ticks its change counter, which is
//! the one wake of the live tails (`core::watch`) for local and remote changes alike. So this
//! feed is the input from other instances and the hub's counter the wake-up inside the
//! process: two jobs, not two wake paths for one.
//!
//! The feed is best effort: a change is announced after its commit, and a listener that lost
//! its connection (or fell behind) misses some. It then receives `Resync`, which means "read
//! the current state of what you follow from the store", so nothing is missed for good.

use tokio::sync::broadcast;

use crate::model::DeliveryState;

/// One committed change of a delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryChange {
    /// The delivery's event.
    pub event_id: u64,
    /// The delivery.
    pub delivery_id: u64,
    /// Its webhook.
    pub webhook_id: u64,
    /// The state it was left in.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Whether this process made the change (it knows about it already).
    pub local: bool,
}

/// What a follower of the store's changes receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChange {
    /// A delivery changed state.
    Delivery(DeliveryChange),
    /// Changes may have been missed (the feed reconnected, or this follower fell behind):
    /// re-read what you follow.
    Resync,
}

/// A follower's end of the feed.
pub struct Changes {
    receiver: broadcast::Receiver<StoreChange>,
}

impl Changes {
    /// Follows the feed of `receiver`.
    pub fn new(receiver: broadcast::Receiver<StoreChange>) -> Changes {
        Changes { receiver }
    }

    /// The next change; `Resync` when this follower fell behind; None once the feed ended
    /// (the store is gone).
    pub async fn next(&mut self) -> Option<StoreChange> {
        match self.receiver.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(StoreChange::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
