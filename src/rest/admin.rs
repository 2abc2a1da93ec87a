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
use serde::Deserialize;
use serde_json::json;

use super::{authorization, detail};
use crate::core::Service;
use crate::error::Error;
use crate::ids::{self, Kind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    account_id: String,
    #[serde(default)]
    scopes: Vec<String>,
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
        Error::ResourceExhausted(m) => detail(StatusCode::PAYLOAD_TOO_LARGE, m),
        Error::Internal(m) => detail(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

async fn create_token(State(service): State<Service>, headers: HeaderMap, body: Bytes) -> Response {
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
            let body = json!({
                "id": ids::format(Kind::Token, stored.id),
                "token": token,
                "account_id": stored.account_id,
                "scopes": stored.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            });
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Err(e) => error_response(e),
    }
}

async fn revoke_token(
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
