//! Emits share a bound on the memory they hold while they are planned and written
//! (`--emit-memory-mib`, Config.emit_budget_bytes): producers that emit more at once than it
//! holds are slowed down, never refused, and every event they emitted is delivered.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::json;
use webhookd::grpc::pb;

use crate::rest_oncall::call;
use crate::support::*;

const BATCHES: usize = 6;
const EVENTS_PER_BATCH: usize = 40;
const REST_EVENTS: usize = 6;

#[tokio::test]
async fn producers_beyond_the_emit_memory_wait_their_turn_and_every_event_is_delivered() {
    // Every emit needs more than the whole budget, so they run one at a time.
    let server = TestServer::start_with(|config| config.emit_budget_bytes = 1).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("one", &receiver.url("/one"))).await;
    create(&mut client, &token, webhook("two", &receiver.url("/two"))).await;

    // Batch producers on gRPC and single-event producers on REST, all at once.
    let batches = (0..BATCHES).map(|b| {
        let mut client = client.clone();
        let token = token.clone();
        async move {
            let events = (0..EVENTS_PER_BATCH)
                .map(|i| pb::EmitEventRequest {
                    event_type: "alert group created".into(),
                    data: Some(to_struct(
                        json!({"alert_group": {"id": format!("AG{b}-{i}")}}),
                    )),
                    ..Default::default()
                })
                .collect();
            let request = authed(&token, pb::EmitEventsRequest { events });
            let results = client.emit_events(request).await?.into_inner().results;
            assert_eq!(results.len(), EVENTS_PER_BATCH);
            assert!(
                results
                    .iter()
                    .all(|r| states(&r.deliveries) == ["QUEUED", "QUEUED"])
            );
            Ok::<_, tonic::Status>(())
        }
    });
    let singles = (0..REST_EVENTS).map(|i| {
        let (server, token) = (&server, &token);
        async move {
            let event = json!({
                "event": {"type": "alert group created"},
                "alert_group": {"id": format!("REST-{i}")},
            });
            let (status, body) = call(
                server,
                Method::POST,
                "/api/v1/events/",
                Some(token),
                Some(event),
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    });
    let (batched, _) = tokio::join!(
        futures::future::join_all(batches),
        futures::future::join_all(singles),
    );
    for outcome in batched {
        outcome.expect("a batch that had to wait was refused");
    }

    // Each event reaches both webhooks once.
    let expected = 2 * (BATCHES * EVENTS_PER_BATCH + REST_EVENTS);
    let mut arrived = HashSet::new();
    while arrived.len() < expected {
        let request = receiver.next().await;
        let id = request.json()["alert_group"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(arrived.insert((request.path, id)), "delivered twice");
    }
    assert!(arrived.contains(&("/one".to_owned(), "AG5-39".to_owned())));
    assert!(arrived.contains(&("/two".to_owned(), "REST-5".to_owned())));
}
