//! Grafana OnCall's outgoing webhooks API, field for field, onto `core::Service`:
//! `GET/POST /api/v1/webhooks/`, `GET/PUT/DELETE /api/v1/webhooks/{id}/`,
//! `GET /api/v1/webhooks/{id}/responses/`, the legacy `/api/v1/actions/` paths (same
//! webhooks under the old field names), and redelivery:
//! `POST /api/v1/webhooks/{id}/redeliver/` (`{"since": RFC 3339}`: failed deliveries) and
//! `POST /api/v1/deliveries/{id}/redeliver/`, both -> 202 `{"delivery_ids": [...]}`.
//!
//! Owns the OnCall request/response shapes (DRF-style field errors, `{"detail": ...}`,
//! the page-number pagination object) and nothing else: validation and semantics are the
//! core's. Depends on `core` only.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::{Failure, authorization, busy, detail, rfc3339};
use crate::core::Page;
use crate::core::fields::webhook_fields;
use crate::core::webhooks::{Listing, ResponseView, WebhookPatch, WebhookView};
use crate::core::{Caller, Service};
use crate::error::{Error, FieldViolation};
use crate::ids::{self, Kind};
use crate::model::masked;
use crate::userinfo;

/// OnCall's page size.
pub const PAGE_SIZE: usize = 50;

/// Largest `?perpage=`.
const MAX_PAGE_SIZE: usize = 1000;

/// What a handler answers: a response either way.
type Reply = Result<Response, Failure>;

/// The OnCall error body of a domain error: 400 `{"field": ["message"]}`, 401/403/404
/// `{"detail": "..."}`.
pub fn error_response(error: Error) -> Response {
    match error {
        Error::InvalidArgument(violations) => field_errors(violations),
        Error::NotFound { .. } => detail(StatusCode::NOT_FOUND, "Not found."),
        Error::Unauthenticated(m) => detail(StatusCode::UNAUTHORIZED, sentence(&m)),
        Error::PermissionDenied(m) => detail(
            StatusCode::FORBIDDEN,
            format!("You do not have permission to perform this action: {m}."),
        ),
        Error::Conflict(_) => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "non_field_errors": ["The fields name, organization must make a unique set."]
            })),
        )
            .into_response(),
        Error::FailedPrecondition(m) => detail(StatusCode::CONFLICT, sentence(&m)),
        Error::ResourceExhausted(m) => detail(StatusCode::PAYLOAD_TOO_LARGE, m),
        Error::Overloaded(m) => busy(detail(StatusCode::TOO_MANY_REQUESTS, m)),
        Error::Unavailable(m) => detail(StatusCode::SERVICE_UNAVAILABLE, m),
        Error::Busy(m) => busy(detail(StatusCode::SERVICE_UNAVAILABLE, m)),
        Error::Internal(m) => detail(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// DRF's capitalised, full-stop form of a message.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// 400 with one list of messages per field.
fn field_errors(violations: Vec<FieldViolation>) -> Response {
    let mut body = Map::new();
    for v in violations {
        let entry = body.entry(v.field).or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!(v.description));
        }
    }
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Which OnCall resource a route serves: today's webhooks or the legacy actions (the same
/// objects with older field names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Webhooks,
    Actions,
}

/// Legacy action field -> webhook field.
const ACTION_NAMES: [(&str, &str); 3] = [
    ("team_id", "team"),
    ("user", "username"),
    ("forward_whole_payload", "forward_all"),
];

impl Dialect {
    /// The webhook name of a field sent in this dialect.
    fn incoming(self, field: &str) -> &str {
        match self {
            Dialect::Webhooks => field,
            Dialect::Actions => ACTION_NAMES
                .iter()
                .find(|(old, _)| *old == field)
                .map_or(field, |(_, new)| new),
        }
    }

    /// The name this dialect shows for a webhook field.
    fn outgoing(self, field: &str) -> String {
        match self {
            Dialect::Webhooks => field.to_string(),
            Dialect::Actions => ACTION_NAMES
                .iter()
                .find(|(_, new)| *new == field)
                .map_or(field, |(old, _)| old)
                .to_string(),
        }
    }

