//! An accepted event is never lost: the built binary acknowledges events, is killed with
//! SIGKILL before it could deliver them, and after a restart on the same data directory
//! every acknowledged event reaches the receiver.

use std::collections::HashSet;
use std::time::Duration;

use webhookd::grpc::pb;

use crate::process::Process;
use crate::support::*;

#[tokio::test]
async fn kill_9_after_the_ack_loses_no_event() {
    let store = TestStore::new().await;
    let receiver = Receiver::start().await;
    // The receiver holds every request long enough that nothing completes before the kill.
    receiver.delay(Duration::from_secs(5));

    // A short lease: on a shared database the restarted process is a new instance, which
    // takes over the dead one's deliveries once its leases expire.
    let first = Process::start(&store, &["--delivery-concurrency", "2", "--lease", "1s"]).await;
    first.ready().await;
    let server = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    create(
        &mut client,
        &server,
        webhook("durable", &receiver.url("/hook")),
    )
    .await;

    let mut acknowledged = HashSet::new();
    for i in 0..40 {
        let request = pb::EmitEventRequest {
            event_type: "alert group created".into(),
            data: Some(to_struct(
                serde_json::json!({"alert_group": {"id": format!("AG{i}")}}),
            )),
            idempotency_key: String::new(),
            ordering_key: String::new(),
        };
        let mut stream = client
            .emit_event(authed(&server, request))
            .await
            .unwrap()
            .into_inner();
        let accepted = stream.message().await.unwrap().unwrap();
        assert_eq!(states(std::slice::from_ref(&accepted)), ["ACCEPTED"]);
        assert_eq!(accepted.matched_deliveries, 1);
        acknowledged.insert(format!("AG{i}"));
    }
    // And a batch, acknowledged as a whole.
    let batch = pb::EmitEventsRequest {
        events: (40..60)
            .map(|i| pb::EmitEventRequest {
                event_type: "alert group created".into(),
                data: Some(to_struct(
                    serde_json::json!({"alert_group": {"id": format!("AG{i}")}}),
                )),
                idempotency_key: String::new(),
                ordering_key: String::new(),
            })
            .collect(),
    };
    let emitted = client
        .emit_events(authed(&server, batch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(emitted.results.len(), 20);
    acknowledged.extend((40..60).map(|i| format!("AG{i}")));
    let mut first = first;
    first.kill_9();

    receiver.delay(Duration::ZERO);
    let second = Process::start(&store, &[]).await;
    second.ready().await;
    let mut delivered = HashSet::new();
    while !acknowledged.is_subset(&delivered) {
        let request = receiver.next().await;
        delivered.insert(
            request.json()["alert_group"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(delivered, acknowledged);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_the_admin_token_file_is_reused() {
    let store = TestStore::new().await;
    let first = Process::spawn(&store, &[], None).await;
    first.ready().await;
    let token_file = store.dir.path().join("admin.token");
    let token = eventually(|| async {
        std::fs::read_to_string(&token_file)
            .ok()
            .filter(|t| !t.is_empty())
    })
    .await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (status, logs) = first.terminate();
    assert!(status.success(), "exit: {status:?}");
    assert!(
        logs.contains("admin.token") && !logs.contains(token.trim()),
        "{logs}"
    );

    let second = Process::spawn(&store, &[], None).await;
    second.ready().await;
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    let url = format!("http://{}/admin/v1/tokens", second.http);
    let body = serde_json::json!({"account_id": "acme", "scopes": ["webhooks:read"]});
    let (status, _) = http_json(
        axum::http::Method::POST,
        &url,
        Some(&format!("Bearer {}", token.trim())),
        Some(body),
    )
    .await;
    assert_eq!(status, axum::http::StatusCode::CREATED);
    assert!(second.terminate().0.success());
}

#[tokio::test]
async fn a_webhook_and_a_token_are_durable_once_answered() {
    let store = TestStore::new().await;
    let mut first = Process::start(&store, &[]).await;
    first.ready().await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    let created = create(
        &mut client,
        &token,
        webhook("kept", "https://example.com/hook"),
    )
    .await;
    first.kill_9(); // right after the answers

    let second = Process::start(&store, &[]).await;
    second.ready().await;
    let mut client = connect_webhooks(second.grpc).await;
    let fetched = client
        .get_webhook(authed(&token, pb::GetWebhookRequest { id: created.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.name, "kept");
}
