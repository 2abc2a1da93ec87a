//! The `webhookd` command: parses flags (each also read from a `WEBHOOKD_*` env var), sets
//! up logging, binds both listeners, and runs the service until SIGTERM/SIGINT. Failures
//! are one clear line on stderr and a non-zero exit.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};
use webhookd::Config;
use webhookd::allocator;
use webhookd::config::{MIN_BATCH_WAITING_BYTES, StoreBackend};
use webhookd::delivery::egress::EgressProxy;
use webhookd::delivery::retry::parse_schedule;
use webhookd::render::sandbox;
use webhookd::store::SLED_CACHE_BYTES;
use webhookd::telemetry;

/// mimalloc, not glibc's malloc: under load a fifth of webhookd's CPU went to glibc's
/// malloc and free and their arena locks; mimalloc's per-thread heaps take most of it back
/// (figures in BENCHMARKS.md). The one static of the process: Rust takes the allocator so.
/// `allocator::tune` sets its options at the start of `main`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// webhookd: outgoing webhooks with a gRPC API, an embedded store, and OnCall- and
/// Cloudflare-compatible REST APIs.
#[derive(Parser)]
#[command(name = "webhookd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (gRPC + REST) on the embedded store.
    Serve(Box<ServeArgs>),
    /// A Jinja render process of a running server (started by it; jobs on stdin).
    #[command(hide = true, name = "render-worker")]
    RenderWorker(RenderWorkerArgs),
}

