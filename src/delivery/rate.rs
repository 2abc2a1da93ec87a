//! Per-webhook rate limits as token buckets: pure arithmetic over explicit times (ms since
//! the epoch), no clock and no locking; the scheduler owns one bucket per rate-limited
//! webhook and asks it whether a delivery may go now or when it may.
//!
//! A bucket holds up to `burst` tokens and refills at the effective rate; each attempt takes
//! one. A 429 answer halves the effective rate (at most once a second, down to 1/64 of the
//! configured rate) and empties the bucket; the lowered rate holds for a cooldown and then
//! recovers gradually, doubling once per further cooldown until it is back at the configured
//! rate. Limits are per process: N instances sharing a database allow N x the rate.
//! Depends on the model only.

use crate::model::Webhook;

/// A 429 halves the effective rate at most once per this many ms (answers to attempts that
/// were already in flight do not halve it again).
const THROTTLE_EVERY_MS: i64 = 1000;

/// The effective rate never drops below this share of the configured rate.
const MIN_FACTOR: f64 = 1.0 / 64.0;

/// A webhook's configured limit (burst resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Attempts per second.
    pub per_second: u32,
    /// Attempts that may go at once after a quiet period (at least 1).
    pub burst: u32,
}

impl RateLimit {
    /// The limit a webhook asks for; None when it is unlimited (rate 0). A burst of 0 is the
    /// rate (one second's worth).
    pub fn of(webhook: &Webhook) -> Option<RateLimit> {
        RateLimit::new(webhook.rate_limit_per_second, webhook.rate_limit_burst)
    }

    /// See `of`.
    pub fn new(per_second: u32, burst: u32) -> Option<RateLimit> {
        (per_second > 0).then_some(RateLimit {
            per_second,
            burst: if burst == 0 { per_second } else { burst },
        })
    }
}

/// One webhook's token bucket and its 429 slowdown.
#[derive(Debug, Clone)]
pub struct Bucket {
    limit: RateLimit,
    cooldown_ms: i64,
    tokens: f64,
    updated_ms: i64,
    /// Share of the configured rate set by the last 429 (1 = none).
    slowed_to: f64,
    slowed_at_ms: i64,
}

