//! Events end to end: a platform service emits an event, webhookd matches webhooks, renders
//! and delivers requests to a real receiver, retries on failure, records every attempt, and
//! streams each state change back.

use std::time::Duration;

use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

fn alert_event() -> serde_json::Value {
    json!({
        "alert_group": {"id": "IZQERPWKWCGH1", "integration_id": "CRV8A5MXC751A", "title": "Disk \"full\" on db-1", "state": "firing"},
        "alert_payload": {"commonLabels": {"alertname": "InstanceDown", "severity": "critical"}},
        "integration": {"id": "CRV8A5MXC751A", "type": "alertmanager"},
    })
}

#[tokio::test]
async fn an_emitted_event_is_delivered_streamed_and_logged() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            authorization_header: Some("Bearer sk-live".into()),
            ..webhook("Demo", &receiver.url("/hook"))
        },
    )
    .await;

    let statuses = emit_all(&mut client, &token, "alert group created", alert_event()).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(statuses[0].attempt, 0);
    assert_eq!(statuses[1].attempt, 1);
    assert_eq!(statuses[1].status_code, Some(200));
    assert_eq!(statuses[1].webhook_id, hook.id);
    assert!(statuses[0].event_id.starts_with('E') && statuses[0].delivery_id.starts_with('D'));

    let request = receiver.next().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    let body = request.json();
    assert_eq!(body["alert_group"]["id"], "IZQERPWKWCGH1");
    assert_eq!(body["event"]["type"], "alert group created");
    assert!(
        request
            .header("user-agent")
            .unwrap()
            .starts_with("webhookd/")
    );
    assert_eq!(
        request.header("webhook-id"),
        Some(statuses[0].delivery_id.as_str())
    );
    assert!(request.header("webhook-timestamp").is_some());
    assert_eq!(request.header("authorization"), Some("Bearer sk-live"));
    assert_eq!(request.header("content-type"), Some("application/json"));

    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(entry.status_code, Some(200));
    assert_eq!(entry.url, receiver.url("/hook"));
    assert_eq!(entry.request_trigger, "");
    assert_eq!(entry.content.as_deref(), Some("{\"ok\": true}"));
    assert_eq!(entry.attempt, 1);
    let sent: serde_json::Value =
        serde_json::from_str(entry.request_data.as_deref().unwrap()).unwrap();
    assert_eq!(sent, body);
    let headers = entry.request_headers.as_deref().unwrap();
    assert!(
        headers.contains("****************") && !headers.contains("sk-live"),
        "{headers}"
    );
    let event_data: serde_json::Value = serde_json::from_str(&entry.event_data).unwrap();
    assert_eq!(event_data["alert_group"]["title"], "Disk \"full\" on db-1");

    let fetched = client
        .get_webhook(authed(&token, pb::GetWebhookRequest { id: hook.id }))
        .await
        .unwrap()
        .into_inner();
    assert!(fetched.last_success.is_some());
    assert!(fetched.last_failure.is_none());
}

