//! The service core: every use case of webhookd, shared by the gRPC and REST transports.
//! It decides (auth, validation) and asks `render` to match and render; the store persists;
//! the delivery engine delivers. No transport types here.
//! - `auth`: admin and account tokens, scopes.
//! - `webhooks`: CRUD with OnCall semantics, validation, the delivery log.
//! - `fields`: the webhook field table (patch, per-field setters; transports expand it).
//! - `events`: emit (persist durably, schedule, stream) and redelivery.
//! - `emit_budget`: the bound on the memory of emits in progress (backpressure).
//! - `intake`: the bounds on batch calls before they plan: their bytes waiting (refused
//!   beyond it) and the calls held decoded (granted from their encoded size).
//! - `event_types`: the per-account event-type catalog and the schema check of emits.
//! - `locks`: per-account serialization of webhook writes.
//! - `health`: webhook health at a glance (breaker, pending, attempts per hour), with
//!   `attempt_counts` (the per-instance tallies that keep its log reads small).
//! - `operational`: webhookd's own events (`delivery.exhausted`, `webhook.disabled`).
//! - `operator`: the operator API (events, deliveries, cancel), with `page_token`.
//! - `watch`: the live tail of an account's deliveries, from the store's change log.

pub mod attempt_counts;
pub mod auth;
pub mod emit_budget;
pub mod event_types;
pub mod events;
pub mod fields;
pub mod health;
pub mod intake;
pub mod locks;
pub mod operational;
pub mod operator;
mod page_token;
pub mod retention;
pub mod watch;
pub mod webhooks;

use std::sync::Arc;

use crate::config::Config;
use crate::delivery::hub::Hub;
use crate::delivery::scheduler::Scheduler;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::render::{Limits, Renderer, Sandbox, Templates};
use crate::store::health::StoreHealth;
use crate::store::{self, Store};

pub use auth::Caller;

/// Which slice of a listing to return: skip `offset` items after the cursor, then up to
/// `limit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page {
    /// Start after this item's key (opaque to callers; taken from a previous page).
    pub after: Option<u64>,
    /// Items to skip (page-number pagination).
    pub offset: usize,
    /// Items to return at most.
    pub limit: usize,
}

impl Page {
    /// Every item.
    pub const ALL: Page = Page {
        after: None,
        offset: 0,
        limit: usize::MAX,
    };

    fn stored(self) -> store::Page {
        store::Page {
            after: self.after,
            offset: self.offset,
            limit: self.limit,
        }
    }
}

/// The core shared by every transport; cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) health: Arc<StoreHealth>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) templates: Renderer,
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) admin_token_hash: [u8; 32],
    pub(crate) writes: Arc<locks::AccountLocks>,
    pub(crate) catalog: Arc<event_types::Catalog>,
    pub(crate) attempt_counts: Arc<attempt_counts::AttemptCounts>,
    pub(crate) emit_budget: Arc<emit_budget::EmitBudget>,
    pub(crate) intake: Arc<emit_budget::EmitBudget>,
    pub(crate) arriving: Arc<emit_budget::EmitBudget>,
}

impl Service {
    /// Assembles the core over its parts.
    pub fn new(
        store: Arc<dyn Store>,
        health: Arc<StoreHealth>,
        hub: Arc<Hub>,
        scheduler: Arc<Scheduler>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        admin_token: &str,
    ) -> Result<Service> {
        let limits = Limits {
            memory_bytes: config.render_worker_memory_bytes,
            wall_time: config.render_wall_time,
            ..Limits::with_body_limit(config.max_event_bytes)
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sandbox =
            Sandbox::start(&config.render_worker, threads, &limits).map_err(Error::Internal)?;
        let templates = Templates::sandboxed(limits, metrics.template_errors.clone(), sandbox);
        let templates = Renderer::start(templates, threads)
            .map_err(|e| Error::Internal(format!("cannot start the render threads: {e}")))?;
        Ok(Service {
            emit_budget: Arc::new(emit_budget::EmitBudget::new(config.emit_budget_bytes)),
            intake: Arc::new(emit_budget::EmitBudget::new(config.emit_budget_bytes)),
            arriving: Arc::new(emit_budget::EmitBudget::new(config.batch_waiting_bytes)),
            metrics,
            store,
            health,
            hub,
            scheduler,
            templates,
            config,
            admin_token_hash: auth::hash_token(admin_token),
            writes: Arc::default(),
            catalog: Arc::default(),
            attempt_counts: Arc::default(),
        })
    }

    /// The process metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The delivery queue (for its statistics).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The process settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ordering-key queues blocked behind an unfinished delivery (for the metrics).
    pub async fn ordering_backlog(&self) -> Result<store::OrderingBacklog> {
        self.store.ordering_backlog().await
    }

    /// Whether the store answers (what the health endpoints report).
    pub fn is_serving(&self) -> bool {
        self.health.is_serving()
    }

    /// Follows whether the store answers (true = serving).
    pub fn watch_serving(&self) -> tokio::sync::watch::Receiver<bool> {
        self.health.watch()
    }
}
