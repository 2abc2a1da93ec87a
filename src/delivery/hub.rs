//! Fan-out of delivery updates to the open status streams of an event. Publishing to an
//! event nobody watches costs one map lookup; a closed stream is dropped on the next publish.
//!
//! The worker of this process publishes its own attempts. `follow_store` adds the attempts
//! of other instances sharing the store (the store's change feed, e.g. PostgreSQL's
//! LISTEN/NOTIFY): a change of a watched event is read back from the store and published,
//! and whenever the feed may have missed changes (`Resync`) the current state of every
//! watched event's deliveries is read and published. A stream therefore sees some states
//! twice; it keeps the newest of each delivery and ends once each is final (see
//! `core::events::StatusStream`).
//!
//! Every publish, every change of the feed (watched or not) and `wake` (for changes that
//! are not published, such as a new event's QUEUED states) also tick a change counter that
//! wakes the live tails (`core::watch`), which then read the store's change log: the
//! counter only wakes them, and it is their only wake (they never follow the store's feed
//! themselves: this hub is its one follower, and sled has no feed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::model::{DeliveryUpdate, Event};
use crate::store::Store;
use crate::store::changes::StoreChange;

/// Pause before reading the store again after a failed resync.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

type Subscribers = HashMap<u64, Vec<mpsc::UnboundedSender<DeliveryUpdate>>>;

/// Routes updates to subscribers by event id.
pub struct Hub {
    subscribers: Mutex<Subscribers>,
    /// Ticks at every change of a delivery.
    changes: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            subscribers: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

/// Updates of one event; unsubscribes when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    event_id: u64,
    receiver: mpsc::UnboundedReceiver<DeliveryUpdate>,
}

impl Hub {
    /// Starts receiving the updates of `event_id` published from now on.
    pub fn subscribe(self: &Arc<Hub>, event_id: u64) -> Subscription {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock().entry(event_id).or_default().push(sender);
        Subscription {
            hub: Arc::clone(self),
            event_id,
            receiver,
        }
    }

    /// Sends an update to every subscriber of its event, and wakes the live tails.
    pub fn publish(&self, update: DeliveryUpdate) {
        self.wake();
        let mut subscribers = self.lock();
        if let Some(senders) = subscribers.get_mut(&update.event_id) {
            senders.retain(|s| s.send(update.clone()).is_ok());
            if senders.is_empty() {
                subscribers.remove(&update.event_id);
            }
        }
    }

    /// Whether any stream follows `event_id`.
    fn watches(&self, event_id: u64) -> bool {
        self.lock().contains_key(&event_id)
    }

    /// Publishes the changes other instances make to the deliveries of watched events, from
    /// the store's change feed, until `shutdown` (at once when the store has no feed).
    pub async fn follow_store(self: Arc<Hub>, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let Some(mut changes) = store.changes() else {
            return;
        };
        let mut resync_due = false;
        loop {
            let change = tokio::select! {
                change = changes.next() => change,
                _ = tokio::time::sleep(RESYNC_RETRY), if resync_due => Some(StoreChange::Resync),
                _ = shutdown.cancelled() => return,
            };
            // Another instance changed a delivery (or changes may have been missed): the
            // live tails read the change log.
            self.wake();
            let read = match change {
                None => return,
                Some(StoreChange::Resync) => self.resync(store.as_ref()).await,
                Some(StoreChange::Delivery(c)) if !c.local && self.watches(c.event_id) => {
                    match store.get_delivery(c.delivery_id).await {
                        Ok(Some(delivery)) => {
                            self.publish(DeliveryUpdate::of(&delivery));
                            Ok(())
                        }
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                Some(StoreChange::Delivery(_)) => Ok(()),
            };
            resync_due = match read {
                Ok(()) => false,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read a followed delivery; reading again");
                    true
                }
            };
        }
    }

    /// Publishes the current state of every delivery of every watched event.
    async fn resync(&self, store: &dyn Store) -> Result<()> {
        let watched: Vec<u64> = self.lock().keys().copied().collect();
        for event_id in watched {
            let Some(Event { delivery_ids, .. }) = store.get_event(event_id).await? else {
                continue;
            };
            for id in delivery_ids {
                if let Some(delivery) = store.get_delivery(id).await? {
                    self.publish(DeliveryUpdate::of(&delivery));
                }
            }
        }
        Ok(())
    }

    /// Wakes the live tails: a delivery changed (its change log entry is readable).
    pub fn wake(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees the counter tick at every change from now on.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Subscription {
    /// The event this subscription follows.
    pub fn event_id(&self) -> u64 {
        self.event_id
    }

    /// The next update; None only if the hub is gone.
    pub async fn recv(&mut self) -> Option<DeliveryUpdate> {
        self.receiver.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.receiver.close();
        let mut subscribers = self.hub.lock();
        if let Some(senders) = subscribers.get_mut(&self.event_id) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                subscribers.remove(&self.event_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeliveryState;

    fn update(event_id: u64) -> DeliveryUpdate {
        DeliveryUpdate {
            event_id,
            webhook_id: 1,
            delivery_id: 2,
            url: "http://x".into(),
            state: DeliveryState::Succeeded,
            attempt: 1,
            status_code: Some(200),
            error: String::new(),
            next_attempt_ms: None,
        }
    }

    #[tokio::test]
    async fn subscribers_get_their_event_only_and_leave_no_trace() {
        let hub = Arc::new(Hub::default());
        let mut first = hub.subscribe(1);
        hub.publish(update(2));
        hub.publish(update(1));
        assert_eq!(first.recv().await.unwrap().event_id, 1);
        drop(first);
        assert!(hub.lock().is_empty());
        hub.publish(update(1));
    }
}
