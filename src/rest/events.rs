//! `POST /api/v1/events/`: the body is OnCall's `event_data` object, `event.type` names the
//! trigger, an optional `Idempotency-Key` header makes a retried POST return the first
//! event, an optional `Ordering-Key` header orders the event's deliveries after earlier ones
//! of the same key. Answers 202 `{"id", "deliveries": [{id, webhook_id, url, state}]}` once the
//! core says the event is durable, with each delivery's initial state; delivery itself
//! goes on in the background. `POST /api/v1/events/batch/` takes
//! `{"events": [{"data": event_data, "idempotency_key"?, "ordering_key"?}, ...]}` (up to 1,000, one flush) and
//! answers 202 `{"results": [{"id", "duplicate", "deliveries"}, ...]}` in request order, or
//! 429 with Retry-After when too many batch bytes are already waiting (`core::intake`).
//! Errors are OnCall's (`oncall::error_response`). Depends on `core` only.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::BytesMut;
use futures::StreamExt;
use http_body_util::LengthLimitError;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::oncall::{error_response, json_object};
use super::{Failure, authorization, detail};
use crate::core::Service;
use crate::core::events::EmitRequest;
use crate::core::intake::Arrival;
use crate::error::Error;
use crate::error::FieldViolation;
use crate::ids::{self, Kind};
use crate::model::DeliveryUpdate;
use crate::telemetry::TRACEPARENT;
use crate::userinfo;

/// 202 of `POST /api/v1/events/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventAccepted {
    /// The event's id (the first event's for a repeated Idempotency-Key).
    pub id: String,
    /// One per matched webhook target, with its initial state.
    pub deliveries: Vec<DeliverySummary>,
}

/// 202 of `POST /api/v1/events/batch/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAccepted {
    /// One per event, in request order.
    pub results: Vec<BatchResult>,
}

/// One event of an accepted batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// The event's id (the first event's when its idempotency key was used before).
    pub id: String,
    /// The idempotency key named an earlier event: nothing new was queued.
    pub duplicate: bool,
    /// One per matched webhook target, with its state (initial, or current for a duplicate).
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

fn summary(update: &DeliveryUpdate) -> DeliverySummary {
    DeliverySummary {
        id: ids::format(Kind::Delivery, update.delivery_id),
        webhook_id: ids::format(Kind::Webhook, update.webhook_id),
        url: userinfo::mask(&update.url),
        state: update.state.as_str().to_string(),
    }
}

/// The trigger an event_data object names in `event.type`, or why it names none.
/// The caller's W3C `traceparent` header, continued by the emit.
fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

fn event_type_of(data: &Map<String, Value>) -> Result<String, &'static str> {
    match data.get("event") {
        None => Err("This field is required."),
        Some(Value::Object(event)) => match event.get("type") {
            Some(Value::String(t)) if !t.trim().is_empty() => Ok(t.clone()),
            _ => Err("event.type is required: a string naming the event type, e.g. \"resolve\"."),
        },
        Some(_) => Err("Must be an object with a \"type\"."),
    }
}