    fn error(self, error: Error) -> Response {
        match error {
            Error::InvalidArgument(violations) => field_errors(
                violations
                    .into_iter()
                    .map(|v| FieldViolation::new(self.outgoing(&v.field), v.description))
                    .collect(),
            ),
            other => error_response(other),
        }
    }
}

/// The caller of a request.
async fn caller(service: &Service, headers: &HeaderMap) -> Result<Caller, Failure> {
    Ok(service
        .authenticate(authorization(headers))
        .await
        .map_err(error_response)?)
}

/// The JSON object of a request body, or the OnCall error for a bad body.
pub fn json_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, Failure> {
    match json_value(body)? {
        Value::Object(map) => Ok(map),
        other => Err(field_errors(vec![FieldViolation::new(
            "non_field_errors",
            format!(
                "Invalid data. Expected a dictionary, but got {}.",
                python_type(&other)
            ),
        )])
        .into()),
    }
}

/// Any JSON value of a request body (an empty body is `{}`).
fn json_value(body: Result<Bytes, BytesRejection>) -> Result<Value, Failure> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "Request body is too large.".to_string()
        } else {
            rejection.body_text()
        };
        detail(status, message)
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    Ok(serde_json::from_slice(&bytes)
        .map_err(|e| detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {e}")))?)
}

/// Python's name of a JSON value's type, as DRF's messages use it.
pub fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Typed reads of a request object, collecting one DRF-style violation per bad field.
struct Fields {
    map: Map<String, Value>,
    violations: Vec<FieldViolation>,
}

impl Fields {
    fn new(map: Map<String, Value>) -> Fields {
        Fields {
            map,
            violations: Vec::new(),
        }
    }

    fn bad(&mut self, field: &str, message: impl Into<String>) {
        self.violations.push(FieldViolation::new(field, message));
    }

    fn require(&mut self, fields: &[&str]) {
        for field in fields {
            if !self.map.contains_key(*field) {
                self.bad(field, "This field is required.");
            }
        }
    }

    /// A string that may not be null.
    fn string(&mut self, field: &str) -> Option<String> {
        match self.map.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => {
                self.bad(field, "This field may not be null.");
                None
            }
            _ => {
                self.bad(field, "Not a valid string.");
                None
            }
        }
    }

    /// A string or null (`Some(None)` clears).
    fn nullable_string(&mut self, field: &str) -> Option<Option<String>> {
        match self.map.get(field)? {
            Value::Null => Some(None),
            _ => self.string(field).map(Some),
        }
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.map.get(field)? {
            Value::Bool(b) => Some(*b),
            Value::Null => {
                self.bad(field, "This field may not be null.");
                None
            }
            _ => {
                self.bad(field, "Must be a valid boolean.");
                None
            }
        }
    }

    /// A list of strings; null is the empty list.
    fn string_list(&mut self, field: &str) -> Option<Vec<String>> {
        match self.map.get(field)? {
            Value::Null => Some(Vec::new()),
            Value::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect();
                if strings.is_none() {
                    self.bad(field, "Not a valid string.");
                }
                strings
            }
            other => {
                let message = format!(
                    "Expected a list of items but got type \"{}\".",
                    python_type(other)
                );
                self.bad(field, message);
                None
            }
        }
    }

    /// OnCall's `preset`, which the official Go client always sends: null or "" (no preset)
    /// is accepted; webhookd has no presets, so naming one is an error.
    fn no_preset(&mut self) {
        if let Some(Some(preset)) = self.nullable_string("preset")
            && !preset.is_empty()
        {
            self.bad(
                "preset",
                format!("webhookd has no webhook presets ({preset:?}); send null."),
            );
        }
    }

    /// The request's violations, if any.
    fn finish(self) -> Result<(), Error> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.violations))
        }
    }
}

/// An OnCall JSON value as the value of its patch field.
trait FromOnCall: Sized {
    fn read(f: &mut Fields, field: &str) -> Option<Self>;
}

impl FromOnCall for String {
    fn read(f: &mut Fields, field: &str) -> Option<String> {
        f.string(field)
    }
}

