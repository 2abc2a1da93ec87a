//! Everything that turns an event into requests: which webhooks an event fires, the skip
//! decision, and the rendered url, headers and body of each target. Templates are code
//! written by tenants, so every render runs within a budget (`budget`) on the render pool
//! (`pool`), never on an async runtime thread; an event whose matched webhooks have no
//! templates (plain text only, no filters) is planned where it is, without that hop. Depends only on `model` (and the prometheus
//! counter it is given).
//! - `matcher`: trigger types, integration filter, structured filters.
//! - `plan`: a matched webhook's requests for an event (or why it is skipped).
//! - `templates`: one entry to the engines, `jinja` (minijinja) and `handlebars`, each
//!   bounded; `budget`: the limits, the meter and the capped output of one render.
//! - `filters`: OnCall's Jinja filters and globals; `dates`: the date-times they read and print.
//! - `formatters`: bodies for Slack, Discord, ... destinations.
//! - `pool`: the bounded pool of render threads; `sandbox`: the worker processes Jinja
//!   renders in, which bound its memory.

pub mod budget;
mod dates;
mod filters;
pub mod formatters;
mod handlebars;
mod jinja;
pub mod matcher;
pub mod plan;
pub mod pool;
pub mod sandbox;
pub mod templates;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::Semaphore;

pub use budget::Limits;
pub use plan::{EventView, Plan, Target, plan};
pub use sandbox::Sandbox;
pub use templates::Templates;

use crate::model::{Engine, Webhook};

/// Renders off the async runtime: the engines and the pool their renders run on; cheap to
/// clone. One account's events render on at most half of the pool's threads (at least one),
/// so a tenant with hostile templates never takes every thread from the others.
#[derive(Clone)]
pub struct Renderer {
    templates: Templates,
    pool: Arc<pool::Pool>,
    per_account: usize,
    accounts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// An event's data, handed back with the plan of each matched webhook (in their order).
pub struct Planned {
    pub data: Value,
    pub webhooks: Vec<Webhook>,
    pub plans: Vec<Plan>,
}

impl Renderer {
    /// Engines within `limits` on a pool of `threads` render threads.
    pub fn start(templates: Templates, threads: usize) -> std::io::Result<Renderer> {
        Ok(Renderer {
            templates,
            pool: Arc::new(pool::Pool::start(threads)?),
            per_account: (threads / 2).max(1),
            accounts: Arc::default(),
        })
    }

    /// Compile-only check of a template (validation).
    pub fn check(&self, engine: Engine, source: &str) -> Result<(), String> {
        self.templates.check(engine, source)
    }

    /// Plans an event of `account` of `event_type` with event_data `data` (whose JSON text is
    /// `json`) for each of the matched `webhooks`, on the render pool; None if the render
    /// job panicked.
    pub async fn plan(
        &self,
        account: &str,
        event_type: String,
        data: Value,
        json: String,
        webhooks: Vec<Webhook>,
    ) -> Option<Planned> {
        if webhooks.is_empty() {
            return Some(Planned {
                data,
                webhooks,
                plans: Vec::new(),
            });
        }
        if webhooks.iter().all(plan::is_plain_webhook) {
            // Nothing to render: planning here costs less than the trip to a render thread.
            let plans = self.plan_each(&event_type, &data, json, &webhooks);
            return Some(Planned {
                data,
                webhooks,
                plans,
            });
        }
        let turn = {
            let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            let semaphore = accounts
                .entry(account.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account)));
            Arc::clone(semaphore)
        };
        let _turn = turn.acquire_owned().await.ok()?;
        let renderer = self.clone();
        self.pool
            .run(move || {
                let plans = renderer.plan_each(&event_type, &data, json, &webhooks);
                Planned {
                    data,
                    webhooks,
                    plans,
                }
            })
            .await
    }

    /// The plan of each of `webhooks` for one event, in their order.
    fn plan_each(
        &self,
        event_type: &str,
        data: &Value,
        json: String,
        webhooks: &[Webhook],
    ) -> Vec<Plan> {
        let view = EventView::new(event_type, data, json);
        webhooks
            .iter()
            .map(|webhook| plan(&self.templates, webhook, &view))
            .collect()
    }
}
