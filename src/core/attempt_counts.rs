//! The attempt counts behind `GetWebhookHealth`'s hourly buckets, kept per instance so that a
//! health call reads only the delivery-log entries written since the previous call for the
//! same webhook (one entry when nothing happened) instead of the whole last day of the log.
//!
//! Per webhook it keeps the newest log key counted and attempts per minute of the last day
//! (at most 2,880 minutes, past and clock-skewed future); at most `MAX_WEBHOOKS` webhooks,
//! the least recently asked one forgotten first. A tally is counted from the log once (up to
//! `SCAN_LIMIT` entries), then topped up. The log is shared by every instance, so another
//! instance's attempts are counted too; an attempt the log trims stays counted. The hours of
//! a report end at the end of the current minute. Depends on the store only.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::health::{BUCKETS, Bucket, HOUR_MS};
use crate::error::Result;
use crate::store::{Page, Store};

/// One minute of milliseconds.
const MINUTE_MS: i64 = 60_000;

/// The day of a report.
const DAY_MS: i64 = BUCKETS as i64 * HOUR_MS;

/// Webhooks whose tallies are kept.
const MAX_WEBHOOKS: usize = 4096;

/// Log entries read per store call on the first count (a top-up starts with one).
const SCAN_PAGE: usize = 500;

/// Log entries counted at most in one call.
const SCAN_LIMIT: usize = 20_000;

/// One webhook's attempts per minute.
#[derive(Debug, Default)]
struct Tally {
    /// The newest log key counted (keys shrink as the log grows); None before the first count.
    newest: Option<u64>,
    /// Minute (ms since the epoch / `MINUTE_MS`) -> (succeeded, failed).
    minutes: BTreeMap<i64, (u32, u32)>,
}

impl Tally {
    fn add(&mut self, at_ms: i64, succeeded: bool) {
        let minute = self.minutes.entry(at_ms.div_euclid(MINUTE_MS)).or_default();
        if succeeded {
            minute.0 += 1;
        } else {
            minute.1 += 1;
        }
    }

    /// Forgets the minutes outside the day before and after `end_ms`.
    fn keep_around(&mut self, end_ms: i64) {
        let first = (end_ms - DAY_MS).div_euclid(MINUTE_MS);
        let last = (end_ms + DAY_MS).div_euclid(MINUTE_MS);
        self.minutes = self.minutes.split_off(&first);
        self.minutes.split_off(&last);
    }

    /// The hourly buckets of the day ending at `end_ms` (a multiple of a minute), oldest first.
    fn day(&self, end_ms: i64) -> Vec<Bucket> {
        let start = end_ms - DAY_MS;
        let mut day: Vec<Bucket> = (0..BUCKETS as i64)
            .map(|i| Bucket {
                start_ms: start + i * HOUR_MS,
                ..Bucket::default()
            })
            .collect();
        let range = start.div_euclid(MINUTE_MS)..end_ms.div_euclid(MINUTE_MS);
        for (minute, (succeeded, failed)) in self.minutes.range(range) {
            let bucket = &mut day[((minute * MINUTE_MS - start) / HOUR_MS) as usize];
            bucket.succeeded += succeeded;
            bucket.failed += failed;
        }
        day
    }
}

/// The end of the minute `now_ms` is in: where a report's last hour ends.
pub fn report_end(now_ms: i64) -> i64 {
    (now_ms.div_euclid(MINUTE_MS) + 1) * MINUTE_MS
}

struct Slot {
    tally: Arc<tokio::sync::Mutex<Tally>>,
    /// When it was last asked for (a counter of calls).
    used: u64,
}

/// Every webhook's tally on this instance.
#[derive(Default)]
pub struct AttemptCounts {
    slots: Mutex<(HashMap<u64, Slot>, u64)>,
}

