//! The REST gateway on the HTTP listener (axum on hyper): thin translations onto
//! `core::Service`, one module per dialect, each with its own error body.
//! - `admin`: `/admin/v1/tokens` (admin token).
//! - `health`: `GET /healthz`.
//! - `oncall`: Grafana OnCall's outgoing webhooks API (+ legacy actions, redelivery).
//! - `cloudflare`: Cloudflare's notification webhooks API.
//! - `events`: `POST /api/v1/events/`.
//! - `event_types`: the event-type catalog, `/api/v1/event_types/`.
//! - `operator`: events and deliveries queries, cancel (`GET /api/v1/events/`, `/api/v1/deliveries/`).
//! - `openapi`: `GET /api/openapi.json` (OpenAPI 3.1, generated).
//! - `webhook_health`: `GET /api/v1/webhooks/{id}/health/`.
//! - `watch`: `GET /api/v1/deliveries/stream` (the live tail as Server-Sent Events).
//!
//! The web console (`crate::console`, `/console/`) is served on the same listener.
//!
//! Paths are matched with and without a trailing slash; bodies are size-limited; unknown
//! paths and methods answer JSON, never HTML.

pub mod admin;
pub mod cloudflare;
pub mod event_types;
pub mod events;
pub mod health;
pub mod metrics;
pub mod oncall;
pub mod openapi;
pub mod operator;
pub mod states;
pub mod watch;
pub mod webhook_health;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::core::Service;
use crate::net;

/// JSON `{"detail": ...}` with a status: the generic error body of the gateway.
pub fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "detail": message.into() });
    (status, axum::Json(body)).into_response()
}

/// A dialect's error body for a busy store (503) or an overloaded server (429), with
/// `Retry-After` telling the client when to try again.
pub fn busy(body: Response) -> Response {
    let seconds = crate::error::BUSY_RETRY_AFTER.as_secs().max(1);
    let mut response = body;
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(seconds),
    );
    response
}

/// The `Authorization` header of a request, if any.
pub fn authorization(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// An error response of a handler, boxed so `Result<_, Failure>` stays small; `?` turns
/// any `Response` into one.
pub struct Failure(Box<Response>);

impl From<Response> for Failure {
    fn from(response: Response) -> Failure {
        Failure(Box::new(response))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// Milliseconds since the epoch as RFC 3339 with microseconds (OnCall's and Cloudflare's format).
pub fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_micros(time).to_string()
}

/// An error of the gateway itself (no route, wrong method, body too large) in the shape
/// of the dialect that owns `path`.
fn gateway_error(path: &str, status: StatusCode, message: impl Into<String>) -> Response {
    if cloudflare::owns(path) {
        cloudflare::failure(status, cloudflare::code_for(status), message)
    } else {
        detail(status, message)
    }
}

async fn not_found(request: Request) -> Response {
    gateway_error(
        request.uri().path(),
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// Rewrites non-JSON error responses of the layers (e.g. the body limit's 413) into the
/// dialect's JSON error shape.
async fn json_errors(request: Request, next: axum::middleware::Next) -> Response {
    // The Uri's parts are shared, not copied: its path is read only for an error.
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large.".to_string(),
        other => other.canonical_reason().unwrap_or("Error").to_string(),
    };
    gateway_error(uri.path(), status, message)
}

/// Largest body of a batch of events (gRPC's default message limit).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The gateway's routes over `service`; open event streams end at `shutdown`.
pub fn router(service: Service, shutdown: CancellationToken) -> Router {
    let single_bodies = Router::new()
        .merge(health::routes(service.clone()))
        .merge(admin::routes(service.clone()))
        .merge(metrics::routes(service.clone()))
        .merge(oncall::routes(service.clone()))
        .merge(cloudflare::routes(service.clone()))
        .merge(events::routes(service.clone()))
        .merge(event_types::routes(service.clone()))
        .merge(operator::routes(service.clone()))
        .merge(watch::routes(service.clone(), shutdown))
        .merge(openapi::routes())
        .merge(webhook_health::routes(service.clone()))
        .merge(crate::console::routes())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            service.config().max_event_bytes + 64 * 1024,
        ));
    let batches = events::batch_routes(service.clone()).layer(
        tower_http::limit::RequestBodyLimitLayer::new(MAX_BATCH_BYTES),
    );
    Router::new()
        .merge(single_bodies)
        .merge(batches)
        .fallback(not_found)
        .method_not_allowed_fallback(|uri: axum::http::Uri| async move {
            gateway_error(
                uri.path(),
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed.",
            )
        })
        .layer(axum::middleware::from_fn(json_errors))
}

/// Serves the gateway on `listener` until `shutdown`, or until the listener breaks (an error).
pub async fn serve(
    service: Service,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(service, shutdown.clone()));
    let make = axum::ServiceExt::<Request>::into_make_service(app);
    let (acceptor, broken) = net::acceptor(listener);
    let serving = axum::serve(acceptor, make).with_graceful_shutdown(shutdown.cancelled_owned());
    tokio::select! {
        served = serving => served,
        error = broken.wait() => Err(error),
    }
}

impl axum::serve::Listener for net::Acceptor {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        net::Acceptor::accept(self).await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        net::Acceptor::local_addr(self)
    }
}
