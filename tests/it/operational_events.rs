//! webhookd reports its own trouble as events: an ordinary webhook whose trigger types name
//! `delivery.exhausted` receives one when another webhook's delivery fails finally; a webhook
//! with no trigger types does not; and an operational webhook whose own endpoint is dead
//! produces no further operational events (no loop).

use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

fn failing_once(name: &str, url: &str) -> pb::Webhook {
    pb::Webhook {
        max_attempts: 1,
        ..webhook(name, url)
    }
}

fn listening_to(name: &str, url: &str, trigger: &str) -> pb::Webhook {
    pb::Webhook {
        trigger_type: String::new(),
        trigger_types: vec![trigger.into()],
        ..webhook(name, url)
    }
}

#[tokio::test]
async fn an_operational_webhook_hears_of_a_final_failure_and_a_catch_all_webhook_does_not() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let (dead, ops, all) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    dead.answer(500);
    let broken = create(
        &mut client,
        &token,
        failing_once("broken", &dead.url("/dead")),
    )
    .await;
    let watcher = create(
        &mut client,
        &token,
        listening_to("ops", &ops.url("/ops"), "delivery.exhausted"),
    )
    .await;
    assert_eq!(watcher.trigger_types, ["delivery.exhausted"]);
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: String::new(),
            ..webhook("everything", &all.url("/all"))
        },
    )
    .await;

    let statuses = emit_all(
        &mut client,
        &token,
        "alert group created",
        json!({"alert_group": {"id": "I1"}}),
    )
    .await;
    assert!(states(&statuses).contains(&"FAILED"), "{statuses:?}");
    dead.next().await;
    let report = ops.next().await;
    let data = report.json();
    assert_eq!(data["event"]["type"], "alert group created");
    assert_eq!(data["webhook"]["id"], broken.id);
    assert_eq!(data["webhook"]["name"], "broken");
    assert_eq!(data["delivery"]["state"], "FAILED");
    assert_eq!(data["delivery"]["webhook_id"], broken.id);
    assert_eq!(data["delivery"]["last_status_code"], 500);
    assert!(report.header("webhook-id").is_some());
    // The catch-all webhook got the alert only.
    assert_eq!(all.next().await.json()["alert_group"]["id"], "I1");
    all.assert_quiet().await;
    ops.assert_quiet().await;
}

#[tokio::test]
async fn an_operational_webhook_with_a_dead_endpoint_makes_no_loop() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let (dead, ops) = (Receiver::start().await, Receiver::start().await);
    dead.answer(500);
    ops.answer(500);
    create(
        &mut client,
        &token,
        failing_once("broken", &dead.url("/dead")),
    )
    .await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            max_attempts: 1,
            ..listening_to("ops", &ops.url("/ops"), "delivery.exhausted")
        },
    )
    .await;
    emit_all(&mut client, &token, "alert group created", json!({})).await;
    dead.next().await;
    assert_eq!(ops.next().await.json()["delivery"]["state"], "FAILED");
    // Its own delivery failed too, and reported nothing.
    let events = eventually(|| {
        let (mut client, token) = (client.clone(), token.clone());
        async move {
            let listed = client
                .list_deliveries(authed(
                    &token,
                    pb::ListDeliveriesRequest {
                        states: vec![pb::DeliveryState::Failed as i32],
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            (listed.deliveries.len() == 2).then_some(())
        }
    });
    events.await;
    ops.assert_quiet().await;
    let listed = client
        .list_events(authed(&token, pb::ListEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let types: Vec<&str> = listed
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["delivery.exhausted", "alert group created"]);
}

#[tokio::test]
async fn operational_types_are_valid_triggers_and_others_are_not() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    for trigger in [
        "delivery.exhausted",
        "webhook.disabled",
        "endpoint.breaker_opened",
        "endpoint.breaker_closed",
    ] {
        let created = create(
            &mut client,
            &token,
            listening_to(trigger, "http://127.0.0.1:9/x", trigger),
        )
        .await;
        assert_eq!(created.trigger_types, [trigger]);
    }
    let refused = client
        .create_webhook(authed(
            &token,
            pb::CreateWebhookRequest {
                webhook: Some(listening_to(
                    "bad",
                    "http://127.0.0.1:9/x",
                    "delivery.exploded",
                )),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("delivery.exhausted"));
}

#[tokio::test]
async fn a_webhook_disabled_by_a_410_is_reported_as_webhook_disabled() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let (gone, ops) = (Receiver::start().await, Receiver::start().await);
    gone.answer(410);
    let leaving = create(&mut client, &token, webhook("leaving", &gone.url("/gone"))).await;
    create(
        &mut client,
        &token,
        listening_to("ops", &ops.url("/ops"), "webhook.disabled"),
    )
    .await;
    emit_all(&mut client, &token, "alert group created", json!({})).await;
    let data = ops.next().await.json();
    assert_eq!(data["webhook"]["id"], leaving.id);
    assert!(data["reason"].as_str().unwrap().contains("410"), "{data}");
    ops.assert_quiet().await;
}
