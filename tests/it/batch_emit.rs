//! A producer with volume emits events in batches: one call, one flush, every event's id and
//! initial delivery states back, each event delivered on its own; a bad event fails the batch
//! before anything is written.

use serde_json::json;
use tonic::Code;
use webhookd::grpc::pb;

use crate::support::*;

fn event(i: usize, severity: &str, key: &str) -> pb::EmitEventRequest {
    pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(json!({
            "alert_group": {"id": format!("AG{i}")},
            "alert_payload": {"severity": severity},
        }))),
        idempotency_key: key.into(),
        ordering_key: String::new(),
    }
}

async fn emit_batch(
    client: &mut pb::webhook_service_client::WebhookServiceClient<tonic::transport::Channel>,
    token: &str,
    events: Vec<pb::EmitEventRequest>,
) -> Result<Vec<pb::EmittedEvent>, tonic::Status> {
    let request = authed(token, pb::EmitEventsRequest { events });
    Ok(client.emit_events(request).await?.into_inner().results)
}

#[tokio::test]
async fn a_batch_is_acknowledged_once_and_every_event_is_delivered() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("all", &receiver.url("/all"))).await;
    let critical_only = pb::Webhook {
        trigger_template: Some("{{ alert_payload.severity == 'critical' }}".into()),
        ..webhook("pager", &receiver.url("/pager"))
    };
    create(&mut client, &token, critical_only).await;

    let events = vec![
        event(0, "critical", ""),
        event(1, "info", ""),
        event(2, "critical", ""),
    ];
    let results = emit_batch(&mut client, &token, events).await.unwrap();

    // One result per event, in order, each with its own id and its initial states.
    assert_eq!(results.len(), 3);
    let ids: std::collections::HashSet<_> = results.iter().map(|r| &r.event_id).collect();
    assert_eq!(ids.len(), 3);
    assert!(results.iter().all(|r| !r.duplicate));
    assert_eq!(states(&results[0].deliveries), ["QUEUED", "QUEUED"]);
    assert_eq!(states(&results[1].deliveries), ["QUEUED", "SKIPPED"]);
    assert_eq!(states(&results[2].deliveries), ["QUEUED", "QUEUED"]);
    for result in &results {
        assert!(
            result
                .deliveries
                .iter()
                .all(|d| d.event_id == result.event_id)
        );
    }

    let mut arrived = Vec::new();
    for _ in 0..5 {
        let request = receiver.next().await;
        arrived.push((
            request.path.clone(),
            request.json()["alert_group"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    arrived.sort();
    assert_eq!(
        arrived,
        [
            ("/all".to_string(), "AG0".to_string()),
            ("/all".to_string(), "AG1".to_string()),
            ("/all".to_string(), "AG2".to_string()),
            ("/pager".to_string(), "AG0".to_string()),
            ("/pager".to_string(), "AG2".to_string()),
        ]
    );
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_in_or_across_batches_delivers_once() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("once", &receiver.url("/hook"))).await;

    let results = emit_batch(
        &mut client,
        &token,
        vec![
            event(0, "critical", "order-7"),
            event(1, "critical", "order-7"),
        ],
    )
    .await
    .unwrap();
    assert!(!results[0].duplicate);
    assert!(results[1].duplicate);
    assert_eq!(results[1].event_id, results[0].event_id);

    let again = emit_batch(&mut client, &token, vec![event(2, "critical", "order-7")])
        .await
        .unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].event_id, results[0].event_id);
    assert_eq!(
        again[0].deliveries[0].delivery_id,
        results[0].deliveries[0].delivery_id
    );

    assert_eq!(receiver.next().await.json()["alert_group"]["id"], "AG0");
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_malformed_event_fails_the_batch_and_nothing_is_emitted() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("quiet", &receiver.url("/hook")),
    )
    .await;

    let mut untyped = event(1, "critical", "");
    untyped.event_type = String::new();
    let long_key = event(2, "critical", &"k".repeat(1000));
    let error = emit_batch(
        &mut client,
        &token,
        vec![event(0, "critical", ""), untyped, long_key],
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&error),
        ["events[1].event_type", "events[2].idempotency_key"]
    );

    let empty = emit_batch(&mut client, &token, vec![]).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let too_many = (0..1001).map(|i| event(i, "info", "")).collect();
    let error = emit_batch(&mut client, &token, too_many).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("1000"), "{}", error.message());

    let mut oversized = event(3, "critical", "");
    oversized.data = Some(to_struct(json!({"blob": "x".repeat(1_100_000)})));
    let error = emit_batch(
        &mut client,
        &token,
        vec![event(4, "critical", ""), oversized],
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.message().contains("events[1]"), "{}", error.message());

    let readonly = server.token("acme", &["webhooks:read"]).await;
    let error = emit_batch(&mut client, &readonly, vec![event(5, "critical", "")])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);

    receiver.assert_quiet().await;
    assert!(responses(&mut client, &token, &hook.id).await.is_empty());
}
