//! Per-webhook rate limits: a limited webhook receives a backlog no faster than its rate and
//! burst allow, every delivery still arrives with a single attempt (waiting is not an
//! attempt), an unlimited webhook is not slowed meanwhile, a 429 lowers the effective rate
//! (visible in /metrics), and out-of-range values are refused naming the field.

use std::collections::HashSet;

use serde_json::json;
use tonic::Code;
use webhookd::grpc::pb;

use crate::support::*;

/// `count` events of `event_type` in one EmitEvents call.
async fn emit_batch(
    client: &mut pb::webhook_service_client::WebhookServiceClient<tonic::transport::Channel>,
    token: &str,
    event_type: &str,
    count: usize,
) {
    let events = (0..count)
        .map(|i| pb::EmitEventRequest {
            event_type: event_type.into(),
            data: Some(to_struct(json!({"i": i}))),
            ..Default::default()
        })
        .collect();
    let request = authed(token, pb::EmitEventsRequest { events });
    let results = client.emit_events(request).await.unwrap().into_inner();
    assert_eq!(results.results.len(), count);
}

/// A Prometheus sample of `name` for one webhook.
fn webhook_metric(text: &str, name: &str, webhook_id: &str) -> Option<f64> {
    let prefix = format!("{name}{{webhook_id=\"{webhook_id}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_limited_webhook_gets_its_backlog_at_its_rate_while_others_are_not_slowed() {
    let server = TestServer::start().await;
    let limited = Receiver::start().await;
    let free = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            rate_limit_per_second: 20,
            rate_limit_burst: 5,
            ..webhook("limited", &limited.url("/limited"))
        },
    )
    .await;
    let read = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: hook.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((read.rate_limit_per_second, read.rate_limit_burst), (20, 5));
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "resolve".into(),
            ..webhook("free", &free.url("/free"))
        },
    )
    .await;

    // 60 events for the limited webhook, then 60 for the unlimited one.
    emit_batch(&mut client, &token, "acknowledge", 60).await;
    emit_batch(&mut client, &token, "resolve", 60).await;
    let mut free_ids = HashSet::new();
    while free_ids.len() < 60 {
        free_ids.insert(free.next().await.header("webhook-id").unwrap().to_string());
    }
    // All 60 unlimited ones arrived while limited deliveries still wait for their rate
    // (60 at 20/s after a burst of 5 take well over two seconds).
    let metrics = scrape(&server).await;
    assert!(
        metric(&metrics, "webhookd_rate_limited_deliveries") > 0.0,
        "{metrics}"
    );
    assert!(
        webhook_metric(
            &metrics,
            "webhookd_webhook_rate_limited_deliveries",
            &hook.id
        )
        .is_some_and(|waiting| waiting > 0.0)
    );
    assert_eq!(
        webhook_metric(&metrics, "webhookd_webhook_rate_limit_per_second", &hook.id),
        Some(20.0)
    );

    // Every limited delivery arrives, each with a single attempt.
    let mut limited_ids = HashSet::new();
    while limited_ids.len() < 60 {
        limited_ids.insert(
            limited
                .next()
                .await
                .header("webhook-id")
                .unwrap()
                .to_string(),
        );
    }
    let log = eventually(|| async {
        let log = responses(&mut server.webhooks().await, &token, &hook.id).await;
        (log.len() == 60).then_some(log)
    })
    .await;
    assert!(log.iter().all(|r| r.attempt == 1), "{log:?}");
    assert_eq!(
        log.iter()
            .map(|r| &r.delivery_id)
            .collect::<HashSet<_>>()
            .len(),
        60
    );
    // Attempt start times: within the first second at most burst + rate (5 + 20) went; the
    // margin covers millisecond rounding, not a looser limit (unlimited, all 60 go at once).
    let mut started: Vec<i64> = log
        .iter()
        .map(|r| {
            let t = r.timestamp.as_ref().unwrap();
            t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
        })
        .collect();
    started.sort();
    let first_second = started.iter().filter(|&&t| t < started[0] + 1000).count();
    assert!(
        first_second <= 27,
        "{first_second} attempts in the first second"
    );
}

#[tokio::test]
async fn a_429_lowers_the_effective_rate() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    receiver.answer(429);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            rate_limit_per_second: 10,
            // Retries a second apart: the endpoint has answered 200 by the next one.
            retry_schedule: vec!["1s".into(); 10],
            ..webhook("busy", &receiver.url("/busy"))
        },
    )
    .await;
    // A burst of 0 is the rate.
    assert_eq!(hook.rate_limit_burst, 0);
    emit_batch(&mut client, &token, "alert group created", 1).await;
    receiver.next().await;
    let lowered = eventually(|| async {
        let metrics = scrape(&server).await;
        webhook_metric(&metrics, "webhookd_webhook_rate_limit_per_second", &hook.id)
            .filter(|&rate| rate < 10.0)
    })
    .await;
    assert_eq!(lowered, 5.0);
    // The endpoint recovers: the retry goes through, and the delivery succeeds.
    receiver.answer(200);
    eventually(|| async {
        let log = responses(&mut server.webhooks().await, &token, &hook.id).await;
        log.iter().any(|r| r.status_code == Some(200)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn out_of_range_rate_limits_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    for (webhook, field) in [
        (
            pb::Webhook {
                rate_limit_per_second: -1,
                ..webhook("negative", "http://127.0.0.1:9/")
            },
            "rate_limit_per_second",
        ),
        (
            pb::Webhook {
                rate_limit_per_second: 5,
                rate_limit_burst: 1_000_000,
                ..webhook("absurd", "http://127.0.0.1:9/")
            },
            "rate_limit_burst",
        ),
    ] {
        let status = client
            .create_webhook(authed(
                &token,
                pb::CreateWebhookRequest {
                    webhook: Some(webhook),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_fields(&status), [field]);
    }
    // An update is checked the same way and leaves the webhook as it was.
    let hook = create(&mut client, &token, webhook("ok", "http://127.0.0.1:9/")).await;
    let status = client
        .update_webhook(authed(
            &token,
            pb::UpdateWebhookRequest {
                webhook: Some(pb::Webhook {
                    id: hook.id.clone(),
                    rate_limit_per_second: 10_001,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["rate_limit_per_second".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["rate_limit_per_second"]);
    assert!(status.message().contains("10000"), "{status:?}");
    let read = client
        .get_webhook(authed(&token, pb::GetWebhookRequest { id: hook.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.rate_limit_per_second, 0);
}
