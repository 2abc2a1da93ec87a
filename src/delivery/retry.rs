//! Retry policy as pure functions: classify one attempt's result (success, retry, give up),
//! pick the delay before the next attempt from the configured schedule (jitter,
//! clamped `Retry-After`), and parse a schedule such as `5s,5m,30m,2h`.
//! Depends on `delivery::client` for the attempt result types only.

use std::time::Duration;

use rand::Rng as _;

use super::client::{AttemptError, AttemptResponse};

/// The upper bound of a delay taken from `Retry-After`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest delay one item of a retry schedule may ask for (global or per webhook).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The most delays a retry schedule may list.
pub const MAX_SCHEDULE_ITEMS: usize = 100;

/// Jitter spreads a scheduled delay uniformly over ±this fraction of it.
const JITTER_FRACTION: f64 = 0.2;

/// What to do after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Retry(String),
    GiveUp(String),
}

/// 2xx -> Success; timeouts, connection/io errors, 5xx, 429, 408 -> Retry(reason); Refused and InvalidRequest -> GiveUp; other statuses (3xx, 4xx) -> GiveUp(reason) ("HTTP 404 Not Found" style reason).
pub fn classify(result: &Result<AttemptResponse, AttemptError>) -> Outcome {
    match result {
        Ok(response) => {
            let status = response.status;
            if (200..300).contains(&status) {
                Outcome::Success
            } else if status >= 500 || status == 429 || status == 408 {
                Outcome::Retry(status_reason(status))
            } else {
                Outcome::GiveUp(status_reason(status))
            }
        }
        Err(
            error @ (AttemptError::Timeout
            | AttemptError::Connect(_)
            | AttemptError::Proxy(_)
            | AttemptError::Io(_)),
        ) => Outcome::Retry(error.to_string()),
        Err(error @ (AttemptError::Refused(_) | AttemptError::InvalidRequest(_))) => {
            Outcome::GiveUp(error.to_string())
        }
    }
}

/// "HTTP 404 Not Found", or "HTTP 599" for a status without a standard reason phrase.
pub fn status_reason(status: u16) -> String {
    let phrase = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason());
    match phrase {
        Some(phrase) => format!("HTTP {status} {phrase}"),
        None => format!("HTTP {status}"),
    }
}

/// Returns true for 410 Gone (the caller disables the webhook).
pub fn disables_webhook(status: u16) -> bool {
    status == 410
}

/// Delay before attempt number `next_attempt` (2 = first retry) given the schedule (schedule[0] is the delay before attempt 2); None when the schedule is exhausted or next_attempt > max_attempts (max_attempts 0 = schedule.len()+1). `jitter` applies ±20% uniformly.
///
/// The first attempt (`next_attempt` 0 or 1) is immediate: `Some(Duration::ZERO)`.
///
/// `retry_after` (from the response) replaces the scheduled delay, clamped to
/// `[delay, max(delay, MAX_RETRY_AFTER)]` where `delay` is the (jittered) scheduled delay: a
/// receiver can slow retries down, never speed them up, and never beyond 24 hours unless
/// the schedule itself waits longer. The server's value is used as given, without jitter.
pub fn next_delay(
    schedule: &[Duration],
    next_attempt: u32,
    max_attempts: u32,
    jitter: bool,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if next_attempt < 2 {
        return Some(Duration::ZERO);
    }
    let limit = if max_attempts == 0 {
        u32::try_from(schedule.len()).map_or(u32::MAX, |len| len.saturating_add(1))
    } else {
        max_attempts
    };
    if next_attempt > limit {
        return None;
    }
    let scheduled = *schedule.get(usize::try_from(next_attempt - 2).ok()?)?;
    let delay = if jitter {
        scheduled.mul_f64(rand::rng().random_range(1.0 - JITTER_FRACTION..=1.0 + JITTER_FRACTION))
    } else {
        scheduled
    };
    Some(match retry_after {
        Some(wanted) => wanted.clamp(delay, delay.max(MAX_RETRY_AFTER)),
        None => delay,
    })
}

