//! The operator API over REST, the JSON twins of the gRPC RPCs (snake_case field names,
//! RFC 3339 times, states by their short name such as `"FAILED"`, see `states`):
//! - `GET /api/v1/events/{id}/` -> `Event` with its deliveries
//! - `GET /api/v1/events/?event_type=&created_after=&created_before=&page_size=&page_token=`
//!   -> `{"events": [...], "next_page_token": "..."}` (newest first)
//! - `GET /api/v1/deliveries/{id}/` -> `Delivery`
//! - `GET /api/v1/deliveries/?webhook_id=&state=failed&state=retrying&created_after=
//!   &created_before=&page_size=&page_token=` -> `{"deliveries": [...], "next_page_token"}`
//! - `POST /api/v1/deliveries/{id}/cancel/` -> `Delivery` (409 when it is already final)
//!
//! Errors are OnCall's (`{"field": ["message"]}`, `{"detail": ...}`); an unknown query
//! parameter is a field error, not silently ignored. Depends on `core` only.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::oncall::{Detail, FieldErrors, error_response};
use super::{Failure, authorization, rfc3339};
use crate::core::operator::{DeliveryFilter, EventFilter, PageRequest};
use crate::core::{Caller, Service};
use crate::error::{Error, FieldViolation};
use crate::ids::{self, Kind};
use crate::model::{self, DeliveryState};
use crate::userinfo;

type Reply = Result<Response, Failure>;

/// A delivery as it stands now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Delivery id (the webhook-id header of its requests).
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    /// Target URL (credentials masked).
    pub url: String,
    /// QUEUED, RETRYING, SUCCEEDED, FAILED, SKIPPED or CANCELLED.
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (QUEUED and RETRYING only), RFC 3339.
    pub next_attempt_at: Option<String>,
    /// HTTP status of the last attempt, when a response was received.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed or the delivery was skipped ("" otherwise).
    pub last_error: String,
    /// RFC 3339.
    pub created_at: String,
    /// When its state last changed, RFC 3339.
    pub updated_at: String,
}

/// An accepted event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    /// The event data as delivered.
    #[schema(value_type = Object)]
    pub data: Value,
    /// RFC 3339.
    pub created_at: String,
    /// Every delivery of the event (GET of one event; empty in listings).
    pub deliveries: Vec<Delivery>,
}

/// A page of events, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    /// Pass as `page_token` for the next page; "" on the last page.
    pub next_page_token: String,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
    /// Pass as `page_token` for the next page; "" on the last page.
    pub next_page_token: String,
}

fn delivery_json(d: model::Delivery) -> Delivery {
    let pending = matches!(d.state, DeliveryState::Queued | DeliveryState::Retrying);
    Delivery {
        id: ids::format(Kind::Delivery, d.id),
        event_id: ids::format(Kind::Event, d.event_id),
        webhook_id: ids::format(Kind::Webhook, d.webhook_id),
        url: userinfo::mask(&d.url),
        state: d.state.as_str().to_string(),
        attempts: d.attempts,
        next_attempt_at: pending.then(|| rfc3339(d.next_attempt_ms)),
        last_status_code: d.last_status_code,
        last_error: d.last_error,
        created_at: rfc3339(d.created_at_ms),
        updated_at: rfc3339(d.updated_at_ms.max(d.created_at_ms)),
    }
}

fn event_json(e: model::Event, deliveries: Vec<model::Delivery>) -> Event {
    Event {
        id: ids::format(Kind::Event, e.id),
        event_type: e.event_type,
        data: e.data,
        created_at: rfc3339(e.created_at_ms),
        deliveries: deliveries.into_iter().map(delivery_json).collect(),
    }
}

/// Every operator route's shape: authenticate, run `call` as the caller, and answer its
/// result as `json`; an error in OnCall's shape.
async fn answer<T, J: Serialize>(
    service: &Service,
    headers: &HeaderMap,
    call: impl AsyncFnOnce(&Caller) -> Result<T, Error>,
    json: impl FnOnce(T) -> J,
) -> Reply {
    let caller = service
        .authenticate(authorization(headers))
        .await
        .map_err(error_response)?;
    let result = call(&caller).await.map_err(error_response)?;
    Ok(Json(json(result)).into_response())
}

/// The query string's parameters, checked against the ones a route knows.
struct Query {
    pairs: Vec<(String, String)>,
    violations: Vec<FieldViolation>,
}

impl Query {
    fn parse(raw: Option<String>, known: &[&str]) -> Query {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let violations = pairs
            .iter()
            .filter(|(name, _)| !known.contains(&name.as_str()))
            .map(|(name, _)| {
                FieldViolation::new(
                    name.clone(),
                    format!("Unknown query parameter; expected one of {known:?}."),
                )
            })
            .collect();
        Query { pairs, violations }
    }

    /// Every value of a parameter, in order.
    fn all<'q>(&'q self, name: &'q str) -> impl Iterator<Item = &'q str> + 'q {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The one value of a parameter (empty = absent); given twice is a violation.
    fn one(&mut self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .all(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        if values.len() > 1 {
            self.violations
                .push(FieldViolation::new(name, "Give this parameter once."));
        }
        values.into_iter().next()
    }

    /// An RFC 3339 time as ms since the epoch.
    fn time(&mut self, name: &str) -> Option<i64> {
        let text = self.one(name)?;
        match text.parse::<jiff::Timestamp>() {
            Ok(t) => Some(t.as_millisecond()),
            Err(_) => {
                self.violations.push(FieldViolation::new(
                    name,
                    "Datetime has wrong format. Use RFC 3339, e.g. 2024-01-02T03:04:05Z.",
                ));
                None
            }
        }
    }

    fn page(&mut self) -> PageRequest {
        let size = match self.one("page_size") {
            None => 0,
            Some(text) => text.trim().parse::<i64>().unwrap_or_else(|_| {
                self.violations.push(FieldViolation::new(
                    "page_size",
                    "A valid integer is required.",
                ));
                0
            }),
        };
        PageRequest {
            size,
            token: self.one("page_token").unwrap_or_default(),
        }
    }

    fn finish(self) -> Result<(), Error> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.violations))
        }
    }
}

