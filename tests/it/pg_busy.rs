//! A busy PostgreSQL pool is back-pressure, not an outage. webhookd runs with a one-connection
//! pool (`--store-pool-size 1`); the test holds a lock on the event-type table, so a create of
//! an event type takes that connection and waits. Meanwhile every call that needs a
//! connection answers "busy, retry" in its API's own shape (gRPC UNAVAILABLE with RetryInfo
//! and ErrorInfo STORE_BUSY; REST 503 with Retry-After in the events API's, OnCall's and
//! Cloudflare's bodies), and /healthz and grpc.health stay SERVING. Once the lock goes, the
//! held call completes and emits are acknowledged again. The built binary says so in its
//! log once, not once per busy answer. Runs under scripts/with-postgres.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use webhookd::grpc::pb;

use crate::process::Process;
use crate::support::*;

/// Holds an exclusive lock on webhookd's event types until dropped (rolled back).
struct TableLock(sqlx::PgConnection);

impl TableLock {
    async fn take(url: &str) -> TableLock {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("LOCK TABLE event_types IN ACCESS EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .unwrap();
        TableLock(conn)
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
    }
}

/// Waits until a session of webhookd (`application_name`) waits for a lock.
async fn until_waiting_on_a_lock(url: &str, application_name: &str) {
    let watcher = sqlx::PgPool::connect(url).await.unwrap();
    eventually(|| {
        let watcher = watcher.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
            )
            .bind(application_name)
            .fetch_one(&watcher)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_full_connection_pool_answers_busy_retry_and_health_stays_serving() {
    let server = TestServer::start_with(|c| c.store_pool_size = 1).await;
    let Some(url) = server.store().postgres_url.clone() else {
        return; // needs PostgreSQL (scripts/with-postgres)
    };
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    // The create that waits holds acme's write lock too: the webhook creates below are
    // globex's, so they wait for a connection only.
    let globex = server.writer("globex").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("pager", &receiver.url("/pager")),
    )
    .await;
    let events = format!("http://{}/api/v1/events/", server.http_addr);
    let resolve = json!({"event": {"type": "resolve"}});
    let (status, body) =
        http_json(Method::POST, &events, Some(&token), Some(resolve.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Someone else's long transaction holds the event types; webhookd's only connection
    // waits on it for a create.
    let lock = TableLock::take(&url).await;
    let held = tokio::spawn({
        let (mut client, token) = (client.clone(), token.clone());
        async move {
            let request = pb::CreateEventTypeRequest {
                event_type: Some(pb::EventType {
                    name: "alert group created".into(),
                    ..Default::default()
                }),
            };
            client.create_event_type(authed(&token, request)).await
        }
    });
    until_waiting_on_a_lock(&url, "webhookd").await;

    // Every call that needs a connection now answers busy, each in its API's shape.
    let cloudflare = format!(
        "http://{}/client/v4/accounts/globex/alerting/v3/destinations/webhooks",
        server.http_addr
    );
    let oncall = format!("http://{}/api/v1/webhooks/", server.http_addr);
    let body = |name: &str| json!({"name": name, "url": receiver.url("/x")}).to_string();
    let (emitted, named_oncall, named_cf) = (resolve.to_string(), body("oncall"), body("cf"));
    let (grpc, rest_emit, rest_oncall, rest_cloudflare) = tokio::join!(
        grpc_emit(client.clone(), &token),
        http_raw(Method::POST, &events, Some(&token), Some(&emitted), &[]),
        http_raw(
            Method::POST,
            &oncall,
            Some(&globex),
            Some(&named_oncall),
            &[]
        ),
        http_raw(
            Method::POST,
            &cloudflare,
            Some(&globex),
            Some(&named_cf),
            &[]
        ),
    );
    let status = grpc.expect_err("EmitEvent acknowledged without a connection");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("busy"), "{status:?}");
    assert!(!busy_retry_delay(&status).is_zero());
    for (status, headers, text) in [rest_emit, rest_oncall] {
        assert_busy(status, &headers);
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(body["detail"].as_str().unwrap().contains("busy"), "{body}");
    }
    let (status, headers, text) = rest_cloudflare;
    assert_busy(status, &headers);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("busy"),
        "{body}"
    );

    // A full pool is no outage: health says serving throughout.
    let (status, body) = server.healthz().await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("ok")));
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = HealthCheckRequest {
        service: "webhooks.v1.WebhookService".into(),
    };
    let health = HealthClient::new(channel).check(request).await.unwrap();
    assert_eq!(health.into_inner().status(), ServingStatus::Serving);

    // The lock goes: the held create completes, and emits are acknowledged again.
    lock.release().await;
    held.await.unwrap().unwrap();
    let (status, body) = http_json(Method::POST, &events, Some(&token), Some(resolve)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// A REST answer of a busy store: 503 with a Retry-After of whole seconds.
fn assert_busy(status: StatusCode, headers: &axum::http::HeaderMap) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(after >= 1, "{headers:?}");
}

/// An EmitEvent call: its first message, or the status it failed with.
async fn grpc_emit(
    mut client: pb::webhook_service_client::WebhookServiceClient<tonic::transport::Channel>,
    token: &str,
) -> Result<pb::DeliveryStatus, tonic::Status> {
    let request = pb::EmitEventRequest {
        event_type: "resolve".into(),
        data: Some(to_struct(json!({}))),
        idempotency_key: String::new(),
        ordering_key: String::new(),
    };
    let mut stream = client
        .emit_event(authed(token, request))
        .await?
        .into_inner();
    stream
        .message()
        .await?
        .ok_or_else(|| tonic::Status::internal("no message"))
}

#[tokio::test]
async fn a_full_pool_is_logged_once_not_once_per_busy_answer() {
    let store = TestStore::new().await;
    let Some(url) = store.postgres_url.clone() else {
        return; // needs PostgreSQL (scripts/with-postgres)
    };
    let webhookd = Process::start(&store, &["--store-pool-size", "1"]).await;
    webhookd.ready().await;
    let token = TestServer::token_via(webhookd.http).await;
    let catalog = format!("http://{}/api/v1/event_types/", webhookd.http);
    let events = format!("http://{}/api/v1/events/", webhookd.http);

    let lock = TableLock::take(&url).await;
    let held = tokio::spawn({
        let (catalog, token) = (catalog.clone(), token.clone());
        async move {
            let declared = json!({"name": "alert group created"});
            http_json(Method::POST, &catalog, Some(&token), Some(declared)).await
        }
    });
    until_waiting_on_a_lock(&url, "webhookd").await;
    // Five emits, each answered busy.
    let emits = (0..5).map(|_| {
        let resolve = json!({"event": {"type": "resolve"}});
        http_json(Method::POST, &events, Some(&token), Some(resolve))
    });
    for (status, body) in futures::future::join_all(emits).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("busy"), "{body}");
    }
    lock.release().await;
    let (status, body) = held.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (_, logs) = webhookd.terminate();
    let full = logs
        .lines()
        .filter(|l| l.contains("every connection of the main database pool is in use"))
        .count();
    assert_eq!(full, 1, "{logs}");
    assert!(!logs.contains("the store is unreachable"), "{logs}");
}
