//! The first attempt of a delivery emitted on an instance uses what that instance just wrote
//! (no read of the database), so a cancel made meanwhile on another instance must still stop
//! it (run when WEBHOOKD_TEST_POSTGRES_URL names a server; scripts/with-postgres sets it).

use std::time::Duration;

use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

/// Emits an event and returns its delivery's QUEUED message (the stream is dropped; delivery
/// goes on).
async fn emit_queued(
    client: &mut webhookd::grpc::pb::webhook_service_client::WebhookServiceClient<
        tonic::transport::Channel,
    >,
    token: &str,
    n: u64,
) -> pb::DeliveryStatus {
    let mut stream = emit_stream(
        client,
        token,
        "alert group created",
        Some(to_struct(json!({"n": n}))),
    )
    .await;
    let accepted = stream.message().await.unwrap().unwrap();
    assert_eq!(states(std::slice::from_ref(&accepted)), ["ACCEPTED"]);
    let queued = stream.message().await.unwrap().unwrap();
    assert_eq!(states(std::slice::from_ref(&queued)), ["QUEUED"]);
    queued
}

#[tokio::test]
async fn a_delivery_cancelled_on_another_instance_before_its_first_attempt_is_never_sent() {
    // One attempt at a time per webhook: the second event waits on A behind the first.
    let Some(instances) = TestServer::cluster_with(2, |c| c.per_webhook_concurrency = 1).await
    else {
        return;
    };
    let (a, b) = (&instances[0], &instances[1]);
    let receiver = Receiver::start().await;
    // Under a second (how long A keeps what it wrote), so the second one's attempt would use it.
    receiver.delay(Duration::from_millis(900));
    let token = a.writer("acme").await;
    let mut on_a = a.webhooks().await;
    create(&mut on_a, &token, webhook("slow", &receiver.url("/slow"))).await;

    let first = emit_queued(&mut on_a, &token, 1).await;
    let second = emit_queued(&mut on_a, &token, 2).await;
    let mut on_b = b.webhooks().await;
    let cancelled = on_b
        .cancel_delivery(authed(
            &token,
            pb::CancelDeliveryRequest {
                id: second.delivery_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, pb::DeliveryState::Cancelled as i32);
    // The second can only start once the first is recorded: if the first still is not, the
    // cancel came before the second's attempt (on a machine too loaded for that, it proves
    // nothing and the test stops here).
    let first_now = on_b
        .get_delivery(authed(
            &token,
            pb::GetDeliveryRequest {
                id: first.delivery_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    if first_now.attempts > 0 {
        eprintln!("the first attempt ended before the cancel: nothing to check");
        return;
    }

    // The first arrives; the second never does, and A reports it cancelled, never attempted.
    let arrived = receiver.next().await;
    assert_eq!(
        arrived.header("webhook-id"),
        Some(first.delivery_id.as_str())
    );
    receiver.assert_quiet().await;
    let seen_on_a = on_a
        .get_delivery(authed(
            &token,
            pb::GetDeliveryRequest {
                id: second.delivery_id,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen_on_a.state, pb::DeliveryState::Cancelled as i32);
    assert_eq!(seen_on_a.attempts, 0);
}