/// One event with every delivery.
#[utoipa::path(get, path = "/api/v1/events/{id}/", tag = "operator",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = Event), (status = 401, body = Detail),
              (status = 404, body = Detail)))]
pub async fn get_event(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    answer(
        &service,
        &headers,
        async |caller| service.get_event(caller, &id).await,
        |view| event_json(view.event, view.deliveries),
    )
    .await
}

/// The account's events, newest first.
#[utoipa::path(get, path = "/api/v1/events/", tag = "operator",
    params(
        ("event_type" = Option<String>, Query, description = "Only events of this type"),
        ("created_after" = Option<String>, Query, description = "RFC 3339; created at or after"),
        ("created_before" = Option<String>, Query, description = "RFC 3339; created before"),
        ("page_size" = Option<i64>, Query, description = "Default 50, at most 1000"),
        ("page_token" = Option<String>, Query, description = "next_page_token of the previous page")),
    responses((status = 200, body = EventList), (status = 400, body = FieldErrors),
              (status = 401, body = Detail)))]
pub async fn list_events(
    State(service): State<Service>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply {
    let mut query = Query::parse(
        raw,
        &[
            "event_type",
            "created_after",
            "created_before",
            "page_size",
            "page_token",
        ],
    );
    let filter = EventFilter {
        event_type: query.one("event_type"),
        created_after_ms: query.time("created_after"),
        created_before_ms: query.time("created_before"),
    };
    let page = query.page();
    answer(
        &service,
        &headers,
        async |caller| {
            query.finish()?;
            service.list_events(caller, filter, page).await
        },
        |listing| EventList {
            events: listing
                .items
                .into_iter()
                .map(|e| event_json(e, Vec::new()))
                .collect(),
            next_page_token: listing.next_page_token,
        },
    )
    .await
}

/// One delivery.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}/", tag = "operator",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 200, body = Delivery), (status = 401, body = Detail),
              (status = 404, body = Detail)))]
pub async fn get_delivery(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    answer(
        &service,
        &headers,
        async |caller| service.get_delivery(caller, &id).await,
        delivery_json,
    )
    .await
}

/// The account's deliveries, newest first. `state` repeats for OR (`state=failed&state=retrying`);
/// "undelivered older than X": every state but succeeded, with `created_before=X`.
#[utoipa::path(get, path = "/api/v1/deliveries/", tag = "operator",
    params(
        ("webhook_id" = Option<String>, Query, description = "Only this webhook's deliveries"),
        ("state" = Option<Vec<String>>, Query, description = "queued, retrying, succeeded, failed, skipped, cancelled (repeat for OR)"),
        ("created_after" = Option<String>, Query, description = "RFC 3339; created at or after"),
        ("created_before" = Option<String>, Query, description = "RFC 3339; created before"),
        ("page_size" = Option<i64>, Query, description = "Default 50, at most 1000"),
        ("page_token" = Option<String>, Query, description = "next_page_token of the previous page")),
    responses((status = 200, body = DeliveryList), (status = 400, body = FieldErrors),
              (status = 401, body = Detail), (status = 404, body = Detail)))]
pub async fn list_deliveries(
    State(service): State<Service>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply {
    let mut query = Query::parse(
        raw,
        &[
            "webhook_id",
            "state",
            "created_after",
            "created_before",
            "page_size",
            "page_token",
        ],
    );
    let states = super::states::parse(query.all("state")).unwrap_or_else(|unknown| {
        query.violations.extend(unknown);
        Vec::new()
    });
    let filter = DeliveryFilter {
        webhook_id: query.one("webhook_id"),
        states,
        created_after_ms: query.time("created_after"),
        created_before_ms: query.time("created_before"),
    };
    let page = query.page();
    answer(
        &service,
        &headers,
        async |caller| {
            query.finish()?;
            service.list_deliveries(caller, filter, page).await
        },
        |listing| DeliveryList {
            deliveries: listing.items.into_iter().map(delivery_json).collect(),
            next_page_token: listing.next_page_token,
        },
    )
    .await
}

/// Cancel a queued or retrying delivery (no further attempts; final state CANCELLED).
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/cancel/", tag = "operator",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 200, body = Delivery), (status = 401, body = Detail),
              (status = 403, body = Detail), (status = 404, body = Detail),
              (status = 409, body = Detail, description = "The delivery is already final")))]
pub async fn cancel_delivery(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    answer(
        &service,
        &headers,
        async |caller| service.cancel_delivery(caller, &id).await,
        delivery_json,
    )
    .await
}

/// The operator routes (paths without the trailing slash: the gateway trims it).
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/events/{id}", get(get_event))
        .route("/api/v1/deliveries", get(list_deliveries))
        .route("/api/v1/deliveries/{id}", get(get_delivery))
        .route("/api/v1/deliveries/{id}/cancel", post(cancel_delivery))
        .with_state(service)
}
