//! webhookd: an outgoing-webhook service. One binary, gRPC first, an embedded store (fjall),
//! and a REST gateway speaking Grafana OnCall's and Cloudflare's webhook APIs.
//!
//! # Layout
//! Dependencies point down only: transport (`grpc`, `rest`) -> `core` -> `render`,
//! `delivery`, `store` -> `model`.
//! - [`config`]: runtime settings of `webhookd serve`.
//! - [`error`]: the domain error every layer returns; transports translate it at the edge.
//! - `faults`: test-only fault injection (the `fault-injection` feature).
//! - [`model`]: plain domain types (OnCall field names are canonical).
//! - [`ids`]: external identifiers (prefix + sortable base32 of a u64).
//! - [`userinfo`]: credentials embedded in URLs: masked in output, sent as basic auth.
//! - [`metrics`]: Prometheus metrics shared by core and delivery.
//! - [`store`]: the backend-neutral async `Store` trait, the `Sealed` layer encrypting
//!   secrets over any backend, and the backends (`store::sled`, the embedded one, the only
//!   user of fjall and of sled, which it reads once to move an older data directory over).
//! - [`render`]: event -> requests: matching, Jinja (minijinja) and handlebars templates,
//!   OnCall's filters, destination formatters.
//! - [`delivery`]: HTTP client, SSRF guard, signing, retry policy, worker, status hub.
//! - [`core`]: use cases: auth, webhook CRUD, event emission.
//! - [`net`]: the accept loop of both servers (a broken listener ends its server).
//! - [`grpc`]: tonic services, reflection and health.
//! - [`rest`]: axum gateway (admin, health; OnCall, Cloudflare and events dialects).
//! - [`console`]: the web console's static files at `/console/` (served by the gateway).
//! - [`telemetry`]: W3C trace context on emits and deliveries, OTLP export of spans.
//! - [`allocator`]: the options of the process allocator (mimalloc), set by `main`.

pub mod allocator;
pub mod config;
pub mod console;
pub mod core;
pub mod delivery;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod grpc;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod net;
pub mod render;
pub mod rest;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod userinfo;

pub use config::Config;
pub use server::run;
