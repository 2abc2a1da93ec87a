//! Runtime settings of `webhookd serve`, filled from flags/env by `main` and read by every
//! layer. Plain data: no parsing of flags here.

use std::path::PathBuf;
use std::time::Duration;

use crate::delivery::egress::EgressProxy;

/// Where webhookd persists its state.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded sled database in the data directory.
    Sled,
    /// A PostgreSQL database several instances may share: its `postgres://` URL (which may
    /// hold a password: `Debug` leaves it out).
    Postgres(String),
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreBackend::Sled => f.write_str("Sled"),
            StoreBackend::Postgres(_) => f.write_str("Postgres(..)"),
        }
    }
}

/// The least `batch_waiting_bytes` from `--emit-memory-mib`: four of the largest batch calls
/// (4 MiB each) may wait however small the emit memory is, so a small bound slows concurrent
/// batch producers instead of refusing all but one.
pub const MIN_BATCH_WAITING_BYTES: usize = 16 * 1024 * 1024;

/// Settings of one webhookd process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the sled database, admin.token and other state.
    pub data_dir: PathBuf,
    /// The storage backend.
    pub store: StoreBackend,
    /// Admin token from WEBHOOKD_ADMIN_TOKEN; None = read or generate `<data_dir>/admin.token`.
    pub admin_token: Option<String>,
    /// Key file encrypting webhook secrets at rest; None = `<data_dir>/secret.key`.
    pub secret_key_file: Option<PathBuf>,
    /// Permit delivery to loopback/private addresses.
    pub allow_private_targets: bool,
    /// Address ranges delivery may reach even though they are not global.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Every delivery connects through this proxy (the SSRF guard still checks the target).
    pub egress_proxy: Option<EgressProxy>,
    /// Delays before each retry.
    pub retry_schedule: Vec<Duration>,
    /// Apply ±20% jitter to retry delays (off in tests for determinism).
    pub retry_jitter: bool,
    /// Per-attempt timeout.
    pub request_timeout: Duration,
    /// Concurrent delivery attempts across all webhooks.
    pub delivery_concurrency: usize,
    /// Concurrent delivery attempts of one webhook.
    pub per_webhook_concurrency: usize,
    /// Consecutive failures that open a webhook's circuit breaker.
    pub breaker_threshold: u32,
    /// First open period of a circuit breaker (doubles per failed probe, up to 5 min).
    pub breaker_cooldown: Duration,
    /// A webhook whose attempts failed continuously for this long is disabled.
    pub auto_disable_after: Duration,
    /// How long a claim on an outbox entry lasts without renewal.
    pub lease: Duration,
    /// Largest accepted request body (REST) and event payload, in bytes.
    pub max_event_bytes: usize,
    /// Delivery attempts kept per webhook in the response log.
    pub response_history: usize,
    /// Finished events (every delivery final) older than this are deleted with their
    /// deliveries; None keeps them forever.
    pub retention: Option<Duration>,
    /// Entries of the delivery change log (the live tail's history) older than this are
    /// deleted; a watcher's cursor older than that must resync. None keeps them forever.
    pub change_retention: Option<Duration>,
    /// A live tail whose client leaves its buffer full this long gets RESYNC and ends.
    pub watch_stall_timeout: Duration,
    /// How often retention runs.
    pub prune_every: Duration,
    /// The executable run as `<it> render-worker` for each Jinja render process (the webhookd
    /// binary; by default this process's own executable).
    pub render_worker: PathBuf,
    /// Largest data segment of a Jinja render process, bytes: a template that builds a bigger
    /// value fails as a `memory` template error.
    pub render_worker_memory_bytes: u64,
    /// Longest one template render may take (a check point at every output).
    pub render_wall_time: Duration,
    /// Memory the emits in progress may hold together while they are planned and written
    /// (estimated from their data and matched webhooks); an emit beyond it waits its turn.
    pub emit_budget_bytes: usize,
    /// Bytes of batch calls read but not yet decoded that may wait together; a batch call
    /// arriving beyond it is refused (`Error::Overloaded`). `--emit-memory-mib`, at least
    /// `MIN_BATCH_WAITING_BYTES`.
    pub batch_waiting_bytes: usize,
    /// sled's page cache (the embedded store's `cache_capacity`), bytes.
    pub sled_cache_bytes: u64,
    /// Connections of the PostgreSQL store's main pool (the requests' and the emits').
    pub store_pool_size: u32,
    /// Faults a test arms for the delivery worker (test builds only).
    #[cfg(feature = "fault-injection")]
    pub faults: crate::faults::Faults,
}

impl Config {
    /// Settings with the documented defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            store: StoreBackend::Sled,
            admin_token: None,
            secret_key_file: None,
            allow_private_targets: false,
            allow_cidrs: Vec::new(),
            egress_proxy: None,
            retry_schedule: [5, 300, 1800, 7200, 18000, 36000, 36000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            retry_jitter: true,
            request_timeout: Duration::from_secs(15),
            delivery_concurrency: 512,
            per_webhook_concurrency: 64,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            auto_disable_after: Duration::from_secs(5 * 24 * 3600),
            lease: Duration::from_secs(30),
            max_event_bytes: 1024 * 1024,
            response_history: 1000,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            change_retention: Some(Duration::from_secs(24 * 3600)),
            watch_stall_timeout: Duration::from_secs(10),
            prune_every: Duration::from_secs(60),
            // An unknown executable leaves the path empty: starting the workers then fails
            // with a clear error.
            render_worker: std::env::current_exe().unwrap_or_default(),
            render_worker_memory_bytes: 512 * 1024 * 1024,
            render_wall_time: Duration::from_secs(2),
            emit_budget_bytes: 32 * 1024 * 1024,
            batch_waiting_bytes: 32 * 1024 * 1024,
            sled_cache_bytes: crate::store::SLED_CACHE_BYTES,
            store_pool_size: crate::store::PG_POOL_SIZE,
            #[cfg(feature = "fault-injection")]
            faults: crate::faults::Faults::default(),
        }
    }
}
