//! Everything that turns an event into requests: which webhooks an event fires, the skip
//! decision, and the rendered url, headers and body of each target. Depends only on `model`.
//! - `matcher`: trigger types, integration filter, structured filters.
//! - `plan`: a matched webhook's requests for an event (or why it is skipped).
//! - `templates`: the Jinja (minijinja) and handlebars engines, compiled-template caches.
//! - `filters`: OnCall's Jinja filters and globals; `dates`: the date-times they read and print.
//! - `formatters`: bodies for Slack, Discord, ... destinations.

mod dates;
mod filters;
pub mod formatters;
pub mod matcher;
pub mod plan;
pub mod templates;

pub use plan::{EventView, Plan, Target, plan};
pub use templates::Templates;
