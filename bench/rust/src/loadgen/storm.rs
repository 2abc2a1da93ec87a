//! `storm`: the kill -9 storm (issue 15 item 4). The load generator runs webhookd itself (the
//! command after `--`), emits closed-loop single events at C producers, and kills webhookd
//! with SIGKILL at random intervals, restarting the same command (same data dir and ports)
//! each time; the receiver answers a share of the deliveries 500 (its `--fail-percent`).
//!
//! A producer posts each event with an `Idempotency-Key` and repeats the same post until it is
//! answered 202: an emit that got no answer is not acknowledged (it may or may not have been
//! made durable; the key makes its repeat the same event), and only acknowledged events count.
//! After the storm (no more kills) the receiver is asked until every acknowledged event was
//! answered 2xx or the drain deadline passed. The result: acknowledged events, **lost**
//! (acknowledged, never answered 2xx), **duplicates** (deliveries that arrived again after
//! the receiver had answered them 2xx; retries after a 500 are not duplicates) as a share of
//! the acknowledged events, kills and webhookd's restart-to-ready times. Each duplicate is
//! placed by the time from the 2xx answer it repeats to the next kill: within a few
//! milliseconds (or read by the receiver just after the kill), the attempt was in flight or
//! its record not yet durable at the kill; a repeat with no kill in between is a bug.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::{Instant, sleep};

use super::setup::{Target, ready};
use super::{Errors, Measure};
use crate::conn::{Conn, authority};
use crate::event::{self, unix_ns};
use crate::percentiles::Percentiles;
use crate::sink::SinkCheck;

#[derive(clap::Args, Debug, Clone)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: Target,
    /// webhookd's gRPC address (ready = REST answers and this port accepts).
    #[arg(long)]
    pub grpc: Option<String>,
    /// Seconds of load with kills.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Concurrent producers, one emit in flight each.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub producers: usize,
    /// Shortest and longest time between kills, seconds (drawn uniformly).
    #[arg(long, default_value_t = 1.5)]
    pub kill_min: f64,
    #[arg(long, default_value_t = 3.0)]
    pub kill_max: f64,
    /// Seconds to wait after the storm for every acknowledged event to arrive.
    #[arg(long, default_value_t = 120.0)]
    pub drain: f64,
    /// The receiver's share of 500 answers, for the report (the receiver is told separately).
    #[arg(long, default_value_t = 0)]
    pub fail_percent: u8,
    /// Append webhookd's output here.
    #[arg(long)]
    pub log: Option<std::path::PathBuf>,
    /// Write the JSON result here (default: stdout).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// The webhookd command (program and arguments), run again after every kill.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Result of `storm`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StormResult {
    pub producers: usize,
    pub instances: usize,
    /// Store label (sled, postgres).
    pub store: String,
    pub storm_s: f64,
    pub kill_interval_s: (f64, f64),
    pub fail_percent: u8,
    pub kills: u64,
    /// Events answered 202.
    pub acknowledged: u64,
    pub acknowledged_per_s: f64,
    /// Emit requests that got no 202 (refused, cut by a kill, 5xx) and were repeated.
    pub unanswered_emits: u64,
    pub first_unanswered: Option<String>,
    /// Acknowledged events never answered 2xx by the receiver after the drain.
    pub lost: u64,
    /// Events answered 2xx that were not acknowledged (an emit made durable, its answer cut,
    /// its repeat not recognised): should be 0 with idempotency keys.
    pub unacknowledged_delivered: i64,
    /// Requests that arrived at the receiver, and those it answered 500.
    pub arrivals: u64,
    pub failed_answers: u64,
    /// Deliveries that arrived again after a 2xx answer.
    pub duplicates: u64,
    /// Duplicates as a percentage of the acknowledged events.
    pub duplicates_pct: f64,
    /// Duplicates by the time from the 2xx answer they repeat to the next kill: `[answered
    /// within 100 ms after a kill (sent before it, read late), < 5 ms before, 5-50 ms,
    /// 50-500 ms, >= 500 ms, no kill in between]`.
    pub duplicates_by_answer_to_kill: [u64; 6],
    /// SIGKILL -> REST answers and gRPC accepts again.
    pub restart_to_ready: Percentiles,
    /// Seconds from the end of the storm until every acknowledged event had arrived (or the
    /// deadline).
    pub drain_s: f64,
    pub drained: bool,
}

