//! `rate`: open loop. Single events to `POST /api/v1/events/` at a fixed rate (event k to
//! instance k mod N) from a pool of keep-alive connections, whatever the answers take; a tick
//! that finds every in-flight slot busy is dropped and counted. Emit->arrival of the events is
//! the figure (their send time travels in the event, the receiver stamps the arrival).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Result;
use hyper::StatusCode;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::emit::{Emitted, conclude};
use super::setup::Target;
use super::{Errors, Measure};
use crate::conn::Conn;
use crate::event;

#[derive(clap::Args, Debug, Clone)]
pub struct RateArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub measure: Measure,
    /// Events per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Seconds to wait after the load for the remaining deliveries.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
}

pub async fn run(args: RateArgs) -> Result<()> {
    let target = &args.target;
    let token = Arc::new(target.prepare().await?);
    let pools: Vec<(String, Arc<Mutex<Vec<Conn>>>)> = target
        .http
        .iter()
        .map(|http| (http.clone(), Arc::default()))
        .collect();
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let permits = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
    let rate = args.rate.max(1.0);
    let total = (rate * args.measure.duration().as_secs_f64()) as u64;
    let start = Instant::now();
    let warm = start + args.measure.warmup();
    let ticks = async {
        let mut dropped = 0;
        let mut requests = JoinSet::new();
        for k in 0..total {
            sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                dropped += 1;
                continue;
            };
            let (http, pool) = pools[k as usize % pools.len()].clone();
            let (token, accepted, errors, latencies) = (
                token.clone(),
                accepted.clone(),
                errors.clone(),
                latencies.clone(),
            );
            requests.spawn(async move {
                let _permit = permit;
                let taken = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let mut conn = taken.unwrap_or_else(|| Conn::new(&http));
                let sent = Instant::now();
                let outcome = conn
                    .post(
                        "/api/v1/events/",
                        &[("authorization", token.as_str())],
                        event::single(k),
                    )
                    .await
                    .and_then(|reply| reply.expect(StatusCode::ACCEPTED, "POST /api/v1/events/"));
                pool.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
                match outcome {
                    Ok(_) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        if sent >= warm {
                            let took = sent.elapsed().as_nanos() as u64;
                            latencies
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(took);
                        }
                    }
                    Err(e) => errors.add(&e),
                }
            });
        }
        while requests.join_next().await.is_some() {}
        dropped
    };
    let (window, dropped) = tokio::join!(args.measure.window(start, &accepted), ticks);
    let latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(PoisonError::into_inner));
    let emitted = Emitted {
        mode: "rate",
        producers: 0,
        batch: 1,
        target_rate: Some(rate),
        accepted: accepted.load(Ordering::Relaxed),
        latencies,
        errors: &errors,
        dropped,
    };
    conclude(target, &args.measure, window, emitted, args.drain).await
}
