//! The receiver's bookkeeping, one [`Sink`] per path name (`/ok/<sink>`): arrivals, the first
//! arrival of every event id (and its emit->arrival time when the body carried a send time),
//! the answers it failed on purpose (500), the connections requests came on, and duplicates: arrivals whose delivery id
//! (`webhook-id`) had already been answered 2xx (a retry after a 500 is not one). A
//! [`SinkSummary`] over a time window is what the load generator asks for after a phase; a
//! [`SinkCheck`] tells which of a list of event ids never got a 2xx, and when each duplicate
//! arrived after the success it repeats.

use std::collections::hash_map::Entry;
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

    /// Records one request to `sink` that arrived at `now_ns` and is answered 2xx unless
    /// `fails` (500).
    pub fn record(&self, sink: &str, arrival: Arrival<'_>, fails: bool) {
        self.get(sink).record(
            arrival.now_ns,
            arrival.event_id.map(|id| self.key(id)),
            arrival.delivery_id.map(|id| self.key(id)),
            arrival.sent_ns,
            arrival.connection,
            fails,
        );
    }

    /// Which of `event_ids` never got a 2xx at `sink`, and the sink's duplicates.
    pub fn check<'a>(
        &self,
        sink: &str,
        event_ids: impl IntoIterator<Item = &'a [u8]>,
    ) -> SinkCheck {
        let sink = self.get(sink);
        let log = sink.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut check = SinkCheck::default();
        for id in event_ids {
            check.asked += 1;
            if log.events.get(&self.key(id)) != Some(&true) {
                check.missing += 1;
            }
        }
        check.delivered_events = log.delivered;
        check.duplicates = log.repeats.clone();
        check
    }

    fn key(&self, id: &[u8]) -> u64 {
        self.ids.hash_one(id)
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
    /// The number of the connection it came on.
    pub connection: u64,
}

/// A map keyed by id hashes: they are hashed already, so the map uses them as they are.
type IdMap<V> = HashMap<u64, V, nohash_hasher::BuildNoHashHasher<u64>>;

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
    /// The first 2xx answer (ns) per delivery id.
    succeeded: IdMap<u64>,
    /// (first 2xx answer, repeat's arrival) per duplicate.
    repeats: Vec<(u64, u64)>,
    duplicates: u64,
    failed_answers: u64,
    /// Events answered 2xx at least once.
    delivered: u64,
    without_event_id: u64,
    /// Every event seen: whether it was answered 2xx at least once.
    events: IdMap<bool>,
    /// (sent_ns or 0, first arrival ns) per distinct event.
    firsts: Vec<(u64, u64)>,
    /// The connections requests came on.
    connections: HashSet<u64, nohash_hasher::BuildNoHashHasher<u64>>,
}

impl Sink {
    pub fn arrivals(&self) -> u64 {
        self.arrivals.load(Ordering::Relaxed)
    }

