//! A producer posts OnCall event_data to `POST /api/v1/events/`: 202 with the event id and
//! each delivery's initial state once the event is durable, one event per Idempotency-Key,
//! and OnCall error bodies for bad requests.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::rest_oncall::call;
use crate::support::*;

#[tokio::test]
async fn an_event_is_accepted_and_delivered() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    let (_, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(json!({"name": "Resolved", "url": receiver.url("/r"), "trigger_type": "resolve"})),
    )
    .await;
    let event = json!({
        "event": {"type": "resolve", "time": "2023-08-18T16:38:21.442981+00:00"},
        "user": {"id": "UK49JJNPZMFLJ", "username": "oncall", "email": "admin@localhost"},
        "alert_group": {"id": "IZQERPWKWCGH1", "state": "resolved"},
        "alert_group_id": "IZQERPWKWCGH1",
        "alert_payload": {"status": "resolved"},
        "integration": {"id": "CRV8A5MXC751A", "type": "alertmanager", "name": "One - Alertmanager", "team": null},
    });
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&token),
        Some(event.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["deliveries", "id"]);
    assert!(body["id"].as_str().unwrap().starts_with('E'));
    let deliveries = body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        deliveries[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        ["id", "state", "url", "webhook_id"].into_iter().collect()
    );
    assert_eq!(deliveries[0]["webhook_id"], created["id"]);
    assert_eq!(deliveries[0]["url"], receiver.url("/r"));
    assert_eq!(deliveries[0]["state"], "QUEUED");
    assert!(deliveries[0]["id"].as_str().unwrap().starts_with('D'));

    let received = receiver.next().await;
    assert_eq!(received.json(), event);

    // Nothing matches: accepted, no deliveries.
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&token),
        Some(json!({"event": {"type": "acknowledge"}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["deliveries"], json!([]));
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_event() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(json!({"name": "Once", "url": receiver.url("/once"), "trigger_type": "escalation"})),
    )
    .await;
    let url = format!("http://{}/api/v1/events/", server.http_addr);
    let body = json!({"event": {"type": "escalation"}}).to_string();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, _, text) = http_raw(
            Method::POST,
            &url,
            Some(&token),
            Some(&body),
            &[("idempotency-key", "retry-1")],
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["deliveries"].as_array().unwrap().len(), 1);
        ids.push(value["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    receiver.next().await;
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn bad_event_requests_get_oncall_errors() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let reader = server.token("acme", &["webhooks:read"]).await;
    let event = json!({"event": {"type": "resolve"}});

    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        None,
        Some(event.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].is_string());
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&reader),
        Some(event.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["detail"].is_string());

    for bad in [
        json!({}),
        json!({"event": {}}),
        json!({"event": {"type": 3}}),
        json!({"event": "resolve"}),
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/v1/events/",
            Some(&token),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body["event"].as_array().is_some_and(|m| !m.is_empty()),
            "{bad}: {body}"
        );
    }

    let url = format!("http://{}/api/v1/events", server.http_addr);
    let (status, _, text) = http_raw(Method::POST, &url, Some(&token), Some("{oops"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["detail"].is_string());
    // GET lists the events (the operator API); other methods are not allowed.
    let (status, _, text) = http_raw(Method::PUT, &url, Some(&token), None, &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["detail"].is_string());
}

#[tokio::test]
async fn a_batch_of_events_is_accepted_at_once_in_order() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(json!({"name": "Resolved", "url": receiver.url("/r"), "trigger_type": "resolve"})),
    )
    .await;
    let batch = json!({"events": [
        {"data": {"event": {"type": "resolve"}, "alert_group": {"id": "AG1"}}, "idempotency_key": "ag1"},
        {"data": {"event": {"type": "acknowledge"}, "alert_group": {"id": "AG2"}}},
        {"data": {"event": {"type": "resolve"}, "alert_group": {"id": "AG3"}}},
    ]});
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/batch/",
        Some(&token),
        Some(batch),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["duplicate"] == false));
    let delivered: Vec<usize> = results
        .iter()
        .map(|r| r["deliveries"].as_array().unwrap().len())
        .collect();
    assert_eq!(delivered, [1, 0, 1]);
    assert_eq!(results[0]["deliveries"][0]["state"], "QUEUED");
    let mut ids: Vec<String> = Vec::new();
    for _ in 0..2 {
        ids.push(
            receiver.next().await.json()["alert_group"]["id"]
                .as_str()
                .unwrap()
                .into(),
        );
    }
    ids.sort();
    assert_eq!(ids, ["AG1", "AG3"]);

    // The keyed event again: the first one's id, nothing delivered twice.
    let again = json!({"events": [
        {"data": {"event": {"type": "resolve"}, "alert_group": {"id": "AG1"}}, "idempotency_key": "ag1"},
    ]});
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/batch",
        Some(&token),
        Some(again),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["results"][0]["duplicate"], true);
    assert_eq!(body["results"][0]["id"], results[0]["id"]);
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_bad_batch_gets_oncall_errors_naming_each_event() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let post = |body: Value, token: Option<String>| {
        let server = &server;
        async move {
            call(
                server,
                Method::POST,
                "/api/v1/events/batch/",
                token.as_deref(),
                Some(body),
            )
            .await
        }
    };
    let (status, body) = post(
        json!({"events": [
            {"data": {"event": {"type": "resolve"}}},
            {"data": {"event": {}}},
            {"data": "text", "idempotency_key": 7},
        ]}),
        Some(token.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["events[1].data.event", "events[2].data"]);

    let (status, body) = post(json!({"events": "no"}), Some(token.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["events"][0].is_string());
    let (status, _) = post(json!({"events": []}), Some(token.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(json!([1, 2]), Some(token.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(json!({"events": []}), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