/// Parses "5s,5m,30m,2h" (humantime units incl. ms) into delays; Err(message) for an empty or
/// bad item, an item over `MAX_RETRY_DELAY`, or more than `MAX_SCHEDULE_ITEMS` items.
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    if text.trim().is_empty() {
        return Err("retry schedule is empty; expected delays like \"5s,5m,30m\"".to_string());
    }
    if text.split(',').count() > MAX_SCHEDULE_ITEMS {
        return Err(format!(
            "retry schedule has more than {MAX_SCHEDULE_ITEMS} delays"
        ));
    }
    text.split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!(
                    "retry schedule item {} is empty; expected delays like \"5s,5m,30m\"",
                    index + 1
                ));
            }
            let delay = humantime::parse_duration(item).map_err(|error| {
                format!("retry schedule item {:?} is not a duration: {error}", item)
            })?;
            if delay > MAX_RETRY_DELAY {
                return Err(format!(
                    "retry schedule item {item:?} is longer than the maximum of {}",
                    humantime::format_duration(MAX_RETRY_DELAY)
                ));
            }
            Ok(delay)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16) -> Result<AttemptResponse, AttemptError> {
        Ok(AttemptResponse {
            status,
            headers: Vec::new(),
            body: String::new(),
            retry_after: None,
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn success_is_any_2xx() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(classify(&response(status)), Outcome::Success, "{status}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for (status, reason) in [
            (500, "HTTP 500 Internal Server Error"),
            (502, "HTTP 502 Bad Gateway"),
            (503, "HTTP 503 Service Unavailable"),
            (429, "HTTP 429 Too Many Requests"),
            (408, "HTTP 408 Request Timeout"),
            (599, "HTTP 599"),
        ] {
            assert_eq!(classify(&response(status)), Outcome::Retry(reason.into()));
        }
    }

    #[test]
    fn final_statuses() {
        for (status, reason) in [
            (301, "HTTP 301 Moved Permanently"),
            (302, "HTTP 302 Found"),
            (400, "HTTP 400 Bad Request"),
            (401, "HTTP 401 Unauthorized"),
            (404, "HTTP 404 Not Found"),
            (410, "HTTP 410 Gone"),
            (422, "HTTP 422 Unprocessable Entity"),
            (101, "HTTP 101 Switching Protocols"),
        ] {
            assert_eq!(classify(&response(status)), Outcome::GiveUp(reason.into()));
        }
    }

    #[test]
    fn transport_errors_retry_and_policy_errors_give_up() {
        for error in [
            AttemptError::Timeout,
            AttemptError::Connect("connection refused".into()),
            AttemptError::Io("connection reset".into()),
        ] {
            let expected = Outcome::Retry(error.to_string());
            assert_eq!(classify(&Err(error)), expected);
        }
        for error in [
            AttemptError::Refused("target address 127.0.0.1 is loopback".into()),
            AttemptError::InvalidRequest("bad url".into()),
        ] {
            let expected = Outcome::GiveUp(error.to_string());
            assert_eq!(classify(&Err(error)), expected);
        }
    }

    #[test]
    fn only_gone_disables() {
        assert!(disables_webhook(410));
        for status in [200, 404, 500, 429, 301] {
            assert!(!disables_webhook(status), "{status}");
        }
    }

    #[test]
    fn follows_the_schedule_until_exhausted() {
        let schedule = [ms(10), ms(20), ms(50)];
        assert_eq!(
            next_delay(&schedule, 1, 0, false, None),
            Some(Duration::ZERO)
        );
        assert_eq!(next_delay(&schedule, 2, 0, false, None), Some(ms(10)));
        assert_eq!(next_delay(&schedule, 3, 0, false, None), Some(ms(20)));
        assert_eq!(next_delay(&schedule, 4, 0, false, None), Some(ms(50)));
        assert_eq!(next_delay(&schedule, 5, 0, false, None), None);
        assert_eq!(next_delay(&[], 2, 0, false, None), None);
    }

    #[test]
    fn max_attempts_caps_the_schedule() {
        let schedule = [ms(10), ms(20), ms(50)];
        assert_eq!(next_delay(&schedule, 2, 2, false, None), Some(ms(10)));
        assert_eq!(next_delay(&schedule, 3, 2, false, None), None);
        assert_eq!(next_delay(&schedule, 2, 1, false, None), None);
        // A larger max_attempts does not extend the schedule.
        assert_eq!(next_delay(&schedule, 5, 10, false, None), None);
    }

    #[test]
    fn retry_after_is_clamped() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(48 * 3600)];
        let secs = Duration::from_secs;
        // Longer than scheduled: honoured.
        assert_eq!(
            next_delay(&schedule, 2, 0, false, Some(secs(120))),
            Some(secs(120))
        );
        // Shorter than scheduled: the schedule wins.
        assert_eq!(
            next_delay(&schedule, 2, 0, false, Some(secs(1))),
            Some(secs(5))
        );
        // Never beyond 24 hours...
        assert_eq!(
            next_delay(&schedule, 2, 0, false, Some(secs(7 * 86400))),
            Some(MAX_RETRY_AFTER)
        );
        // ...unless the schedule itself waits longer.
        assert_eq!(
            next_delay(&schedule, 3, 0, false, Some(secs(7 * 86400))),
            Some(secs(48 * 3600))
        );
        // An exhausted schedule stays exhausted.
        assert_eq!(next_delay(&schedule, 4, 0, false, Some(secs(1))), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_spreads() {
        let base = Duration::from_secs(100);
        let draws: Vec<f64> = (0..10_000)
            .map(|_| next_delay(&[base], 2, 0, true, None).unwrap().as_secs_f64())
            .collect();
        assert!(draws.iter().all(|d| (80.0..=120.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 100.0).abs() < 1.0, "mean {mean}");
        let min = draws.iter().cloned().fold(f64::MAX, f64::min);
        let max = draws.iter().cloned().fold(f64::MIN, f64::max);
        assert!(min < 81.0 && max > 119.0, "range {min}..{max}");
        let below = draws.iter().filter(|d| **d < 90.0).count();
        assert!((2_000..3_000).contains(&below), "{below} draws below 90s");
    }

    #[test]
    fn jitter_does_not_undercut_retry_after() {
        let base = Duration::from_secs(10);
        for _ in 0..1_000 {
            let delay = next_delay(&[base], 2, 0, true, Some(Duration::from_secs(60))).unwrap();
            assert_eq!(delay, Duration::from_secs(60));
        }
    }

    #[test]
    fn parses_schedules() {
        assert_eq!(
            parse_schedule("5s,5m,30m,2h").unwrap(),
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(1800),
                Duration::from_secs(7200)
            ]
        );
        assert_eq!(
            parse_schedule("10ms, 20ms ,50ms").unwrap(),
            vec![ms(10), ms(20), ms(50)]
        );
        assert_eq!(
            parse_schedule("1h 30m").unwrap(),
            vec![Duration::from_secs(5400)]
        );
    }

    #[test]
    fn rejects_bad_schedules() {
        assert!(parse_schedule("").unwrap_err().contains("empty"));
        assert!(parse_schedule("  ").unwrap_err().contains("empty"));
        assert!(
            parse_schedule("5s,,5m")
                .unwrap_err()
                .contains("item 2 is empty")
        );
        assert!(
            parse_schedule("5s,")
                .unwrap_err()
                .contains("item 2 is empty")
        );
        assert!(parse_schedule("5s,soon").unwrap_err().contains("\"soon\""));
        assert!(parse_schedule("5").is_err());
        assert!(parse_schedule("-5s").is_err());
    }

    #[test]
    fn a_schedule_is_bounded_to_a_week_per_delay_and_a_hundred_delays() {
        assert_eq!(parse_schedule("7d").unwrap(), [MAX_RETRY_DELAY]);
        let longer = parse_schedule("1s,7d 1s").unwrap_err();
        assert!(
            longer.contains("\"7d 1s\"") && longer.contains("7days"),
            "{longer}"
        );
        // Far beyond i64 milliseconds: refused, never wrapped around into the past.
        assert!(
            parse_schedule("500000000y")
                .unwrap_err()
                .contains("maximum")
        );
        assert!(parse_schedule(&vec!["1s"; 100].join(",")).is_ok());
        assert!(
            parse_schedule(&vec!["1s"; 101].join(","))
                .unwrap_err()
                .contains("more than 100")
        );
    }
}
