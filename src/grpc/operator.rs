//! The operator RPCs of `WebhookService` (GetEvent, ListEvents, GetDelivery,
//! ListDeliveries, CancelDelivery): requests into `core::operator` filters, results into
//! `Event` and `Delivery` messages. `webhooks.rs` routes the RPCs here.

use prost_types::Timestamp;

use super::convert::{json_to_struct, millis, state_to_pb, timestamp};
use super::pb;
use crate::core::operator::{DeliveryFilter, EventFilter, EventView, PageRequest};
use crate::error::{Error, FieldViolation, Result};
use crate::ids::{self, Kind};
use crate::model::{Delivery, DeliveryState, Event};
use crate::userinfo;

/// A delivery as the `Delivery` message.
pub fn delivery_to_pb(d: Delivery) -> pb::Delivery {
    let pending = matches!(d.state, DeliveryState::Queued | DeliveryState::Retrying);
    pb::Delivery {
        id: ids::format(Kind::Delivery, d.id),
        event_id: ids::format(Kind::Event, d.event_id),
        webhook_id: ids::format(Kind::Webhook, d.webhook_id),
        url: userinfo::mask(&d.url),
        state: state_to_pb(d.state) as i32,
        attempts: i32::try_from(d.attempts).unwrap_or(i32::MAX),
        next_attempt_at: pending.then(|| timestamp(d.next_attempt_ms)),
        last_status_code: d.last_status_code.map(i32::from),
        last_error: d.last_error,
        created_at: Some(timestamp(d.created_at_ms)),
        updated_at: Some(timestamp(d.updated_at_ms.max(d.created_at_ms))),
    }
}

/// An event (with the deliveries given) as the `Event` message.
pub fn event_to_pb(event: Event, deliveries: Vec<Delivery>) -> pb::Event {
    pb::Event {
        id: ids::format(Kind::Event, event.id),
        event_type: event.event_type,
        data: Some(json_to_struct(event.data)),
        created_at: Some(timestamp(event.created_at_ms)),
        deliveries: deliveries.into_iter().map(delivery_to_pb).collect(),
    }
}

/// GetEvent's answer.
pub fn event_view_to_pb(view: EventView) -> pb::Event {
    event_to_pb(view.event, view.deliveries)
}

/// An optional request time as ms, collecting a violation instead of failing at once.
fn time(ts: Option<&Timestamp>, field: &str, violations: &mut Vec<FieldViolation>) -> Option<i64> {
    match ts.map(|ts| millis(ts, field)) {
        Some(Ok(ms)) => Some(ms),
        Some(Err(Error::InvalidArgument(found))) => {
            violations.extend(found);
            None
        }
        _ => None,
    }
}

/// ListEvents' filters and page.
pub fn events_query(r: pb::ListEventsRequest) -> Result<(EventFilter, PageRequest)> {
    let mut violations = Vec::new();
    let created_after_ms = time(r.created_after.as_ref(), "created_after", &mut violations);
    let created_before_ms = time(r.created_before.as_ref(), "created_before", &mut violations);
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let filter = EventFilter {
        event_type: Some(r.event_type),
        created_after_ms,
        created_before_ms,
    };
    let page = PageRequest {
        size: i64::from(r.page_size),
        token: r.page_token,
    };
    Ok((filter, page))
}

/// ListDeliveries' filters and page; an unknown or unspecified state is a violation of
/// `states`.
pub fn deliveries_query(r: pb::ListDeliveriesRequest) -> Result<(DeliveryFilter, PageRequest)> {
    let mut violations = Vec::new();
    let created_after_ms = time(r.created_after.as_ref(), "created_after", &mut violations);
    let created_before_ms = time(r.created_before.as_ref(), "created_before", &mut violations);
    let mut states = Vec::new();
    for (i, value) in r.states.iter().enumerate() {
        match pb::DeliveryState::try_from(*value)
            .ok()
            .and_then(state_from_pb)
        {
            Some(state) => states.push(state),
            None => violations.push(FieldViolation::new(
                format!("states[{i}]"),
                format!(
                    "{value} is not a delivery state; expected one of QUEUED, RETRYING, \
                     SUCCEEDED, FAILED, SKIPPED, CANCELLED"
                ),
            )),
        }
    }
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let filter = DeliveryFilter {
        webhook_id: Some(r.webhook_id).filter(|w| !w.is_empty()),
        states,
        created_after_ms,
        created_before_ms,
    };
    let page = PageRequest {
        size: i64::from(r.page_size),
        token: r.page_token,
    };
    Ok((filter, page))
}

/// The state a `states` filter names (None for UNSPECIFIED, ACCEPTED and RESYNC, which no
/// delivery is in).
pub(crate) fn state_from_pb(state: pb::DeliveryState) -> Option<DeliveryState> {
    match state {
        pb::DeliveryState::Queued => Some(DeliveryState::Queued),
        pb::DeliveryState::Retrying => Some(DeliveryState::Retrying),
        pb::DeliveryState::Succeeded => Some(DeliveryState::Succeeded),
        pb::DeliveryState::Failed => Some(DeliveryState::Failed),
        pb::DeliveryState::Skipped => Some(DeliveryState::Skipped),
        pb::DeliveryState::Cancelled => Some(DeliveryState::Cancelled),
        pb::DeliveryState::Unspecified
        | pb::DeliveryState::Accepted
        | pb::DeliveryState::Resync => None,
    }
}
