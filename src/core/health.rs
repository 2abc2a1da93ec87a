//! Webhook health at a glance (the web console's webhook list, `GetWebhookHealth`): last
//! success and failure, the run of failures, the circuit breaker (as stored, so every
//! instance answers the same), the deliveries still to deliver (waiting in the store, so
//! every instance answers the same too), and attempts per hour over the last day counted
//! from the webhook's delivery log (`attempt_counts`: only what is new since the last call
//! is read). Read scope; another account's webhook is NOT_FOUND. Depends on the store only.

use super::attempt_counts::report_end;
use super::{Caller, Service};
use crate::error::Result;
use crate::model::{Breaker, Scope, now_ms};

/// One hour of milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Hourly buckets in a health report (the last day).
pub const BUCKETS: usize = 24;

/// Waiting deliveries are counted up to this many (a bigger backlog reports this number), so
/// a health read stays cheap whatever the backlog.
pub const PENDING_CAP: usize = 100_000;

/// Attempts of one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the hour, ms since the epoch (a sliding hour ending at a multiple of an
    /// hour before the end of the report's minute).
    pub start_ms: i64,
    /// Attempts answered 2xx.
    pub succeeded: u32,
    /// Other attempts (an error status, no answer, a template error).
    pub failed: u32,
}

/// A webhook's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The webhook's id (formatted).
    pub webhook_id: String,
    /// Whether it fires.
    pub is_webhook_enabled: bool,
    /// Why the server disabled it ("" when it did not).
    pub disabled_reason: String,
    /// Last 2xx answer.
    pub last_success_ms: Option<i64>,
    /// Last failed attempt.
    pub last_failure_ms: Option<i64>,
    /// Start of the current run of failed attempts (None after a success).
    pub failing_since_ms: Option<i64>,
    /// Its circuit breaker, as stored (the same on every instance).
    pub breaker: Breaker,
    /// Deliveries still to deliver: due, being attempted, retrying later, or waiting behind
    /// their ordering key, on any instance (at most `PENDING_CAP`).
    pub pending: usize,
    /// Attempts per hour, oldest first; the last bucket is the hour up to the report's time.
    pub hourly: Vec<Bucket>,
}

impl Health {
    /// Attempts of the last hour.
    pub fn last_hour(&self) -> Bucket {
        self.hourly.last().copied().unwrap_or_default()
    }

    /// Attempts of the last day.
    pub fn last_day(&self) -> Bucket {
        self.hourly.iter().fold(
            Bucket {
                start_ms: self.hourly.first().map_or(0, |b| b.start_ms),
                ..Bucket::default()
            },
            |sum, b| Bucket {
                succeeded: sum.succeeded + b.succeeded,
                failed: sum.failed + b.failed,
                ..sum
            },
        )
    }
}

impl Service {
    /// The health of one of the caller's webhooks.
    pub async fn webhook_health(&self, caller: &Caller, webhook_id: &str) -> Result<Health> {
        caller.require(Scope::Read)?;
        let webhook = self.owned_webhook(caller, webhook_id).await?;
        let stats = self.store.webhook_stats(webhook.id).await?;
        let now = now_ms();
        let hourly = self
            .attempt_counts
            .hourly(&*self.store, webhook.id, report_end(now))
            .await?;
        let pending = self.store.count_waiting(webhook.id, PENDING_CAP).await?;
        Ok(Health {
            webhook_id: crate::ids::format(crate::ids::Kind::Webhook, webhook.id),
            is_webhook_enabled: webhook.is_webhook_enabled,
            disabled_reason: webhook.disabled_reason,
            last_success_ms: stats.last_success_ms,
            last_failure_ms: stats.last_failure_ms,
            failing_since_ms: stats.failing_since_ms,
            breaker: stats.breaker.phase(now),
            pending,
            hourly,
        })
    }
}
