//! Process assembly: opens the store, loads or creates the admin token, starts the claim
//! loop (unfinished deliveries are claimed from the store under this instance's leases), the
//! worker and both servers on the given listeners, and on shutdown stops accepting, lets
//! open requests end and in-flight attempts be recorded for up to `DRAIN` (then stops waiting
//! for them: an acknowledgement follows a durable commit, which precedes the store's close
//! or fails, and a write after the close fails, so what is cut was never acknowledged),
//! releases the leases still held, closes the store and returns once the tasks that stopped
//! have let go of it (bounded: a restart in the same process finds it free). A server or
//! the worker that stops on its own (error, panic), or the store saying this instance must
//! stop (another instance took its id), shuts the rest down the same way and ends `run`
//! with its error at once.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, StoreBackend};
use crate::core::Service;
use crate::delivery::claimer::Claimer;
use crate::delivery::client::HttpClient;
use crate::delivery::hub::Hub;
use crate::delivery::scheduler::{Limits, Scheduler};
use crate::delivery::ssrf::TargetPolicy;
use crate::delivery::worker::Worker;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::health::StoreHealth;
use crate::store::{Owner, PostgresStore, Sealed, SecretBox, SledStore, Store};

/// Entries a claim tops the window up to, in all (at least; more with a higher delivery
/// concurrency).
const WINDOW: usize = 10_000;

/// How long a graceful stop waits for open requests and in-flight attempts (longer than the
/// default request timeout, so attempts end by themselves); then they are cut.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(20);

/// How long, at least, a stop waits after the store's close for the tasks that stopped
/// with it to drop their handles of it.
const RELEASE: std::time::Duration = std::time::Duration::from_secs(1);

/// File of the generated admin token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Default file of the key that encrypts webhook secrets at rest, inside the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// The instance's lease owner id on a shared (PostgreSQL) store, in its data directory.
pub const INSTANCE_ID_FILE: &str = "instance.id";

/// The admin token: from the config, else `<data_dir>/admin.token`, created (mode 0600) on
/// the first start. Logs the file's path, never the token.
fn admin_token(config: &Config) -> Result<String> {
    if let Some(token) = config.admin_token.as_ref().filter(|t| !t.trim().is_empty()) {
        return Ok(token.trim().to_string());
    }
    let path = config.data_dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => {
            tracing::info!(path = %path.display(), "using the admin token stored in the data directory");
            return Ok(token.trim().to_string());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Internal(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    }
    let token = crate::core::auth::generate_token();
    write_private(&path, &token)
        .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "generated an admin token (read it from this file)");
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Logs events accepted and attempts made per interval, at info, while there is traffic.
async fn log_throughput(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);
    let (mut events, mut attempts) = (metrics.events_accepted.get(), metrics.attempts_total());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        let (now_events, now_attempts) = (metrics.events_accepted.get(), metrics.attempts_total());
        if (now_events, now_attempts) != (events, attempts) {
            let secs = EVERY.as_secs_f64();
            tracing::info!(
                events_per_sec = (now_events - events) as f64 / secs,
                attempts_per_sec = (now_attempts - attempts) as f64 / secs,
                in_flight = metrics.inflight.get(),
                "throughput"
            );
        }
        (events, attempts) = (now_events, now_attempts);
    }
}

/// Runs retention every `config.prune_every` until shutdown.
async fn prune_periodically(service: Service, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(service.config().prune_every) => {}
            _ = shutdown.cancelled() => return,
        }
        if !service.is_serving() {
            continue; // the store is lost (reported once by its monitor)
        }
        match service.prune_expired().await {
            Ok(pruned) if pruned.events + pruned.idempotency_keys > 0 => tracing::info!(
                events = pruned.events,
                idempotency_keys = pruned.idempotency_keys,
                "retention deleted finished events and expired idempotency keys"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention pass failed; retrying at the next"),
        }
    }
}

