//! `GET /api/v1/deliveries/stream`: WatchDeliveries as Server-Sent Events (axum's `Sse`).
//! One event per change: `id:` its cursor, `data:` the `DeliveryStatus` JSON in snake_case
//! (as the other REST routes: the state by its short name such as `FAILED`, times RFC 3339),
//! and a RESYNC as an event named `resync` (same JSON, state `RESYNC`, the reason in `error`), so a
//! browser's `EventSource` reconnects from the right cursor by itself. Resumes from the
//! `Last-Event-ID` header (what `EventSource` sends when it reconnects) or else `?cursor=`;
//! filters `?webhook_id=` and `?state=` (repeated or comma-separated, OR; `failed` or `FAILED`). Keep-alive
//! comments every 15 s. Auth and errors as the OnCall routes (`{"field": ["msg"]}`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt as _;
use serde::Serialize;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::oncall::error_response;
use super::{Failure, authorization, rfc3339};
use crate::core::Service;
use crate::core::watch::{self, WatchRequest, Watched};
use crate::error::{Error, FieldViolation};
use crate::ids::{self, Kind};

/// The `data:` of one event: a `DeliveryStatus` in proto3 JSON with snake_case names.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusJson {
    /// Position of this change (also the event's `id:`); resume after it with it.
    pub cursor: String,
    pub event_id: String,
    pub webhook_id: String,
    pub delivery_id: String,
    /// `QUEUED`, `RETRYING`, `SUCCEEDED`, `FAILED`, `SKIPPED`, `CANCELLED`, or `RESYNC`
    /// (event `resync`: continue from `cursor`; `error` says why).
    pub state: String,
    /// Attempt this change reports (0 for QUEUED and SKIPPED).
    pub attempt: u32,
    /// HTTP status of the attempt, when a response was received.
    pub status_code: Option<u16>,
    /// Why the attempt failed or the delivery was skipped (RESYNC: why changes were not sent).
    pub error: String,
    /// When the next attempt is due (RETRYING only), RFC 3339.
    pub next_attempt_at: Option<String>,
    /// Target URL (credentials masked).
    pub url: String,
}

/// One SSE event of a live tail message.
fn event_of(message: Watched) -> Event {
    let (name, json) = match message {
        Watched::Change { cursor, update } => (
            None,
            StatusJson {
                cursor,
                event_id: ids::format(Kind::Event, update.event_id),
                webhook_id: ids::format(Kind::Webhook, update.webhook_id),
                delivery_id: ids::format(Kind::Delivery, update.delivery_id),
                state: update.state.as_str().into(),
                attempt: update.attempt,
                status_code: update.status_code,
                error: update.error,
                next_attempt_at: update.next_attempt_ms.map(rfc3339),
                url: update.url,
            },
        ),
        Watched::Resync { cursor, reason } => (
            Some("resync"),
            StatusJson {
                cursor,
                event_id: String::new(),
                webhook_id: String::new(),
                delivery_id: String::new(),
                state: "RESYNC".into(),
                attempt: 0,
                status_code: None,
                error: reason,
                next_attempt_at: None,
                url: String::new(),
            },
        ),
    };
    let data = serde_json::to_string(&json).unwrap_or_else(|_| "{}".into());
    let event = Event::default().id(json.cursor).data(data);
    match name {
        Some(name) => event.event(name),
        None => event,
    }
}

/// The core's request from the query and the `Last-Event-ID` header.
fn watch_request(
    headers: &HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<WatchRequest, Error> {
    let params = query
        .map_err(|e| Error::invalid("non_field_errors", e.body_text()))?
        .0;
    let mut request = WatchRequest {
        cursor_field: "cursor",
        ..WatchRequest::default()
    };
    let mut violations = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "cursor" => request.cursor = Some(value),
            "webhook_id" => request.webhook_id = Some(value),
            "state" => match super::states::parse([value.as_str()]) {
                Ok(states) => request.states.extend(states),
                Err(unknown) => violations.extend(unknown),
            },
            _ => {}
        }
    }
    // An EventSource reconnecting sends the last id it saw; it wins over the URL's cursor.
    if let Some(last) = headers.get("last-event-id") {
        match last.to_str() {
            Ok(last) if !last.is_empty() => {
                request.cursor = Some(last.to_string());
                request.cursor_field = "Last-Event-ID";
            }
            Ok(_) => {}
            Err(_) => violations.push(FieldViolation::new(
                "Last-Event-ID",
                "not a cursor from this stream",
            )),
        }
    }
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    Ok(request)
}

/// Live tail of the account's deliveries as Server-Sent Events.
#[utoipa::path(get, path = "/api/v1/deliveries/stream", tag = "deliveries",
    params(("cursor" = Option<String>, Query, description = "Resume after this cursor (an event's id); default: from now"),
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this cursor; wins over ?cursor="),
           ("webhook_id" = Option<String>, Query, description = "Only this webhook's deliveries"),
           ("state" = Option<Vec<String>>, Query, description = "Only changes to these states (repeat for OR)")),
    responses((status = 200, content_type = "text/event-stream", body = StatusJson,
               description = "One event per change: `id:` = cursor, `data:` = StatusJson; event `resync` = continue from its cursor"),
              (status = 400, body = super::oncall::FieldErrors),
              (status = 401, body = super::oncall::Detail),
              (status = 403, body = super::oncall::Detail),
              (status = 404, body = super::oncall::Detail)))]
pub async fn stream(
    State((service, shutdown)): State<(Service, CancellationToken)>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Failure> {
    let caller = service
        .authenticate(authorization(&headers))
        .await
        .map_err(error_response)?;
    let request = watch_request(&headers, query).map_err(error_response)?;
    let watcher = service
        .watch(&caller, request)
        .await
        .map_err(error_response)?;
    let messages = ReceiverStream::new(watch::pump(watcher, shutdown));
    // A store error ends the stream (the client reconnects from its last id).
    let events = messages
        .take_while(|m| std::future::ready(m.is_ok()))
        .filter_map(|m| std::future::ready(m.ok().map(|m| Ok::<_, Infallible>(event_of(m)))));
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(15));
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// The stream's route; open streams end at `shutdown`.
pub fn routes(service: Service, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/api/v1/deliveries/stream", get(stream))
        .with_state((service, shutdown))
}