    fn record(
        &self,
        now_ns: u64,
        event: Option<u64>,
        delivery: Option<u64>,
        sent_ns: Option<u64>,
        connection: u64,
        fails: bool,
    ) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.arrival_ns.push(now_ns);
        log.connections.insert(connection);
        if let Some(d) = delivery {
            if let Some(&first_ok) = log.succeeded.get(&d) {
                log.duplicates += 1;
                log.repeats.push((first_ok, now_ns));
            } else if !fails {
                log.succeeded.insert(d, now_ns);
            }
        }
        if fails {
            log.failed_answers += 1;
        }
        match event {
            Some(e) => {
                let newly_delivered = match log.events.entry(e) {
                    Entry::Vacant(first) => {
                        first.insert(!fails);
                        log.firsts.push((sent_ns.unwrap_or(0), now_ns));
                        !fails
                    }
                    Entry::Occupied(mut seen) => !fails && !std::mem::replace(seen.get_mut(), true),
                };
                log.delivered += u64::from(newly_delivered);
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
            connections: log.connections.len() as u64,
            events: log.events.len() as u64,
            duplicates: log.duplicates,
            failed_answers: log.failed_answers,
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
    /// Connections they came on (a sender that reuses its connections opens few).
    #[serde(default)]
    pub connections: u64,
    /// Distinct event ids so far.
    pub events: u64,
    /// Requests whose delivery id (`webhook-id`) had been answered 2xx before.
    pub duplicates: u64,
    /// Requests answered 500 on purpose (`--fail-percent`).
    #[serde(default)]
    pub failed_answers: u64,
    pub without_event_id: u64,
    /// Events whose first arrival carried no `bench_sent_ns`.
    pub without_sent_time: u64,
    pub window: Window,
    /// Emit->arrival (first arrival) of the events sent within the window.
    pub latency: Percentiles,
}

/// `POST /_check/<sink>` (one event id per line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkCheck {
    /// Event ids asked about.
    pub asked: u64,
    /// Of them, the ones never answered 2xx.
    pub missing: u64,
    /// Distinct events answered 2xx at least once (asked about or not).
    pub delivered_events: u64,
    /// (first 2xx answer, repeat's arrival) in unix ns, per duplicate.
    pub duplicates: Vec<(u64, u64)>,
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
            connection: now_ns % 2,
        }
    }

    #[test]
    fn an_event_to_two_webhooks_is_one_event_and_a_repeated_delivery_is_a_duplicate() {
        let sinks = Sinks::default();
        sinks.record("s", arrival(100, "E1", "D1", Some(90)), false);
        sinks.record("s", arrival(105, "E1", "D2", Some(90)), false);
        sinks.record("s", arrival(300, "E1", "D1", Some(90)), false);
        sinks.record("s", arrival(200, "E2", "D3", Some(150)), false);
        let s = sinks.get("s").summary(0, u64::MAX);
        assert_eq!((s.arrivals, s.events, s.duplicates), (4, 2, 1));
        assert_eq!(
            s.connections, 2,
            "arrivals at even and odd times came on two connections"
        );
        assert_eq!(s.latency.n, 2);
        assert_eq!(s.latency.max_ms, 50.0 / 1e6);
        assert_eq!(sinks.counts()["s"], 4);
    }

    #[test]
    fn the_window_counts_arrivals_and_measures_events_sent_within_it() {
        let sinks = Sinks::default();
        sinks.record("w", arrival(10, "E1", "D1", Some(5)), false);
        sinks.record("w", arrival(20, "E2", "D2", Some(12)), false);
        sinks.record("w", arrival(30, "E3", "D3", Some(19)), false);
        sinks.record("w", arrival(40, "E4", "D4", None), false);
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
            connection: 7,
        };
        sinks.record("b", bare, false);
        sinks.record("b", bare, false);
        let s = sinks.get("b").summary(0, u64::MAX);
        assert_eq!(
            (s.arrivals, s.events, s.duplicates, s.without_event_id),
            (2, 0, 0, 2)
        );
    }

    #[test]
    fn a_retry_after_a_500_is_no_duplicate_but_a_repeat_after_a_2xx_is() {
        let sinks = Sinks::default();
        sinks.record("f", arrival(10, "E1", "D1", None), true);
        sinks.record("f", arrival(20, "E1", "D1", None), false);
        sinks.record("f", arrival(30, "E1", "D1", None), false);
        sinks.record("f", arrival(40, "E2", "D2", None), true);
        let s = sinks.get("f").summary(0, u64::MAX);
        assert_eq!(
            (s.arrivals, s.events, s.duplicates, s.failed_answers),
            (4, 2, 1, 2)
        );
        let check = sinks.check("f", [b"E1".as_slice(), b"E2", b"E3"]);
        assert_eq!(
            check,
            SinkCheck {
                asked: 3,
                missing: 2,
                delivered_events: 1,
                duplicates: vec![(20, 30)],
            }
        );
    }
}