/// Runs webhookd on bound listeners until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::Internal(format!(
            "cannot create the data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let key_file = config
        .secret_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(SECRET_KEY_FILE));
    let secrets = SecretBox::load_or_create(&key_file)?;
    let metrics = Arc::new(Metrics::new());
    let owner = match &config.store {
        StoreBackend::Sled => Owner::random(config.lease),
        // A restarted instance is the owner it was: it takes back its leases at once.
        StoreBackend::Postgres(_) => {
            Owner::kept_in(&config.data_dir.join(INSTANCE_ID_FILE), config.lease)?
        }
    };
    let backend: Arc<dyn Store> = match &config.store {
        StoreBackend::Sled => Arc::new(SledStore::open(
            &config.data_dir,
            config.sled_cache_bytes,
            owner,
            metrics.flush_seconds.clone(),
        )?),
        StoreBackend::Postgres(url) => Arc::new(
            PostgresStore::connect(
                url,
                owner,
                config.store_pool_size,
                metrics.flush_seconds.clone(),
            )
            .await?,
        ),
    };
    let store: Arc<dyn Store> = Arc::new(Sealed::new(backend, secrets));
    let health = Arc::new(StoreHealth::default());
    tokio::spawn(Arc::clone(&health).monitor(Arc::clone(&store), shutdown.child_token()));
    let admin_token = admin_token(&config)?;
    let config = Arc::new(config);
    let hub = Arc::new(Hub::default());
    let scheduler = Arc::new(Scheduler::new(
        Limits {
            per_webhook: config.per_webhook_concurrency,
            // A few rounds of the webhook's concurrency, so its slots never wait for a claim.
            window_per_webhook: config.per_webhook_concurrency.max(1).saturating_mul(4),
            window: WINDOW.max(config.delivery_concurrency.saturating_mul(8)),
            ..Limits::default()
        },
        owner,
    ));
    let policy = Arc::new(TargetPolicy {
        allow_private: config.allow_private_targets,
        allow_cidrs: config.allow_cidrs.clone(),
    });
    if let Some(proxy) = &config.egress_proxy {
        tracing::info!(%proxy, "deliveries go through the egress proxy");
    }
    let client =
        HttpClient::with_proxy(policy, config.request_timeout, config.egress_proxy.clone());
    let service = Service::new(
        Arc::clone(&store),
        Arc::clone(&health),
        Arc::clone(&hub),
        Arc::clone(&scheduler),
        Arc::clone(&config),
        Arc::clone(&metrics),
        &admin_token,
    )?;
    let worker = Arc::new(Worker {
        store: Arc::clone(&store),
        health,
        client,
        hub: Arc::clone(&hub),
        scheduler: Arc::clone(&scheduler),
        outcomes: Arc::new(service.clone()),
        config: Arc::clone(&config),
        metrics: Arc::clone(&metrics),
    });
    let webhooks = store.count_all_webhooks().await?;

    let grpc_addr = grpc_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let http_addr = http_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let stop_servers = shutdown.child_token();
    let worker_task = {
        let stop = shutdown.child_token();
        tokio::spawn(async move {
            worker.run(stop).await;
            Ok(())
        })
    };
    let grpc_task = {
        let (service, stop) = (service.clone(), stop_servers.clone());
        tokio::spawn(async move {
            crate::grpc::server::serve(service, grpc_listener, stop)
                .await
                .map_err(|e| e.to_string())
        })
    };
    tokio::spawn(prune_periodically(service.clone(), shutdown.child_token()));
    // Streams opened here follow the deliveries other instances attempt.
    tokio::spawn(Arc::clone(&hub).follow_store(Arc::clone(&store), shutdown.child_token()));
    let http_task = tokio::spawn(async move {
        crate::rest::serve(service, http_listener, stop_servers)
            .await
            .map_err(|e| e.to_string())
    });
    // Unfinished deliveries are claimed in bounded batches while the servers already
    // answer; the summary line follows the first claim.
    let (first_claim, claimed) = tokio::sync::oneshot::channel();
    let claimer_task = tokio::spawn(
        Claimer::new(Arc::clone(&store), Arc::clone(&scheduler))
            .run(first_claim, shutdown.child_token()),
    );
    {
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            let claimed = match claimed.await {
                Ok(Ok(claimed)) => claimed,
                // Logged by the claimer, which keeps trying.
                Ok(Err(_)) | Err(_) => 0,
            };
            tracing::info!(
                grpc = %grpc_addr, http = %http_addr, data_dir = %config.data_dir.display(),
                store = %match &config.store {
                    StoreBackend::Sled => "sled".to_string(),
                    StoreBackend::Postgres(url) => PostgresStore::describe(url),
                },
                webhooks, claimed_deliveries = claimed, lease = %humantime::format_duration(config.lease),
                "webhookd is serving"
            );
        });
    }
    tokio::spawn(log_throughput(metrics, shutdown.child_token()));

    // Another live instance taking this one's id (PostgreSQL) stops the process.
    let store_task = {
        let (store, stop) = (Arc::clone(&store), shutdown.child_token());
        tokio::spawn(async move {
            tokio::select! {
                error = store.must_stop() => Err(match error {
                    Error::Internal(message) => message,
                    other => other.to_string(),
                }),
                _ = stop.cancelled() => Ok(()),
            }
        })
    };
    // The process lives as long as all four tasks: one that stops on its own (an error, a
    // panic) stops the others and ends the process with its error at once.
    let mut tasks = vec![
        ("gRPC server", grpc_task),
        ("HTTP server", http_task),
        ("delivery worker", worker_task),
        ("store", store_task),
    ];
    let mut displaced = false;
    let mut failure = tokio::select! {
        biased;
        _ = shutdown.cancelled() => None,
        (ended, index, _) = futures::future::select_all(tasks.iter_mut().map(|(_, task)| task)) => {
            let (name, _) = tasks.remove(index);
            displaced = name == "store";
            // A task that ended cleanly because shutdown began (on another thread) is fine.
            let error = task_error(name, ended).or_else(|| {
                (!shutdown.is_cancelled())
                    .then(|| Error::Internal(format!("{name} stopped unexpectedly")))
            });
            if let Some(error) = &error {
                tracing::error!(error = %error, "stopping webhookd");
            }
            error
        }
    };
    shutdown.cancel();
    let drained = tokio::time::Instant::now() + DRAIN;
    for (name, mut task) in tasks {
        match tokio::time::timeout_at(drained, &mut task).await {
            Ok(ended) => failure = failure.or(task_error(name, ended)),
            Err(_) => {
                tracing::warn!(task = name, drain = ?DRAIN, "still busy at the end of the drain period; cut");
                task.abort();
            }
        }
    }
    let mut claimer_task = claimer_task;
    if tokio::time::timeout_at(drained, &mut claimer_task)
        .await
        .is_err()
    {
        claimer_task.abort();
    }
    // The worker has stopped: what it still held goes back to the other instances now
    // rather than when the leases expire. Not when another instance took this one's id:
    // the leases of that id are the other's now.
    if !displaced && let Err(e) = Claimer::release_all(store.as_ref(), &scheduler).await {
        tracing::warn!(error = %e, "cannot release the leases still held; they expire instead");
    }
    let closed = store.close().await;
    released(store, drained).await;
    match failure {
        Some(error) => Err(error),
        None => closed,
    }
}

/// Waits until `store` is the last handle of the store (the tasks that stopped at the
/// shutdown have dropped theirs) or `deadline`, then drops it: on the embedded store that
/// frees the directory lock, so a start in the same process right after `run` returns finds
/// it free.
async fn released(store: Arc<dyn Store>, deadline: tokio::time::Instant) {
    let deadline = deadline.max(tokio::time::Instant::now() + RELEASE);
    while Arc::strong_count(&store) > 1 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                holders = Arc::strong_count(&store) - 1,
                "tasks still hold the store after the drain; it closes when they end"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The error of a task that ended, if any: its own, or its panic.
fn task_error(
    name: &str,
    ended: std::result::Result<std::result::Result<(), String>, tokio::task::JoinError>,
) -> Option<Error> {
    match ended {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Error::Internal(format!("{name}: {e}"))),
        Err(e) => Some(Error::Internal(format!("{name} task: {e}"))),
    }
}
