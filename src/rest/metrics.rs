//! `GET /metrics`: Prometheus text exposition of the process metrics, with the queue and
//! rate-limit gauges (overall and per webhook) refreshed from the scheduler, and the emit
//! memory bounds' use from the core, at each scrape. No token, no
//! secrets (labels are ids only).

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::core::Service;
use crate::ids::{self, Kind};
use crate::model::now_ms;

/// Prometheus metrics (no token).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4: \
        webhookd_events_accepted_total, webhookd_delivery_attempts_total{outcome,status_class}, \
        webhookd_queue_depth, webhookd_webhook_queue_depth{webhook_id}, \
        webhookd_rate_limited_deliveries, webhookd_webhook_rate_limited_deliveries{webhook_id}, \
        webhookd_webhook_rate_limit_per_second{webhook_id}, webhookd_ordering_blocked_keys, \
        webhookd_ordering_oldest_blocked_head_seconds, webhookd_emit_memory_bytes{bound}, ...",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(service): State<Service>) -> impl IntoResponse {
    let metrics = service.metrics();
    let (total, per_webhook) = service.scheduler().stats();
    let now = now_ms();
    let age = |due: Option<i64>| due.map_or(0, |d| ((now - d) / 1000).max(0));
    metrics.queue_depth.set(total.depth as i64);
    metrics
        .queue_oldest_due_seconds
        .set(age(total.oldest_due_ms));
    // From the store (ordering holds across instances); a failed read leaves the last values.
    if let Ok(backlog) = service.ordering_backlog().await {
        metrics
            .ordering_blocked_keys
            .set(backlog.blocked_keys as i64);
        metrics
            .ordering_oldest_blocked_head_seconds
            .set(age(backlog.oldest_blocked_head_ms));
    }
    metrics.deferred.reset();
    metrics.deferred.inc_by(service.scheduler().deferred());
    metrics.webhook_queue_depth.reset();
    metrics.webhook_oldest_due_seconds.reset();
    for (webhook_id, stats) in per_webhook {
        let label = ids::format(Kind::Webhook, webhook_id);
        metrics
            .webhook_queue_depth
            .with_label_values(&[&label])
            .set(stats.depth as i64);
        metrics
            .webhook_oldest_due_seconds
            .with_label_values(&[&label])
            .set(age(stats.oldest_due_ms));
    }
    metrics.webhook_rate_limited.reset();
    metrics.webhook_rate_limit.reset();
    let mut rate_limited = 0;
    for (webhook_id, stats) in service.scheduler().rates(now) {
        let label = ids::format(Kind::Webhook, webhook_id);
        rate_limited += stats.waiting;
        metrics
            .webhook_rate_limited
            .with_label_values(&[&label])
            .set(stats.waiting as i64);
        metrics
            .webhook_rate_limit
            .with_label_values(&[&label])
            .set(stats.effective_per_second);
    }
    metrics.rate_limited.set(rate_limited as i64);
    for (bound, bytes) in service.emit_memory_in_use() {
        metrics
            .emit_memory
            .with_label_values(&[bound])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

/// The metrics route.
pub fn routes(service: Service) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(service)
}
