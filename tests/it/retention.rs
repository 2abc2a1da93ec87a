//! An operator keeps the store from growing forever: finished events older than
//! `--retention` are deleted with their deliveries, while an event still being retried stays.

use std::time::Duration;

use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

#[tokio::test]
async fn finished_events_past_retention_are_deleted_and_pending_ones_stay() {
    let server = TestServer::start_with(|c| {
        c.retention = Some(Duration::from_millis(1));
        c.prune_every = Duration::from_millis(50);
        c.retry_schedule = vec![Duration::from_secs(3600)];
    })
    .await;
    let healthy = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.answer(503);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("ok", &healthy.url("/hook"))).await;
    let done = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&done), ["QUEUED", "SUCCEEDED"]);

    let failing_hook = create(&mut client, &token, webhook("down", &failing.url("/hook"))).await;
    let mut stream = emit_stream(
        &mut client,
        &token,
        "alert group created",
        Some(to_struct(json!({}))),
    )
    .await;
    let accepted = stream.message().await.unwrap().unwrap();
    assert_eq!(states(&[accepted]), ["ACCEPTED"]);
    let mut pending = Vec::new();
    while pending.len() < 4 {
        pending.push(stream.message().await.unwrap().unwrap());
    }
    // Two QUEUED, then the healthy one succeeds and the failing one waits an hour.
    assert!(
        pending
            .iter()
            .any(|s| s.webhook_id == failing_hook.id
                && s.state == pb::DeliveryState::Retrying as i32)
    );
    let retrying = pending
        .iter()
        .find(|s| s.webhook_id == failing_hook.id)
        .unwrap()
        .delivery_id
        .clone();

    let redeliver = |id: String| {
        let mut client = client.clone();
        let token = token.clone();
        async move {
            client
                .redeliver_delivery(authed(
                    &token,
                    pb::RedeliverDeliveryRequest { delivery_id: id },
                ))
                .await
        }
    };
    // Retention runs every 50 ms. Once it has deleted an event, that must have been the
    // finished one: its delivery is gone, the retrying one is still there.
    eventually(|| async {
        (metric(&scrape(&server).await, "webhookd_pruned_events_total") >= 1.0).then_some(())
    })
    .await;
    let gone = redeliver(done[0].delivery_id.clone()).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
    assert!(redeliver(retrying).await.is_ok());
}
