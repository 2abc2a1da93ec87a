//! An operator reads a webhook's health to see how much is still to deliver: `pending_count`
//! counts every delivery not final yet, wherever it waits (due now, retrying in an hour,
//! queued behind its ordering key), and every instance sharing the store answers the same.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::transport::Channel;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use crate::support::*;

async fn pending_count(server: &TestServer, token: &str, id: &str) -> Value {
    let url = format!("http://{}/api/v1/webhooks/{id}/health/", server.http_addr);
    let (status, health) = http_json(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    health["pending_count"].clone()
}

/// Emits an alert group through REST, with an ordering key when `key` is not empty.
async fn emit(server: &TestServer, token: &str, key: &str) {
    let body = json!({"event": {"type": "alert group created"}}).to_string();
    let headers: &[(&str, &str)] = if key.is_empty() {
        &[]
    } else {
        &[("Ordering-Key", key)]
    };
    let url = format!("http://{}/api/v1/events/", server.http_addr);
    let (status, _, text) = http_raw(Method::POST, &url, Some(token), Some(&body), headers).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
}

/// The deliveries of the account that wait for a retry after their first attempt.
async fn retrying(client: &mut WebhookServiceClient<Channel>, token: &str) -> usize {
    let request = pb::ListDeliveriesRequest {
        states: vec![pb::DeliveryState::Retrying as i32],
        ..Default::default()
    };
    let listed = client
        .list_deliveries(authed(token, request))
        .await
        .unwrap();
    listed.into_inner().deliveries.len()
}

/// Two servers on one PostgreSQL database, or one sled server.
async fn servers() -> Vec<TestServer> {
    match TestServer::cluster(2).await {
        Some(cluster) => cluster,
        None => vec![TestServer::start().await],
    }
}

#[tokio::test]
async fn pending_counts_retries_due_later_and_deliveries_behind_their_key_on_every_instance() {
    let servers = servers().await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let token = servers[0].writer("acme").await;
    let mut client = servers[0].webhooks().await;
    let hook = pb::Webhook {
        retry_schedule: vec!["1h".into()],
        ..webhook("down", &receiver.url("/down"))
    };
    let hook = create(&mut client, &token, hook).await;
    assert_eq!(pending_count(&servers[0], &token, &hook.id).await, 0);

    // Two events without a key and three with one: each first attempt fails and is retried
    // in an hour; the key's second and third wait behind its first.
    emit(&servers[0], &token, "").await;
    emit(&servers[0], &token, "").await;
    for _ in 0..3 {
        emit(&servers[0], &token, "K").await;
    }
    for _ in 0..3 {
        receiver.next().await;
    }
    eventually(|| {
        let (mut client, token) = (client.clone(), &token);
        async move { (retrying(&mut client, token).await == 3).then_some(()) }
    })
    .await;

    for server in &servers {
        assert_eq!(pending_count(server, &token, &hook.id).await, 5);
    }
}
