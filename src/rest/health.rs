//! `GET /healthz`, without a token: 200 `{"status": "ok"}` while the store answers, 503
//! `{"status": "unavailable"}` while it is lost (the store's health monitor decides).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::Service;

/// The answer of `/healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// "ok" while webhookd serves; "unavailable" while its store is unreachable.
    pub status: String,
}

/// Health of webhookd and its store (no token).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(service): State<Service>) -> (StatusCode, Json<Health>) {
    let (code, status) = if service.is_serving() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let status = status.into();
    (code, Json(Health { status }))
}

/// The health route.
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(service)
}