#[tokio::test]
async fn matching_follows_trigger_types_enablement_integrations_and_trigger_templates() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let url = receiver.url("/hook");
    let on_ack = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            ..webhook("ack", &url)
        },
    )
    .await;
    let on_status = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "status change".into(),
            ..webhook("status", &url)
        },
    )
    .await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            is_webhook_enabled: Some(false),
            trigger_type: "acknowledge".into(),
            ..webhook("off", &url)
        },
    )
    .await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            integration_filter: vec!["OTHER".into()],
            ..webhook("other integration", &url)
        },
    )
    .await;
    let same_integration = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            integration_filter: vec!["CRV8A5MXC751A".into()],
            ..webhook("same integration", &url)
        },
    )
    .await;
    let gated = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            trigger_template: Some(
                "{{ alert_payload.commonLabels.severity == 'critical' }}".into(),
            ),
            ..webhook("critical only", &url)
        },
    )
    .await;
    let refused = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            trigger_template: Some("{{ alert_group.state == 'resolved' }}".into()),
            ..webhook("resolved only", &url)
        },
    )
    .await;

    let statuses = emit_all(&mut client, &token, "acknowledge", alert_event()).await;
    let final_by_webhook: std::collections::HashMap<String, &'static str> = statuses
        .iter()
        .zip(states(&statuses))
        .filter(|(_, s)| *s != "QUEUED")
        .map(|(status, s)| (status.webhook_id.clone(), s))
        .collect();
    let expected: std::collections::HashMap<String, &'static str> = [
        (on_ack.id.clone(), "SUCCEEDED"),
        (on_status.id.clone(), "SUCCEEDED"),
        (same_integration.id.clone(), "SUCCEEDED"),
        (gated.id.clone(), "SUCCEEDED"),
        (refused.id.clone(), "SKIPPED"),
    ]
    .into();
    assert_eq!(final_by_webhook, expected);
    for _ in 0..4 {
        receiver.next().await;
    }
    receiver.assert_quiet().await;
    // Skipped webhooks log nothing (OnCall logs only triggered webhooks); gated ones log the trigger.
    assert!(responses(&mut client, &token, &refused.id).await.is_empty());
    assert_eq!(
        responses(&mut client, &token, &gated.id).await[0].request_trigger,
        "True"
    );

    // "status change" does not fire on alert group created; no match ends the stream at once.
    let statuses = emit_all(&mut client, &token, "resolve", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(statuses[0].webhook_id, on_status.id);
    receiver.next().await;
    let statuses = emit_all(&mut client, &token, "escalation", json!({})).await;
    assert!(statuses.is_empty());
}

#[tokio::test]
async fn data_headers_and_url_templates_render_with_oncall_syntax() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, pb::Webhook {
        forward_all: Some(false),
        url: format!("{}/{{{{ alert_group.id }}}}", receiver.url("/alerts")),
        data: Some(r#"{"labels": {{ alert_payload.commonLabels | tojson() }}, "title": "{{ alert_group.title }}"}"#.into()),
        headers: Some(r#"{"X-Alert": "{{ alert_group.id }}"}"#.into()),
        custom_headers: [("X-Team".to_string(), "sre".to_string())].into(),
        ..webhook("templated", "https://placeholder")
    })
    .await;
    let hbs = create(
        &mut client,
        &token,
        pb::Webhook {
            forward_all: Some(false),
            template_engine: "handlebars".into(),
            data: Some(r#"{"id": "{{alert_group.id}}", "title": "{{alert_group.title}}"}"#.into()),
            ..webhook("handlebars", &receiver.url("/hbs"))
        },
    )
    .await;
    assert_eq!(hbs.template_engine, "handlebars");
    let statuses = emit_all(&mut client, &token, "alert group created", alert_event()).await;
    assert_eq!(
        states(&statuses)
            .iter()
            .filter(|s| **s == "SUCCEEDED")
            .count(),
        2,
        "{statuses:?}"
    );

    let mut requests = [receiver.next().await, receiver.next().await];
    requests.sort_by(|a, b| a.path.cmp(&b.path));
    let (jinja, handlebars) = (&requests[0], &requests[1]);
    assert_eq!(jinja.path, "/alerts/IZQERPWKWCGH1");
    assert_eq!(
        jinja.json(),
        json!({"labels": {"alertname": "InstanceDown", "severity": "critical"}, "title": "Disk \"full\" on db-1"})
    );
    assert_eq!(jinja.header("x-alert"), Some("IZQERPWKWCGH1"));
    assert_eq!(jinja.header("x-team"), Some("sre"));
    assert_eq!(
        handlebars.json(),
        json!({"id": "IZQERPWKWCGH1", "title": "Disk \"full\" on db-1"})
    );
}

#[tokio::test]
async fn a_template_error_is_a_logged_failed_delivery_not_a_crash() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            forward_all: Some(false),
            data: Some(r#"{"labels": {{ alert_payload.missing | tojson() }}}"#.into()),
            ..webhook("broken data", &receiver.url("/hook"))
        },
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", alert_event()).await;
    assert_eq!(states(&statuses), ["QUEUED", "FAILED"]);
    receiver.assert_quiet().await;
    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status_code, None);
    assert_eq!(log[0].content, None);
    let data = log[0].request_data.as_deref().unwrap();
    assert!(
        data.starts_with("Data - Template Warning:")
            && data.contains("Undefined is not JSON serializable"),
        "{data}"
    );
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_until_success() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    receiver.fail_next(2);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("flaky", &receiver.url("/hook")),
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", alert_event()).await;
    assert_eq!(
        states(&statuses),
        ["QUEUED", "RETRYING", "RETRYING", "SUCCEEDED"]
    );
    assert_eq!(
        statuses.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(statuses[1].status_code, Some(500));
    assert!(statuses[1].next_attempt_at.is_some());
    let first = receiver.next().await;
    let retried = receiver.next().await;
    assert_eq!(first.header("webhook-id"), retried.header("webhook-id"));
    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(
        log.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [3, 2, 1],
        "newest first"
    );
    assert_eq!(
        log.iter().map(|r| r.status_code).collect::<Vec<_>>(),
        [Some(200), Some(500), Some(500)]
    );
    let fetched = client
        .get_webhook(authed(&token, pb::GetWebhookRequest { id: hook.id }))
        .await
        .unwrap()
        .into_inner();
    assert!(fetched.last_success.is_some() && fetched.last_failure.is_some());
}