/// The webhookd child and how to start it again.
struct Webhookd {
    command: Vec<String>,
    log: Option<std::path::PathBuf>,
    child: Option<Child>,
}

impl Webhookd {
    fn start(&mut self) -> Result<()> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| anyhow!("no webhookd command"))?;
        let output = || -> Result<Stdio> {
            Ok(match &self.log {
                Some(path) => std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?
                    .into(),
                None => Stdio::null(),
            })
        };
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(output()?)
            .stderr(output()?)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, and reap it.
    fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("SIGKILL webhookd")?;
            child.wait().context("reaping webhookd")?;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 20 s.
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) with a pid this process spawned and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Webhookd {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A uniform draw in `[min, max]` seconds (the n-th, from a random key).
fn interval(n: u64, min: f64, max: f64, dice: &std::hash::RandomState) -> Duration {
    use std::hash::BuildHasher;
    let unit = (dice.hash_one(n) >> 11) as f64 / (1u64 << 53) as f64;
    Duration::from_secs_f64((min + unit * (max - min).max(0.0)).max(0.01))
}

/// A repeat whose 2xx was recorded at most this long after a kill was sent before it (the
/// receiver read it late).
const READ_LATE_NS: u64 = 100_000_000;

/// Places each duplicate by the time from the 2xx it repeats to the first kill at or after it
/// (see `StormResult::duplicates_by_answer_to_kill`). `kills_ns` is sorted.
pub fn classify(duplicates: &[(u64, u64)], kills_ns: &[u64]) -> [u64; 6] {
    let mut buckets = [0; 6];
    for &(answered, repeated) in duplicates {
        let next = kills_ns.partition_point(|&k| k < answered);
        let previous = next.checked_sub(1).map(|i| kills_ns[i]);
        let bucket = match kills_ns.get(next) {
            Some(&kill) if kill <= repeated => match kill - answered {
                gap if gap < 5_000_000 => 1,
                gap if gap < 50_000_000 => 2,
                gap if gap < 500_000_000 => 3,
                _ => 4,
            },
            _ if previous.is_some_and(|k| answered - k <= READ_LATE_NS) => 0,
            _ => 5,
        };
        buckets[bucket] += 1;
    }
    buckets
}

pub async fn run(args: StormArgs) -> Result<()> {
    let target = &args.target;
    if target.http.len() != 1 {
        bail!("storm runs one webhookd instance (one --http address)");
    }
    let http = target.http[0].clone();
    let grpc: Vec<String> = args.grpc.iter().cloned().collect();
    let ready_timeout = Duration::from_secs(120);
    let mut webhookd = Webhookd {
        command: args.command.clone(),
        log: args.log.clone(),
        child: None,
    };
    webhookd.start()?;
    ready(std::slice::from_ref(&http), &grpc, ready_timeout).await?;
    let token = Arc::new(target.prepare().await?);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let run_key = format!("storm-{}-{}", std::process::id(), unix_ns());
    let give_up = Instant::now()
        + Duration::from_secs_f64(args.duration.max(0.0) + args.drain.max(0.0) + 120.0);
    let mut producers = Vec::new();
    for _ in 0..args.producers.max(1) {
        let (http, token, stop, acked, seq, errors, run_key) = (
            http.clone(),
            token.clone(),
            stop.clone(),
            acked.clone(),
            seq.clone(),
            errors.clone(),
            run_key.clone(),
        );
        producers.push(tokio::spawn(async move {
            let mut conn = Conn::new(&http);
            let path = "/api/v1/events/";
            while !stop.load(Ordering::Relaxed) {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let key = format!("{run_key}-{n}");
                // The same event until it is acknowledged (or the run gives up on it).
                while Instant::now() < give_up {
                    let headers = [("authorization", token.as_str()), ("idempotency-key", &key)];
                    let outcome = conn
                        .post(path, &headers, event::single(n))
                        .await
                        .and_then(|reply| reply.expect(StatusCode::ACCEPTED, path))
                        .and_then(|reply| {
                            let v: Value = serde_json::from_slice(&reply.body)?;
                            v["id"]
                                .as_str()
                                .map(str::to_string)
                                .ok_or_else(|| anyhow!("the 202 names no event id"))
                        });
                    match outcome {
                        Ok(id) => {
                            acked
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(id);
                            break;
                        }
                        Err(e) => {
                            errors.add(&e);
                            sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }));
    }

    // The storm: kill, restart, wait until it serves, until the duration is over.
    let dice = std::hash::RandomState::new();
    let storm_start = Instant::now();
    let storm_end = storm_start + Duration::from_secs_f64(args.duration.max(0.0));
    let mut kills_ns = Vec::new();
    let mut restarts = Vec::new();
    loop {
        let at =
            Instant::now() + interval(kills_ns.len() as u64, args.kill_min, args.kill_max, &dice);
        if at >= storm_end {
            tokio::time::sleep_until(storm_end).await;
            break;
        }
        tokio::time::sleep_until(at).await;
        kills_ns.push(unix_ns());
        let killed = Instant::now();
        webhookd.kill()?;
        webhookd.start()?;
        ready(std::slice::from_ref(&http), &grpc, ready_timeout)
            .await
            .context("webhookd did not serve again after a kill")?;
        restarts.push(killed.elapsed().as_nanos() as u64);
    }
    let storm_s = storm_start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await?;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(PoisonError::into_inner));

    // The drain: no more kills; ask until every acknowledged event got its 2xx.
    let drain_start = Instant::now();
    let drain_end = drain_start + Duration::from_secs_f64(args.drain.max(0.0));
    let recv = authority(&target.recv)?.to_string();
    let mut checker = Conn::new(&recv);
    let ids = Bytes::from(acked.join("\n"));
    let check = loop {
        let check = ask(&mut checker, &target.sink, ids.clone()).await?;
        if check.missing == 0 || Instant::now() >= drain_end {
            break check;
        }
        sleep(Duration::from_millis(500)).await;
    };
    let drain_s = drain_start.elapsed().as_secs_f64();
    // What arrives a little later (repeats of the last attempts) still counts.
    sleep(Duration::from_secs(2)).await;
    let check = SinkCheck {
        missing: check.missing,
        ..ask(&mut checker, &target.sink, ids).await?
    };
    let summary = target.receiver()?.summary(0, u64::MAX).await?;
    webhookd.stop().await;

    let acknowledged = acked.len() as u64;
    let result = StormResult {
        producers: args.producers,
        instances: 1,
        store: target.store.clone(),
        storm_s,
        kill_interval_s: (args.kill_min, args.kill_max),
        fail_percent: args.fail_percent,
        kills: kills_ns.len() as u64,
        acknowledged,
        acknowledged_per_s: if storm_s > 0.0 {
            acknowledged as f64 / storm_s
        } else {
            0.0
        },
        unanswered_emits: errors.count(),
        first_unanswered: errors.first(),
        lost: check.missing,
        unacknowledged_delivered: check.delivered_events as i64
            - (acknowledged - check.missing) as i64,
        arrivals: summary.arrivals,
        failed_answers: summary.failed_answers,
        duplicates: summary.duplicates,
        duplicates_pct: if acknowledged > 0 {
            100.0 * summary.duplicates as f64 / acknowledged as f64
        } else {
            0.0
        },
        duplicates_by_answer_to_kill: classify(&check.duplicates, &kills_ns),
        restart_to_ready: Percentiles::of(restarts),
        drain_s,
        drained: check.missing == 0,
    };
    eprintln!(
        "storm x{} ({} s, {} kills, {}% 500s): {} acknowledged ({:.0}/s), lost {}, duplicates {} = {:.2}% \
         (by 2xx->kill: after/<5ms/5-50/50-500/>=500ms/no kill: {:?}), restart->ready p50 {:.0} ms max {:.0} ms, \
         drain {:.1} s, unanswered emits {}, unacknowledged delivered {}",
        result.producers,
        result.storm_s.round(),
        result.kills,
        result.fail_percent,
        result.acknowledged,
        result.acknowledged_per_s,
        result.lost,
        result.duplicates,
        result.duplicates_pct,
        result.duplicates_by_answer_to_kill,
        result.restart_to_ready.p50_ms,
        result.restart_to_ready.max_ms,
        result.drain_s,
        result.unanswered_emits,
        result.unacknowledged_delivered,
    );
    Measure::write_to(&args.out, &result)
}

/// The receiver's check of `ids` at `sink`.
async fn ask(conn: &mut Conn, sink: &str, ids: Bytes) -> Result<SinkCheck> {
    let reply = conn
        .post(&format!("/_check/{sink}"), &[], ids)
        .await?
        .expect(StatusCode::OK, "receiver check")?;
    Ok(serde_json::from_slice(&reply.body)?)
}
