//! webhookd's benchmark tools (see bench/README.md): `bench-receiver`, the webhook endpoint
//! that counts what arrives, and `bench-loadgen`, which emits through webhookd's REST API and
//! writes one JSON result per phase, then renders them as a BENCHMARKS.md section.
//!
//! Dependencies point one way: the binaries -> `loadgen` / `receiver` -> `sink`, `conn`, `rawconn`,
//! `event`, `procfs`, `percentiles`.

pub mod conn;
pub mod event;
pub mod loadgen;
pub mod percentiles;
pub mod procfs;
pub mod rawconn;
pub mod receiver;
pub mod report;
pub mod sink;