#[tokio::test]
async fn a_delivery_fails_for_good_when_the_schedule_is_exhausted_or_the_answer_is_final() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(&mut client, &token, webhook("down", &receiver.url("/hook"))).await;
    let statuses = emit_all(&mut client, &token, "alert group created", alert_event()).await;
    assert_eq!(
        states(&statuses),
        ["QUEUED", "RETRYING", "RETRYING", "RETRYING", "FAILED"]
    );
    assert!(
        statuses[4].error.contains("giving up after 4 attempts"),
        "{}",
        statuses[4].error
    );
    assert_eq!(responses(&mut client, &token, &hook.id).await.len(), 4);

    // A 404 is not retried.
    receiver.answer(404);
    let statuses = emit_all(&mut client, &token, "alert group created", alert_event()).await;
    assert_eq!(states(&statuses), ["QUEUED", "FAILED"]);
    assert_eq!(statuses[1].status_code, Some(404));

    // A closed port is a connection error, recorded with its reason.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dead = create(
        &mut client,
        &token,
        pb::Webhook {
            retry_schedule: vec!["5ms".into()],
            ..webhook("dead", &format!("http://{closed}/x"))
        },
    )
    .await;
    client
        .delete_webhook(authed(&token, pb::DeleteWebhookRequest { id: hook.id }))
        .await
        .unwrap();
    let statuses = emit_all(&mut client, &token, "alert group created", alert_event()).await;
    assert_eq!(states(&statuses), ["QUEUED", "RETRYING", "FAILED"]);
    let log = responses(&mut client, &token, &dead.id).await;
    assert!(log[0].status_code.is_none());
    assert!(!log[0].error.is_empty());
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let server = TestServer::start_with(|c| c.allow_private_targets = false).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("loopback", &receiver.url("/hook")),
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "FAILED"]);
    assert!(
        statuses[1].error.contains("allow-private-targets"),
        "{}",
        statuses[1].error
    );
    receiver.assert_quiet().await;
    let log = responses(&mut client, &token, &hook.id).await;
    assert!(log[0].error.contains("loopback"), "{}", log[0].error);
}

