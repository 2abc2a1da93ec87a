//! The receiver's bookkeeping, one [`Sink`] per path name (`/ok/<sink>`): arrivals, the first
//! arrival of every event id (and its emit->arrival time when the body carried a send time),
//! and duplicates: arrivals whose delivery id (`webhook-id`) arrived before. A
//! [`SinkSummary`] over a time window is what the load generator asks for after a phase.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::percentiles::Percentiles;

/// Every sink of a receiver, created on first use.
#[derive(Default)]
pub struct Sinks {
    sinks: RwLock<HashMap<String, Arc<Sink>>>,
    ids: RandomState,
}

impl Sinks {
    pub fn get(&self, name: &str) -> Arc<Sink> {
        if let Some(sink) = self.read().get(name) {
            return sink.clone();
        }
        let mut sinks = self.sinks.write().unwrap_or_else(PoisonError::into_inner);
        sinks.entry(name.to_string()).or_default().clone()
    }

    /// Arrivals per sink name.
    pub fn counts(&self) -> HashMap<String, u64> {
        self.read()
            .iter()
            .map(|(name, sink)| (name.clone(), sink.arrivals()))
            .collect()
    }

    /// Records one request to `sink` that arrived at `now_ns`.
    pub fn record(&self, sink: &str, arrival: Arrival<'_>) {
        let key = |id: &[u8]| self.ids.hash_one(id);
        self.get(sink).record(
            arrival.now_ns,
            arrival.event_id.map(key),
            arrival.delivery_id.map(key),
            arrival.sent_ns,
        );
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Sink>>> {
        self.sinks.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the receiver knows about one request.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub now_ns: u64,
    pub event_id: Option<&'a [u8]>,
    pub delivery_id: Option<&'a [u8]>,
    pub sent_ns: Option<u64>,
}

/// One sink's counters. Ids are kept as 64-bit hashes (a bench's few million ids collide
/// with negligible probability) so a million-request ceiling run stays small.
#[derive(Default)]
pub struct Sink {
    arrivals: AtomicU64,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    arrival_ns: Vec<u64>,
    deliveries: HashSet<u64>,
    duplicates: u64,
    without_event_id: u64,
    events: HashSet<u64>,
    /// (sent_ns or 0, first arrival ns) per distinct event.
    firsts: Vec<(u64, u64)>,
}

impl Sink {
    pub fn arrivals(&self) -> u64 {
        self.arrivals.load(Ordering::Relaxed)
    }

    fn record(&self, now_ns: u64, event: Option<u64>, delivery: Option<u64>, sent_ns: Option<u64>) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.arrival_ns.push(now_ns);
        if let Some(d) = delivery
            && !log.deliveries.insert(d)
        {
            log.duplicates += 1;
        }
        match event {
            Some(e) => {
                if log.events.insert(e) {
                    log.firsts.push((sent_ns.unwrap_or(0), now_ns));
                }
            }
            None => log.without_event_id += 1,
        }
        drop(log);
        self.arrivals.fetch_add(1, Ordering::Relaxed);
    }

    /// Totals, and what happened in `[from_ns, to_ns)`.
    pub fn summary(&self, from_ns: u64, to_ns: u64) -> SinkSummary {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let in_window = |t: u64| t >= from_ns && t < to_ns;
        let latencies = log
            .firsts
            .iter()
            .filter(|(sent, _)| *sent != 0 && in_window(*sent))
            .map(|(sent, arrived)| arrived.saturating_sub(*sent))
            .collect();
        SinkSummary {
            arrivals: log.arrival_ns.len() as u64,
            events: log.events.len() as u64,
            duplicates: log.duplicates,
            without_event_id: log.without_event_id,
            without_sent_time: log.firsts.iter().filter(|(sent, _)| *sent == 0).count() as u64,
            window: Window {
                from_ns,
                to_ns,
                arrivals: log.arrival_ns.iter().filter(|t| in_window(**t)).count() as u64,
                events: log.firsts.iter().filter(|(_, t)| in_window(*t)).count() as u64,
                arrivals_before_end: log.arrival_ns.iter().filter(|t| **t < to_ns).count() as u64,
            },
            latency: Percentiles::of(latencies),
        }
    }
}

/// `GET /_sink/<name>?from_ns=&to_ns=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkSummary {
    /// Every request so far.
    pub arrivals: u64,
    /// Distinct event ids so far.
    pub events: u64,
    /// Requests whose delivery id (`webhook-id`) had arrived before.
    pub duplicates: u64,
    pub without_event_id: u64,
    /// Events whose first arrival carried no `bench_sent_ns`.
    pub without_sent_time: u64,
    pub window: Window,
    /// Emit->arrival (first arrival) of the events sent within the window.
    pub latency: Percentiles,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub from_ns: u64,
    pub to_ns: u64,
    /// Requests that arrived within the window.
    pub arrivals: u64,
    /// Events whose first arrival was within the window.
    pub events: u64,
    /// Requests that arrived before the window's end.
    pub arrivals_before_end: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival<'a>(
        now_ns: u64,
        event: &'a str,
        delivery: &'a str,
        sent: Option<u64>,
    ) -> Arrival<'a> {
        Arrival {
            now_ns,
            event_id: Some(event.as_bytes()),
            delivery_id: Some(delivery.as_bytes()),
            sent_ns: sent,
        }
    }

    #[test]
    fn an_event_to_two_webhooks_is_one_event_and_a_repeated_delivery_is_a_duplicate() {
        let sinks = Sinks::default();
        sinks.record("s", arrival(100, "E1", "D1", Some(90)));
        sinks.record("s", arrival(105, "E1", "D2", Some(90)));
        sinks.record("s", arrival(300, "E1", "D1", Some(90)));
        sinks.record("s", arrival(200, "E2", "D3", Some(150)));
        let s = sinks.get("s").summary(0, u64::MAX);
        assert_eq!((s.arrivals, s.events, s.duplicates), (4, 2, 1));
        assert_eq!(s.latency.n, 2);
        assert_eq!(s.latency.max_ms, 50.0 / 1e6);
        assert_eq!(sinks.counts()["s"], 4);
    }

    #[test]
    fn the_window_counts_arrivals_and_measures_events_sent_within_it() {
        let sinks = Sinks::default();
        sinks.record("w", arrival(10, "E1", "D1", Some(5)));
        sinks.record("w", arrival(20, "E2", "D2", Some(12)));
        sinks.record("w", arrival(30, "E3", "D3", Some(19)));
        sinks.record("w", arrival(40, "E4", "D4", None));
        let s = sinks.get("w").summary(15, 35);
        assert_eq!(
            s.window,
            Window {
                from_ns: 15,
                to_ns: 35,
                arrivals: 2,
                events: 2,
                arrivals_before_end: 3
            }
        );
        assert_eq!(s.latency.n, 1, "only E3 was sent within the window");
        assert_eq!(s.without_sent_time, 1);
    }

    #[test]
    fn requests_without_ids_are_counted_but_not_deduplicated() {
        let sinks = Sinks::default();
        let bare = Arrival {
            now_ns: 1,
            event_id: None,
            delivery_id: None,
            sent_ns: None,
        };
        sinks.record("b", bare);
        sinks.record("b", bare);
        let s = sinks.get("b").summary(0, u64::MAX);
        assert_eq!(
            (s.arrivals, s.events, s.duplicates, s.without_event_id),
            (2, 0, 0, 2)
        );
    }
}