impl AttemptCounts {
    fn tally(&self, webhook_id: u64) -> Arc<tokio::sync::Mutex<Tally>> {
        let mut guard = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let (slots, calls) = &mut *guard;
        *calls += 1;
        let used = *calls;
        if !slots.contains_key(&webhook_id) && slots.len() >= MAX_WEBHOOKS {
            let oldest = slots.iter().min_by_key(|(_, s)| s.used).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        let slot = slots.entry(webhook_id).or_insert_with(|| Slot {
            tally: Arc::default(),
            used,
        });
        slot.used = used;
        slot.tally.clone()
    }

    /// Attempts per hour of the day ending at `end_ms` (see `report_end`), after counting
    /// the log entries the tally has not seen. Concurrent calls for one webhook count once.
    pub async fn hourly(
        &self,
        store: &dyn Store,
        webhook_id: u64,
        end_ms: i64,
    ) -> Result<Vec<Bucket>> {
        let tally = self.tally(webhook_id);
        let mut tally = tally.lock().await;
        let mut seen = Vec::new();
        let mut after = None;
        let mut first = None;
        let mut limit = if tally.newest.is_some() { 1 } else { SCAN_PAGE };
        'scan: loop {
            let page = Page {
                after,
                offset: 0,
                limit,
            };
            let entries = store.list_responses(webhook_id, page).await?;
            let full = entries.len() == limit;
            for (key, record) in entries {
                if tally.newest.is_some_and(|newest| key >= newest) {
                    break 'scan;
                }
                first.get_or_insert(key);
                if end_ms - record.timestamp_ms > DAY_MS {
                    break 'scan;
                }
                after = Some(key);
                let ok = record.status_code.is_some_and(|s| (200..300).contains(&s));
                seen.push((record.timestamp_ms, ok));
                if seen.len() == SCAN_LIMIT {
                    break 'scan;
                }
            }
            if !full {
                break;
            }
            limit = (limit * 8).min(SCAN_PAGE);
        }
        // Counted only once every page was read: a failed read leaves the tally as it was.
        if let Some(first) = first {
            tally.newest = Some(first);
        }
        for (at_ms, ok) in seen {
            tally.add(at_ms, ok);
        }
        tally.keep_around(end_ms);
        Ok(tally.day(end_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::health::Health;
    use crate::model::Breaker;

    fn health(hourly: Vec<Bucket>) -> Health {
        Health {
            webhook_id: String::new(),
            is_webhook_enabled: true,
            disabled_reason: String::new(),
            last_success_ms: None,
            last_failure_ms: None,
            failing_since_ms: None,
            breaker: Breaker::Closed,
            pending: 0,
            hourly,
        }
    }

    #[test]
    fn attempts_fall_into_the_hour_of_their_minute_and_the_day_sums_them() {
        let now = 100 * HOUR_MS + 30 * MINUTE_MS + 12_345;
        let end = report_end(now);
        assert_eq!(end, 100 * HOUR_MS + 31 * MINUTE_MS);
        let mut tally = Tally::default();
        tally.add(now, true);
        tally.add(end - HOUR_MS, false); // the first minute of the last hour
        tally.add(end - HOUR_MS - 1, false); // the last minute of the hour before
        tally.add(end - DAY_MS, true); // the first minute of the day
        // Outside the day (too old, or in the future) is not counted.
        tally.add(end - DAY_MS - 1, true);
        tally.add(end, true);
        let health = health(tally.day(end));
        assert_eq!(health.hourly.len(), BUCKETS);
        assert_eq!(health.hourly[0].start_ms, end - DAY_MS);
        assert_eq!(health.hourly[23].start_ms, end - HOUR_MS);
        let hour = health.last_hour();
        assert_eq!((hour.succeeded, hour.failed), (1, 1));
        assert_eq!(
            (health.hourly[22].succeeded, health.hourly[22].failed),
            (0, 1)
        );
        assert_eq!(
            (health.hourly[0].succeeded, health.hourly[0].failed),
            (1, 0)
        );
        let day = health.last_day();
        assert_eq!((day.succeeded, day.failed), (2, 2));
        assert_eq!(day.start_ms, end - DAY_MS);
    }

    #[test]
    fn a_tally_keeps_at_most_the_day_around_the_report() {
        let end = report_end(1000 * HOUR_MS);
        let mut tally = Tally::default();
        for minute in -3000..3000 {
            tally.add(end + minute * MINUTE_MS, false);
        }
        tally.keep_around(end);
        assert_eq!(tally.minutes.len(), 2 * 24 * 60);
        let day = health(tally.day(end)).last_day();
        assert_eq!((day.succeeded, day.failed), (0, 24 * 60));
    }

    #[test]
    fn the_least_recently_asked_webhook_is_forgotten_first() {
        let counts = AttemptCounts::default();
        for id in 0..MAX_WEBHOOKS as u64 {
            counts.tally(id);
        }
        let first = counts.tally(0);
        counts.tally(MAX_WEBHOOKS as u64);
        let slots = counts.slots.lock().unwrap();
        assert_eq!(slots.0.len(), MAX_WEBHOOKS);
        assert!(
            !slots.0.contains_key(&1),
            "webhook 1 was asked for longest ago"
        );
        assert!(Arc::ptr_eq(&slots.0[&0].tally, &first));
    }
}
