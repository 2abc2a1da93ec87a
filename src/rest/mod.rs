//! The REST gateway on the HTTP listener (axum on hyper): thin translations onto
//! `core::Service`, one module per dialect, each with its own error body.
//! - `admin`: `/admin/v1/tokens` (admin token).
//! - `health`: `GET /healthz`.
//!
//! Paths are matched with and without a trailing slash; bodies are size-limited; unknown
//! paths and methods answer JSON, never HTML.

pub mod admin;
pub mod health;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::core::Service;

/// JSON `{"detail": ...}` with a status: the generic error body of the gateway.
pub fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "detail": message.into() });
    (status, axum::Json(body)).into_response()
}

/// The `Authorization` header of a request, if any.
pub fn authorization(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

async fn not_found(request: Request) -> Response {
    detail(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// The gateway's routes over `service`.
pub fn router(service: Service) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(admin::routes(service.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            detail(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
        })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            service.config().max_event_bytes + 64 * 1024,
        ))
}

/// Serves the gateway on `listener` until `shutdown`.
pub async fn serve(
    service: Service,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(service));
    let make = axum::ServiceExt::<Request>::into_make_service(app);
    axum::serve(listener, make)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
