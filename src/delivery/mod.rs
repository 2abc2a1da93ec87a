//! The delivery engine: everything between a durable delivery and the receiver's answer.
//! Depends on `store` and `model`; knows nothing of transports or matching.
//! - `client`: pooled hyper client (rustls), no redirects, bounded bodies, timeouts.
//! - `ssrf`: target address policy and the guarded DNS resolver.
//! - `egress`: the TCP connector, direct or through the egress proxy (HTTP CONNECT, SOCKS5).
//! - `signing`: Standard Webhooks signatures.
//! - `tls`: a webhook's own TLS settings (mTLS client certificate, private CAs).
//! - `retry`: outcome classification and retry schedule.
//! - `request`: assembly of one attempt's request (auth, signing, identity headers).
//! - `rate`: per-webhook token buckets (rate limits, slowed by 429s).
//! - `scheduler`: in-memory due queue; `worker`: the attempt loop; `hub`: status fan-out.
//! - `claimer`: claims due deliveries from the store under leases, renews and releases them.

pub mod claimer;
pub mod client;
pub mod egress;
pub mod hub;
pub mod rate;
pub mod request;
pub mod retry;
pub mod scheduler;
pub mod signing;
pub mod ssrf;
pub mod tls;
pub mod worker;
