//! Work never gets stuck: a delivery attempt that fails before it is recorded (a store
//! error) or whose task panics gives its webhook's slot back and is retried soon, instead of
//! waiting for the next restart. The faults are injected into the real server's worker
//! (the test build's `fault-injection` feature); everything else is real.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn an_attempt_that_fails_before_it_is_recorded_is_retried_soon() {
    let server = TestServer::start_with(|c| c.per_webhook_concurrency = 1).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("hook", &receiver.url("/hook"))).await;

    server.faults.fail_next_attempts(2);
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    // The failed attempts were not recorded: the first recorded attempt is number 1.
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(statuses[1].attempt, 1);
    receiver.next().await;
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_panicking_attempt_frees_its_webhooks_slot_and_is_retried() {
    let server = TestServer::start_with(|c| c.per_webhook_concurrency = 1).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(&mut client, &token, webhook("hook", &receiver.url("/hook"))).await;

    server.faults.panic_next_attempts(2);
    // With one slot per webhook, the retry runs only if the panicked attempts gave theirs back.
    let first = emit_all(&mut client, &token, "alert group created", json!({"n": 1})).await;
    assert_eq!(states(&first), ["QUEUED", "SUCCEEDED"]);
    let second = emit_all(&mut client, &token, "alert group created", json!({"n": 2})).await;
    assert_eq!(states(&second), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(receiver.next().await.json()["n"], 1);
    assert_eq!(receiver.next().await.json()["n"], 2);
    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| r.status_code == Some(200)));
    eventually(|| async {
        (metric(&scrape(&server).await, "webhookd_attempts_in_flight") == 0.0).then_some(())
    })
    .await;
}
