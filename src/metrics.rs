//! Process metrics in Prometheus form (the `prometheus` crate): events accepted, attempts by
//! outcome and status class, attempt latency, template errors by reason, queue depth and oldest due age (overall and per
//! webhook), deliveries waiting for a rate limit and the effective rate (per rate-limited
//! webhook), store flush latency. One `Metrics` per process, shared by core and delivery,
//! rendered by the gateway at `GET /metrics`. Labels never carry secrets or URLs.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of webhookd.
pub struct Metrics {
    registry: Registry,
    /// Events made durable.
    pub events_accepted: IntCounter,
    /// Attempts by outcome (succeeded, retrying, failed) and status class (2xx..5xx, none).
    pub attempts: IntCounterVec,
    /// Deliveries skipped by filters or trigger templates.
    pub deliveries_skipped: IntCounter,
    /// Duration of one attempt by outcome, seconds.
    pub attempt_seconds: HistogramVec,
    /// Duration of a group-committed flush (sled fsync, PostgreSQL batch COMMIT), seconds.
    pub flush_seconds: Histogram,
    /// Finished events deleted by retention (with their deliveries).
    pub pruned_events: IntCounter,
    /// Deliveries waiting in the queue.
    pub queue_depth: IntGauge,
    /// Age of the oldest due delivery, seconds (0 when none is overdue).
    pub queue_oldest_due_seconds: IntGauge,
    /// Ordering keys (queues of one webhook, key and URL) with deliveries waiting behind
    /// an unfinished one.
    pub ordering_blocked_keys: IntGauge,
    /// How long the oldest head of such a queue has been due, seconds.
    pub ordering_oldest_blocked_head_seconds: IntGauge,
    /// Queued deliveries per webhook.
    pub webhook_queue_depth: IntGaugeVec,
    /// Age of the oldest due delivery per webhook, seconds.
    pub webhook_oldest_due_seconds: IntGaugeVec,
    /// Attempts in flight.
    pub inflight: IntGauge,
    /// EmitEvent status streams open.
    pub open_streams: IntGauge,
    /// WatchDeliveries and SSE live tails open.
    pub watch_streams: IntGauge,
    /// RESYNC messages sent to live tails (a stalled client, or a cursor past retention).
    pub watch_resyncs: IntCounter,
    /// Deliveries deferred because the endpoint's circuit breaker was open.
    pub deferred: IntCounter,
    /// Template renders that failed, by reason (error, fuel, depth, output_size, wall_time).
    pub template_errors: IntCounterVec,
    /// Deliveries waiting for their webhook's rate limit, in all.
    pub rate_limited: IntGauge,
    /// Deliveries waiting for the rate limit per rate-limited webhook.
    pub webhook_rate_limited: IntGaugeVec,
    /// Attempts per second allowed now per rate-limited webhook (lowered after a 429).
    pub webhook_rate_limit: GaugeVec,
    /// Bytes of each emit memory bound in use (`waiting`: batch bytes read, not yet
    /// decoded; `decoded`: batch calls decoded; `planned`: emits planned and written).
    pub emit_memory: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("webhookd".into()), None).expect("valid prefix");
        let latency = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
        ];
        Metrics {
            events_accepted: register(
                &registry,
                IntCounter::new("events_accepted_total", "Events made durable").unwrap(),
            ),
            attempts: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "delivery_attempts_total",
                        "Delivery attempts by outcome and status class",
                    ),
                    &["outcome", "status_class"],
                )
                .unwrap(),
            ),
            deliveries_skipped: register(
                &registry,
                IntCounter::new(
                    "deliveries_skipped_total",
                    "Deliveries skipped by filters or trigger templates",
                )
                .unwrap(),
            ),
            attempt_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "attempt_duration_seconds",
                        "Duration of one delivery attempt",
                    )
                    .buckets(latency.clone()),
                    &["outcome"],
                )
                .unwrap(),
            ),
            flush_seconds: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "store_flush_duration_seconds",
                        "Duration of a group-committed store flush (sled: fsync; PostgreSQL: COMMIT of a batch)",
                    )
                    .buckets(latency),
                )
                .unwrap(),
            ),
            pruned_events: register(
                &registry,
                IntCounter::new(
                    "pruned_events_total",
                    "Finished events deleted by retention, with their deliveries",
                )
                .unwrap(),
            ),
            queue_depth: register(
                &registry,
                IntGauge::new("queue_depth", "Deliveries waiting in the queue").unwrap(),
            ),
            queue_oldest_due_seconds: register(
                &registry,
                IntGauge::new(
                    "queue_oldest_due_seconds",
                    "Age of the oldest overdue delivery",
                )
                .unwrap(),
            ),
            ordering_blocked_keys: register(
                &registry,
                IntGauge::new(
                    "ordering_blocked_keys",
                    "Ordering keys with deliveries waiting behind an unfinished one",
                )
                .unwrap(),
            ),
            ordering_oldest_blocked_head_seconds: register(
                &registry,
                IntGauge::new(
                    "ordering_oldest_blocked_head_seconds",
                    "How long the oldest delivery holding up its ordering key has been due",
                )
                .unwrap(),
            ),
            webhook_queue_depth: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("webhook_queue_depth", "Deliveries waiting per webhook"),
                    &["webhook_id"],
                )
                .unwrap(),
            ),
            webhook_oldest_due_seconds: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "webhook_oldest_due_seconds",
                        "Age of the oldest overdue delivery per webhook",
                    ),
                    &["webhook_id"],
                )
                .unwrap(),
            ),
            inflight: register(
                &registry,
                IntGauge::new("attempts_in_flight", "Delivery attempts in flight").unwrap(),
            ),
            open_streams: register(
                &registry,
                IntGauge::new("status_streams_open", "EmitEvent status streams open").unwrap(),
            ),
            watch_streams: register(
                &registry,
                IntGauge::new(
                    "watch_streams_open",
                    "WatchDeliveries and SSE live tails open",
                )
                .unwrap(),
            ),
            watch_resyncs: register(
                &registry,
                IntCounter::new(
                    "watch_resyncs_total",
                    "RESYNC messages sent to live tails (a client that stopped reading, or a cursor past retention)",
                )
                .unwrap(),
            ),
            deferred: register(
                &registry,
                IntCounter::new(
                    "deliveries_deferred_total",
                    "Deliveries deferred by an open circuit breaker",
                )
                .unwrap(),
            ),
            template_errors: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "template_errors_total",
                        "Template renders that failed, by reason",
                    ),
                    &["reason"],
                )
                .unwrap(),
            ),
            rate_limited: register(
                &registry,
                IntGauge::new(
                    "rate_limited_deliveries",
                    "Deliveries waiting for their webhook's rate limit",
                )
                .unwrap(),
            ),
            webhook_rate_limited: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "webhook_rate_limited_deliveries",
                        "Deliveries waiting for the rate limit per webhook",
                    ),
                    &["webhook_id"],
                )
                .unwrap(),
            ),
            webhook_rate_limit: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "webhook_rate_limit_per_second",
                        "Attempts per second a rate-limited webhook is allowed now (lowered for a while after a 429)",
                    ),
                    &["webhook_id"],
                )
                .unwrap(),
            ),
            emit_memory: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "emit_memory_bytes",
                        "Bytes in use of each emit memory bound (--emit-memory-mib): waiting, decoded, planned",
                    ),
                    &["bound"],
                )
                .unwrap(),
            ),
            registry,
        }
    }

    /// Attempts made so far, every outcome.
    pub fn attempts_total(&self) -> u64 {
        use prometheus::core::Collector;
        self.attempts
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).unwrap_or_default()
    }
}

/// "2xx".."5xx", or "none" when no response was received.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "none",
    }
}
