//! The load generator's phases. Each writes one JSON result ([`CeilingResult`] or
//! [`EmitResult`]) that `report` renders:
//! - `ceiling`: loadgen -> receiver directly, the machine's limit for one request per delivery;
//! - `emit`: closed loop, C producers each posting and waiting for the 202 (single events to
//!   `POST /api/v1/events/`, or batches to `POST /api/v1/events/batch/`);
//! - `rate`: open loop, single events at a fixed rate;
//! - `storm`: closed loop while webhookd is killed with SIGKILL and restarted again and again
//!   ([`storm::StormResult`]: loss and duplicates).
//!
//! Every phase measures over the same window (after a warmup): what arrived at the receiver,
//! emit->arrival (the send time travels in the event), and the CPU each process used.

pub mod ceiling;
pub mod emit;
pub mod rate;
pub mod setup;
pub mod storm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep_until};

use crate::event::unix_ns;
use crate::percentiles::Percentiles;
use crate::procfs::{Role, RoleCpu, Snapshot, peak_rss_mb};

/// Where and how long a phase measures.
#[derive(clap::Args, Debug, Clone)]
pub struct Measure {
    /// Seconds of load.
    #[arg(long, default_value_t = 8.0)]
    pub duration: f64,
    /// Seconds at the start left out of every figure (at most a third of the duration).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// webhookd processes whose CPU and peak RSS are reported (comma-separated pids).
    #[arg(long, value_delimiter = ',')]
    pub webhookd_pids: Vec<u32>,
    /// The receiver process, for the CPU split.
    #[arg(long)]
    pub receiver_pid: Option<u32>,
    /// Write the JSON result here (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Measure {
    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.min(self.duration / 3.0).max(0.0))
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.max(0.1))
    }

    fn roles(&self) -> Vec<Role> {
        vec![
            Role {
                name: "webhookd",
                pids: self.webhookd_pids.clone(),
            },
            Role {
                name: "receiver",
                pids: self.receiver_pid.into_iter().collect(),
            },
            Role {
                name: "loadgen",
                pids: vec![std::process::id()],
            },
        ]
    }

    /// Peak RSS of the largest webhookd instance.
    fn webhookd_peak_rss_mb(&self) -> Option<f64> {
        self.webhookd_pids
            .iter()
            .filter_map(|&p| peak_rss_mb(p))
            .reduce(f64::max)
    }

    /// Waits out the warmup and the rest of the phase from `start`, and returns the measured
    /// window: its unix-ns bounds, how far `counter` moved within it, and the CPU split.
    async fn window(&self, start: Instant, counter: &AtomicU64) -> Window {
        let roles = self.roles();
        sleep_until(start + self.warmup()).await;
        let first = Snapshot::take(&roles);
        let (from_ns, from_count) = (unix_ns(), counter.load(Ordering::Relaxed));
        sleep_until(start + self.duration()).await;
        let (to_ns, to_count) = (unix_ns(), counter.load(Ordering::Relaxed));
        let cpu = first.split(&Snapshot::take(&roles));
        Window {
            from_ns,
            to_ns,
            seconds: to_ns.saturating_sub(from_ns) as f64 / 1e9,
            counted: to_count - from_count,
            cpu,
        }
    }

    fn write(&self, result: &impl Serialize) -> Result<()> {
        Self::write_to(&self.out, result)
    }

    /// Writes `result` as JSON to `out` (None: stdout).
    fn write_to(out: &Option<PathBuf>, result: &impl Serialize) -> Result<()> {
        let json = serde_json::to_string_pretty(result)?;
        match out {
            Some(path) => {
                std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
            }
            None => {
                println!("{json}");
                Ok(())
            }
        }
    }
}

/// The measured part of a phase.
#[derive(Debug, Clone)]
struct Window {
    from_ns: u64,
    to_ns: u64,
    seconds: f64,
    counted: u64,
    cpu: BTreeMap<String, RoleCpu>,
}

impl Window {
    fn per_s(&self, n: u64) -> f64 {
        if self.seconds > 0.0 {
            n as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Result of `ceiling`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CeilingResult {
    pub connections: usize,
    pub window_s: f64,
    pub requests_per_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Request -> response at the load generator.
    pub latency: Percentiles,
    /// What the receiver counted (it does the same bookkeeping as in every phase).
    pub receiver_arrivals: u64,
    pub cpu: BTreeMap<String, RoleCpu>,
    /// Cores of the machine (what the CPU per request is projected onto).
    #[serde(default)]
    pub machine_cores: usize,
}

/// Result of `emit` and `rate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmitResult {
    /// "rest" (single events, closed loop), "batch" (closed loop) or "rate" (open loop).
    pub mode: String,
    pub producers: usize,
    /// Events per request.
    pub batch: usize,
    pub webhooks: usize,
    pub instances: usize,
    /// Store label (sled, postgres).
    pub store: String,
    pub target_rate: Option<f64>,
    pub window_s: f64,
    /// Events acknowledged (202) within the window, per second.
    pub accepted_per_s: f64,
    pub accepted_events: u64,
    pub emit_errors: u64,
    pub first_error: Option<String>,
    /// Open loop: ticks dropped because every in-flight slot was busy.
    pub not_sent_client_saturated: u64,
    /// Request -> 202 per request.
    pub accept_latency: Percentiles,
    /// Distinct events whose first delivery arrived within the window, per second.
    pub delivered_events_per_s: f64,
    /// Requests that arrived at the receiver within the window, per second.
    pub deliveries_per_s: f64,
    /// Emit -> first arrival of the events sent within the window.
    pub arrival_latency: Percentiles,
    pub duplicates: u64,
    /// Deliveries accepted but not arrived by the window's end.
    pub backlog_at_end: i64,
    /// Deliveries accepted but not arrived when the drain ended.
    pub missing_after_drain: i64,
    /// Connections the deliveries came on (webhookd's pool reusing them opens few).
    #[serde(default)]
    pub receiver_connections: u64,
    pub cpu: BTreeMap<String, RoleCpu>,
    pub webhookd_cpu_ms_per_delivery: Option<f64>,
    pub webhookd_cpu_ms_per_event: Option<f64>,
    pub webhookd_context_switches_per_delivery: Option<f64>,
    pub webhookd_peak_rss_mb: Option<f64>,
}

/// First errors are kept, later ones only counted.
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Errors {
    fn add(&self, e: &anyhow::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert_with(|| format!("{e:#}"));
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn first(&self) -> Option<String> {
        self.first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
