//! The web console at `GET /console/` on the HTTP listener: a transport that translates
//! nothing itself. It serves the static files of `console/assets/` (compiled into the
//! binary with `include_bytes!`, so nothing is fetched at run time) with their content
//! types, a strong `ETag` (`If-None-Match` -> 304) and `no-cache` (revalidate each load),
//! and a strict Content-Security-Policy: scripts and styles only from this origin, no
//! inline script, no eval, no framing, connections only back to this origin (the public
//! REST API and its SSE stream, which the page calls with the account token). Unknown
//! assets are 404. Assets need no token; every API call the page makes does.
//! Depends on nothing but axum, serde_json and sha2.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The policy of every console response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One file of the console.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../console/assets/", $path)),
        }
    };
}

/// Every file the console serves (`index.html` also answers `/console/`).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("pages.js", "text/javascript; charset=utf-8"),
    asset!("chart.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The security headers of every console response, including errors.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The strong validator of a file's bytes.
fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether `If-None-Match` names `tag` (or `*`).
fn matches(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == tag || v == "*")
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        let body = serde_json::json!({ "detail": format!("No console asset {path:?}.") });
        return secure((StatusCode::NOT_FOUND, axum::Json(body)).into_response());
    };
    let tag = etag(asset.body);
    let mut response = if matches(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, value);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(response)
}

/// The console's routes. The gateway trims trailing slashes before routing, so
/// `/console/` arrives as `/console`.
pub fn routes() -> Router {
    Router::new()
        .route(
            "/console",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve(&path, &headers)
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_is_a_quoted_digest_and_if_none_match_lists_are_understood() {
        let tag = etag(b"console");
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_ne!(tag, etag(b"console!"));
        let mut headers = HeaderMap::new();
        assert!(!matches(&headers, &tag));
        let listed = format!("\"other\", W/{tag}");
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&listed).unwrap(),
        );
        assert!(matches(&headers, &tag));
    }

    #[test]
    fn every_asset_is_listed_once() {
        for (i, asset) in ASSETS.iter().enumerate() {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
            assert!(
                ASSETS[i + 1..].iter().all(|other| other.path != asset.path),
                "{} listed twice",
                asset.path
            );
        }
    }
}