impl FromOnCall for Option<String> {
    fn read(f: &mut Fields, field: &str) -> Option<Option<String>> {
        f.nullable_string(field)
    }
}

impl FromOnCall for bool {
    fn read(f: &mut Fields, field: &str) -> Option<bool> {
        f.boolean(field)
    }
}

impl FromOnCall for Vec<String> {
    fn read(f: &mut Fields, field: &str) -> Option<Vec<String>> {
        f.string_list(field)
    }
}

/// Reads the field table's `oncall` fields (`core::fields`).
macro_rules! oncall_fields {
    ($($field:ident: $value:ty $(=> $($dialect:ident $(($alias:literal))?),+)?;)*) => {
        /// The patch of the table's OnCall fields of a request.
        fn table_patch(f: &mut Fields) -> WebhookPatch {
            let mut patch = WebhookPatch::default();
            $($($(oncall_field!($dialect, f, patch.$field);)+)?)*
            patch
        }
    };
}

/// One row's read when its dialects include `oncall`.
macro_rules! oncall_field {
    (oncall, $f:ident, $patch:ident . $field:ident) => {
        $patch.$field = FromOnCall::read($f, stringify!($field));
    };
    ($other:ident, $($rest:tt)*) => {};
}
webhook_fields!(oncall_fields);

/// The patch of an OnCall webhook body (unknown fields ignored, as DRF does).
fn patch_of(
    dialect: Dialect,
    body: Map<String, Value>,
    create: bool,
) -> Result<WebhookPatch, Error> {
    let map = body
        .into_iter()
        .map(|(k, v)| (dialect.incoming(&k).to_string(), v))
        .collect();
    let mut f = Fields::new(map);
    if create {
        f.require(&["name", "url", "trigger_type"]);
    }
    let mut patch = table_patch(&mut f);
    patch.trigger_types = f.string("trigger_type").map(|t| vec![t]);
    f.no_preset();
    f.finish()?;
    Ok(patch)
}
/// An OnCall webhook as the API shows it: OnCall's 15 documented keys plus the `preset`
/// (always null: webhookd has no presets) and `schedule_filter` that OnCall also returns,
/// write-only fields masked as `****************`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OnCallWebhook {
    pub id: String,
    pub name: String,
    pub is_webhook_enabled: bool,
    pub team: Option<String>,
    pub data: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub authorization_header: Option<String>,
    pub trigger_template: Option<String>,
    pub headers: Option<String>,
    pub url: String,
    pub forward_all: bool,
    pub http_method: String,
    pub trigger_type: Option<String>,
    pub integration_filter: Option<Vec<String>>,
    /// Always null.
    pub preset: Option<String>,
    /// Schedule ids whose changes fire an `on-call changed` webhook; null = every schedule.
    pub schedule_filter: Option<Vec<String>>,
}

impl OnCallWebhook {
    fn of(view: &WebhookView) -> OnCallWebhook {
        let w = &view.webhook;
        let trigger = w.trigger_type();
        OnCallWebhook {
            id: ids::format(Kind::Webhook, w.id),
            name: w.name.clone(),
            is_webhook_enabled: w.is_webhook_enabled,
            team: w.team.clone(),
            data: w.data.clone(),
            username: w.username.clone(),
            password: masked(&w.password),
            authorization_header: masked(&w.authorization_header),
            trigger_template: w.trigger_template.clone(),
            headers: w.headers.clone(),
            url: userinfo::mask(&w.url),
            forward_all: w.forward_all,
            http_method: w.http_method.clone(),
            trigger_type: (!trigger.is_empty()).then(|| trigger.to_string()),
            integration_filter: (!w.integration_filter.is_empty())
                .then(|| w.integration_filter.clone()),
            preset: None,
            schedule_filter: (!w.schedule_filter.is_empty()).then(|| w.schedule_filter.clone()),
        }
    }
}

/// A webhook under the legacy `/api/v1/actions/` names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LegacyAction {
    pub id: String,
    pub name: String,
    pub is_webhook_enabled: bool,
    pub team_id: Option<String>,
    pub user: Option<String>,
    pub data: Option<String>,
    pub password: Option<String>,
    pub authorization_header: Option<String>,
    pub trigger_template: Option<String>,
    pub headers: Option<String>,
    pub url: String,
    pub forward_whole_payload: bool,
    pub http_method: String,
    pub trigger_type: Option<String>,
    pub integration_filter: Option<Vec<String>>,
}

