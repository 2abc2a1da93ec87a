//! `emit`: closed loop. C producers each post an event (`POST /api/v1/events/`) or a batch
//! (`POST /api/v1/events/batch/`) with the account token as OnCall's `Authorization`, wait
//! for the 202 (the events are durable), and post the next; producer i talks to instance
//! i mod N. Producers pause while more than `--max-backlog` deliveries are accepted but not
//! arrived, so a phase measures what webhookd sustains rather than how fast it queues.
//! `conclude` (shared with `rate`) drains, asks the receiver and writes the result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use hyper::StatusCode;
use tokio::time::{Instant, sleep};

use super::setup::Target;
use super::{EmitResult, Errors, Measure, Window};
use crate::conn::Conn;
use crate::event;
use crate::percentiles::Percentiles;

#[derive(clap::Args, Debug, Clone)]
pub struct EmitArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub measure: Measure,
    /// Concurrent producers, one request in flight each.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub producers: usize,
    /// Events per request: 1 posts to /api/v1/events/, more to /api/v1/events/batch/.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Pause while this many deliveries are accepted but not arrived (0 = never).
    #[arg(long, default_value_t = 20_000)]
    pub max_backlog: u64,
    /// Seconds to wait after the load for the remaining deliveries.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
}

/// Accepted-but-not-arrived deliveries, refreshed from the receiver every 50 ms.
struct Gate {
    limit: u64,
    accepted: AtomicU64,
    arrived: AtomicU64,
}

impl Gate {
    fn open(&self) -> bool {
        self.limit == 0
            || self
                .accepted
                .load(Ordering::Relaxed)
                .saturating_sub(self.arrived.load(Ordering::Relaxed))
                < self.limit
    }
}

