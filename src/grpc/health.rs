//! `core::health::Health` -> `webhooks.v1.WebhookHealth`. Depends on `core` and `convert`.

use super::convert::timestamp;
use super::pb;
use crate::core::health::{Bucket, Health};
use crate::model::Breaker;

fn bucket(b: Bucket) -> pb::HealthBucket {
    pb::HealthBucket {
        start_time: Some(timestamp(b.start_ms)),
        succeeded: b.succeeded as i32,
        failed: b.failed as i32,
    }
}

/// The protobuf of a health report.
pub fn to_pb(health: &Health) -> pb::WebhookHealth {
    let breaker = match health.breaker {
        Breaker::Closed => pb::BreakerState::Closed,
        Breaker::Open => pb::BreakerState::Open,
        Breaker::HalfOpen => pb::BreakerState::HalfOpen,
    };
    pb::WebhookHealth {
        webhook_id: health.webhook_id.clone(),
        is_webhook_enabled: health.is_webhook_enabled,
        disabled_reason: health.disabled_reason.clone(),
        last_success_at: health.last_success_ms.map(timestamp),
        last_failure_at: health.last_failure_ms.map(timestamp),
        failing_since: health.failing_since_ms.map(timestamp),
        breaker_state: breaker as i32,
        pending_count: i32::try_from(health.pending).unwrap_or(i32::MAX),
        last_hour: Some(bucket(health.last_hour())),
        last_day: Some(bucket(health.last_day())),
        hourly: health.hourly.iter().copied().map(bucket).collect(),
    }
}
