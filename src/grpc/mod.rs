//! The gRPC transport: tonic services translating onto `core::Service`.
//! - `pb`: generated code and descriptor set.
//! - `convert`: protobuf <-> domain types.
//! - `status`: domain `Error` -> `tonic::Status` with rich details.
//! - `webhooks`, `admin`: the service implementations (`event_types`: the catalog RPCs;
//!   `operator`: the operator RPCs).
//! - `health`: webhook health (`GetWebhookHealth`) -> protobuf.
//! - `watch`: WatchDeliveries' request and message translations.
//! - `raw_first`: EmitEvents requests read as bytes, then decoded once the core's bound
//!   grants them memory.
//! - `server`: the tonic server with health and reflection.

pub mod admin;
pub mod convert;
pub mod event_types;
pub mod health;
pub mod operator;
pub mod pb;
pub mod raw_first;
pub mod server;
pub mod status;
pub mod watch;
pub mod webhooks;

/// The `authorization` metadata of a request, if any (both services authenticate with it).
fn authorization<T>(request: &tonic::Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}