impl From<OnCallWebhook> for LegacyAction {
    fn from(w: OnCallWebhook) -> LegacyAction {
        LegacyAction {
            id: w.id,
            name: w.name,
            is_webhook_enabled: w.is_webhook_enabled,
            team_id: w.team,
            user: w.username,
            data: w.data,
            password: w.password,
            authorization_header: w.authorization_header,
            trigger_template: w.trigger_template,
            headers: w.headers,
            url: w.url,
            forward_whole_payload: w.forward_all,
            http_method: w.http_method,
            trigger_type: w.trigger_type,
            integration_filter: w.integration_filter,
        }
    }
}

/// The body of create and update (every field optional on update; unknown fields are
/// ignored). `password`/`authorization_header` set to `****************` keep the stored value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OnCallWebhookInput {
    /// Required on create.
    pub name: Option<String>,
    /// Default true.
    pub is_webhook_enabled: Option<bool>,
    pub team: Option<String>,
    pub data: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub authorization_header: Option<String>,
    pub trigger_template: Option<String>,
    pub headers: Option<String>,
    /// Required on create.
    pub url: Option<String>,
    /// Default true.
    pub forward_all: Option<bool>,
    /// POST (default), GET, PUT, PATCH, DELETE or OPTIONS.
    pub http_method: Option<String>,
    /// Required on create: escalation (or its newer name escalation step), personal
    /// notification, alert group created, acknowledge, resolve, silence, unsilence,
    /// unresolve, unacknowledge, status change, on-call changed.
    pub trigger_type: Option<String>,
    pub integration_filter: Option<Vec<String>>,
    /// Null or absent (webhookd has no presets); OnCall's Go client always sends it.
    pub preset: Option<String>,
    /// For `on-call changed`: the schedule ids (the event's `schedule.id`) whose changes fire
    /// the webhook; null or empty = every schedule.
    pub schedule_filter: Option<Vec<String>>,
}

/// One recorded attempt (OnCall's responses entry).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponseEntry {
    /// RFC 3339 with microseconds.
    pub timestamp: String,
    pub url: String,
    pub request_trigger: String,
    /// JSON of the sent headers, secrets masked.
    pub request_headers: Option<String>,
    /// The sent body, or the template error.
    pub request_data: Option<String>,
    pub status_code: Option<u16>,
    pub content: Option<String>,
    /// JSON of the event.
    pub event_data: String,
}

impl ResponseEntry {
    fn of(view: &ResponseView) -> ResponseEntry {
        let r = &view.record;
        ResponseEntry {
            timestamp: rfc3339(r.timestamp_ms),
            url: r.url.clone(),
            request_trigger: r.request_trigger.clone(),
            request_headers: r.request_headers.clone(),
            request_data: r.request_data.clone(),
            status_code: r.status_code,
            content: r.content.clone(),
            event_data: view.event_data.clone(),
        }
    }
}

/// OnCall's pagination object; next/previous are absolute URLs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paginated<T> {
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
    pub page_size: usize,
    pub count: usize,
    pub current_page_number: usize,
    pub total_pages: usize,
}

/// `{"detail": "..."}`: 401, 403, 404, 405, 413 and malformed JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Detail {
    pub detail: String,
}

/// 400: the messages of each invalid field, e.g. `{"url": ["This field is required."]}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldErrors(pub std::collections::BTreeMap<String, Vec<String>>);

/// The body of `POST /api/v1/webhooks/{id}/redeliver/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RedeliverInput {
    /// RFC 3339; failed deliveries whose last attempt is at or after it (default: all).
    pub since: Option<String>,
}

/// 202 of the redelivery endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryIds {
    pub delivery_ids: Vec<String>,
}

/// A page request: `?page=N` (bad or < 1 = 1; a number too large for any listing = past
/// the end) and `?perpage=N`.
struct Paging {
    page: usize,
    size: usize,
}

