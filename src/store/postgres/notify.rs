//! Delivery changes across instances: every write that changes a delivery's state sends
//! `pg_notify(CHANNEL, payload)` inside its own transaction (so the notification goes out
//! exactly when the change commits, and never for a change rolled back), and each instance
//! runs one listener (sqlx `PgListener`) that turns the notifications into the store's
//! change feed (`store::changes`).
//!
//! The payload is small and fixed in shape (ids, state, attempts and the sending instance:
//! well under PostgreSQL's 8000-byte limit); whoever needs more reads the delivery. A batch
//! of attempt records sends its changes together, a JSON array of them per notification
//! (`attempts`), not one per delivery: fewer messages for the database to queue and the
//! listeners to read. A
//! notification sent while the listener is disconnected is lost, so after every
//! (re)connection the feed says `Resync` and its followers read the current state instead.
//! Losing the connection is logged at debug only: the store's health monitor reports the
//! database being lost and back, once each.
//!
//! The same listener follows `SETTINGS`, the changes of webhooks and tokens, for the read
//! caches (`cache`): each notification drops what it names, each (re)connection empties them.
//! Each delivery change drops that delivery from the just-written ones (`fresh`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::cache::Caches;
use super::fresh::Written;
use super::to_json;
use crate::error::Result;
use crate::model::{Delivery, DeliveryState};
use crate::store::changes::{Changes, DeliveryChange, StoreChange};

/// The notification channel of delivery changes.
pub const CHANNEL: &str = "webhookd_deliveries";

/// The notification channel of webhook and token changes.
pub const SETTINGS: &str = "webhookd_settings";

/// Changes one notification of a batch carries at most (a JSON array of payloads: each is
/// under 200 bytes, and PostgreSQL refuses 8000 bytes and more).
pub const PER_PAYLOAD: i64 = 35;

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

/// One change or a batch of them, as sent.
#[derive(Deserialize)]
#[serde(untagged)]
enum Sent {
    One(Payload),
    Many(Vec<Payload>),
}

/// The changes a notification announces, as seen by `instance`; none for a payload this
/// binary does not understand (another version's), which is skipped.
fn changes_of(payload: &str, instance: u64) -> Vec<DeliveryChange> {
    let sent = match serde_json::from_str(payload) {
        Ok(Sent::One(p)) => vec![p],
        Ok(Sent::Many(ps)) => ps,
        Err(_) => Vec::new(),
    };
    sent.into_iter()
        .map(|p| DeliveryChange {
            event_id: p.e,
            delivery_id: p.d,
            webhook_id: p.w,
            state: p.s,
            attempts: p.a,
            local: p.i == instance,
        })
        .collect()
}

/// This instance's listener; it stops when dropped.
pub struct Listener {
    feed: broadcast::Sender<StoreChange>,
    _stop: DropGuard,
}

impl Listener {
    /// Starts listening on a connection of `pool` (reconnecting whenever it is lost), for
    /// `instance`, keeping `caches` and `written` current.
    pub fn start(
        pool: PgPool,
        instance: u64,
        caches: Arc<Caches>,
        written: Arc<Written>,
    ) -> Listener {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let stop = CancellationToken::new();
        let known = Known { caches, written };
        tokio::spawn(listen(pool, instance, known, feed.clone(), stop.clone()));
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

/// What this instance keeps of the database, which the notifications keep current.
struct Known {
    caches: Arc<Caches>,
    written: Arc<Written>,
}

impl Known {
    /// Notifications may have been missed.
    fn clear(&self) {
        self.caches.clear();
        self.written.clear();
    }
}

async fn listen(
    pool: PgPool,
    instance: u64,
    known: Known,
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
        known.clear();
        let _ = feed.send(StoreChange::Resync);
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = stop.cancelled() => return,
            };
            match received {
                Ok(Some(notification)) if notification.channel() == SETTINGS => {
                    invalidate(&known.caches, notification.payload());
                }
                Ok(Some(notification)) => {
                    for change in changes_of(notification.payload(), instance) {
                        known.written.forget(change.delivery_id);
                        let _ = feed.send(StoreChange::Delivery(change));
                    }
                }
                // The connection was lost and is back (listening again): some may be missed.
                Ok(None) => {
                    known.clear();
                    let _ = feed.send(StoreChange::Resync);
                }
                Err(e) => {
                    known.clear();
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

    fn delivery(id: u64) -> Delivery {
        Delivery {
            state: DeliveryState::Succeeded,
            attempts: 1,
            last_status_code: Some(200),
            ..Delivery::queued(id, id, id, "http://x/".into(), "acme".into(), 0)
        }
    }

    #[test]
    fn a_payload_names_the_change_and_whether_it_is_ours_and_stays_small() {
        let big = u64::MAX >> 1;
        let delivery = Delivery {
            url: "http://x/".repeat(2000),
            state: DeliveryState::Retrying,
            attempts: u32::MAX,
            last_status_code: Some(500),
            last_error: "e".repeat(10_000),
            account_id: "a".repeat(128),
            ..delivery(big)
        };
        let sent = payload(7, &delivery).unwrap();
        assert!(sent.len() < 200, "{sent}");
        let change = &changes_of(&sent, 7)[0];
        assert!(change.local);
        assert_eq!(change.state, DeliveryState::Retrying);
        assert_eq!(change.attempts, u32::MAX);
        assert!(!changes_of(&sent, 8)[0].local);
        assert_eq!(changes_of("{\"x\": 1}", 7), vec![]);
    }

    #[test]
    fn a_batch_of_changes_is_read_in_order() {
        let big = u64::MAX >> 1;
        let sent: Vec<String> = (0..PER_PAYLOAD as u64)
            .map(|id| payload(7, &delivery(big - id)).unwrap())
            .collect();
        let batch = format!("[{}]", sent.join(","));
        // As many as one notification takes (`attempts`), of the longest ids: under 8000 bytes.
        assert!(batch.len() < 8000, "{}", batch.len());
        let ids: Vec<u64> = changes_of(&batch, 8)
            .iter()
            .map(|c| c.delivery_id)
            .collect();
        assert_eq!(
            ids,
            (0..PER_PAYLOAD as u64)
                .map(|id| big - id)
                .collect::<Vec<_>>()
        );
        assert!(changes_of(&batch, 8).iter().all(|c| !c.local));
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
