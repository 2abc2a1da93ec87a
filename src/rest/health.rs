//! `GET /healthz`: liveness of the HTTP side, without a token.

use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The answer of `/healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always "ok" while the HTTP side answers.
    pub status: String,
}

/// Liveness of the HTTP side (no token).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The health route.
pub fn routes() -> Router {
    Router::new().route("/healthz", get(healthz))
}