impl Paging {
    fn of(params: &[(String, String)]) -> Paging {
        let number = |key: &str| {
            let value = params.iter().find(|(k, _)| k == key)?.1.trim();
            match value.parse::<usize>() {
                Ok(n) => Some(n).filter(|n| *n >= 1),
                Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Some(usize::MAX),
                Err(_) => None,
            }
        };
        Paging {
            page: number("page").unwrap_or(1),
            size: number("perpage").unwrap_or(PAGE_SIZE).min(MAX_PAGE_SIZE),
        }
    }

    /// Page `page` (from 1); past every possible listing when its offset overflows.
    fn at(&self, page: usize) -> Page {
        Page {
            after: None,
            offset: page.saturating_sub(1).saturating_mul(self.size),
            limit: self.size,
        }
    }
}

/// Fetches the asked page, or the last one when the asked page is past the end (as
/// OnCall's paginator does); returns it with its number and the page count.
async fn fetch_page<T, F: Future<Output = Result<Listing<T>, Error>>>(
    paging: &Paging,
    fetch: impl Fn(Page) -> F,
) -> Result<(Listing<T>, usize, usize), Error> {
    let listing = fetch(paging.at(paging.page)).await?;
    let pages = listing.total.div_ceil(paging.size).max(1);
    if paging.page <= pages {
        return Ok((listing, paging.page, pages));
    }
    Ok((fetch(paging.at(pages)).await?, pages, pages))
}

/// The request parts a paginated answer needs.
struct PageRequest {
    headers: HeaderMap,
    path: String,
    raw_query: Option<String>,
    params: Vec<(String, String)>,
}

impl PageRequest {
    fn new(
        headers: HeaderMap,
        uri: &Uri,
        raw_query: Option<String>,
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> PageRequest {
        PageRequest {
            headers,
            path: uri.path().to_string(),
            raw_query,
            params: query.map(|Query(q)| q).unwrap_or_default(),
        }
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The asked paging.
    fn paging(&self) -> Paging {
        Paging::of(&self.params)
    }

    /// Wraps a fetched page with absolute next/previous URLs built from the Host.
    fn answer<T, U>(
        &self,
        paging: &Paging,
        (listing, page, pages): (Listing<T>, usize, usize),
        show: impl Fn(&T) -> U,
    ) -> Paginated<U> {
        let host = self
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let scheme = self
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("http");
        let others: Vec<&str> = self
            .raw_query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some("page"))
            .collect();
        let base = format!("{scheme}://{host}{}/", self.path.trim_end_matches('/'));
        let link = |n: usize| {
            let mut params = others.clone();
            let page_param = format!("page={n}");
            if n > 1 {
                params.push(&page_param);
            }
            if params.is_empty() {
                base.clone()
            } else {
                format!("{base}?{}", params.join("&"))
            }
        };
        Paginated {
            next: (page < pages).then(|| link(page + 1)),
            previous: (page > 1).then(|| link(page - 1)),
            results: listing.items.iter().map(show).collect(),
            page_size: paging.size,
            count: listing.total,
            current_page_number: page,
            total_pages: pages,
        }
    }
}

fn ok<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}

/// A webhook in the dialect's shape.
fn shown(dialect: Dialect, view: &WebhookView) -> Response {
    shown_with(StatusCode::OK, dialect, view)
}

fn shown_with(status: StatusCode, dialect: Dialect, view: &WebhookView) -> Response {
    let webhook = OnCallWebhook::of(view);
    match dialect {
        Dialect::Webhooks => ok(status, webhook),
        Dialect::Actions => ok(status, LegacyAction::from(webhook)),
    }
}

async fn list(dialect: Dialect, service: &Service, request: PageRequest) -> Reply {
    let caller = caller(service, &request.headers).await?;
    let name = request.param("name");
    let paging = request.paging();
    let fetch = |p| service.list_webhooks(&caller, p, name);
    let fetched = fetch_page(&paging, fetch).await.map_err(error_response)?;
    let body = match dialect {
        Dialect::Webhooks => ok(
            StatusCode::OK,
            request.answer(&paging, fetched, OnCallWebhook::of),
        ),
        Dialect::Actions => ok(
            StatusCode::OK,
            request.answer(&paging, fetched, |v| {
                LegacyAction::from(OnCallWebhook::of(v))
            }),
        ),
    };
    Ok(body)
}

