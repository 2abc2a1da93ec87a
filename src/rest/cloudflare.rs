//! Cloudflare's notification webhooks API onto `core::Service`:
//! `GET/POST /client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks` and
//! `GET/PUT/DELETE .../webhooks/{webhook_id}`, every answer in Cloudflare's envelope
//! `{errors, messages, success, result}`. The path's account must be the token's.
//!
//! Owns the Cloudflare shapes only: a webhook created here is an ordinary webhook with no
//! trigger types (it fires on every event type), `type` as its destination type (the core
//! infers it from the URL when not given) and `secret` as its Cloudflare secret (never
//! returned). Error codes: 10000 authentication, 9109 forbidden, 7003 unknown object,
//! 7000 no route, 10405 wrong method, 1001 invalid request, 1003 conflict, 10413 body too
//! large, 1000 internal. Depends on `core` only.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{Failure, authorization, rfc3339};
use crate::core::Page;
use crate::core::fields::webhook_fields;
use crate::core::webhooks::{WebhookPatch, WebhookView};
use crate::core::{Caller, Service};
use crate::error::Error;
use crate::ids::{self, Kind};
use crate::userinfo;

/// Path prefix of the dialect.
const PREFIX: &str = "/client/v4/";

/// Body fields a create and an update require.
const REQUIRED: [&str; 2] = ["name", "url"];

/// Whether `path` belongs to the Cloudflare dialect.
pub fn owns(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// The Cloudflare error code of a gateway-level status.
pub fn code_for(status: StatusCode) -> u32 {
    match status {
        StatusCode::UNAUTHORIZED => 10000,
        StatusCode::FORBIDDEN => 9109,
        StatusCode::NOT_FOUND => 7000,
        StatusCode::METHOD_NOT_ALLOWED => 10405,
        StatusCode::PAYLOAD_TOO_LARGE => 10413,
        s if s.is_client_error() => 1001,
        _ => 1000,
    }
}

/// A failure envelope with one error.
pub fn failure(status: StatusCode, code: u32, message: impl Into<String>) -> Response {
    failures(status, vec![(code, message.into())])
}

fn failures(status: StatusCode, errors: Vec<(u32, String)>) -> Response {
    let body = CfFailure {
        errors: errors
            .into_iter()
            .map(|(code, message)| CfMessage { code, message })
            .collect(),
        messages: Vec::new(),
        success: false,
        result: None,
    };
    (status, Json(body)).into_response()
}

/// An error or message of an envelope.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CfMessage {
    pub code: u32,
    pub message: String,
}

/// A failure: `success` false, `result` null.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CfFailure {
    pub errors: Vec<CfMessage>,
    pub messages: Vec<CfMessage>,
    pub success: bool,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
}

/// A success; `result` is absent on delete.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CfEnvelope<T> {
    pub errors: Vec<CfMessage>,
    pub messages: Vec<CfMessage>,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
}

/// A webhook destination (the secret is never shown).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CfWebhook {
    pub id: String,
    pub name: String,
    pub url: String,
    /// datadog, discord, feishu, gchat, generic, opsgenie, slack or splunk.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; absent before the first 2xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    /// RFC 3339; absent before the first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// The result of create and update.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CfId {
    pub id: String,
}

/// The body of create and update: name and url required; unknown fields are rejected.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CfWebhookInput {
    pub name: String,
    pub url: String,
    /// Sent as `cf-webhook-auth` on every delivery; never returned. On update, absent, null
    /// and `""` keep the stored secret.
    pub secret: Option<String>,
    /// Inferred from the URL when absent.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// The Cloudflare failure envelope of a domain error.
pub fn error_response(error: Error) -> Response {
    match error {
        Error::InvalidArgument(violations) => failures(
            StatusCode::BAD_REQUEST,
            violations
                .into_iter()
                .map(|v| {
                    let field = if v.field == "destination_type" {
                        "type".to_string()
                    } else {
                        v.field
                    };
                    (1001, format!("{field}: {}", v.description))
                })
                .collect(),
        ),
        Error::NotFound { kind, id } => failure(
            StatusCode::NOT_FOUND,
            7003,
            format!("Could not find {kind} {id:?}, perhaps your object identifier is invalid?"),
        ),
        Error::Unauthenticated(m) => failure(
            StatusCode::UNAUTHORIZED,
            10000,
            format!("Authentication error: {m}"),
        ),
        Error::PermissionDenied(m) => failure(StatusCode::FORBIDDEN, 9109, m),
        Error::Conflict(m) => failure(StatusCode::BAD_REQUEST, 1003, m),
        Error::FailedPrecondition(m) => failure(StatusCode::CONFLICT, 1003, m),
        Error::ResourceExhausted(m) => failure(StatusCode::PAYLOAD_TOO_LARGE, 10413, m),
        Error::Overloaded(m) => super::busy(failure(StatusCode::TOO_MANY_REQUESTS, 10429, m)),
        Error::Unavailable(m) => failure(StatusCode::SERVICE_UNAVAILABLE, 1000, m),
        Error::Busy(m) => super::busy(failure(StatusCode::SERVICE_UNAVAILABLE, 1000, m)),
        Error::Internal(m) => failure(StatusCode::INTERNAL_SERVER_ERROR, 1000, m),
    }
}