pub async fn run(args: EmitArgs) -> Result<()> {
    let target = &args.target;
    let token = Arc::new(target.prepare().await?);
    let batch = args.batch.max(1);
    let path = if batch == 1 {
        "/api/v1/events/"
    } else {
        "/api/v1/events/batch/"
    };
    let start = Instant::now();
    let warm = start + args.measure.warmup();
    let deadline = start + args.measure.duration();
    let accepted = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let gate = Arc::new(Gate {
        limit: args.max_backlog,
        accepted: AtomicU64::new(0),
        arrived: AtomicU64::new(0),
    });
    let mut receiver = target.receiver()?;
    let sampler = {
        let gate = gate.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                sleep(Duration::from_millis(50)).await;
                if let Ok(n) = receiver.arrivals().await {
                    gate.arrived.store(n, Ordering::Relaxed);
                }
            }
        })
    };
    let webhooks = target.webhooks as u64;
    let mut producers = Vec::new();
    for p in 0..args.producers.max(1) {
        let http = target.http[p % target.http.len()].clone();
        let (token, accepted, seq, errors, gate) = (
            token.clone(),
            accepted.clone(),
            seq.clone(),
            errors.clone(),
            gate.clone(),
        );
        producers.push(tokio::spawn(async move {
            let mut conn = Conn::new(&http);
            let mut latencies = Vec::with_capacity(1 << 14);
            while Instant::now() < deadline {
                if !gate.open() {
                    sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let first = seq.fetch_add(batch, Ordering::Relaxed);
                let body = if batch == 1 {
                    event::single(first)
                } else {
                    event::batch(first, batch)
                };
                let sent = Instant::now();
                let outcome = conn
                    .post(path, &[("authorization", token.as_str())], body)
                    .await
                    .and_then(|reply| reply.expect(StatusCode::ACCEPTED, path));
                match outcome {
                    Ok(_) => {
                        accepted.fetch_add(batch, Ordering::Relaxed);
                        gate.accepted.fetch_add(batch * webhooks, Ordering::Relaxed);
                        if sent >= warm {
                            latencies.push(sent.elapsed().as_nanos() as u64);
                        }
                    }
                    Err(e) => {
                        errors.add(&e);
                        sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            latencies
        }));
    }
    let window = args.measure.window(start, &accepted).await;
    let mut latencies = Vec::new();
    for producer in producers {
        latencies.extend(producer.await?);
    }
    sampler.await?;
    let mode = if batch == 1 { "rest" } else { "batch" };
    let emitted = Emitted {
        mode,
        producers: args.producers,
        batch,
        target_rate: None,
        accepted: accepted.load(Ordering::Relaxed),
        latencies,
        errors: &errors,
        dropped: 0,
    };
    conclude(target, &args.measure, window, emitted, args.drain).await
}

/// What the producers of a phase did.
pub(super) struct Emitted<'a> {
    pub mode: &'static str,
    pub producers: usize,
    pub batch: u64,
    pub target_rate: Option<f64>,
    /// Events accepted in the whole phase.
    pub accepted: u64,
    /// Request -> 202 of the requests sent after the warmup.
    pub latencies: Vec<u64>,
    pub errors: &'a Errors,
    pub dropped: u64,
}

/// Waits for the deliveries still under way, asks the receiver about the window, and writes
/// the phase's result.
pub(super) async fn conclude(
    target: &Target,
    measure: &Measure,
    window: Window,
    emitted: Emitted<'_>,
    drain: f64,
) -> Result<()> {
    let mut receiver = target.receiver()?;
    let expected = emitted.accepted * target.webhooks as u64;
    receiver
        .drain(
            expected,
            Duration::from_secs(5),
            Duration::from_secs_f64(drain.max(0.0)),
        )
        .await?;
    let sink = receiver.summary(window.from_ns, window.to_ns).await?;
    let webhookd = window.cpu.get("webhookd").copied().unwrap_or_default();
    let per = |x: f64, n: u64| (n > 0 && !measure.webhookd_pids.is_empty()).then(|| x / n as f64);
    let result = EmitResult {
        mode: emitted.mode.to_string(),
        producers: emitted.producers,
        batch: emitted.batch as usize,
        webhooks: target.webhooks,
        instances: target.http.len(),
        store: target.store.clone(),
        target_rate: emitted.target_rate,
        window_s: window.seconds,
        accepted_per_s: window.per_s(window.counted),
        accepted_events: emitted.accepted,
        emit_errors: emitted.errors.count(),
        first_error: emitted.errors.first(),
        not_sent_client_saturated: emitted.dropped,
        accept_latency: Percentiles::of(emitted.latencies),
        delivered_events_per_s: window.per_s(sink.window.events),
        deliveries_per_s: window.per_s(sink.window.arrivals),
        arrival_latency: sink.latency,
        duplicates: sink.duplicates,
        backlog_at_end: expected as i64 - sink.window.arrivals_before_end as i64,
        missing_after_drain: expected as i64 - sink.arrivals as i64,
        receiver_connections: sink.connections,
        webhookd_cpu_ms_per_delivery: per(webhookd.cpu_ms, sink.window.arrivals),
        webhookd_cpu_ms_per_event: per(webhookd.cpu_ms, sink.window.events),
        webhookd_context_switches_per_delivery: per(
            webhookd.context_switches as f64,
            sink.window.arrivals,
        ),
        webhookd_peak_rss_mb: measure.webhookd_peak_rss_mb(),
        cpu: window.cpu,
    };
    eprintln!(
        "{} ({} webhook(s), {} instance(s)): {:.0} events/s delivered = {:.0} deliveries/s (accepted {:.0} ev/s), \
         emit->arrival p50 {:.2} ms p99 {:.2} ms, duplicates {}, backlog at end {}, missing {}, {} receiver connections, \
         webhookd {:.2} cores = {} ms per delivery, errors {} {}",
        match result.target_rate {
            Some(rate) => format!("rate {rate}/s"),
            None => format!("{} x{}", result.mode, result.producers),
        },
        result.webhooks,
        result.instances,
        result.delivered_events_per_s,
        result.deliveries_per_s,
        result.accepted_per_s,
        result.arrival_latency.p50_ms,
        result.arrival_latency.p99_ms,
        result.duplicates,
        result.backlog_at_end,
        result.missing_after_drain,
        result.receiver_connections,
        webhookd.cores,
        result
            .webhookd_cpu_ms_per_delivery
            .map_or("n/a".into(), |v| format!("{v:.3}")),
        result.emit_errors,
        result.first_error.as_deref().unwrap_or("")
    );
    measure.write(&result)
}
