//! Per-endpoint fairness and health: a slow endpoint cannot starve a healthy one, a failing
//! endpoint is backed off by its circuit breaker instead of hammered, a webhook failing for
//! the configured period is disabled (visibly), and /metrics shows it all.

use std::time::Duration;

use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

#[tokio::test]
async fn a_slow_endpoint_does_not_hold_up_a_healthy_one() {
    let server = TestServer::start_with(|c| c.per_webhook_concurrency = 2).await;
    let slow = Receiver::start().await;
    slow.delay(Duration::from_millis(400));
    let healthy = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            ..webhook("slow", &slow.url("/slow"))
        },
    )
    .await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "resolve".into(),
            ..webhook("healthy", &healthy.url("/ok"))
        },
    )
    .await;

    // Ten events for the slow endpoint: at most two of them run at once.
    let mut slow_streams = Vec::new();
    for i in 0..10 {
        let mut stream = emit_stream(
            &mut client,
            &token,
            "acknowledge",
            Some(to_struct(json!({"i": i}))),
        )
        .await;
        stream.message().await.unwrap().unwrap();
        slow_streams.push(stream);
    }
    // The healthy endpoint's event is delivered while the slow backlog is still waiting.
    let statuses = emit_all(&mut client, &token, "resolve", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    let metrics = scrape(&server).await;
    assert!(
        metric(&metrics, "webhookd_webhook_queue_depth") >= 1.0,
        "{metrics}"
    );
    // The slow backlog drains two requests at a time, never more (the webhook's slots hold
    // the requests, not the attempts' records after them).
    for mut stream in slow_streams {
        while stream.message().await.unwrap().is_some() {}
    }
    assert_eq!(slow.peak_concurrency(), 2);
}

#[tokio::test]
async fn a_failing_endpoint_is_backed_off_by_its_circuit_breaker() {
    let server = TestServer::start_with(|c| {
        c.breaker_threshold = 3;
        c.breaker_cooldown = Duration::from_secs(30);
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(&mut client, &token, webhook("down", &receiver.url("/hook"))).await;
    for i in 0..6 {
        let mut stream = emit_stream(
            &mut client,
            &token,
            "alert group created",
            Some(to_struct(json!({"i": i}))),
        )
        .await;
        stream.message().await.unwrap().unwrap();
    }
    // Without a breaker the 6 events would make 24 attempts within ~100 ms (schedule 10/20/50 ms).
    let deferred = eventually(|| async {
        let m = scrape(&server).await;
        (metric(&m, "webhookd_deliveries_deferred_total") > 0.0).then_some(m)
    })
    .await;
    assert!(
        metric(&deferred, "webhookd_delivery_attempts_total") < 24.0,
        "{deferred}"
    );
    let log = responses(&mut client, &token, &hook.id).await;
    assert!(log.len() < 24, "{} attempts", log.len());
}

#[tokio::test]
async fn a_webhook_failing_for_the_configured_period_is_disabled_visibly() {
    let server = TestServer::start_with(|c| c.auto_disable_after = Duration::from_millis(30)).await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("dying", &receiver.url("/hook")),
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses).last(), Some(&"FAILED"));
    let fetched = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: hook.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.is_webhook_enabled, Some(false));
    assert!(
        fetched.disabled_reason.contains("failed continuously"),
        "{}",
        fetched.disabled_reason
    );
    // Further events do not reach a disabled webhook; re-enabling clears the reason.
    assert!(
        emit_all(&mut client, &token, "alert group created", json!({}))
            .await
            .is_empty()
    );
    let update = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: hook.id,
            is_webhook_enabled: Some(true),
            ..Default::default()
        }),
        update_mask: None,
    };
    let enabled = client
        .update_webhook(authed(&token, update))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled.disabled_reason, "");
}

#[tokio::test]
async fn metrics_count_events_attempts_and_flushes() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("counted", &receiver.url("/hook")),
    )
    .await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_template: Some("false".into()),
            ..webhook("skipping", &receiver.url("/x"))
        },
    )
    .await;
    emit_all(&mut client, &token, "alert group created", json!({})).await;
    let text = scrape(&server).await;
    assert_eq!(
        metric(&text, "webhookd_events_accepted_total"),
        1.0,
        "{text}"
    );
    assert!(
        text.contains(
            "webhookd_delivery_attempts_total{outcome=\"succeeded\",status_class=\"2xx\"} 1"
        ),
        "{text}"
    );
    assert_eq!(metric(&text, "webhookd_deliveries_skipped_total"), 1.0);
    assert!(metric(&text, "webhookd_store_flush_duration_seconds_count") >= 1.0);
    assert!(metric(&text, "webhookd_attempt_duration_seconds_count") >= 1.0);
    assert!(!text.contains(&token));
}

#[tokio::test]
async fn a_caller_leaving_its_status_stream_frees_it_at_once() {
    let server =
        TestServer::start_with(|c| c.retry_schedule = vec![Duration::from_secs(3600)]).await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    create(
        &mut client,
        &token,
        webhook("dead", &format!("http://{closed}/x")),
    )
    .await;
    let mut stream = emit_stream(&mut client, &token, "alert group created", None).await;
    stream.message().await.unwrap().unwrap(); // ACCEPTED
    stream.message().await.unwrap().unwrap(); // QUEUED
    stream.message().await.unwrap().unwrap(); // RETRYING, next attempt in an hour
    assert_eq!(
        metric(&scrape(&server).await, "webhookd_status_streams_open"),
        1.0
    );
    drop(stream);
    eventually(|| async {
        (metric(&scrape(&server).await, "webhookd_status_streams_open") == 0.0).then_some(())
    })
    .await;
}