/// A success envelope.
fn success<T: Serialize>(status: StatusCode, result: Option<T>) -> Response {
    let body = CfEnvelope {
        errors: Vec::new(),
        messages: Vec::new(),
        success: true,
        result,
    };
    (status, Json(body)).into_response()
}

/// The caller, who must belong to the path's account.
async fn caller(
    service: &Service,
    headers: &HeaderMap,
    account_id: &str,
) -> Result<Caller, Failure> {
    let caller = service
        .authenticate(authorization(headers))
        .await
        .map_err(error_response)?;
    if caller.account_id != account_id {
        return Err(failure(
            StatusCode::FORBIDDEN,
            9109,
            format!(
                "Unauthorized to access requested resource: this token belongs to account {:?}, not {account_id:?}",
                caller.account_id
            ),
        )
        .into());
    }
    Ok(caller)
}

/// A request object whose fields the table takes one by one, with the errors so far.
struct Body {
    map: Map<String, Value>,
    errors: Vec<(u32, String)>,
}

impl Body {
    /// Takes a string field (null = absent), reporting a required one that is absent.
    fn string(&mut self, field: &str) -> Option<String> {
        match self.map.remove(field) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => {
                if REQUIRED.contains(&field) {
                    self.errors.push((1001, format!("{field}: is required")));
                }
                None
            }
            Some(_) => {
                self.errors
                    .push((1001, format!("{field}: must be a string")));
                None
            }
        }
    }
}

/// A Cloudflare JSON value as the value of its patch field.
trait FromCloudflare: Sized {
    fn take(body: &mut Body, field: &str) -> Option<Self>;
}

impl FromCloudflare for String {
    fn take(body: &mut Body, field: &str) -> Option<String> {
        body.string(field)
    }
}

/// A write-only string: cloudflare-go sends `"secret": ""` on every update that sets none,
/// so like absent and null, an empty one keeps the stored value.
impl FromCloudflare for Option<String> {
    fn take(body: &mut Body, field: &str) -> Option<Option<String>> {
        body.string(field).filter(|s| !s.is_empty()).map(Some)
    }
}

/// Takes the field table's `cloudflare` fields (`core::fields`).
macro_rules! cloudflare_fields {
    ($($field:ident: $value:ty $(=> $($dialect:ident $(($alias:literal))?),+)?;)*) => {
        /// The patch of the table's Cloudflare fields, taken out of the body.
        fn table_patch(body: &mut Body) -> WebhookPatch {
            let mut patch = WebhookPatch::default();
            $($($(cloudflare_field!($dialect $(($alias))?, body, patch.$field);)+)?)*
            patch
        }
    };
}

/// One row's take when its dialects include `cloudflare` (under its Cloudflare name).
macro_rules! cloudflare_field {
    (cloudflare($name:literal), $body:ident, $patch:ident . $field:ident) => {
        $patch.$field = FromCloudflare::take($body, $name);
    };
    (cloudflare, $body:ident, $patch:ident . $field:ident) => {
        $patch.$field = FromCloudflare::take($body, stringify!($field));
    };
    ($other:ident $(($name:literal))?, $($rest:tt)*) => {};
}
webhook_fields!(cloudflare_fields);

/// The patch of a create/update body: name and url required, secret and type optional,
/// anything else rejected. An absent, null or empty `secret` leaves the stored one as it is.
fn patch_of(body: Result<Bytes, BytesRejection>) -> Result<WebhookPatch, Failure> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        failure(status, code_for(status), rejection.body_text())
    })?;
    let map: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                1001,
                "Request body must be a JSON object.",
            )
            .into());
        }
        Err(e) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                1001,
                format!("Malformed JSON in request body: {e}"),
            )
            .into());
        }
    };
    let mut body = Body {
        map,
        errors: Vec::new(),
    };
    let patch = table_patch(&mut body);
    // What the table did not take is unknown; those errors come first.
    let mut errors: Vec<(u32, String)> = body
        .map
        .keys()
        .map(|key| (1001, format!("{key}: unknown field")))
        .collect();
    errors.append(&mut body.errors);
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(failures(StatusCode::BAD_REQUEST, errors).into())
    }
}

