//! Fan-out of delivery updates to the open status streams of an event. Publishing to an
//! event nobody watches costs one map lookup; a closed stream is dropped on the next publish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::model::DeliveryUpdate;

type Subscribers = HashMap<u64, Vec<mpsc::UnboundedSender<DeliveryUpdate>>>;

/// Routes updates to subscribers by event id.
#[derive(Default)]
pub struct Hub {
    subscribers: Mutex<Subscribers>,
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

    /// Sends an update to every subscriber of its event.
    pub fn publish(&self, update: DeliveryUpdate) {
        let mut subscribers = self.lock();
        if let Some(senders) = subscribers.get_mut(&update.event_id) {
            senders.retain(|s| s.send(update.clone()).is_ok());
            if senders.is_empty() {
                subscribers.remove(&update.event_id);
            }
        }
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
