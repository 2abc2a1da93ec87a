//! `ceiling`: the load generator posts the bench's ~1 KB event straight to the receiver
//! (`/ok/<sink>`, with event and delivery id headers, so the receiver does all its
//! bookkeeping) over C keep-alive connections as fast as they answer. Requests/s over the
//! window is the machine's limit for "one HTTP request per delivery"; every other phase is
//! reported as a ratio to it. The client is as light as it can be (see `rawconn`) and runs on
//! one single-threaded runtime per core, each owning its share of the connections, so the
//! figure is the receiver's and the kernel's, not the client's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::time::Instant;

use super::{CeilingResult, Errors, Measure};
use crate::conn::authority;
use crate::event::unix_ns;
use crate::percentiles::Percentiles;
use crate::rawconn::{PreparedPost, RawConn};

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
    /// Client threads, each owning its share of the connections (default: one per core).
    #[arg(long)]
    pub client_threads: Option<usize>,
    #[command(flatten)]
    pub measure: Measure,
}

/// A connection's requests after the load ended, before it counts as not answered.
const GRACE: Duration = Duration::from_secs(30);

pub async fn run(args: CeilingArgs) -> Result<()> {
    let authority = authority(&args.recv)?.to_string();
    let path = format!("/ok/{}", args.sink);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        warm: start + args.measure.warmup(),
        deadline: start + args.measure.duration(),
        done: AtomicU64::new(0),
        errors: Errors::default(),
    });
    let connections = args.connections.max(1);
    let threads = args
        .client_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, connections);
    let mut clients = Vec::new();
    for thread in 0..threads {
        // Connection k of C sends events k, k + C, k + 2C, ...
        let mine: Vec<usize> = (thread..connections).step_by(threads).collect();
        let (authority, path, shared) = (authority.clone(), path.clone(), shared.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        clients.push(std::thread::spawn(move || {
            runtime.block_on(async move {
                let tasks: Vec<_> = mine
                    .into_iter()
                    .map(|k| {
                        let first = k as u64;
                        let step = connections as u64;
                        tokio::spawn(connection(
                            authority.clone(),
                            path.clone(),
                            first,
                            step,
                            shared.clone(),
                        ))
                    })
                    .collect();
                let mut latencies = Vec::new();
                for task in tasks {
                    latencies.extend(task.await.unwrap_or_default());
                }
                latencies
            })
        }));
    }
    let window = args.measure.window(start, &shared.done).await;
    let latencies = tokio::task::spawn_blocking(move || {
        clients
            .into_iter()
            .flat_map(|client| client.join().unwrap_or_default())
            .collect::<Vec<u64>>()
    })
    .await?;
    let mut receiver = super::setup::ReceiverClient::new(&authority, &args.sink);
    let result = CeilingResult {
        connections: args.connections,
        window_s: window.seconds,
        requests_per_s: window.per_s(window.counted),
        requests: shared.done.load(Ordering::Relaxed),
        errors: shared.errors.count(),
        first_error: shared.errors.first(),
        latency: Percentiles::of(latencies),
        receiver_arrivals: receiver.arrivals().await?,
        cpu: window.cpu,
        machine_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
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

/// What the client threads share with the phase.
struct Shared {
    warm: Instant,
    deadline: Instant,
    done: AtomicU64,
    errors: Errors,
}

/// One connection sending events `first`, `first + step`, ... until the deadline; returns the
/// request latencies (ns) of the requests sent after the warmup.
async fn connection(
    authority: String,
    path: String,
    first: u64,
    step: u64,
    shared: Arc<Shared>,
) -> Vec<u64> {
    let mut latencies = Vec::with_capacity(1 << 16);
    let requests = requests(&authority, &path, first, step, &shared, &mut latencies);
    if tokio::time::timeout_at(shared.deadline + GRACE, requests)
        .await
        .is_err()
    {
        shared.errors.add(&anyhow!(
            "POST http://{authority}{path}: no answer within {} s",
            GRACE.as_secs()
        ));
    }
    latencies
}

async fn requests(
    authority: &str,
    path: &str,
    first: u64,
    step: u64,
    shared: &Shared,
    latencies: &mut Vec<u64>,
) {
    let mut post = PreparedPost::new(authority, path);
    let mut conn: Option<RawConn> = None;
    let mut seq = first;
    while Instant::now() < shared.deadline {
        let sent = Instant::now();
        let request = post.render(seq, unix_ns());
        seq += step;
        match exchange(&mut conn, authority, request).await {
            Ok(()) => {
                shared.done.fetch_add(1, Ordering::Relaxed);
                if sent >= shared.warm {
                    latencies.push(sent.elapsed().as_nanos() as u64);
                }
            }
            Err(e) => {
                conn = None;
                shared
                    .errors
                    .add(&e.context(format!("POST http://{authority}{path}")));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One request on `conn` (connected first if need be), answered 200.
async fn exchange(conn: &mut Option<RawConn>, authority: &str, request: &[u8]) -> Result<()> {
    if conn.is_none() {
        *conn = Some(RawConn::connect(authority).await?);
    }
    let open = conn.as_mut().expect("connected above");
    let (status, keep_alive) = open.exchange(request).await?;
    if !keep_alive {
        *conn = None;
    }
    if status != 200 {
        return Err(anyhow!("the receiver answered {status}, not 200"));
    }
    Ok(())
}
