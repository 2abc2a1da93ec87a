//! Admin REST API (needs `Authorization: Bearer <admin token>`):
//! `POST /admin/v1/tokens` -> 201 `{id, token, account_id, scopes}`;
//! `DELETE /admin/v1/tokens/{id}` -> 204. Errors are `{"detail": ...}`, with a per-field
//! map for invalid input.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::oncall::{Detail, FieldErrors};
use super::{authorization, detail};
use crate::core::Service;
use crate::error::Error;
use crate::ids::{self, Kind};

/// The body of `POST /admin/v1/tokens` (unknown fields are rejected).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The account the token acts for (at most 128 characters).
    pub account_id: String,
    /// `webhooks:read` and/or `webhooks:write`; at least one.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A new account token: `token` is shown only in this answer (stored as a hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// Token id, for `DELETE /admin/v1/tokens/{id}`.
    pub id: String,
    /// The token, for `Authorization: Bearer <token>` (or OnCall's bare `<token>`).
    pub token: String,
    pub account_id: String,
    pub scopes: Vec<String>,
}

/// Admin errors: field maps for invalid input, `detail` otherwise.
fn error_response(error: Error) -> Response {
    match error {
        Error::InvalidArgument(violations) => {
            let mut body = serde_json::Map::new();
            for v in violations {
                let entry = body.entry(v.field).or_insert_with(|| json!([]));
                if let Some(list) = entry.as_array_mut() {
                    list.push(json!(v.description));
                }
            }
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
        Error::NotFound { .. } => detail(StatusCode::NOT_FOUND, "Not found."),
        Error::Unauthenticated(m) => detail(StatusCode::UNAUTHORIZED, m),
        Error::PermissionDenied(m) => detail(StatusCode::FORBIDDEN, m),
        Error::Conflict(m) => detail(StatusCode::CONFLICT, m),
        Error::FailedPrecondition(m) => detail(StatusCode::CONFLICT, m),
        Error::ResourceExhausted(m) => detail(StatusCode::PAYLOAD_TOO_LARGE, m),
        Error::Overloaded(m) => super::busy(detail(StatusCode::TOO_MANY_REQUESTS, m)),
        Error::Unavailable(m) => detail(StatusCode::SERVICE_UNAVAILABLE, m),
        Error::Busy(m) => super::busy(detail(StatusCode::SERVICE_UNAVAILABLE, m)),
        Error::Internal(m) => detail(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// Issue an account token (admin token required).
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "admin",
    request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = FieldErrors),
              (status = 401, body = Detail)))]
pub async fn create_token(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = service.authenticate_admin(authorization(&headers)) {
        return error_response(e);
    }
    // Parsed whatever the Content-Type says: `curl -d '{...}'` sends form encoding.
    let request: CreateToken = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {e}"));
        }
    };
    match service
        .create_token(&request.account_id, &request.scopes)
        .await
    {
        Ok((stored, token)) => {
            let body = CreatedToken {
                id: ids::format(Kind::Token, stored.id),
                token,
                account_id: stored.account_id,
                scopes: stored
                    .scopes
                    .iter()
                    .map(|s| s.as_str().to_string())
                    .collect(),
            };
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Err(e) => error_response(e),
    }
}

/// Revoke an account token (admin token required); it is refused from then on.
#[utoipa::path(delete, path = "/admin/v1/tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = Detail),
              (status = 404, body = Detail)))]
pub async fn revoke_token(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = service.authenticate_admin(authorization(&headers)) {
        return error_response(e);
    }
    match service.revoke_token(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

/// The admin routes.
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/admin/v1/tokens", post(create_token))
        .route("/admin/v1/tokens/{id}", delete(revoke_token))
        .with_state(service)
}
