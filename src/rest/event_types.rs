//! The event-type catalog over REST, the proto3 JSON of the gRPC messages in snake_case:
//! `GET/POST /api/v1/event_types/`, `GET/PUT/PATCH/DELETE /api/v1/event_types/{name}/`
//! (`{name}` percent-encoded: `alert%20group%20created`). PUT and PATCH change the fields
//! sent (`"json_schema": null` removes the schema). Errors in OnCall's shape (`{"field":
//! ["message"]}`, `{"detail": ...}`); a taken name is `{"name": [...]}`. Depends on `core`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::oncall::{error_response, json_object};
use super::{Failure, authorization, rfc3339};
use crate::core::event_types::{EventTypePatch, NewEventType};
use crate::core::{Caller, Service};
use crate::error::{Error, FieldViolation};
use crate::model::EventType;

/// An event type (`json_schema` null when it has none).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventTypeJson {
    pub name: String,
    pub description: String,
    /// JSON Schema the data of its emits must meet; null = any data.
    #[schema(value_type = Option<Object>)]
    pub json_schema: Option<Value>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// The body of a create (name required) or an update (the fields sent change).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventTypeInput {
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub json_schema: Option<Value>,
}

/// A page of event types in name order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventTypeList {
    pub event_types: Vec<EventTypeJson>,
    /// Pass as `?page_token=` for the next page; empty on the last page.
    pub next_page_token: String,
}

fn to_json(event_type: EventType) -> EventTypeJson {
    EventTypeJson {
        name: event_type.name,
        description: event_type.description,
        json_schema: event_type.json_schema,
        created_at: rfc3339(event_type.created_at_ms),
        updated_at: rfc3339(event_type.updated_at_ms),
    }
}

/// OnCall's error shapes; a taken name and the per-account bound as field errors.
fn failure(error: Error) -> Failure {
    let violation = match &error {
        Error::Conflict(_) => {
            FieldViolation::new("name", "event type with this name already exists.")
        }
        Error::ResourceExhausted(why) => FieldViolation::new("non_field_errors", why.clone()),
        _ => return error_response(error).into(),
    };
    error_response(Error::InvalidArgument(vec![violation])).into()
}

async fn caller(service: &Service, headers: &HeaderMap) -> Result<Caller, Failure> {
    service
        .authenticate(authorization(headers))
        .await
        .map_err(failure)
}

/// The fields of a request body, with a violation per mistyped one.
struct Input {
    name: Option<String>,
    description: Option<String>,
    /// `Some(None)`: null was sent.
    json_schema: Option<Option<Value>>,
}

fn input(mut body: Map<String, Value>) -> Result<Input, Failure> {
    let mut violations = Vec::new();
    let mut string = |field: &str, value: Option<Value>| match value {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) => {
            violations.push(FieldViolation::new(field, "This field may not be null."));
            None
        }
        Some(_) => {
            violations.push(FieldViolation::new(field, "Not a valid string."));
            None
        }
    };
    let name = string("name", body.remove("name"));
    let description = string("description", body.remove("description"));
    let json_schema = body
        .remove("json_schema")
        .map(|v| Some(v).filter(|v| !v.is_null()));
    if !violations.is_empty() {
        return Err(error_response(Error::InvalidArgument(violations)).into());
    }
    Ok(Input {
        name,
        description,
        json_schema,
    })
}

/// List the account's event types in name order.
#[utoipa::path(get, path = "/api/v1/event_types/", tag = "event types",
    params(("page_size" = Option<i32>, Query, description = "Default 50, at most 1000"),
           ("page_token" = Option<String>, Query, description = "next_page_token of the previous page")),
    responses((status = 200, body = EventTypeList), (status = 400, body = super::oncall::FieldErrors),
              (status = 401, body = super::oncall::Detail), (status = 403, body = super::oncall::Detail)))]
pub async fn list(
    State(service): State<Service>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers).await?;
    let params = query.map(|Query(q)| q).unwrap_or_default();
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let page_size = match param("page_size").map(str::trim) {
        None | Some("") => 0,
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| failure(Error::invalid("page_size", "A valid integer is required.")))?,
    };
    let page = service
        .list_event_types(&caller, page_size, param("page_token").unwrap_or_default())
        .await
        .map_err(failure)?;
    let body = EventTypeList {
        event_types: page.event_types.into_iter().map(to_json).collect(),
        next_page_token: page.next_page_token,
    };
    Ok(Json(body).into_response())
}

/// Declare an event type.
#[utoipa::path(post, path = "/api/v1/event_types/", tag = "event types",
    request_body = EventTypeInput,
    responses((status = 201, body = EventTypeJson), (status = 400, body = super::oncall::FieldErrors),
              (status = 401, body = super::oncall::Detail), (status = 403, body = super::oncall::Detail)))]
pub async fn create(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers).await?;
    let input = input(json_object(body)?)?;
    let new = NewEventType {
        name: input.name.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        json_schema: input.json_schema.flatten(),
    };
    let created = service
        .create_event_type(&caller, new)
        .await
        .map_err(failure)?;
    Ok((StatusCode::CREATED, Json(to_json(created))).into_response())
}

/// Get an event type by name.
#[utoipa::path(get, path = "/api/v1/event_types/{name}/", tag = "event types",
    params(("name" = String, Path, description = "Event type name, percent-encoded")),
    responses((status = 200, body = EventTypeJson), (status = 404, body = super::oncall::Detail)))]
pub async fn get_one(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers).await?;
    let found = service
        .get_event_type(&caller, &name)
        .await
        .map_err(failure)?;
    Ok(Json(to_json(found)).into_response())
}

/// Change the fields sent (`"json_schema": null` removes the schema); PATCH is the same.
#[utoipa::path(put, path = "/api/v1/event_types/{name}/", tag = "event types",
    params(("name" = String, Path, description = "Event type name, percent-encoded")),
    request_body = EventTypeInput,
    responses((status = 200, body = EventTypeJson), (status = 400, body = super::oncall::FieldErrors),
              (status = 404, body = super::oncall::Detail)))]
pub async fn update(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers).await?;
    let input = input(json_object(body)?)?;
    if input.name.as_ref().is_some_and(|sent| *sent != name) {
        let message = "The name of an event type cannot be changed.";
        return Err(failure(Error::invalid("name", message)));
    }
    let patch = EventTypePatch {
        description: input.description,
        json_schema: input.json_schema,
    };
    let updated = service
        .update_event_type(&caller, &name, patch)
        .await
        .map_err(failure)?;
    Ok(Json(to_json(updated)).into_response())
}

/// Delete an event type; emits of its name are no longer validated.
#[utoipa::path(delete, path = "/api/v1/event_types/{name}/", tag = "event types",
    params(("name" = String, Path, description = "Event type name, percent-encoded")),
    responses((status = 204), (status = 404, body = super::oncall::Detail)))]
pub async fn delete(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers).await?;
    service
        .delete_event_type(&caller, &name)
        .await
        .map_err(failure)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The catalog's routes.
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/api/v1/event_types", get(list).post(create))
        .route(
            "/api/v1/event_types/{name}",
            get(get_one).put(update).patch(update).delete(delete),
        )
        .with_state(service)
}