/// Emit an event: the body is OnCall's event_data, `event.type` names the trigger.
#[utoipa::path(post, path = "/api/v1/events/", tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats return the first event"),
           ("Ordering-Key" = Option<String>, Header, description = "One webhook's deliveries with the same key (and URL) are attempted in emit order")),
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
        .await
        .map_err(error_response)?;
    let data = json_object(body)?;
    let event_type =
        event_type_of(&data).map_err(|m| error_response(Error::invalid("event", m)))?;
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let traceparent = traceparent(&headers);
    let ordering_key = headers
        .get("ordering-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|k| !k.is_empty());
    let emitted = service
        .emit_accepted(
            &caller,
            EmitRequest {
                event_type,
                data: Value::Object(data),
                idempotency_key,
                traceparent,
                ordering_key,
            },
        )
        .await
        .map_err(error_response)?;
    let body = EventAccepted {
        id: ids::format(Kind::Event, emitted.event_id),
        deliveries: emitted.deliveries.iter().map(summary).collect(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Emit up to 1,000 events at once, made durable together.
#[utoipa::path(post, path = "/api/v1/events/batch/", tag = "events",
    request_body(content = Object, description = "{\"events\": [{\"data\": event_data, \"idempotency_key\": \"optional\", \"ordering_key\": \"optional\"}]}"),
    responses((status = 202, body = BatchAccepted),
              (status = 400, body = super::oncall::FieldErrors),
              (status = 401, body = super::oncall::Detail),
              (status = 403, body = super::oncall::Detail)))]
pub async fn emit_batch(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let caller = service
        .authenticate(authorization(&headers))
        .await
        .map_err(error_response)?;
    // The body is read counting its bytes against the bound on batch bytes waiting, and
    // parsed only once the core grants it its memory (both held until the answer is sent).
    let mut arrival = service.batch_arrival();
    let body = read_counted(body, &mut arrival).await?;
    let grant = service.admit_batch(arrival).await;
    let mut body = json_object(Ok(body))?;
    let Some(Value::Array(items)) = body.remove("events") else {
        let violation =
            FieldViolation::new("events", "A list of {\"data\": ...} objects is required.");
        return Err(error_response(Error::InvalidArgument(vec![violation])).into());
    };
    let traceparent = traceparent(&headers);
    let mut requests = Vec::with_capacity(items.len());
    let mut violations = Vec::new();
    // Each item is taken apart, not copied: the batch is held once.
    for (i, item) in items.into_iter().enumerate() {
        let at = |field: &str, message: &str| {
            FieldViolation::new(format!("events[{i}].{field}"), message)
        };
        let mut item = match item {
            Value::Object(item) => item,
            _ => Map::new(),
        };
        let Some(Value::Object(data)) = item.remove("data") else {
            violations.push(at("data", "Must be an object (OnCall's event_data)."));
            continue;
        };
        let mut key = |field: &str| match item.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => Some(key).filter(|k| !k.is_empty()),
            Some(_) => {
                violations.push(at(field, "Must be a string."));
                None
            }
        };
        let idempotency_key = key("idempotency_key");
        let ordering_key = key("ordering_key");
        match event_type_of(&data) {
            Ok(event_type) => requests.push(EmitRequest {
                event_type,
                data: Value::Object(data),
                idempotency_key,
                traceparent: traceparent.clone(),
                ordering_key,
            }),
            Err(message) => violations.push(at("data.event", message)),
        }
    }
    if !violations.is_empty() {
        return Err(error_response(Error::InvalidArgument(violations)).into());
    }
    let emitted = service
        .emit_batch(&caller, requests)
        .await
        .map_err(error_response)?;
    let results = emitted
        .results
        .into_iter()
        .map(|e| BatchResult {
            id: ids::format(Kind::Event, e.event_id),
            duplicate: e.duplicate,
            deliveries: e.deliveries.iter().map(summary).collect(),
        })
        .collect();
    let answer = (StatusCode::ACCEPTED, Json(BatchAccepted { results })).into_response();
    let held = (grant, emitted.held);
    Ok(answer.map(|answer| {
        Body::new(Holding {
            answer,
            _held: held,
        })
    }))
}

/// Reads a batch call's body whole, counting its bytes in `arrival` as they come: a body
/// beyond the batch limit is 413, one the waiting bound cannot hold 429 (Retry-After).
async fn read_counted(body: Body, arrival: &mut Arrival) -> Result<Bytes, Failure> {
    let mut chunks = body.into_data_stream();
    let mut read = BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<LengthLimitError>());
            if too_large {
                detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large.")
            } else {
                detail(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to read the request body: {e}"),
                )
            }
        })?;
        arrival.read(chunk.len()).map_err(error_response)?;
        read.extend_from_slice(&chunk);
    }
    Ok(read.freeze())
}

/// An answer's body that holds the call's shares of the emit memory until it is sent or
/// dropped, and is the answer's body in every other respect.
struct Holding<T> {
    answer: Body,
    _held: T,
}

impl<T: Unpin> HttpBody for Holding<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().answer).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.answer.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.answer.size_hint()
    }
}

/// The single-event route.
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/api/v1/events", post(emit))
        .with_state(service)
}

/// The batch route (its body limit is the batch's, set by the caller).
pub fn batch_routes(service: Service) -> Router {
    Router::new()
        .route("/api/v1/events/batch", post(emit_batch))
        .with_state(service)
}
