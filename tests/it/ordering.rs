//! A producer that needs order gives its events an ordering key: one webhook's deliveries
//! with the same key (and target URL) are attempted one at a time, in emit order, each after
//! the previous one is final; other keys go on meanwhile. The queues live in the store, so the
//! order holds across instances sharing a PostgreSQL database, and the metrics show the keys
//! that wait.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use crate::support::*;

/// The retry delay of the receiver's refused first attempt: long enough that what is not
/// ordered behind it is seen meanwhile.
const RETRY_AFTER: &str = "5s";

fn alert_id(received: &Received) -> String {
    received.json()["alert_group"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The events the receiver gets until (and with) `last`, a repeat of the one before left
/// out (delivery is at-least-once: a slow answer can be retried after it was received).
async fn received_until(receiver: &Receiver, last: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    while seen.last().map(String::as_str) != Some(last) {
        let id = alert_id(&receiver.next().await);
        if seen.last() != Some(&id) {
            seen.push(id);
        }
    }
    seen
}

async fn patient_webhook(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    receiver: &Receiver,
) {
    let hook = pb::Webhook {
        retry_schedule: vec![RETRY_AFTER.into()],
        ..webhook("ordered", &receiver.url("/ordered"))
    };
    create(client, token, hook).await;
}

/// The ordering metrics of a server: blocked keys.
async fn blocked_keys(server: &TestServer) -> f64 {
    metric(&scrape(server).await, "webhookd_ordering_blocked_keys")
}

#[tokio::test]
async fn a_key_waits_for_its_first_event_to_succeed_while_other_keys_go_on() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    patient_webhook(&mut client, &token, &receiver).await;

    // K's first event is refused once and retried later.
    receiver.fail_next(1);
    emit_keyed(&mut client, &token, "K1", "K").await;
    assert_eq!(alert_id(&receiver.next().await), "K1");
    emit_keyed(&mut client, &token, "K2", "K").await;
    emit_keyed(&mut client, &token, "L1", "L").await;

    // K2 waits, and the metrics say so.
    eventually(|| async { (blocked_keys(&server).await == 1.0).then_some(()) }).await;
    // L is not held up by K; K1's retry succeeds, and only then K2 goes out.
    assert_eq!(received_until(&receiver, "K2").await, ["L1", "K1", "K2"]);
    eventually(|| async { (blocked_keys(&server).await == 0.0).then_some(()) }).await;
}

#[tokio::test]
async fn a_finally_failed_event_releases_the_next_of_its_key_and_rest_emits_take_keys_too() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("once", &receiver.url("/once"))).await;
    receiver.answer(400);
    let events = format!("http://{}/api/v1/events/", server.http_addr);
    for id in ["R1", "R2"] {
        let body = json!({"event": {"type": "alert group created"}, "alert_group": {"id": id}});
        let (status, _, text) = http_raw(
            Method::POST,
            &events,
            Some(&token),
            Some(&body.to_string()),
            &[("Ordering-Key", "R")],
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    }
    // R1 fails for good (400, one attempt), which is final: R2 follows.
    assert_eq!(alert_id(&receiver.next().await), "R1");
    assert_eq!(alert_id(&receiver.next().await), "R2");

    // A batch: the same key in two items keeps their order.
    receiver.answer(200);
    let batch = json!({"events": [
        {"data": {"event": {"type": "alert group created"}, "alert_group": {"id": "B1"}}, "ordering_key": "B"},
        {"data": {"event": {"type": "alert group created"}, "alert_group": {"id": "B2"}}, "ordering_key": "B"},
    ]});
    let (status, body) = http_json(
        Method::POST,
        &format!("{events}batch/"),
        Some(&token),
        Some(batch),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(alert_id(&receiver.next().await), "B1");
    assert_eq!(alert_id(&receiver.next().await), "B2");
}

#[tokio::test]
async fn malformed_ordering_keys_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let long = "k".repeat(257);
    let request = pb::EmitEventRequest {
        event_type: "alert group created".into(),
        ordering_key: long.clone(),
        ..Default::default()
    };
    let refused = client
        .emit_event(authed(&token, request))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["ordering_key"]);

    let events = format!("http://{}/api/v1/events/", server.http_addr);
    let body = json!({"event": {"type": "resolve"}}).to_string();
    let (status, _, text) = http_raw(
        Method::POST,
        &events,
        Some(&token),
        Some(&body),
        &[("Ordering-Key", long.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["ordering_key"][0].is_string(), "{answer}");
    let batch = json!({"events": [{"data": {"event": {"type": "resolve"}}, "ordering_key": 7}]});
    let (status, answer) = http_json(
        Method::POST,
        &format!("{events}batch/"),
        Some(&token),
        Some(batch),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["events[0].ordering_key"][0].is_string(), "{answer}");
}

#[tokio::test]
async fn the_order_holds_across_instances_sharing_a_database() {
    let Some(servers) = TestServer::cluster(2).await else {
        return; // needs PostgreSQL (scripts/with-postgres)
    };
    let receiver = Receiver::start().await;
    let token = servers[0].writer("acme").await;
    let (mut a, mut b) = (servers[0].webhooks().await, servers[1].webhooks().await);
    patient_webhook(&mut a, &token, &receiver).await;

    receiver.fail_next(1);
    emit_keyed(&mut a, &token, "K1", "K").await;
    assert_eq!(alert_id(&receiver.next().await), "K1");
    // Emitted on the other instance, behind K1 all the same.
    emit_keyed(&mut b, &token, "K2", "K").await;
    emit_keyed(&mut b, &token, "L1", "L").await;
    eventually(|| async { (blocked_keys(&servers[1]).await == 1.0).then_some(()) }).await;
    assert_eq!(received_until(&receiver, "K2").await, ["L1", "K1", "K2"]);
}

#[tokio::test]
async fn cancelling_the_head_of_a_key_lets_the_next_one_go() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    // The first attempt fails and is retried much later: K1 holds K until it is cancelled.
    let hook = pb::Webhook {
        retry_schedule: vec!["1h".into()],
        ..webhook("stuck", &receiver.url("/stuck"))
    };
    create(&mut client, &token, hook).await;
    receiver.fail_next(1);
    let request = pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(json!({"alert_group": {"id": "K1"}}))),
        ordering_key: "K".into(),
        ..Default::default()
    };
    let mut stream = client
        .emit_event(authed(&token, request))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap(); // ACCEPTED
    let queued = stream.message().await.unwrap().unwrap();
    assert_eq!(alert_id(&receiver.next().await), "K1");
    emit_keyed(&mut client, &token, "K2", "K").await;
    eventually(|| async { (blocked_keys(&server).await == 1.0).then_some(()) }).await;

    let cancel = pb::CancelDeliveryRequest {
        id: queued.delivery_id,
    };
    client
        .cancel_delivery(authed(&token, cancel))
        .await
        .unwrap();
    assert_eq!(alert_id(&receiver.next().await), "K2");
}
