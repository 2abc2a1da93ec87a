//! `GET /healthz`: liveness of the HTTP side, without a token.

use axum::Router;
use axum::routing::get;

/// The health route.
pub fn routes() -> Router {
    Router::new().route(
        "/healthz",
        get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
    )
}
