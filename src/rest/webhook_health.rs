//! `GET /api/v1/webhooks/{id}/health/`: the REST twin of `GetWebhookHealth` (proto3 JSON in
//! snake_case; times RFC 3339, null when unset; `breaker_state` CLOSED, OPEN or HALF_OPEN).
//! Errors are OnCall's (`oncall::error_response`). Depends on `core` only.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::oncall::error_response;
use super::{Failure, authorization, rfc3339};
use crate::core::Service;
use crate::core::health::{Bucket, Health};
use crate::model::Breaker;

/// Delivery attempts of one hour.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthBucket {
    /// Start of the hour, RFC 3339.
    pub start_time: String,
    /// Attempts answered 2xx.
    pub succeeded: u32,
    /// Other attempts.
    pub failed: u32,
}

/// A webhook's delivery health.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookHealth {
    pub webhook_id: String,
    pub is_webhook_enabled: bool,
    /// Why the server disabled the webhook ("" when it did not).
    pub disabled_reason: String,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    /// Start of the current run of failed attempts (null after a success).
    pub failing_since: Option<String>,
    /// CLOSED, OPEN or HALF_OPEN (as stored: every instance answers the same).
    pub breaker_state: String,
    /// Deliveries still to deliver (due, retrying or behind their ordering key) on any
    /// instance, up to 100000.
    pub pending_count: usize,
    pub last_hour: HealthBucket,
    pub last_day: HealthBucket,
    /// 24 hourly buckets, oldest first.
    pub hourly: Vec<HealthBucket>,
}

fn bucket(b: Bucket) -> HealthBucket {
    HealthBucket {
        start_time: rfc3339(b.start_ms),
        succeeded: b.succeeded,
        failed: b.failed,
    }
}

impl WebhookHealth {
    fn of(h: &Health) -> WebhookHealth {
        let breaker = match h.breaker {
            Breaker::Closed => "CLOSED",
            Breaker::Open => "OPEN",
            Breaker::HalfOpen => "HALF_OPEN",
        };
        WebhookHealth {
            webhook_id: h.webhook_id.clone(),
            is_webhook_enabled: h.is_webhook_enabled,
            disabled_reason: h.disabled_reason.clone(),
            last_success_at: h.last_success_ms.map(rfc3339),
            last_failure_at: h.last_failure_ms.map(rfc3339),
            failing_since: h.failing_since_ms.map(rfc3339),
            breaker_state: breaker.to_string(),
            pending_count: h.pending,
            last_hour: bucket(h.last_hour()),
            last_day: bucket(h.last_day()),
            hourly: h.hourly.iter().copied().map(bucket).collect(),
        }
    }
}

/// One webhook's delivery health.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/health/", tag = "oncall",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookHealth),
              (status = 401, body = super::oncall::Detail),
              (status = 404, body = super::oncall::Detail)))]
pub async fn webhook_health(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let caller = service
        .authenticate(authorization(&headers))
        .await
        .map_err(error_response)?;
    let health = service
        .webhook_health(&caller, &id)
        .await
        .map_err(error_response)?;
    Ok(Json(WebhookHealth::of(&health)).into_response())
}

/// The route (without the trailing slash: the gateway trims it).
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/api/v1/webhooks/{id}/health", get(webhook_health))
        .with_state(service)
}
