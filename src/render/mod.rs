//! Everything that turns an event into requests: which webhooks an event fires, the skip
//! decision, and the rendered url, headers and body of each target.
//! - `matcher`: trigger types, integration filter, structured filters.
//! - `plan`: a matched webhook's requests for an event (or why it is skipped).
//! - `templates`: the Jinja (minijinja) and handlebars engines.
//! - `formatters`: bodies for Slack, Discord, ... destinations.

pub mod formatters;
pub mod matcher;
pub mod plan;
pub mod templates;