#[derive(clap::Args)]
struct RenderWorkerArgs {
    /// Largest data segment of this process, bytes.
    #[arg(long)]
    memory_bytes: u64,
    /// The server's process id; the worker ends with it.
    #[arg(long)]
    parent: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory of the embedded database and the generated admin token.
    #[arg(long, env = "WEBHOOKD_DATA_DIR", default_value = "./webhookd-data")]
    data_dir: PathBuf,
    /// Storage backend: `sled` (the embedded database in --data-dir; its engine is fjall, a
    /// directory written by the sled versions is moved over at start) or a PostgreSQL URL,
    /// postgres://user:password@host:port/database (?sslmode= accepted).
    #[arg(
        long,
        env = "WEBHOOKD_STORE",
        default_value = "sled",
        hide_env_values = true
    )]
    store: String,
    /// Address of the gRPC API (WebhookService, AdminService, reflection, health).
    #[arg(long, env = "WEBHOOKD_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// Address of the REST gateway (OnCall, Cloudflare, events, admin).
    #[arg(long, env = "WEBHOOKD_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Admin token; without it the first start generates <data-dir>/admin.token (mode 0600).
    #[arg(long, env = "WEBHOOKD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Key file encrypting webhook secrets at rest (generated, mode 0600, when absent).
    /// Default: <data-dir>/secret.key.
    #[arg(long, env = "WEBHOOKD_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Permit delivery to loopback, private and other non-global addresses. A bare flag means
    /// true; a value may be true/false/1/0 (also yes/no/on/off), in the flag or the env var.
    #[arg(long, env = "WEBHOOKD_ALLOW_PRIVATE_TARGETS", value_name = "BOOL",
          action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true",
          value_parser = BoolishValueParser::new(), hide_possible_values = true)]
    allow_private_targets: bool,
    /// Comma-separated CIDRs that delivery may reach although they are not global (e.g. 10.1.0.0/16).
    #[arg(long, env = "WEBHOOKD_ALLOW_CIDRS", value_delimiter = ',')]
    allow_cidrs: Vec<ipnet::IpNet>,
    /// Send every delivery through this proxy: http://[user:pass@]host:port (CONNECT) or
    /// socks5://[user:pass@]host:port. NO_PROXY does not apply; targets are still checked.
    #[arg(long, env = "WEBHOOKD_EGRESS_PROXY", value_name = "URL", hide_env_values = true,
          value_parser = ProxyParser)]
    egress_proxy: Option<EgressProxy>,
    /// Delays before each retry (units ms, s, m, h).
    #[arg(long, env = "WEBHOOKD_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h", value_parser = parse_schedule)]
    retry_schedule: std::vec::Vec<Duration>,
    /// Apply ±20% jitter to retry delays: true/false/1/0 (also yes/no/on/off).
    #[arg(long, env = "WEBHOOKD_RETRY_JITTER", value_name = "BOOL", default_value_t = true,
          action = ArgAction::Set, value_parser = BoolishValueParser::new(),
          hide_possible_values = true)]
    retry_jitter: bool,
    /// Timeout of one delivery attempt.
    #[arg(long, env = "WEBHOOKD_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Delivery attempts in flight at once.
    #[arg(long, env = "WEBHOOKD_DELIVERY_CONCURRENCY", default_value_t = 512)]
    delivery_concurrency: usize,
    /// Delivery attempts of one webhook in flight at once (a slow endpoint cannot starve others).
    #[arg(long, env = "WEBHOOKD_PER_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    per_webhook_concurrency: usize,
    /// Consecutive endpoint failures (timeouts, connection errors, 5xx, 429) that open its circuit breaker.
    #[arg(long, env = "WEBHOOKD_BREAKER_THRESHOLD", default_value_t = 5)]
    breaker_threshold: u32,
    /// First pause of an open circuit breaker; doubles per failed probe, up to 5m.
    #[arg(long, env = "WEBHOOKD_BREAKER_COOLDOWN", default_value = "1s", value_parser = humantime::parse_duration)]
    breaker_cooldown: Duration,
    /// How long an instance's claim on a due delivery lasts without renewal (renewed every
    /// third of it while the instance lives): a killed instance's deliveries go to the
    /// others after this.
    #[arg(long, env = "WEBHOOKD_LEASE", default_value = "30s", value_parser = parse_lease)]
    lease: Duration,
    /// Memory, in MiB, that the emits in progress may hold together while they are planned
    /// and written (estimated from their events and matched webhooks); a further emit waits
    /// until earlier ones are durable (slower, never refused). Batch calls held decoded get a
    /// second bound of the same size (granted from their encoded size). At least 1.
    #[arg(long, env = "WEBHOOKD_EMIT_MEMORY_MIB", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    emit_memory_mib: u32,
    /// The embedded store's block cache, in MiB (the embedded store only): recently read
    /// blocks of records kept in memory, beside its write buffers (see the README's sizing
    /// notes). At least 1.
    #[arg(long, env = "WEBHOOKD_SLED_CACHE_MIB", default_value_t = (SLED_CACHE_BYTES >> 20) as u32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    sled_cache_mib: u32,
    /// Connections of the PostgreSQL store's main pool (requests and emits; the delivery
    /// engine, the listener and the health probe have 9 more of their own). A call that finds
    /// none free within 5 s answers busy: UNAVAILABLE with RetryInfo / 503 with Retry-After.
    #[arg(long, env = "WEBHOOKD_STORE_POOL_SIZE", default_value_t = webhookd::store::PG_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    store_pool_size: u32,
    /// Disable a webhook whose deliveries failed continuously for this long.
    #[arg(long, env = "WEBHOOKD_AUTO_DISABLE_AFTER", default_value = "5d", value_parser = humantime::parse_duration)]
    auto_disable_after: Duration,
    /// Delete finished events (every delivery succeeded, failed or skipped) older than this,
    /// with their deliveries; 0 keeps everything. The response log is capped separately.
    #[arg(long, env = "WEBHOOKD_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Keep the delivery change log (the history WatchDeliveries and the SSE stream resume
    /// from) this long; a cursor older than that gets a RESYNC message. 0 keeps everything.
    #[arg(long, env = "WEBHOOKD_CHANGE_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    change_retention: Duration,
    /// Export traces (OTLP over HTTP/protobuf) to this collector, e.g. http://127.0.0.1:4318
    /// (`/v1/traces` is added to a URL without a path). Without it nothing is exported.
    #[arg(long, env = "WEBHOOKD_OTLP_ENDPOINT", value_name = "URL", value_parser = telemetry::traces_url)]
    otlp_endpoint: Option<String>,
    /// Log format.
    #[arg(long, env = "WEBHOOKD_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Parses `--egress-proxy` without echoing the value, which may carry credentials.
#[derive(Clone)]
struct ProxyParser;

