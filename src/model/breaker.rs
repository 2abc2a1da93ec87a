//! A webhook's circuit breaker as the store keeps it, beside the webhook's stats, so every
//! instance sharing the store sees the failures of all of them. One pure step function
//! (`BreakerState::step`) says how an attempt moves it; both backends run it on the stats
//! row as their write locked it (the store conformance suite holds both to the same
//! outcomes).
//!
//! - Consecutive endpoint failures (timeouts, connection errors, 5xx, 429) count up; an
//!   answer resets them. A failure that reaches the threshold opens the breaker for the
//!   cooldown (level 0).
//! - While it is open, failures of attempts that were already in flight count but change
//!   nothing else. Once the open period has passed (half-open) the next failure re-opens it
//!   for twice as long (level + 1), up to `MAX_COOLDOWN`; the next answer closes it.
//! - The write that opens it and the one that closes it mark themselves (`changed_seq` is
//!   the attempt's log sequence number): exactly one write sees each transition, whichever
//!   instance made it.
//! - Attempts that say nothing about the endpoint (a refused target, a template error, a
//!   failing egress proxy) leave it as it is.

use serde::{Deserialize, Serialize};

/// The longest open period of a breaker (its cooldown doubles up to this).
pub const MAX_COOLDOWN_MS: i64 = 5 * 60 * 1000;

/// Cooldowns longer than this (about 35 years) are cut to it, so doubling never overflows.
const COOLDOWN_CAP_MS: i64 = 1 << 40;

/// What an attempt says about the webhook's endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint answered (any status it is not struggling with): closes the breaker.
    Answered,
    /// Timeout, connection error, 5xx, 408 or 429: one more consecutive failure.
    Failing,
    /// Nothing about the endpoint: no request left (refused target, template error), or
    /// nothing was attempted.
    #[default]
    Unknown,
    /// The egress proxy failed: not the endpoint's fault, so the failure counts neither
    /// toward the breaker nor toward the webhook's run of failures (auto-disable).
    ProxyFailed,
}

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open it (at least 1).
    pub threshold: u32,
    /// Its first open period, ms.
    pub cooldown_ms: i64,
    /// Its longest open period, ms.
    pub max_cooldown_ms: i64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy::new(5, std::time::Duration::from_secs(1))
    }
}

impl BreakerPolicy {
    /// A policy opening after `threshold` failures for `cooldown`, doubling up to
    /// `MAX_COOLDOWN_MS` (or the cooldown itself, if longer).
    pub fn new(threshold: u32, cooldown: std::time::Duration) -> BreakerPolicy {
        let cooldown_ms = i64::try_from(cooldown.as_millis())
            .unwrap_or(i64::MAX)
            .clamp(0, COOLDOWN_CAP_MS);
        BreakerPolicy {
            threshold: threshold.max(1),
            cooldown_ms,
            max_cooldown_ms: MAX_COOLDOWN_MS.max(cooldown_ms),
        }
    }

    /// The open period at `level` (0 for the first opening).
    pub fn cooldown_ms(&self, level: u32) -> i64 {
        self.cooldown_ms
            .saturating_mul(1 << level.min(16))
            .min(self.max_cooldown_ms)
    }
}

/// What an attempt tells the breaker: its verdict, under which policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerStep {
    /// What the attempt says about the endpoint.
    pub verdict: Verdict,
    /// The breaker's settings.
    pub policy: BreakerPolicy,
}

/// The breaker of a webhook's endpoint at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    /// Deliveries go out.
    Closed,
    /// Too many consecutive failures: deliveries wait for the cooldown.
    Open,
    /// The cooldown is over: a probe decides.
    HalfOpen,
}

/// A webhook's stored breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakerState {
    /// Endpoint failures since its last answer.
    pub consecutive_failures: u32,
    /// End of the open period while the breaker is tripped (open, then half-open once it
    /// has passed); None while it is closed.
    pub open_until_ms: Option<i64>,
    /// Failed probes since it opened: the open period is the cooldown doubled this often.
    pub cooldown_level: u32,
    /// When it last opened.
    pub opened_at_ms: Option<i64>,
    /// Log sequence number of the attempt that last opened or closed it (0: never).
    pub changed_seq: u64,
    /// When that attempt was made.
    pub changed_at_ms: i64,
}

/// A transition of a breaker, reported by the one write that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerTransition {
    /// It opened.
    Opened {
        /// Failures that opened it.
        consecutive_failures: u32,
        /// When.
        opened_at_ms: i64,
        /// Until when deliveries wait.
        open_until_ms: i64,
    },
    /// An answer closed it.
    Closed {
        /// When it had opened.
        opened_at_ms: i64,
        /// When it closed.
        closed_at_ms: i64,
    },
}

