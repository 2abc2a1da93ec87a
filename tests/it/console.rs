//! An operator opens the web console at /console/ and its pages ask the webhook health API:
//! the console's files come with their content types, a strict Content-Security-Policy,
//! ETags and no token; unknown files are 404; the API behind it still wants the token; and
//! `GET /api/v1/webhooks/{id}/health/` (gRPC `GetWebhookHealth`) tells a failing webhook's
//! failures, open breaker and waiting deliveries, then its recovery.

use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;
use webhookd::grpc::pb;

async fn get(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let url = format!("http://{}{path}", server.http_addr);
    http_raw(Method::GET, &url, None, None, headers).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap_or(""))
}

/// The security headers every console response carries.
fn assert_locked_down(headers: &HeaderMap) {
    let policy = header(headers, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{directive} missing in {policy}"
        );
    }
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer");
}

#[tokio::test]
async fn the_console_pages_load_without_a_token_with_their_types_and_a_strict_policy() {
    let server = TestServer::start().await;
    for path in ["/console/", "/console", "/console/index.html"] {
        let (status, headers, body) = get(&server, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_locked_down(&headers);
        // Scripts come from files only: every <script> names its src.
        assert!(body.contains(r#"<script type="module" src="/console/app.js"></script>"#));
        assert_eq!(body.matches("<script").count(), 1, "{body}");
    }
    for (path, content_type) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/pages.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(&server, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert!(!body.is_empty());
        assert_locked_down(&headers);
    }
    // No script writes HTML from data.
    let (_, _, pages) = get(&server, "/console/pages.js", &[]).await;
    assert!(!pages.contains("innerHTML") && !pages.contains("eval("));
}

#[tokio::test]
async fn an_unchanged_console_file_is_not_sent_again() {
    let server = TestServer::start().await;
    let (_, headers, _) = get(&server, "/console/app.js", &[]).await;
    let etag = header(&headers, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let (status, again, body) = get(&server, "/console/app.js", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&again, "etag"), etag);
    let (status, _, _) = get(
        &server,
        "/console/app.js",
        &[("if-none-match", "\"stale\"")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Another file has another tag.
    let (_, css, _) = get(&server, "/console/console.css", &[]).await;
    assert_ne!(header(&css, "etag"), etag);
}

#[tokio::test]
async fn an_unknown_console_file_is_404_and_the_api_behind_it_wants_the_token() {
    let server = TestServer::start().await;
    for path in [
        "/console/missing.js",
        "/console/%2e%2e/Cargo.toml",
        "/console/assets/app.js",
        "/console/index.html/extra",
    ] {
        let (status, headers, body) = get(&server, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            header(&headers, "content-type").starts_with("application/json"),
            "{path}"
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["detail"].is_string(), "{body}");
        assert_locked_down(&headers);
    }
    let url = format!("http://{}/console/app.js", server.http_addr);
    let (status, _, _) = http_raw(Method::POST, &url, None, Some("{}"), &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // The pages are public; the data is not.
    let api = format!("http://{}/api/v1/webhooks/", server.http_addr);
    let (status, body) = http_json(Method::GET, &api, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let health = format!(
        "http://{}/api/v1/webhooks/W0000000000000/health/",
        server.http_addr
    );
    let (status, _) = http_json(Method::GET, &health, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let token = server.writer("acme").await;
    let (status, _) = http_json(Method::GET, &api, Some(&format!("Bearer {token}")), None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Creates a webhook through the OnCall API and returns its id.
async fn oncall_webhook(server: &TestServer, token: &str, name: &str, url: &str) -> String {
    let (status, body) = http_json(
        Method::POST,
        &format!("http://{}/api/v1/webhooks/", server.http_addr),
        Some(token),
        Some(json!({"name": name, "url": url, "trigger_type": "resolve"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn emit(server: &TestServer, token: &str) {
    let (status, body) = http_json(
        Method::POST,
        &format!("http://{}/api/v1/events/", server.http_addr),
        Some(token),
        Some(json!({"event": {"type": "resolve"}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn health(server: &TestServer, token: &str, id: &str) -> (StatusCode, Value) {
    let url = format!("http://{}/api/v1/webhooks/{id}/health/", server.http_addr);
    http_json(Method::GET, &url, Some(token), None).await
}

#[tokio::test]
async fn a_failing_webhook_shows_its_failures_open_breaker_and_waiting_deliveries_then_recovers() {
    let server = TestServer::start_with(|config| {
        config.breaker_threshold = 2;
        config.breaker_cooldown = Duration::from_secs(1);
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let token = server.writer("acme").await;
    let id = oncall_webhook(&server, &token, "pager", &receiver.url("/hook")).await;

    let (status, fresh) = health(&server, &token, &id).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(fresh["webhook_id"], id.as_str());
    assert_eq!(fresh["is_webhook_enabled"], true);
    assert_eq!(fresh["disabled_reason"], "");
    assert_eq!(fresh["last_success_at"], Value::Null);
    assert_eq!(fresh["breaker_state"], "CLOSED");
    assert_eq!(fresh["pending_count"], 0);
    assert_eq!(fresh["hourly"].as_array().unwrap().len(), 24);
    assert_eq!(
        fresh["last_day"],
        json!({"start_time": fresh["hourly"][0]["start_time"], "succeeded": 0, "failed": 0})
    );

    // Two events against a dead endpoint: two failures open the breaker, the rest wait.
    emit(&server, &token).await;
    emit(&server, &token).await;
    let failing = eventually(|| {
        let (server, token, id) = (&server, &token, &id);
        async move {
            let (_, h) = health(server, token, id).await;
            (h["breaker_state"] == "OPEN").then_some(h)
        }
    })
    .await;
    assert!(failing["last_failure_at"].is_string(), "{failing}");
    assert!(failing["failing_since"].is_string(), "{failing}");
    assert_eq!(failing["last_success_at"], Value::Null);
    assert!(failing["pending_count"].as_u64().unwrap() >= 1, "{failing}");
    assert!(
        failing["last_hour"]["failed"].as_u64().unwrap() >= 2,
        "{failing}"
    );
    assert_eq!(failing["last_hour"]["succeeded"], 0);
    assert_eq!(failing["hourly"][23], failing["last_hour"]);

    // The endpoint comes back: the probe succeeds and the backlog drains.
    receiver.answer(200);
    let healthy = eventually(|| {
        let (server, token, id) = (&server, &token, &id);
        async move {
            let (_, h) = health(server, token, id).await;
            (h["breaker_state"] == "CLOSED"
                && h["pending_count"] == 0
                && h["last_success_at"].is_string())
            .then_some(h)
        }
    })
    .await;
    assert_eq!(healthy["failing_since"], Value::Null, "{healthy}");
    assert!(
        healthy["last_day"]["succeeded"].as_u64().unwrap() >= 1,
        "{healthy}"
    );

    // gRPC tells the same.
    let mut client = server.webhooks().await;
    let reply = client
        .get_webhook_health(authed(
            &token,
            pb::GetWebhookHealthRequest {
                webhook_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.webhook_id, id);
    assert_eq!(reply.breaker_state(), pb::BreakerState::Closed);
    assert!(reply.last_success_at.is_some() && reply.last_failure_at.is_some());
    assert_eq!(reply.hourly.len(), 24);
    let day = reply.last_day.unwrap();
    assert!(day.succeeded >= 1 && day.failed >= 2, "{day:?}");
}

#[tokio::test]
async fn health_of_an_unknown_or_foreign_webhook_is_not_found_and_needs_the_read_scope() {
    let server = TestServer::start().await;
    let acme = server.writer("acme").await;
    let other = server.writer("globex").await;
    let writer_only = server.token("acme", &["webhooks:write"]).await;
    let id = oncall_webhook(&server, &acme, "mine", "http://127.0.0.1:9/hook").await;
    for (token, webhook, expected) in [
        (&other, id.as_str(), StatusCode::NOT_FOUND),
        (&acme, "W0000000000000", StatusCode::NOT_FOUND),
        (&acme, "not-an-id", StatusCode::NOT_FOUND),
        (&writer_only, id.as_str(), StatusCode::FORBIDDEN),
    ] {
        let (status, body) = health(&server, token, webhook).await;
        assert_eq!(status, expected, "{webhook}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    let mut client = server.webhooks().await;
    for (token, webhook_id) in [(&other, id.as_str()), (&acme, ""), (&acme, "not-an-id")] {
        let request = pb::GetWebhookHealthRequest {
            webhook_id: webhook_id.into(),
        };
        let status = client
            .get_webhook_health(authed(token, request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{webhook_id:?}");
    }
    let status = client
        .get_webhook_health(tonic::Request::new(pb::GetWebhookHealthRequest {
            webhook_id: id,
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn asking_for_health_again_counts_each_new_attempt_once() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let id = oncall_webhook(&server, &token, "pager", &receiver.url("/hook")).await;
    let day_with = |succeeded: u64| {
        let (server, token, id) = (&server, &token, &id);
        eventually(move || async move {
            let (_, h) = health(server, token, id).await;
            (h["last_day"]["succeeded"] == succeeded).then_some(h)
        })
    };

    emit(&server, &token).await;
    receiver.next().await;
    let first = day_with(1).await;
    // Asked again with nothing new: the same counts (a health call reads only what is new).
    let (_, again) = health(&server, &token, &id).await;
    assert_eq!(again["last_day"], first["last_day"], "{again}");

    // Three more deliveries while the console keeps asking: each is counted once.
    for _ in 0..3 {
        emit(&server, &token).await;
    }
    for _ in 0..3 {
        receiver.next().await;
    }
    let later = day_with(4).await;
    assert_eq!(later["last_hour"], later["hourly"][23]);
    assert_eq!(later["last_day"]["failed"], 0, "{later}");
    let (_, again) = health(&server, &token, &id).await;
    assert_eq!(again["last_day"], later["last_day"], "{again}");
}