async fn create(
    dialect: Dialect,
    service: &Service,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let caller = caller(service, headers).await?;
    let patch = patch_of(dialect, json_object(body)?, true).map_err(|e| dialect.error(e))?;
    let view = service
        .create_webhook(&caller, patch)
        .await
        .map_err(|e| dialect.error(e))?;
    Ok(shown_with(StatusCode::CREATED, dialect, &view))
}

async fn get_one(dialect: Dialect, service: &Service, headers: &HeaderMap, id: &str) -> Reply {
    let caller = caller(service, headers).await?;
    let view = service
        .get_webhook(&caller, id)
        .await
        .map_err(|e| dialect.error(e))?;
    Ok(shown(dialect, &view))
}

async fn update(
    dialect: Dialect,
    service: &Service,
    headers: &HeaderMap,
    id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let caller = caller(service, headers).await?;
    let patch = patch_of(dialect, json_object(body)?, false).map_err(|e| dialect.error(e))?;
    let view = service
        .update_webhook(&caller, id, patch)
        .await
        .map_err(|e| dialect.error(e))?;
    Ok(shown(dialect, &view))
}

async fn delete(service: &Service, headers: &HeaderMap, id: &str) -> Reply {
    let caller = caller(service, headers).await?;
    service
        .delete_webhook(&caller, id)
        .await
        .map_err(error_response)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// List webhooks (page size 50; `?page=`, `?perpage=`, `?name=`).
#[utoipa::path(get, path = "/api/v1/webhooks/", tag = "oncall",
    params(("page" = Option<usize>, Query, description = "Page number from 1"),
           ("perpage" = Option<usize>, Query, description = "Page size (default 50)"),
           ("name" = Option<String>, Query, description = "Exact name")),
    responses((status = 200, body = Paginated<OnCallWebhook>), (status = 401, body = Detail)))]
pub async fn list_webhooks(
    State(service): State<Service>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
    query: QueryParams,
) -> Reply {
    list(
        Dialect::Webhooks,
        &service,
        PageRequest::new(headers, &uri, raw, query),
    )
    .await
}

/// Create a webhook.
#[utoipa::path(post, path = "/api/v1/webhooks/", tag = "oncall",
    request_body = OnCallWebhookInput,
    responses((status = 201, body = OnCallWebhook), (status = 400, body = FieldErrors),
              (status = 401, body = Detail), (status = 403, body = Detail)))]
pub async fn create_webhook(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    create(Dialect::Webhooks, &service, &headers, body).await
}

/// Get a webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = OnCallWebhook), (status = 404, body = Detail)))]
pub async fn get_webhook(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    get_one(Dialect::Webhooks, &service, &headers, &id).await
}

/// Update the fields sent; the others keep their values.
#[utoipa::path(put, path = "/api/v1/webhooks/{id}/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = OnCallWebhookInput,
    responses((status = 200, body = OnCallWebhook), (status = 400, body = FieldErrors),
              (status = 404, body = Detail)))]
pub async fn update_webhook(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    update(Dialect::Webhooks, &service, &headers, &id, body).await
}

/// Delete a webhook.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Detail)))]
pub async fn delete_webhook(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    delete(&service, &headers, &id).await
}

/// List actions (legacy names of webhooks).
#[utoipa::path(get, path = "/api/v1/actions/", tag = "oncall",
    params(("page" = Option<usize>, Query, description = "Page number from 1"),
           ("perpage" = Option<usize>, Query, description = "Page size (default 50)"),
           ("name" = Option<String>, Query, description = "Exact name")),
    responses((status = 200, body = Paginated<LegacyAction>), (status = 401, body = Detail)))]
pub async fn list_actions(
    State(service): State<Service>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
    query: QueryParams,
) -> Reply {
    list(
        Dialect::Actions,
        &service,
        PageRequest::new(headers, &uri, raw, query),
    )
    .await
}

