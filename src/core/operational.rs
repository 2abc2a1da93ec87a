//! Operational events: webhookd reports its own trouble into the account as events of the
//! types in `OPERATIONAL_EVENT_TYPES` (`delivery.exhausted` when a delivery ends FAILED,
//! `webhook.disabled` when the server disables a webhook, `endpoint.breaker_opened` and
//! `endpoint.breaker_closed` when an attempt opens or closes a webhook's circuit breaker,
//! once per transition across instances). They are delivered like any event
//! to the account's webhooks whose trigger types name them (a webhook with no trigger types
//! does not receive them), never to the webhook they are about, and their own deliveries
//! never produce operational events (they are marked `operational`), so nothing loops.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::events::EmitRequest;
use super::{Caller, Page, Service};
use crate::error::Result;
use crate::ids::{self, Kind};
use crate::model::{BreakerTransition, Delivery, Webhook};
use crate::render::matcher;
use crate::userinfo;

/// A delivery ended FAILED (not CANCELLED or SKIPPED).
pub const DELIVERY_EXHAUSTED: &str = "delivery.exhausted";
/// The server disabled a webhook (its endpoint answered 410 Gone, or failed too long).
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
/// A webhook's circuit breaker opened.
pub const BREAKER_OPENED: &str = "endpoint.breaker_opened";
/// A webhook's circuit breaker closed again.
pub const BREAKER_CLOSED: &str = "endpoint.breaker_closed";

/// Every operational event type (valid trigger types of any webhook).
pub const OPERATIONAL_EVENT_TYPES: [&str; 4] = [
    DELIVERY_EXHAUSTED,
    WEBHOOK_DISABLED,
    BREAKER_OPENED,
    BREAKER_CLOSED,
];

/// `{id, name, url}` of a webhook, as operational events name it.
fn webhook_summary(webhook: &Webhook) -> Value {
    json!({
        "id": ids::format(Kind::Webhook, webhook.id),
        "name": webhook.name,
        "url": userinfo::mask(&webhook.url),
    })
}

/// A time as operational events carry it: RFC 3339 in UTC.
fn time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_micros(at).to_string()
}

/// A breaker transition's type and its `breaker` object.
fn breaker_summary(transition: &BreakerTransition) -> (&'static str, Value) {
    match *transition {
        BreakerTransition::Opened {
            consecutive_failures,
            opened_at_ms,
            open_until_ms,
        } => (
            BREAKER_OPENED,
            json!({
                "state": "OPEN",
                "consecutive_failures": consecutive_failures,
                "opened_at": time(opened_at_ms),
                "open_until": time(open_until_ms),
            }),
        ),
        BreakerTransition::Closed {
            opened_at_ms,
            closed_at_ms,
        } => (
            BREAKER_CLOSED,
            json!({
                "state": "CLOSED",
                "opened_at": time(opened_at_ms),
                "closed_at": time(closed_at_ms),
            }),
        ),
    }
}

/// A delivery as operational events carry it (the operator API's fields).
fn delivery_summary(d: &Delivery) -> Value {
    json!({
        "id": ids::format(Kind::Delivery, d.id),
        "event_id": ids::format(Kind::Event, d.event_id),
        "webhook_id": ids::format(Kind::Webhook, d.webhook_id),
        "url": userinfo::mask(&d.url),
        "state": d.state.as_str(),
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": time(d.created_at_ms),
        "updated_at": time(d.updated_at_ms.max(d.created_at_ms)),
    })
}

impl Service {
    /// Reports a delivery that ended FAILED as `delivery.exhausted` (nothing for a delivery
    /// of an operational event).
    pub(crate) async fn delivery_exhausted(&self, delivery: Delivery) -> Result<()> {
        if delivery.operational {
            return Ok(());
        }
        let Some(webhook) = self.store.get_webhook(delivery.webhook_id).await? else {
            return Ok(());
        };
        let event_type = match self.store.get_event(delivery.event_id).await? {
            Some(event) => event.event_type,
            None => String::new(),
        };
        let data = json!({
            "event": {"type": event_type},
            "delivery": delivery_summary(&delivery),
            "webhook": webhook_summary(&webhook),
        });
        self.emit_operational(&webhook, DELIVERY_EXHAUSTED, data)
            .await
    }

    /// Reports a webhook the server disabled, with why.
    pub(crate) async fn webhook_disabled(&self, webhook: &Webhook) -> Result<()> {
        let data = json!({
            "event": {"type": WEBHOOK_DISABLED},
            "webhook": webhook_summary(webhook),
            "reason": webhook.disabled_reason,
        });
        self.emit_operational(webhook, WEBHOOK_DISABLED, data).await
    }

    /// Reports that an attempt opened or closed a webhook's circuit breaker, as
    /// `endpoint.breaker_opened` / `endpoint.breaker_closed` with data `{event: {type},
    /// webhook: {id, name, url}, breaker: {state, consecutive_failures, opened_at,
    /// open_until} | {state, opened_at, closed_at}}`. Nothing for a deleted webhook.
    pub(crate) async fn breaker_changed(
        &self,
        webhook_id: u64,
        transition: BreakerTransition,
    ) -> Result<()> {
        let Some(webhook) = self.store.get_webhook(webhook_id).await? else {
            return Ok(());
        };
        let (event_type, breaker) = breaker_summary(&transition);
        let data = json!({
            "event": {"type": event_type},
            "webhook": webhook_summary(&webhook),
            "breaker": breaker,
        });
        self.emit_operational(&webhook, event_type, data).await
    }

    /// Emits an operational event about `about` into its account, to the webhooks whose
    /// trigger types name `event_type` (not `about` itself).
    async fn emit_operational(&self, about: &Webhook, event_type: &str, data: Value) -> Result<()> {
        let caller = Caller {
            account_id: about.account_id.clone(),
            scopes: Vec::new(),
        };
        let subscribers: Vec<Webhook> = self
            .store
            .list_webhooks(&about.account_id, Page::ALL.stored())
            .await?
            .into_iter()
            .filter(|w| {
                w.id != about.id
                    && !w.trigger_types.is_empty()
                    && matcher::trigger_matches(w, event_type)
            })
            .collect();
        if subscribers.is_empty() {
            return Ok(());
        }
        let request = EmitRequest {
            event_type: event_type.to_string(),
            data,
            idempotency_key: None,
            traceparent: None,
            ordering_key: None,
        };
        let subscribers = subscribers.into_iter().map(Cow::Owned);
        let mut prepared = self.prepare(&caller, request, subscribers).await?;
        prepared.event.operational = true;
        for delivery in &mut prepared.deliveries {
            delivery.operational = true;
        }
        self.write(&caller, std::slice::from_ref(&prepared)).await?;
        self.accepted(std::iter::once(&prepared));
        Ok(())
    }
}
