//! `ceiling`: the load generator posts the bench's ~1 KB event straight to the receiver
//! (`/ok/<sink>`, with event and delivery id headers, so the receiver does all its
//! bookkeeping) over C keep-alive connections as fast as they answer. Requests/s over the
//! window is the machine's limit for "one HTTP request per delivery"; every other phase is
//! reported as a ratio to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use hyper::StatusCode;
use tokio::time::Instant;

use super::{CeilingResult, Errors, Measure};
use crate::conn::{Conn, authority};
use crate::event;
use crate::percentiles::Percentiles;

#[derive(clap::Args, Debug, Clone)]
pub struct CeilingArgs {
    /// The receiver's base URL (http://host:port).
    #[arg(long)]
    pub recv: String,
    #[arg(long, default_value = "ceiling")]
    pub sink: String,
    /// Keep-alive connections, one request in flight on each.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub connections: usize,
    #[command(flatten)]
    pub measure: Measure,
}

pub async fn run(args: CeilingArgs) -> Result<()> {
    let authority = authority(&args.recv)?.to_string();
    let path = format!("/ok/{}", args.sink);
    let start = Instant::now();
    let warm = start + args.measure.warmup();
    let deadline = start + args.measure.duration();
    let done = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (authority, path, done, seq, errors) = (
            authority.clone(),
            path.clone(),
            done.clone(),
            seq.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(&authority);
            let mut latencies = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let id = format!("C{n}");
                let headers = [
                    ("x-webhookd-event-id", id.as_str()),
                    ("webhook-id", id.as_str()),
                ];
                let sent = Instant::now();
                let outcome = conn
                    .post(&path, &headers, event::single(n))
                    .await
                    .and_then(|reply| reply.expect(StatusCode::OK, "the receiver"));
                match outcome {
                    Ok(_) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        if sent >= warm {
                            latencies.push(sent.elapsed().as_nanos() as u64);
                        }
                    }
                    Err(e) => {
                        errors.add(&e);
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
            latencies
        }));
    }
    let window = args.measure.window(start, &done).await;
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let mut receiver = super::setup::ReceiverClient::new(&authority, &args.sink);
    let result = CeilingResult {
        connections: args.connections,
        window_s: window.seconds,
        requests_per_s: window.per_s(window.counted),
        requests: done.load(Ordering::Relaxed),
        errors: errors.count(),
        first_error: errors.first(),
        latency: Percentiles::of(latencies),
        receiver_arrivals: receiver.arrivals().await?,
        cpu: window.cpu,
    };
    eprintln!(
        "receiver ceiling: {:.0} req/s ({} conns, {:.1} s window), p50 {:.2} ms, p99 {:.2} ms, errors {} {}",
        result.requests_per_s,
        result.connections,
        result.window_s,
        result.latency.p50_ms,
        result.latency.p99_ms,
        result.errors,
        result.first_error.as_deref().unwrap_or("")
    );
    args.measure.write(&result)
}