/// Create an action (a webhook, legacy names: team_id, user, forward_whole_payload).
#[utoipa::path(post, path = "/api/v1/actions/", tag = "oncall",
    request_body = Object,
    responses((status = 201, body = LegacyAction), (status = 400, body = FieldErrors)))]
pub async fn create_action(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    create(Dialect::Actions, &service, &headers, body).await
}

/// Get an action.
#[utoipa::path(get, path = "/api/v1/actions/{id}/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = LegacyAction), (status = 404, body = Detail)))]
pub async fn get_action(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    get_one(Dialect::Actions, &service, &headers, &id).await
}

/// Update an action's fields sent.
#[utoipa::path(put, path = "/api/v1/actions/{id}/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = Object,
    responses((status = 200, body = LegacyAction), (status = 400, body = FieldErrors),
              (status = 404, body = Detail)))]
pub async fn update_action(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    update(Dialect::Actions, &service, &headers, &id, body).await
}

/// Delete an action.
#[utoipa::path(delete, path = "/api/v1/actions/{id}/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Detail)))]
pub async fn delete_action(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    delete(&service, &headers, &id).await
}

/// A webhook's delivery log, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/responses/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id"),
           ("page" = Option<usize>, Query, description = "Page number from 1")),
    responses((status = 200, body = Paginated<ResponseEntry>), (status = 404, body = Detail)))]
pub async fn list_responses(
    State(service): State<Service>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    query: QueryParams,
) -> Reply {
    let caller = caller(&service, &headers).await?;
    let request = PageRequest::new(headers, &uri, raw, query);
    let paging = request.paging();
    let fetch = |p| service.list_responses(&caller, &id, p);
    let fetched = fetch_page(&paging, fetch).await.map_err(error_response)?;
    let page = request.answer(&paging, fetched, ResponseEntry::of);
    Ok(ok(StatusCode::OK, page))
}

fn delivery_ids(ids: &[u64]) -> DeliveryIds {
    DeliveryIds {
        delivery_ids: ids
            .iter()
            .map(|&n| ids::format(Kind::Delivery, n))
            .collect(),
    }
}

/// Queue fresh attempts of a webhook's failed deliveries.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/redeliver/", tag = "redelivery",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = RedeliverInput,
    responses((status = 202, body = DeliveryIds), (status = 400, body = FieldErrors),
              (status = 404, body = Detail)))]
pub async fn redeliver_failed(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let caller = caller(&service, &headers).await?;
    let mut f = Fields::new(json_object(body)?);
    let since = f.nullable_string("since").flatten();
    f.finish().map_err(error_response)?;
    let since_ms = match since {
        None => 0,
        Some(text) => humantime::parse_rfc3339_weak(&text)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .ok_or_else(|| {
                error_response(Error::invalid(
                    "since",
                    "Datetime has wrong format. Use RFC 3339, e.g. 2024-01-02T03:04:05Z.",
                ))
            })?,
    };
    let queued = service
        .redeliver_failed(&caller, &id, since_ms)
        .await
        .map_err(error_response)?;
    Ok(ok(StatusCode::ACCEPTED, delivery_ids(&queued)))
}

/// Queue a fresh attempt of one delivery.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/redeliver/", tag = "redelivery",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 202, body = DeliveryIds), (status = 404, body = Detail)))]
pub async fn redeliver(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let caller = caller(&service, &headers).await?;
    let queued = service
        .redeliver(&caller, &id)
        .await
        .map_err(error_response)?;
    Ok(ok(StatusCode::ACCEPTED, delivery_ids(&[queued])))
}

/// The OnCall routes (paths without the trailing slash: the gateway trims it).
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/api/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/api/v1/webhooks/{id}",
            get(get_webhook).put(update_webhook).delete(delete_webhook),
        )
        .route("/api/v1/actions", get(list_actions).post(create_action))
        .route(
            "/api/v1/actions/{id}",
            get(get_action).put(update_action).delete(delete_action),
        )
        .route("/api/v1/webhooks/{id}/responses", get(list_responses))
        .route("/api/v1/webhooks/{id}/redeliver", post(redeliver_failed))
        .route("/api/v1/deliveries/{id}/redeliver", post(redeliver))
        .with_state(service)
}