impl CfWebhook {
    fn of(view: &WebhookView) -> CfWebhook {
        let w = &view.webhook;
        CfWebhook {
            id: ids::format(Kind::Webhook, w.id),
            name: w.name.clone(),
            url: userinfo::mask(&w.url),
            kind: w.destination_type.as_str().to_string(),
            created_at: rfc3339(w.created_at_ms),
            last_success: view.stats.last_success_ms.map(rfc3339),
            last_failure: view.stats.last_failure_ms.map(rfc3339),
        }
    }
}

fn id_result(view: &WebhookView) -> Option<CfId> {
    Some(CfId {
        id: ids::format(Kind::Webhook, view.webhook.id),
    })
}

/// List webhook destinations.
#[utoipa::path(get, path = "/client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks", tag = "cloudflare",
    params(("account_id" = String, Path, description = "The token's account")),
    responses((status = 200, body = CfEnvelope<Vec<CfWebhook>>), (status = 401, body = CfFailure),
              (status = 403, body = CfFailure)))]
pub async fn list(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(account_id): Path<String>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers, &account_id).await?;
    let listing = service
        .list_webhooks(&caller, Page::ALL, None)
        .await
        .map_err(error_response)?;
    let result: Vec<CfWebhook> = listing.items.iter().map(CfWebhook::of).collect();
    Ok(success(StatusCode::OK, Some(result)))
}

/// Create a webhook destination.
#[utoipa::path(post, path = "/client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks", tag = "cloudflare",
    params(("account_id" = String, Path, description = "The token's account")),
    request_body = CfWebhookInput,
    responses((status = 201, body = CfEnvelope<CfId>), (status = 400, body = CfFailure),
              (status = 401, body = CfFailure), (status = 403, body = CfFailure)))]
pub async fn create(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers, &account_id).await?;
    let patch = patch_of(body)?;
    let view = service
        .create_webhook(&caller, patch)
        .await
        .map_err(error_response)?;
    Ok(success(StatusCode::CREATED, id_result(&view)))
}

/// Get a webhook destination.
#[utoipa::path(get, path = "/client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks/{webhook_id}", tag = "cloudflare",
    params(("account_id" = String, Path, description = "The token's account"),
           ("webhook_id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = CfEnvelope<CfWebhook>), (status = 404, body = CfFailure)))]
pub async fn get_one(
    State(service): State<Service>,
    headers: HeaderMap,
    Path((account_id, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers, &account_id).await?;
    let view = service
        .get_webhook(&caller, &id)
        .await
        .map_err(error_response)?;
    Ok(success(StatusCode::OK, Some(CfWebhook::of(&view))))
}

/// Update a webhook destination (name and url required; secret kept when absent, null or "").
#[utoipa::path(put, path = "/client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks/{webhook_id}", tag = "cloudflare",
    params(("account_id" = String, Path, description = "The token's account"),
           ("webhook_id" = String, Path, description = "Webhook id")),
    request_body = CfWebhookInput,
    responses((status = 200, body = CfEnvelope<CfId>), (status = 400, body = CfFailure),
              (status = 404, body = CfFailure)))]
pub async fn update(
    State(service): State<Service>,
    headers: HeaderMap,
    Path((account_id, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers, &account_id).await?;
    let patch = patch_of(body)?;
    let view = service
        .update_webhook(&caller, &id, patch)
        .await
        .map_err(error_response)?;
    Ok(success(StatusCode::OK, id_result(&view)))
}

/// Delete a webhook destination.
#[utoipa::path(delete, path = "/client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks/{webhook_id}", tag = "cloudflare",
    params(("account_id" = String, Path, description = "The token's account"),
           ("webhook_id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = CfEnvelope<CfId>), (status = 404, body = CfFailure)))]
pub async fn delete(
    State(service): State<Service>,
    headers: HeaderMap,
    Path((account_id, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let caller = caller(&service, &headers, &account_id).await?;
    service
        .delete_webhook(&caller, &id)
        .await
        .map_err(error_response)?;
    Ok(success::<CfId>(StatusCode::OK, None))
}

/// The Cloudflare routes.
pub fn routes(service: Service) -> Router {
    let base = "/client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks";
    Router::new()
        .route(base, get(list).post(create))
        .route(
            &format!("{base}/{{webhook_id}}"),
            get(get_one).put(update).delete(delete),
        )
        .with_state(service)
}
