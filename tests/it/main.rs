//! Black-box tests of webhookd: the real server on ephemeral ports, real HTTP receivers on
//! 127.0.0.1, and the built binary for process-level behaviour (flags, kill -9 + restart).

mod auth;
mod backlog;
mod batch_emit;
mod bounds;
mod breaker_events;
mod cli;
mod console;
mod delivery;
mod delivery_features;
mod egress;
mod event_types;
mod fairness;
mod hostile_templates;
mod mtls;
mod operational_events;
mod operator_api;
mod ordering;
mod pg_outage;
mod process;
mod races;
mod rate_limits;
mod recovery;
mod rest_cloudflare;
mod rest_events;
mod rest_oncall;
mod restart;
mod retention;
mod scale_out;
mod server_failure;
mod signing_ed25519;
mod support;
mod takeover;
mod trace_context;
mod watch_deliveries;
mod webhooks_crud;
