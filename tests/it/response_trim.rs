//! The response log keeps a webhook's newest attempts, however long the webhook lives: a user
//! with a small response history sees exactly the newest entries after many deliveries, also
//! after webhookd restarts with a smaller history. (Each trim deletes only what the previous
//! one left; the first trim after a start covers the whole log.) Runs on the backend the
//! suite selects (sled, or PostgreSQL under scripts/with-postgres).

use std::time::Duration;

use serde_json::json;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use tonic::transport::Channel;

use crate::support::*;

/// Trims run once per this many logged attempts (the delivery worker's TRIM_EVERY).
const TRIM_EVERY: usize = 64;

/// Delivers `n` events numbered from `first` to every webhook of the token's account.
async fn deliver(client: &mut WebhookServiceClient<Channel>, token: &str, first: usize, n: usize) {
    for i in first..first + n {
        let statuses = emit_all(client, token, "alert group created", json!({"i": i})).await;
        assert!(
            statuses
                .iter()
                .any(|s| s.state == pb::DeliveryState::Succeeded as i32),
            "{statuses:?}"
        );
    }
}

/// Waits until the webhook's log holds `n` entries, and returns the event numbers of its
/// entries, newest first.
async fn log_of(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    id: &str,
    n: usize,
) -> Vec<u64> {
    eventually_within(Duration::from_secs(20), || {
        let (mut client, token) = (client.clone(), token.to_string());
        async move {
            let log = responses(&mut client, &token, id).await;
            (log.len() == n).then(|| {
                log.iter()
                    .map(|entry| {
                        let data: serde_json::Value =
                            serde_json::from_str(entry.request_data.as_deref().unwrap()).unwrap();
                        data["i"].as_u64().unwrap()
                    })
                    .collect()
            })
        }
    })
    .await
}

#[tokio::test]
async fn the_response_log_keeps_the_newest_attempts_across_many_trims_and_restarts() {
    let server = TestServer::start_with(|c| c.response_history = 5).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("chatty", &receiver.url("/hook")),
    )
    .await;

    // Three trims: the whole log once, then twice what arrived since.
    deliver(&mut client, &token, 0, 3 * TRIM_EVERY).await;
    let newest = 3 * TRIM_EVERY as u64 - 1;
    assert_eq!(
        log_of(&mut client, &token, &hook.id, 5).await,
        (newest - 4..=newest).rev().collect::<Vec<_>>()
    );

    // A restart with a smaller history: the next trim leaves only the newest 3.
    let server = server.restart_with(|c| c.response_history = 3).await;
    let mut client = server.webhooks().await;
    assert_eq!(responses(&mut client, &token, &hook.id).await.len(), 5);
    deliver(&mut client, &token, 3 * TRIM_EVERY, TRIM_EVERY).await;
    let newest = 4 * TRIM_EVERY as u64 - 1;
    assert_eq!(
        log_of(&mut client, &token, &hook.id, 3).await,
        (newest - 2..=newest).rev().collect::<Vec<_>>()
    );

    // And a larger one again keeps more, still the newest.
    let server = server.restart_with(|c| c.response_history = 10).await;
    let mut client = server.webhooks().await;
    deliver(&mut client, &token, 4 * TRIM_EVERY, TRIM_EVERY).await;
    let newest = 5 * TRIM_EVERY as u64 - 1;
    assert_eq!(
        log_of(&mut client, &token, &hook.id, 10).await,
        (newest - 9..=newest).rev().collect::<Vec<_>>()
    );
}
