//! The circuit breaker as users see it: a dead endpoint opens its webhook's breaker and an
//! operational webhook subscribed to `endpoint.breaker_opened` hears of it once, signed;
//! the endpoint's recovery closes it and `endpoint.breaker_closed` follows once; on
//! PostgreSQL, two instances add up their failures and each transition is reported once; a
//! dead egress proxy is nobody's failure: it neither opens the breaker nor disables the
//! webhook.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use webhookd::grpc::pb;

use crate::delivery_features::signature_valid;
use crate::support::*;

const OPENED: &str = "endpoint.breaker_opened";
const CLOSED: &str = "endpoint.breaker_closed";
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// An operational webhook hearing of breaker transitions, signed.
fn breaker_watcher(url: &str) -> pb::Webhook {
    pb::Webhook {
        trigger_type: String::new(),
        trigger_types: vec![OPENED.into(), CLOSED.into()],
        signing_secret: Some(SECRET.into()),
        ..webhook("breaker watch", url)
    }
}

/// GET /api/v1/webhooks/{id}/health/ through `server`.
pub(crate) async fn health(server: &TestServer, token: &str, id: &str) -> Value {
    let url = format!("http://{}/api/v1/webhooks/{id}/health/", server.http_addr);
    let (status, body) = http_json(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The next breaker event `ops` receives, checked to be signed and of `event_type`.
async fn next_event(ops: &Receiver, event_type: &str) -> Value {
    let received = ops.next().await;
    assert!(signature_valid(SECRET, &received), "{:?}", received.headers);
    let data = received.json();
    assert_eq!(data["event"]["type"], event_type, "{data}");
    data
}

#[tokio::test]
async fn a_dead_endpoint_opens_its_breaker_once_and_its_recovery_closes_it_once() {
    let server = TestServer::start_with(|c| {
        c.breaker_threshold = 2;
        c.breaker_cooldown = Duration::from_secs(3);
        c.retry_schedule = vec![Duration::from_millis(10); 8];
    })
    .await;
    let (dead, ops) = (Receiver::start().await, Receiver::start().await);
    dead.answer(500);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let url = format!("http://pager:pw@{}/hook", dead.addr);
    let hook = create(&mut client, &token, webhook("pager", &url)).await;
    create(&mut client, &token, breaker_watcher(&ops.url("/ops"))).await;

    let emitting = {
        let (mut client, token) = (client.clone(), token.clone());
        tokio::spawn(async move {
            emit_all(&mut client, &token, "alert group created", json!({})).await
        })
    };
    // Two failures open it: one signed event naming the webhook, its credentials masked.
    let opened = next_event(&ops, OPENED).await;
    assert_eq!(opened["webhook"]["id"], hook.id.as_str());
    assert_eq!(opened["webhook"]["name"], "pager");
    let shown = opened["webhook"]["url"].as_str().unwrap();
    assert!(
        shown.ends_with("/hook") && !shown.contains(":pw@"),
        "{shown}"
    );
    assert_eq!(opened["breaker"]["state"], "OPEN");
    assert_eq!(opened["breaker"]["consecutive_failures"], 2);
    assert!(opened["breaker"]["opened_at"].is_string(), "{opened}");
    assert!(opened["breaker"]["open_until"].is_string(), "{opened}");
    dead.next().await;
    dead.next().await;
    // The retry waits for the cooldown meanwhile; health tells what the store holds.
    dead.assert_quiet().await;
    let failing = health(&server, &token, &hook.id).await;
    assert_ne!(failing["breaker_state"], "CLOSED", "{failing}");

    // The endpoint is back: the probe succeeds and closes it, once.
    dead.answer(200);
    let closed = next_event(&ops, CLOSED).await;
    assert_eq!(closed["webhook"]["id"], hook.id.as_str());
    assert_eq!(closed["breaker"]["state"], "CLOSED");
    assert_eq!(
        closed["breaker"]["opened_at"],
        opened["breaker"]["opened_at"]
    );
    assert!(closed["breaker"]["closed_at"].is_string(), "{closed}");
    let statuses = emitting.await.unwrap();
    assert_eq!(states(&statuses).last(), Some(&"SUCCEEDED"), "{statuses:?}");
    assert_eq!(
        health(&server, &token, &hook.id).await["breaker_state"],
        "CLOSED"
    );
    // Nothing more: no second opening, no event about the watcher's own deliveries.
    ops.assert_quiet().await;
}

#[tokio::test]
async fn on_postgres_two_instances_add_up_their_failures_and_report_each_transition_once() {
    let Some(instances) = TestServer::cluster_with(2, |c| {
        c.breaker_threshold = 4;
        c.breaker_cooldown = Duration::from_secs(3);
    })
    .await
    else {
        return;
    };
    let (dead, ops) = (Receiver::start().await, Receiver::start().await);
    dead.answer(500);
    let token = instances[0].writer("acme").await;
    let mut a = instances[0].webhooks().await;
    let mut b = instances[1].webhooks().await;
    // Two attempts per delivery: one instance alone never reaches the threshold of 4.
    let hook = create(
        &mut a,
        &token,
        pb::Webhook {
            max_attempts: 2,
            ..webhook("pager", &dead.url("/hook"))
        },
    )
    .await;
    create(&mut b, &token, breaker_watcher(&ops.url("/ops"))).await;

    // One event through each instance; each makes its delivery's attempts.
    let (on_a, on_b) = tokio::join!(
        emit_all(&mut a, &token, "alert group created", json!({"via": "a"})),
        emit_all(&mut b, &token, "alert group created", json!({"via": "b"})),
    );
    for statuses in [&on_a, &on_b] {
        assert_eq!(
            states(statuses),
            ["QUEUED", "RETRYING", "FAILED"],
            "{statuses:?}"
        );
    }
    for _ in 0..4 {
        dead.next().await;
    }
    // The fourth failure, whichever instance made it, opened the breaker: reported once.
    let opened = next_event(&ops, OPENED).await;
    assert_eq!(opened["webhook"]["id"], hook.id.as_str());
    assert_eq!(opened["breaker"]["consecutive_failures"], 4);
    // Both instances answer from the stored state.
    let (seen_a, seen_b) = (
        health(&instances[0], &token, &hook.id).await,
        health(&instances[1], &token, &hook.id).await,
    );
    assert_ne!(seen_a["breaker_state"], "CLOSED", "{seen_a}");
    assert_eq!(seen_a["breaker_state"], seen_b["breaker_state"]);

    // Back up: deliveries through both instances succeed; the breaker closes once.
    dead.answer(200);
    for client in [&mut b, &mut a] {
        let statuses = emit_all(client, &token, "alert group created", json!({})).await;
        assert_eq!(states(&statuses).last(), Some(&"SUCCEEDED"), "{statuses:?}");
    }
    let closed = next_event(&ops, CLOSED).await;
    assert_eq!(closed["webhook"]["id"], hook.id.as_str());
    for instance in &instances {
        let seen = health(instance, &token, &hook.id).await;
        assert_eq!(seen["breaker_state"], "CLOSED", "{seen}");
    }
    ops.assert_quiet().await;
}