impl clap::builder::TypedValueParser for ProxyParser {
    type Value = EgressProxy;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<EgressProxy, clap::Error> {
        let refuse = |reason: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for --egress-proxy: {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse("not valid UTF-8"))?;
        text.parse().map_err(|reason: String| refuse(&reason))
    }
}

/// Logs to stderr (filtered by RUST_LOG, INFO by default) and, with an OTLP endpoint, exports
/// webhookd's spans there; returns the exporter's provider to flush at exit. sqlx's pool
/// warns once per pooled connection the database dropped; the store's health monitor says
/// that once, so the pool's own warnings show only when RUST_LOG names sqlx.
fn init_logging(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Option<SdkTracerProvider>, String> {
    let directives = std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| "info".into());
    let directives = if directives.contains("sqlx") {
        directives
    } else {
        format!("{directives},sqlx_core::pool=error")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx_core::pool=error"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    let mut layers = vec![fmt];
    let mut provider = None;
    if let Some(url) = otlp_endpoint {
        let exporter = telemetry::exporter(url, tokio::runtime::Handle::current())?;
        layers.push(exporter.layer);
        provider = Some(exporter.provider);
    }
    tracing_subscriber::registry().with(layers).init();
    if let Some(url) = otlp_endpoint {
        tracing::info!(url, "exporting traces (OTLP/HTTP protobuf)");
    }
    Ok(provider)
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

async fn shutdown_signal(token: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}

/// The backend `--store` names. Errors never repeat the value: it may hold a password.
/// A lease duration: at least one second (it is renewed every third of it).
fn parse_lease(value: &str) -> Result<Duration, String> {
    let lease = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if lease < Duration::from_secs(1) {
        return Err("a lease must last at least 1s".into());
    }
    Ok(lease)
}

fn store_backend(value: &str) -> Result<StoreBackend, String> {
    let value = value.trim();
    if value == "sled" {
        return Ok(StoreBackend::Sled);
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        return Ok(StoreBackend::Postgres(value.to_string()));
    }
    Err("--store: expected `sled` or postgres://user:password@host:port/database".into())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let traces = init_logging(args.log_format, args.otlp_endpoint.as_deref())?;
    let options: Vec<String> = allocator::current()
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    tracing::info!("mimalloc options: {}", options.join(" "));
    let store = store_backend(&args.store)?;
    let grpc = bind(args.grpc_addr, "gRPC").await?;
    let http = bind(args.http_addr, "HTTP").await?;
    let mut config = Config::new(args.data_dir);
    config.store = store;
    config.admin_token = args.admin_token;
    config.secret_key_file = args.secret_key_file;
    config.allow_private_targets = args.allow_private_targets;
    config.allow_cidrs = args.allow_cidrs;
    config.egress_proxy = args.egress_proxy;
    config.retry_schedule = args.retry_schedule;
    config.retry_jitter = args.retry_jitter;
    config.request_timeout = args.request_timeout;
    config.delivery_concurrency = args.delivery_concurrency;
    config.per_webhook_concurrency = args.per_webhook_concurrency;
    config.breaker_threshold = args.breaker_threshold;
    config.breaker_cooldown = args.breaker_cooldown;
    config.auto_disable_after = args.auto_disable_after;
    config.lease = args.lease;
    config.emit_budget_bytes = args.emit_memory_mib as usize * 1024 * 1024;
    config.batch_waiting_bytes = config.emit_budget_bytes.max(MIN_BATCH_WAITING_BYTES);
    config.sled_cache_bytes = u64::from(args.sled_cache_mib) * 1024 * 1024;
    config.store_pool_size = args.store_pool_size;
    config.retention = Some(args.retention).filter(|r| !r.is_zero());
    config.change_retention = Some(args.change_retention).filter(|r| !r.is_zero());
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    let result = webhookd::run(config, grpc, http, shutdown).await;
    if let Some(provider) = traces {
        // Flushes the spans still buffered (the exporter posts on this runtime).
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "the last traces were not exported");
        }
    }
    result.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => *args,
        Command::RenderWorker(worker) => {
            return match sandbox::serve_worker(worker.memory_bytes, worker.parent) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("webhookd render-worker: error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("webhookd: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(args));
    // Requests still open at the end of the drain (`server::run`) do not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("webhookd: error: {message}");
            ExitCode::FAILURE
        }
    }
}
