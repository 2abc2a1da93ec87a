//! `POST /api/v1/events/`: the body is OnCall's `event_data` object, `event.type` names the
//! trigger, an optional `Idempotency-Key` header makes a retried POST return the first
//! event. Answers 202 `{"id", "deliveries": [{id, webhook_id, url, state}]}` once the
//! core says the event is durable, with each delivery's initial state; delivery itself
//! goes on in the background. Errors are OnCall's (`oncall::error_response`).
//! Depends on `core` only.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::oncall::{error_response, json_object};
use super::{Failure, authorization};
use crate::core::Service;
use crate::core::events::EmitRequest;
use crate::error::Error;
use crate::ids::{self, Kind};
use crate::model::DeliveryState;
use crate::userinfo;

/// 202 of `POST /api/v1/events/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventAccepted {
    /// The event's id (the first event's for a repeated Idempotency-Key).
    pub id: String,
    /// One per matched webhook target, with its initial state.
    pub deliveries: Vec<DeliverySummary>,
}

/// A delivery of an accepted event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliverySummary {
    pub id: String,
    pub webhook_id: String,
    pub url: String,
    /// QUEUED, RETRYING, SUCCEEDED, FAILED or SKIPPED.
    pub state: String,
}

/// The state name of a delivery, as gRPC spells it.
fn state_name(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Queued => "QUEUED",
        DeliveryState::Retrying => "RETRYING",
        DeliveryState::Succeeded => "SUCCEEDED",
        DeliveryState::Failed => "FAILED",
        DeliveryState::Skipped => "SKIPPED",
    }
}

/// Emit an event: the body is OnCall's event_data, `event.type` names the trigger.
#[utoipa::path(post, path = "/api/v1/events/", tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats return the first event")),
    request_body = Object,
    responses((status = 202, body = EventAccepted),
              (status = 400, body = super::oncall::FieldErrors),
              (status = 401, body = super::oncall::Detail),
              (status = 403, body = super::oncall::Detail)))]
pub async fn emit(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let caller = service
        .authenticate(authorization(&headers))
        .map_err(error_response)?;
    let data = json_object(body)?;
    let event_type = match data.get("event") {
        None => Err("This field is required."),
        Some(Value::Object(event)) => match event.get("type") {
            Some(Value::String(t)) if !t.trim().is_empty() => Ok(t.clone()),
            _ => Err("event.type is required: a string naming the event type, e.g. \"resolve\"."),
        },
        Some(_) => Err("Must be an object with a \"type\"."),
    }
    .map_err(|m| error_response(Error::invalid("event", m)))?;
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut stream = service
        .emit(
            &caller,
            EmitRequest {
                event_type,
                data: Value::Object(data),
                idempotency_key,
            },
        )
        .await
        .map_err(error_response)?;
    let mut deliveries = Vec::new();
    for _ in 0..stream.delivery_ids().len() {
        let Some(update) = stream.next().await else {
            break;
        };
        deliveries.push(DeliverySummary {
            id: ids::format(Kind::Delivery, update.delivery_id),
            webhook_id: ids::format(Kind::Webhook, update.webhook_id),
            url: userinfo::mask(&update.url),
            state: state_name(update.state).to_string(),
        });
    }
    let body = EventAccepted {
        id: ids::format(Kind::Event, stream.event_id()),
        deliveries,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The events route.
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/api/v1/events", post(emit))
        .with_state(service)
}