impl BreakerState {
    /// Moves the breaker by an attempt made at `at_ms` whose log sequence number is `seq`.
    pub fn step(&mut self, step: BreakerStep, at_ms: i64, seq: u64) {
        match step.verdict {
            Verdict::Answered => {
                if self.open_until_ms.is_some() {
                    self.changed_seq = seq;
                    self.changed_at_ms = at_ms;
                }
                self.consecutive_failures = 0;
                self.open_until_ms = None;
                self.cooldown_level = 0;
            }
            Verdict::Failing => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures < step.policy.threshold.max(1) {
                    return;
                }
                match self.open_until_ms {
                    None => {
                        self.cooldown_level = 0;
                        self.open_until_ms = Some(at_ms + step.policy.cooldown_ms(0));
                        self.opened_at_ms = Some(at_ms);
                        self.changed_seq = seq;
                        self.changed_at_ms = at_ms;
                    }
                    Some(until) if until <= at_ms => {
                        self.cooldown_level = self.cooldown_level.saturating_add(1);
                        let cooldown = step.policy.cooldown_ms(self.cooldown_level);
                        self.open_until_ms = Some(at_ms + cooldown);
                    }
                    Some(_) => {}
                }
            }
            Verdict::Unknown | Verdict::ProxyFailed => {}
        }
    }

    /// Where it stands at `now_ms`.
    pub fn phase(&self, now_ms: i64) -> Breaker {
        match self.open_until_ms {
            None => Breaker::Closed,
            Some(until) if now_ms < until => Breaker::Open,
            Some(_) => Breaker::HalfOpen,
        }
    }

    /// The transition made by the write whose log sequence number is `seq`, if it made one.
    pub fn transition_at(&self, seq: u64) -> Option<BreakerTransition> {
        if seq == 0 || self.changed_seq != seq {
            return None;
        }
        let opened_at_ms = self.opened_at_ms.unwrap_or(self.changed_at_ms);
        Some(match self.open_until_ms {
            Some(open_until_ms) => BreakerTransition::Opened {
                consecutive_failures: self.consecutive_failures,
                opened_at_ms,
                open_until_ms,
            },
            None => BreakerTransition::Closed {
                opened_at_ms,
                closed_at_ms: self.changed_at_ms,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        threshold: 2,
        cooldown_ms: 100,
        max_cooldown_ms: 250,
    };

    fn step(state: &mut BreakerState, verdict: Verdict, at_ms: i64, seq: u64) {
        state.step(
            BreakerStep {
                verdict,
                policy: POLICY,
            },
            at_ms,
            seq,
        );
    }

    #[test]
    fn failures_open_it_once_failed_probes_double_the_pause_and_an_answer_closes_it() {
        let mut breaker = BreakerState::default();
        step(&mut breaker, Verdict::Failing, 0, 1);
        assert_eq!(breaker.phase(0), Breaker::Closed);
        assert_eq!(breaker.transition_at(1), None);
        step(&mut breaker, Verdict::Failing, 10, 2);
        assert_eq!(breaker.phase(50), Breaker::Open);
        assert_eq!(
            breaker.transition_at(2),
            Some(BreakerTransition::Opened {
                consecutive_failures: 2,
                opened_at_ms: 10,
                open_until_ms: 110
            })
        );
        // An attempt that was in flight fails while it is open: counted, nothing else.
        step(&mut breaker, Verdict::Failing, 20, 3);
        assert_eq!(
            (breaker.consecutive_failures, breaker.open_until_ms),
            (3, Some(110))
        );
        assert_eq!(breaker.transition_at(3), None);
        assert_eq!(breaker.phase(110), Breaker::HalfOpen);
        // Failed probes: 200 ms, then the 250 ms cap; not a new opening.
        step(&mut breaker, Verdict::Failing, 110, 4);
        assert_eq!(breaker.open_until_ms, Some(310));
        step(&mut breaker, Verdict::Failing, 310, 5);
        assert_eq!(breaker.open_until_ms, Some(560));
        assert_eq!(breaker.transition_at(5), None);
        // Proxy failures and refused targets say nothing.
        step(&mut breaker, Verdict::ProxyFailed, 600, 6);
        step(&mut breaker, Verdict::Unknown, 600, 7);
        assert_eq!(breaker.consecutive_failures, 5);
        step(&mut breaker, Verdict::Answered, 600, 8);
        assert_eq!(breaker.phase(600), Breaker::Closed);
        assert_eq!(
            breaker.transition_at(8),
            Some(BreakerTransition::Closed {
                opened_at_ms: 10,
                closed_at_ms: 600
            })
        );
        // Another answer is no transition; the next opening starts at the first pause.
        step(&mut breaker, Verdict::Answered, 610, 9);
        assert_eq!(breaker.transition_at(9), None);
        step(&mut breaker, Verdict::Failing, 700, 10);
        step(&mut breaker, Verdict::Failing, 700, 11);
        assert_eq!(breaker.open_until_ms, Some(800));
    }

    #[test]
    fn the_policy_keeps_a_threshold_of_one_and_cooldowns_that_cannot_overflow() {
        let policy = BreakerPolicy::new(0, std::time::Duration::MAX);
        assert_eq!(policy.threshold, 1);
        assert!(policy.cooldown_ms(u32::MAX) <= COOLDOWN_CAP_MS);
        let policy = BreakerPolicy::new(5, std::time::Duration::from_secs(1));
        assert_eq!(policy.cooldown_ms(3), 8_000);
        assert_eq!(policy.cooldown_ms(20), MAX_COOLDOWN_MS);
    }
}