#[tokio::test]
async fn closing_the_stream_early_does_not_cancel_delivery() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(300));
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(&mut client, &token, webhook("slow", &receiver.url("/hook"))).await;
    let mut stream = emit_stream(
        &mut client,
        &token,
        "alert group created",
        Some(to_struct(alert_event())),
    )
    .await;
    let accepted = stream.message().await.unwrap().unwrap();
    assert_eq!(states(&[accepted]), ["ACCEPTED"]);
    let queued = stream.message().await.unwrap().unwrap();
    assert_eq!(states(&[queued]), ["QUEUED"]);
    drop(stream);
    receiver.next().await;
    let logged = eventually(|| {
        let mut client = client.clone();
        let (token, id) = (token.clone(), hook.id.clone());
        async move {
            let log = responses(&mut client, &token, &id).await;
            (!log.is_empty()).then_some(log)
        }
    })
    .await;
    assert_eq!(logged[0].status_code, Some(200));
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_event_and_delivers_once() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("once", &receiver.url("/hook"))).await;
    let emit = |key: &str| pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(alert_event())),
        idempotency_key: key.into(),
        ordering_key: String::new(),
    };
    let mut first = client
        .emit_event(authed(&token, emit("k-1")))
        .await
        .unwrap()
        .into_inner();
    let first_status = first.message().await.unwrap().unwrap();
    while first.message().await.unwrap().is_some() {}
    let mut again = client
        .emit_event(authed(&token, emit("k-1")))
        .await
        .unwrap()
        .into_inner();
    let accepted_again = again.message().await.unwrap().unwrap();
    assert_eq!(states(std::slice::from_ref(&accepted_again)), ["ACCEPTED"]);
    assert_eq!(accepted_again.event_id, first_status.event_id);
    assert_eq!(accepted_again.matched_deliveries, 1);
    let replayed = again.message().await.unwrap().unwrap();
    assert_eq!(replayed.event_id, first_status.event_id);
    assert_eq!(states(&[replayed]), ["SUCCEEDED"]);
    assert!(again.message().await.unwrap().is_none());
    receiver.next().await;
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn malformed_emits_are_invalid_arguments() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let empty = pb::EmitEventRequest::default();
    let error = client.emit_event(authed(&token, empty)).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    let long_key = pb::EmitEventRequest {
        event_type: "resolve".into(),
        data: None,
        idempotency_key: "k".repeat(1000),
        ordering_key: String::new(),
    };
    assert_eq!(
        client
            .emit_event(authed(&token, long_key))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::InvalidArgument
    );
    let huge = pb::EmitEventRequest {
        event_type: "resolve".into(),
        data: Some(to_struct(json!({"blob": "x".repeat(1_100_000)}))),
        idempotency_key: String::new(),
        ordering_key: String::new(),
    };
    let error = client.emit_event(authed(&token, huge)).await.unwrap_err();
    assert!(
        matches!(
            error.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_response_log_is_capped_at_its_documented_limit() {
    let server = TestServer::start_with(|c| c.response_history = 10).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("chatty", &receiver.url("/hook")),
    )
    .await;
    for i in 0..(64 + 11) {
        emit_all(&mut client, &token, "alert group created", json!({"i": i})).await;
    }
    let log = responses(&mut client, &token, &hook.id).await;
    // Trimmed back to 10 when the 64th entry was logged, then 11 more.
    assert_eq!(log.len(), 10 + 11);
    // The newest attempts are the ones kept.
    let newest: serde_json::Value =
        serde_json::from_str(log[0].request_data.as_deref().unwrap()).unwrap();
    assert_eq!(newest["i"], 64 + 10);
}

#[tokio::test]
async fn an_event_that_matches_no_webhook_still_tells_the_caller_its_id() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "resolve".into(),
            ..webhook("resolves only", "https://example.com/hook")
        },
    )
    .await;
    let emit = || pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(alert_event())),
        idempotency_key: "nothing-matches".into(),
        ordering_key: String::new(),
    };
    let mut stream = client
        .emit_event(authed(&token, emit()))
        .await
        .unwrap()
        .into_inner();
    let accepted = stream.message().await.unwrap().unwrap();
    assert_eq!(states(std::slice::from_ref(&accepted)), ["ACCEPTED"]);
    assert_eq!(accepted.matched_deliveries, 0);
    assert!(accepted.event_id.starts_with('E'), "{accepted:?}");
    assert!(accepted.delivery_id.is_empty() && accepted.webhook_id.is_empty());
    assert!(stream.message().await.unwrap().is_none());

    // The id is the event's: the same idempotency key answers with it again.
    let mut again = client
        .emit_event(authed(&token, emit()))
        .await
        .unwrap()
        .into_inner();
    let repeated = again.message().await.unwrap().unwrap();
    assert_eq!(repeated.event_id, accepted.event_id);
    assert_eq!(repeated.matched_deliveries, 0);
    assert!(again.message().await.unwrap().is_none());
}
