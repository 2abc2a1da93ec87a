//! Delivery changes across instances: every write that changes a delivery's state sends
//! `pg_notify(CHANNEL, payload)` inside its own transaction (so the notification goes out
//! exactly when the change commits, and never for a change rolled back), and each instance
//! runs one listener (sqlx `PgListener`) that turns the notifications into the store's
//! change feed (`store::changes`).
//!
//! The payload is small and fixed in shape (ids, state, attempts and the sending instance:
//! well under PostgreSQL's 8000-byte limit); whoever needs more reads the delivery. A
//! notification sent while the listener is disconnected is lost, so after every
//! (re)connection the feed says `Resync` and its followers read the current state instead.
//! Losing the connection is logged at debug only: the store's health monitor reports the
//! database being lost and back, once each.
//!
//! The same listener follows `SETTINGS`, the changes of webhooks and tokens, for the read
//! caches (`cache`): each notification drops what it names, each (re)connection empties them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::cache::Caches;
use super::to_json;
use crate::error::Result;
use crate::model::{Delivery, DeliveryState};
use crate::store::changes::{Changes, DeliveryChange, StoreChange};

/// The notification channel of delivery changes.
pub const CHANNEL: &str = "webhookd_deliveries";

/// The notification channel of webhook and token changes.
pub const SETTINGS: &str = "webhookd_settings";

/// Changes a slow follower may fall behind by before it is told to resync.
const FEED_CAPACITY: usize = 4096;

/// First pause before connecting again after a failure; it doubles up to `MAX_PAUSE`.
const MIN_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// The notification of one delivery change, as sent (short keys keep it small).
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// The sending instance (its lease `Owner` id).
    i: u64,
    e: u64,
    d: u64,
    w: u64,
    s: DeliveryState,
    a: u32,
}

/// The payload announcing `delivery`'s current state, sent by `instance`.
pub fn payload(instance: u64, delivery: &Delivery) -> Result<String> {
    to_json(&Payload {
        i: instance,
        e: delivery.event_id,
        d: delivery.id,
        w: delivery.webhook_id,
        s: delivery.state,
        a: delivery.attempts,
    })
}

/// What a `SETTINGS` notification names: a webhook (its id and account) or, with no
/// webhook, the tokens.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Setting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    a: String,
}

/// The payload announcing a change of webhook `id` of `account_id`.
pub fn webhook_payload(id: u64, account_id: &str) -> Result<String> {
    to_json(&Setting {
        w: Some(id),
        a: account_id.to_string(),
    })
}

/// The payload announcing a change of the tokens.
pub const TOKENS_PAYLOAD: &str = "{}";

/// Drops from `caches` what a `SETTINGS` payload names (everything, for one this binary
/// does not understand).
fn invalidate(caches: &Caches, payload: &str) {
    match serde_json::from_str::<Setting>(payload) {
        Ok(Setting { w: Some(id), a }) => caches.webhook_changed(id, &a),
        Ok(Setting { w: None, .. }) => caches.tokens_changed(),
        Err(_) => caches.clear(),
    }
}

/// The change a notification announces, as seen by `instance`; None for a payload this
/// binary does not understand (another version's), which is skipped.
fn change_of(payload: &str, instance: u64) -> Option<DeliveryChange> {
    let p: Payload = serde_json::from_str(payload).ok()?;
    Some(DeliveryChange {
        event_id: p.e,
        delivery_id: p.d,
        webhook_id: p.w,
        state: p.s,
        attempts: p.a,
        local: p.i == instance,
    })
}

/// This instance's listener; it stops when dropped.
pub struct Listener {
    feed: broadcast::Sender<StoreChange>,
    _stop: DropGuard,
}

impl Listener {
    /// Starts listening on a connection of `pool` (reconnecting whenever it is lost), for
    /// `instance`, keeping `caches` current.
    pub fn start(pool: PgPool, instance: u64, caches: Arc<Caches>) -> Listener {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let stop = CancellationToken::new();
        tokio::spawn(listen(pool, instance, caches, feed.clone(), stop.clone()));
        Listener {
            feed,
            _stop: stop.drop_guard(),
        }
    }

    /// A new follower of the feed (it receives the changes from now on).
    pub fn follow(&self) -> Changes {
        Changes::new(self.feed.subscribe())
    }
}

async fn connect(pool: &PgPool) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([CHANNEL, SETTINGS]).await?;
    Ok(listener)
}

async fn listen(
    pool: PgPool,
    instance: u64,
    caches: Arc<Caches>,
    feed: broadcast::Sender<StoreChange>,
    stop: CancellationToken,
) {
    let mut pause = MIN_PAUSE;
    loop {
        let connected = tokio::select! {
            connected = connect(&pool) => connected,
            _ = stop.cancelled() => return,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for delivery changes; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return,
                }
                pause = (pause * 2).min(MAX_PAUSE);
                continue;
            }
        };
        pause = MIN_PAUSE;
        // Whatever changed before this LISTEN is read from the store by the followers.
        caches.clear();
        let _ = feed.send(StoreChange::Resync);
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = stop.cancelled() => return,
            };
            match received {
                Ok(Some(notification)) if notification.channel() == SETTINGS => {
                    invalidate(&caches, notification.payload());
                }
                Ok(Some(notification)) => {
                    if let Some(change) = change_of(notification.payload(), instance) {
                        let _ = feed.send(StoreChange::Delivery(change));
                    }
                }
                // The connection was lost and is back (listening again): some may be missed.
                Ok(None) => {
                    caches.clear();
                    let _ = feed.send(StoreChange::Resync);
                }
                Err(e) => {
                    caches.clear();
                    tracing::debug!(error = %e, "lost the listener's connection; reconnecting");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_the_change_and_whether_it_is_ours_and_stays_small() {
        let big = u64::MAX >> 1;
        let delivery = Delivery {
            id: big,
            event_id: big,
            webhook_id: big,
            url: "http://x/".repeat(2000),
            state: DeliveryState::Retrying,
            attempts: u32::MAX,
            next_attempt_ms: 0,
            request_trigger: String::new(),
            request: None,
            render_error: None,
            last_status_code: Some(500),
            last_error: "e".repeat(10_000),
            account_id: "a".repeat(128),
            created_at_ms: 0,
            updated_at_ms: 0,
            operational: false,
            ordering: None,
        };
        let sent = payload(7, &delivery).unwrap();
        assert!(sent.len() < 200, "{sent}");
        let change = change_of(&sent, 7).unwrap();
        assert!(change.local);
        assert_eq!(change.state, DeliveryState::Retrying);
        assert_eq!(change.attempts, u32::MAX);
        assert!(!change_of(&sent, 8).unwrap().local);
        assert_eq!(change_of("{\"x\": 1}", 7), None);
    }

    #[test]
    fn a_settings_payload_names_a_webhook_or_the_tokens() {
        let sent = webhook_payload(42, "acme").unwrap();
        assert_eq!(
            serde_json::from_str::<Setting>(&sent).unwrap(),
            Setting {
                w: Some(42),
                a: "acme".into()
            }
        );
        assert_eq!(
            serde_json::from_str::<Setting>(TOKENS_PAYLOAD).unwrap(),
            Setting {
                w: None,
                a: String::new()
            }
        );
    }
}