impl Bucket {
    /// A full bucket at `now_ms`; a 429 slows it down for `cooldown_ms`.
    pub fn new(limit: RateLimit, cooldown_ms: i64, now_ms: i64) -> Bucket {
        Bucket {
            limit,
            cooldown_ms: cooldown_ms.max(1),
            tokens: f64::from(limit.burst),
            updated_ms: now_ms,
            slowed_to: 1.0,
            slowed_at_ms: now_ms,
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Applies a changed limit, keeping the tokens (up to the new burst) and any slowdown.
    pub fn reconfigure(&mut self, limit: RateLimit, now_ms: i64) {
        self.refill(now_ms);
        self.limit = limit;
        self.tokens = self.tokens.min(f64::from(limit.burst));
    }

    /// Share of the configured rate in effect at `now_ms`: the 429 factor for a cooldown,
    /// then doubling per further cooldown up to 1.
    fn factor(&self, now_ms: i64) -> f64 {
        if self.slowed_to >= 1.0 {
            return 1.0;
        }
        let since = now_ms.saturating_sub(self.slowed_at_ms);
        if since <= self.cooldown_ms {
            return self.slowed_to;
        }
        let periods = (since - self.cooldown_ms) as f64 / self.cooldown_ms as f64;
        (self.slowed_to * periods.exp2()).min(1.0)
    }

    /// Attempts per second allowed at `now_ms`.
    pub fn effective_per_second(&self, now_ms: i64) -> f64 {
        f64::from(self.limit.per_second) * self.factor(now_ms)
    }

    fn refill(&mut self, now_ms: i64) {
        if now_ms > self.updated_ms {
            let seconds = (now_ms - self.updated_ms) as f64 / 1000.0;
            let refilled = self.tokens + seconds * self.effective_per_second(now_ms);
            self.tokens = refilled.min(f64::from(self.limit.burst));
            self.updated_ms = now_ms;
        }
    }

    /// Takes a token at `now_ms`, or says when (ms) the next one will be there.
    pub fn take(&mut self, now_ms: i64) -> Result<(), i64> {
        self.refill(now_ms);
        // The margin absorbs the rounding of many small refills.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        let wait_ms =
            ((1.0 - self.tokens) * 1000.0 / self.effective_per_second(now_ms) - 1e-6).ceil();
        Err(now_ms.saturating_add((wait_ms as i64).max(1)))
    }

    /// The endpoint answered 429: halves the effective rate and empties the bucket (at most
    /// once per `THROTTLE_EVERY_MS`).
    pub fn throttled(&mut self, now_ms: i64) {
        if self.slowed_to < 1.0 && now_ms - self.slowed_at_ms < THROTTLE_EVERY_MS {
            return;
        }
        self.refill(now_ms);
        self.slowed_to = (self.factor(now_ms) / 2.0).max(MIN_FACTOR);
        self.slowed_at_ms = now_ms;
        self.tokens = self.tokens.min(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20/s with a burst of 5, a 10 s cooldown.
    fn bucket(now_ms: i64) -> Bucket {
        Bucket::new(RateLimit::new(20, 5).unwrap(), 10_000, now_ms)
    }

    /// How many tokens can be taken at `now_ms`.
    fn drain(bucket: &mut Bucket, now_ms: i64) -> usize {
        std::iter::from_fn(|| bucket.take(now_ms).ok()).count()
    }

    #[test]
    fn a_zero_rate_is_unlimited_and_a_zero_burst_is_the_rate() {
        assert_eq!(RateLimit::new(0, 5), None);
        assert_eq!(
            RateLimit::new(20, 0),
            Some(RateLimit {
                per_second: 20,
                burst: 20
            })
        );
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_one_token_per_interval() {
        let mut bucket = bucket(1_000);
        assert_eq!(drain(&mut bucket, 1_000), 5);
        // The next token is 50 ms away at 20/s.
        assert_eq!(bucket.take(1_000), Err(1_050));
        assert_eq!(bucket.take(1_049), Err(1_050));
        assert_eq!(bucket.take(1_050), Ok(()));
        // One second refills 20 tokens, capped at the burst.
        assert_eq!(drain(&mut bucket, 3_000), 5);
    }

    #[test]
    fn over_a_second_no_more_than_burst_plus_rate_go() {
        let mut bucket = bucket(0);
        let taken = (0..=1000)
            .step_by(10)
            .map(|t| drain(&mut bucket, t))
            .sum::<usize>();
        assert_eq!(taken, 5 + 20);
    }

    #[test]
    fn a_429_halves_the_rate_for_a_cooldown_then_it_recovers_gradually() {
        let mut bucket = bucket(0);
        bucket.throttled(0);
        assert_eq!(bucket.effective_per_second(0), 10.0);
        assert_eq!(bucket.take(0), Err(100));
        // Answers to attempts already in flight do not halve it again.
        bucket.throttled(500);
        assert_eq!(bucket.effective_per_second(500), 10.0);
        bucket.throttled(1_000);
        assert_eq!(bucket.effective_per_second(1_000), 5.0);
        assert_eq!(bucket.effective_per_second(11_000), 5.0);
        assert_eq!(bucket.effective_per_second(16_000), 5.0 * 0.5f64.exp2());
        assert_eq!(bucket.effective_per_second(21_000), 10.0);
        assert_eq!(bucket.effective_per_second(31_000), 20.0);
        assert_eq!(bucket.effective_per_second(90_000), 20.0);
    }

    #[test]
    fn the_rate_never_drops_below_a_floor() {
        let mut bucket = bucket(0);
        for second in 0..20 {
            bucket.throttled(second * 1000);
        }
        assert_eq!(bucket.effective_per_second(20_000), 20.0 / 64.0);
    }

    #[test]
    fn a_changed_limit_keeps_the_tokens_up_to_the_new_burst() {
        let mut bucket = bucket(0);
        bucket.reconfigure(RateLimit::new(1, 2).unwrap(), 0);
        assert_eq!(drain(&mut bucket, 0), 2);
        assert_eq!(bucket.take(0), Err(1_000));
        assert_eq!(bucket.limit(), RateLimit::new(1, 2).unwrap());
    }
}
