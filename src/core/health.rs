//! Webhook health at a glance (the web console's webhook list, `GetWebhookHealth`): last
//! success and failure, the run of failures, the circuit breaker and pending deliveries as
//! the delivery engine of this instance sees them, and attempts per hour over the last day
//! counted from the webhook's delivery log. Read scope; another account's webhook is
//! NOT_FOUND. Depends on the store and the scheduler only.

use super::{Caller, Service};
use crate::delivery::scheduler::Breaker;
use crate::error::Result;
use crate::model::{Scope, now_ms};
use crate::store::Page;

/// One hour of milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Hourly buckets in a health report (the last day).
pub const BUCKETS: usize = 24;

/// Log entries read per store call while counting.
const SCAN_PAGE: usize = 500;

/// Log entries counted at most (the log is trimmed long before on a busy webhook).
const SCAN_LIMIT: usize = 20_000;

/// Attempts of one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the hour, ms since the epoch (a sliding hour ending at a multiple of an
    /// hour before the report's time).
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
    /// Its circuit breaker (this instance's).
    pub breaker: Breaker,
    /// Deliveries queued, parked or being attempted on this instance.
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

/// Empty buckets for the day ending at `now_ms`.
fn empty_day(now_ms: i64) -> Vec<Bucket> {
    (0..BUCKETS as i64)
        .map(|i| Bucket {
            start_ms: now_ms - (BUCKETS as i64 - i) * HOUR_MS,
            ..Bucket::default()
        })
        .collect()
}

/// Counts an attempt at `at_ms` into `day` (ignored outside it).
fn count(day: &mut [Bucket], now_ms: i64, at_ms: i64, succeeded: bool) {
    let age = now_ms - at_ms;
    if !(0..BUCKETS as i64 * HOUR_MS).contains(&age) {
        return;
    }
    let index = BUCKETS - 1 - (age / HOUR_MS) as usize;
    let bucket = &mut day[index];
    if succeeded {
        bucket.succeeded += 1;
    } else {
        bucket.failed += 1;
    }
}

impl Service {
    /// The health of one of the caller's webhooks.
    pub async fn webhook_health(&self, caller: &Caller, webhook_id: &str) -> Result<Health> {
        caller.require(Scope::Read)?;
        let webhook = self.owned_webhook(caller, webhook_id).await?;
        let stats = self.store.webhook_stats(webhook.id).await?;
        let now = now_ms();
        let mut hourly = empty_day(now);
        let mut after = None;
        let mut scanned = 0;
        'scan: while scanned < SCAN_LIMIT {
            let page = Page {
                after,
                offset: 0,
                limit: SCAN_PAGE,
            };
            let entries = self.store.list_responses(webhook.id, page).await?;
            let full = entries.len() == SCAN_PAGE;
            for (key, record) in entries {
                scanned += 1;
                after = Some(key);
                if now - record.timestamp_ms >= BUCKETS as i64 * HOUR_MS {
                    break 'scan;
                }
                let ok = record.status_code.is_some_and(|s| (200..300).contains(&s));
                count(&mut hourly, now, record.timestamp_ms, ok);
            }
            if !full {
                break;
            }
        }
        let endpoint = self.scheduler.endpoint(webhook.id, now);
        Ok(Health {
            webhook_id: crate::ids::format(crate::ids::Kind::Webhook, webhook.id),
            is_webhook_enabled: webhook.is_webhook_enabled,
            disabled_reason: webhook.disabled_reason,
            last_success_ms: stats.last_success_ms,
            last_failure_ms: stats.last_failure_ms,
            failing_since_ms: stats.failing_since_ms,
            breaker: endpoint.breaker,
            pending: endpoint.pending,
            hourly,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_fall_into_the_hour_they_were_made_in_and_the_day_sums_them() {
        let now = 100 * HOUR_MS;
        let mut day = empty_day(now);
        count(&mut day, now, now - 1, true);
        count(&mut day, now, now - HOUR_MS + 1, false);
        count(&mut day, now, now - HOUR_MS, false);
        count(&mut day, now, now - 24 * HOUR_MS + 1, true);
        // Outside the day (too old, or in the future) is not counted.
        count(&mut day, now, now - 24 * HOUR_MS, true);
        count(&mut day, now, now + 1, true);
        let health = Health {
            webhook_id: String::new(),
            is_webhook_enabled: true,
            disabled_reason: String::new(),
            last_success_ms: None,
            last_failure_ms: None,
            failing_since_ms: None,
            breaker: Breaker::Closed,
            pending: 0,
            hourly: day,
        };
        assert_eq!(health.hourly[0].start_ms, now - 24 * HOUR_MS);
        assert_eq!(health.hourly[23].start_ms, now - HOUR_MS);
        let hour = health.last_hour();
        assert_eq!((hour.succeeded, hour.failed), (1, 1));
        assert_eq!(
            (health.hourly[22].succeeded, health.hourly[22].failed),
            (0, 1)
        );
        let day = health.last_day();
        assert_eq!((day.succeeded, day.failed), (2, 2));
        assert_eq!(day.start_ms, now - 24 * HOUR_MS);
    }
}
