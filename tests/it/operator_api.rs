//! An operator asks what happened: GetEvent / ListEvents / GetDelivery / ListDeliveries /
//! CancelDelivery over gRPC and their REST twins. Filters, newest-first pages that stay
//! consistent while events keep coming (over gRPC and REST), tenancy, cancellation of a retrying delivery, and
//! every kind of bad input answered with field violations.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use crate::rest_oncall::call;
use crate::support::*;

type Client = WebhookServiceClient<Channel>;

/// The code of a call that must fail.
fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    result.unwrap_err().code()
}

/// Emits one event of `event_type` and returns its id once it is durable.
async fn emit(client: &mut Client, token: &str, event_type: &str) -> String {
    let statuses = emit_accepted(client, token, event_type).await;
    statuses.event_id
}

/// Emits an event and returns the ACCEPTED message (the stream is dropped; delivery goes on).
async fn emit_accepted(client: &mut Client, token: &str, event_type: &str) -> pb::DeliveryStatus {
    let request = pb::EmitEventRequest {
        event_type: event_type.into(),
        data: Some(to_struct(json!({"alert_group": {"id": "I1"}}))),
        idempotency_key: String::new(),
        ordering_key: String::new(),
    };
    let mut stream = client
        .emit_event(authed(token, request))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap()
}

async fn list_events(
    client: &mut Client,
    token: &str,
    request: pb::ListEventsRequest,
) -> Result<pb::ListEventsResponse, tonic::Status> {
    client
        .list_events(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

async fn list_deliveries(
    client: &mut Client,
    token: &str,
    request: pb::ListDeliveriesRequest,
) -> Result<pb::ListDeliveriesResponse, tonic::Status> {
    client
        .list_deliveries(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

async fn get_delivery(client: &mut Client, token: &str, id: &str) -> pb::Delivery {
    client
        .get_delivery(authed(token, pb::GetDeliveryRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

fn state(d: &pb::Delivery) -> &'static str {
    let status = pb::DeliveryStatus {
        state: d.state,
        ..Default::default()
    };
    states(&[status])[0]
}

/// Polls a delivery until it is in `wanted`.
async fn delivery_in(client: &Client, token: &str, id: &str, wanted: &str) -> pb::Delivery {
    eventually(|| {
        let mut client = client.clone();
        async move {
            let d = get_delivery(&mut client, token, id).await;
            (state(&d) == wanted).then_some(d)
        }
    })
    .await
}

#[tokio::test]
async fn an_operator_finds_an_event_and_its_deliveries_by_type_state_and_time() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let ok = Receiver::start().await;
    let dead = Receiver::start().await;
    dead.answer(500);
    let good = create(&mut client, &token, webhook("good", &ok.url("/ok"))).await;
    let bad = create(
        &mut client,
        &token,
        pb::Webhook {
            max_attempts: 1,
            ..webhook("bad", &dead.url("/dead"))
        },
    )
    .await;
    let first = emit(&mut client, &token, "alert group created").await;
    let other = emit(&mut client, &token, "resolve").await;
    let last = emit(&mut client, &token, "alert group created").await;

    // Newest first; the type filter keeps the two alerts.
    let all = list_events(&mut client, &token, pb::ListEventsRequest::default())
        .await
        .unwrap();
    let ids: Vec<&str> = all.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [last.as_str(), other.as_str(), first.as_str()]);
    assert!(all.next_page_token.is_empty());
    let alerts = list_events(
        &mut client,
        &token,
        pb::ListEventsRequest {
            event_type: "alert group created".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ids: Vec<&str> = alerts.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [last.as_str(), first.as_str()]);

    // The first event: its data and both deliveries, one succeeded and one failed.
    let event = client
        .get_event(authed(&token, pb::GetEventRequest { id: first.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(event.event_type, "alert group created");
    assert!(event.data.unwrap().fields.contains_key("alert_group"));
    assert_eq!(event.deliveries.len(), 2);
    for d in &event.deliveries {
        let wanted = if d.webhook_id == good.id {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        let now = delivery_in(&client, &token, &d.id, wanted).await;
        assert_eq!(now.event_id, first);
        assert_eq!(now.attempts, 1);
        assert!(now.created_at.is_some() && now.updated_at.is_some());
        assert!(now.next_attempt_at.is_none(), "final: nothing is due");
        if wanted == "FAILED" {
            assert_eq!(now.last_status_code, Some(500));
            assert!(!now.last_error.is_empty());
        }
    }

    // The failed deliveries of the bad webhook: its two alert events (resolve matched nothing).
    let failed = eventually(|| {
        let mut client = client.clone();
        let (token, bad) = (token.clone(), bad.id.clone());
        async move {
            let page = list_deliveries(
                &mut client,
                &token,
                pb::ListDeliveriesRequest {
                    webhook_id: bad,
                    states: vec![pb::DeliveryState::Failed as i32],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            (page.deliveries.len() == 2).then_some(page.deliveries)
        }
    })
    .await;
    let events: Vec<&str> = failed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(events, [last.as_str(), first.as_str()]);
    // "Undelivered": every state but SUCCEEDED, across webhooks.
    let undelivered = list_deliveries(
        &mut client,
        &token,
        pb::ListDeliveriesRequest {
            states: [
                pb::DeliveryState::Queued,
                pb::DeliveryState::Retrying,
                pb::DeliveryState::Failed,
                pb::DeliveryState::Skipped,
                pb::DeliveryState::Cancelled,
            ]
            .map(|s| s as i32)
            .to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        undelivered
            .deliveries
            .iter()
            .all(|d| d.webhook_id == bad.id)
    );
    assert_eq!(undelivered.deliveries.len(), 2);

    // A window ending before the first event holds nothing; one from it holds everything.
    let created = event.created_at.unwrap();
    let before_first = list_events(
        &mut client,
        &token,
        pb::ListEventsRequest {
            created_before: Some(created),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(before_first.events.is_empty());
    let from_first = list_deliveries(
        &mut client,
        &token,
        pb::ListDeliveriesRequest {
            created_after: Some(created),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(from_first.deliveries.len(), 4);
}

/// Emits `n` events, then has another producer emit `n` more while the caller pages through:
/// the ids of the first `n`, and the producer.
async fn emitted_and_more_coming(
    client: &Client,
    token: &str,
    n: usize,
) -> (HashSet<String>, tokio::task::JoinHandle<()>) {
    let mut client = client.clone();
    let mut before = HashSet::new();
    for _ in 0..n {
        before.insert(emit(&mut client, token, "alert group created").await);
    }
    let token = token.to_string();
    let producer = tokio::spawn(async move {
        for _ in 0..n {
            emit(&mut client, &token, "alert group created").await;
        }
    });
    (before, producer)
}

/// Each listed id is listed once, and every one of `before` is listed.
fn assert_each_once(listed: &[String], before: &HashSet<String>) {
    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "an item was listed twice");
    for id in before {
        assert!(unique.contains(id), "{id} existed before and was skipped");
    }
}

#[tokio::test]
async fn pages_have_no_gaps_and_no_repeats_while_events_keep_coming() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    create(&mut client, &token, webhook("hook", &receiver.url("/h"))).await;
    let (before, producer) = emitted_and_more_coming(&client, &token, 25).await;
    // Both listings page along side by side, each until its last page.
    let (mut events, mut deliveries) = (Vec::new(), Vec::new());
    let (mut event_token, mut delivery_token) = (Some(String::new()), Some(String::new()));
    while event_token.is_some() || delivery_token.is_some() {
        if let Some(page_token) = event_token.take() {
            let page = list_events(
                &mut client,
                &token,
                pb::ListEventsRequest {
                    page_size: 4,
                    page_token,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert!(page.events.len() <= 4);
            events.extend(page.events.into_iter().map(|e| e.id));
            event_token = Some(page.next_page_token).filter(|t| !t.is_empty());
        }
        if let Some(page_token) = delivery_token.take() {
            let page = list_deliveries(
                &mut client,
                &token,
                pb::ListDeliveriesRequest {
                    page_size: 3,
                    page_token,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            deliveries.extend(page.deliveries.into_iter().map(|d| d.event_id));
            delivery_token = Some(page.next_page_token).filter(|t| !t.is_empty());
        }
    }
    producer.await.unwrap();
    for listed in [&events, &deliveries] {
        assert_each_once(listed, &before);
    }
}

#[tokio::test]
async fn rest_pages_have_no_gaps_and_no_repeats_while_events_keep_coming() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    create(&mut client, &token, webhook("hook", &receiver.url("/h"))).await;
    let (before, producer) = emitted_and_more_coming(&client, &token, 12).await;
    for (path, items, id) in [
        ("/api/v1/events/?page_size=4", "events", "id"),
        (
            "/api/v1/deliveries/?page_size=3&state=queued,retrying,succeeded",
            "deliveries",
            "event_id",
        ),
    ] {
        let mut listed = Vec::new();
        let mut page_token = String::new();
        loop {
            let url = format!("{path}&page_token={page_token}");
            let (status, page) = call(&server, Method::GET, &url, Some(&token), None).await;
            assert_eq!(status, StatusCode::OK, "{url}: {page}");
            for item in page[items].as_array().unwrap() {
                listed.push(item[id].as_str().unwrap().to_string());
            }
            page_token = page["next_page_token"].as_str().unwrap().to_string();
            if page_token.is_empty() {
                break;
            }
        }
        assert_each_once(&listed, &before);
    }
    producer.await.unwrap();
}

#[tokio::test]
async fn another_accounts_events_and_deliveries_do_not_exist() {
    let server = TestServer::start().await;
    let acme = server.writer("acme").await;
    let other = server.writer("globex").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    let hook = create(&mut client, &acme, webhook("hook", &receiver.url("/h"))).await;
    let accepted = emit_accepted(&mut client, &acme, "alert group created").await;
    let event = client
        .get_event(authed(
            &acme,
            pb::GetEventRequest {
                id: accepted.event_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let delivery_id = event.deliveries[0].id.clone();

    let not_found = client
        .get_event(authed(
            &other,
            pb::GetEventRequest {
                id: accepted.event_id.clone(),
            },
        ))
        .await;
    assert_eq!(code(not_found), Code::NotFound);
    let not_found = client
        .get_delivery(authed(
            &other,
            pb::GetDeliveryRequest {
                id: delivery_id.clone(),
            },
        ))
        .await;
    assert_eq!(code(not_found), Code::NotFound);
    let not_found = client
        .cancel_delivery(authed(
            &other,
            pb::CancelDeliveryRequest {
                id: delivery_id.clone(),
            },
        ))
        .await;
    assert_eq!(code(not_found), Code::NotFound);
    let filtered = list_deliveries(
        &mut client,
        &other,
        pb::ListDeliveriesRequest {
            webhook_id: hook.id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(filtered.code(), Code::NotFound);
    let theirs = list_events(&mut client, &other, pb::ListEventsRequest::default())
        .await
        .unwrap();
    assert!(theirs.events.is_empty());
    let theirs = list_deliveries(&mut client, &other, pb::ListDeliveriesRequest::default())
        .await
        .unwrap();
    assert!(theirs.deliveries.is_empty());
    // Over REST, too.
    for path in [
        format!("/api/v1/events/{}/", accepted.event_id),
        format!("/api/v1/deliveries/{delivery_id}/"),
        format!("/api/v1/deliveries/?webhook_id={}", hook.id),
    ] {
        let (status, body) = call(&server, Method::GET, &path, Some(&other), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, body) = call(&server, Method::GET, "/api/v1/events/", Some(&other), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"], json!([]));
    // A read-only token lists but cannot cancel.
    let reader = server.token("acme", &["webhooks:read"]).await;
    let denied = client
        .cancel_delivery(authed(
            &reader,
            pb::CancelDeliveryRequest { id: delivery_id },
        ))
        .await;
    assert_eq!(code(denied), Code::PermissionDenied);
}

#[tokio::test]
async fn a_cancelled_retrying_delivery_gets_no_more_attempts_until_redelivered() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            retry_schedule: vec!["1s".into(); 50],
            ..webhook("flaky", &receiver.url("/flaky"))
        },
    )
    .await;
    let accepted = emit_accepted(&mut client, &token, "alert group created").await;
    receiver.next().await;
    let event = client
        .get_event(authed(
            &token,
            pb::GetEventRequest {
                id: accepted.event_id,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let id = event.deliveries[0].id.clone();
    let retrying = delivery_in(&client, &token, &id, "RETRYING").await;
    let retry_due = retrying.next_attempt_at.expect("a retry is due");

    let cancelled = client
        .cancel_delivery(authed(&token, pb::CancelDeliveryRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&cancelled), "CANCELLED");
    assert!(cancelled.next_attempt_at.is_none());
    // The retry that was due does not happen: past its time, the receiver hears nothing.
    let due_ms = retry_due.seconds * 1000 + i64::from(retry_due.nanos / 1_000_000);
    eventually(|| async { (webhookd::model::now_ms() > due_ms + 200).then_some(()) }).await;
    receiver.assert_quiet().await;
    let now = get_delivery(&mut client, &token, &id).await;
    assert_eq!(state(&now), "CANCELLED");
    assert_eq!(now.attempts, 1);
    // Twice is fine; REST says the same.
    let again = client
        .cancel_delivery(authed(&token, pb::CancelDeliveryRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&again), "CANCELLED");
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/api/v1/deliveries/{id}/cancel/"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "CANCELLED");
    // The cancelled deliveries are listed as such.
    let listed = list_deliveries(
        &mut client,
        &token,
        pb::ListDeliveriesRequest {
            webhook_id: hook.id.clone(),
            states: vec![pb::DeliveryState::Cancelled as i32],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.deliveries.len(), 1);

    // A redelivery sends it again, as a new delivery, which succeeds.
    receiver.answer(200);
    let revived = client
        .redeliver_delivery(authed(
            &token,
            pb::RedeliverDeliveryRequest {
                delivery_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .delivery_ids
        .remove(0);
    receiver.next().await;
    delivery_in(&client, &token, &revived, "SUCCEEDED").await;
    // A succeeded delivery cannot be cancelled.
    let refused = client
        .cancel_delivery(authed(
            &token,
            pb::CancelDeliveryRequest {
                id: revived.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/api/v1/deliveries/{revived}/cancel/"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("SUCCEEDED"));
}

#[tokio::test]
async fn the_rest_twins_answer_the_same_as_grpc() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    let hook = create(&mut client, &token, webhook("hook", &receiver.url("/h"))).await;
    let (status, emitted) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&token),
        Some(json!({"event": {"type": "alert group created"}, "alert_group": {"id": "<b>I1</b>"}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{emitted}");
    let event_id = emitted["id"].as_str().unwrap();
    let delivery_id = emitted["deliveries"][0]["id"].as_str().unwrap();
    receiver.next().await;

    let (status, event) = call(
        &server,
        Method::GET,
        &format!("/api/v1/events/{event_id}/"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["event_type"], "alert group created");
    assert_eq!(event["data"]["alert_group"]["id"], "<b>I1</b>");
    assert!(event["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(event["deliveries"][0]["id"], delivery_id);

    let (_, listed) = call(
        &server,
        Method::GET,
        "/api/v1/events/?event_type=alert%20group%20created&page_size=10",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(listed["events"][0]["id"], event_id);
    assert_eq!(listed["next_page_token"], "");

    let delivery = eventually(|| async {
        let (_, d) = call(
            &server,
            Method::GET,
            &format!("/api/v1/deliveries/{delivery_id}/"),
            Some(&token),
            None,
        )
        .await;
        (d["state"] == "SUCCEEDED").then_some(d)
    })
    .await;
    let mut keys: Vec<&str> = delivery
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempts",
            "created_at",
            "event_id",
            "id",
            "last_error",
            "last_status_code",
            "next_attempt_at",
            "updated_at",
            "url",
            "state",
            "webhook_id"
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(delivery["last_status_code"], 200);
    let path = format!(
        "/api/v1/deliveries/?webhook_id={}&state=succeeded&state=failed",
        hook.id
    );
    let (status, listed) = call(&server, Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["deliveries"][0]["id"], delivery_id);
    let (_, none) = call(
        &server,
        Method::GET,
        "/api/v1/deliveries/?state=retrying,queued",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(none["deliveries"], json!([]));
    // The OpenAPI document describes the new paths.
    let (_, doc) = call(&server, Method::GET, "/api/openapi.json", None, None).await;
    for path in [
        "/api/v1/events/",
        "/api/v1/events/{id}/",
        "/api/v1/deliveries/",
        "/api/v1/deliveries/{id}/",
        "/api/v1/deliveries/{id}/cancel/",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/api/v1/events/"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/events/"]["post"].is_object());
}

#[tokio::test]
async fn bad_filters_tokens_and_page_sizes_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    create(&mut client, &token, webhook("hook", &receiver.url("/h"))).await;
    for _ in 0..3 {
        emit(&mut client, &token, "alert group created").await;
    }
    let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    let bad_events = [
        (
            pb::ListEventsRequest {
                page_size: 1001,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListEventsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListEventsRequest {
                created_after: Some(at(2_000)),
                created_before: Some(at(1_000)),
                ..Default::default()
            },
            "created_before",
        ),
        (
            pb::ListEventsRequest {
                created_after: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -5,
                }),
                ..Default::default()
            },
            "created_after",
        ),
        (
            pb::ListEventsRequest {
                page_token: "forged".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ];
    for (request, field) in bad_events {
        let status = list_events(&mut client, &token, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violated_fields(&status), [field]);
    }
    // A real token, edited or used with other filters, is refused too.
    let page = list_events(
        &mut client,
        &token,
        pb::ListEventsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut edited = page.next_page_token.clone().into_bytes();
    edited[5] = if edited[5] == b'A' { b'B' } else { b'A' };
    for (page_token, event_type) in [
        (String::from_utf8(edited).unwrap(), ""),
        (page.next_page_token.clone(), "resolve"),
    ] {
        let status = list_events(
            &mut client,
            &token,
            pb::ListEventsRequest {
                page_size: 1,
                page_token,
                event_type: event_type.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
    // Unknown states, UNSPECIFIED and ACCEPTED are no delivery's state.
    for value in [99, 0, pb::DeliveryState::Accepted as i32] {
        let status = list_deliveries(
            &mut client,
            &token,
            pb::ListDeliveriesRequest {
                states: vec![pb::DeliveryState::Failed as i32, value],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["states[1]"]);
    }
    let status = list_deliveries(
        &mut client,
        &token,
        pb::ListDeliveriesRequest {
            webhook_id: "not-a-webhook".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    for id in ["", "E123", "D0000000000000"] {
        let status = client
            .get_event(authed(&token, pb::GetEventRequest { id: id.into() }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id:?}");
    }
    for id in ["", "D123", "E0000000000000", "<script>"] {
        let request = pb::GetDeliveryRequest { id: id.into() };
        let status = client.get_delivery(authed(&token, request)).await;
        assert_eq!(code(status), Code::NotFound, "{id:?}");
        let request = pb::CancelDeliveryRequest { id: id.into() };
        let status = client.cancel_delivery(authed(&token, request)).await;
        assert_eq!(code(status), Code::NotFound, "{id:?}");
    }

    // REST: OnCall field errors.
    let bad_queries = [
        ("/api/v1/deliveries/?state=bogus", "state"),
        (
            "/api/v1/deliveries/?created_after=yesterday",
            "created_after",
        ),
        (
            "/api/v1/events/?created_before=2024-13-01T00:00:00Z",
            "created_before",
        ),
        (
            "/api/v1/events/?created_after=2024-02-01T00:00:00Z&created_before=2024-01-01T00:00:00Z",
            "created_before",
        ),
        ("/api/v1/events/?page_size=many", "page_size"),
        ("/api/v1/events/?page_size=5000", "page_size"),
        ("/api/v1/events/?page_token=AAAA", "page_token"),
        ("/api/v1/deliveries/?states=failed", "states"),
    ];
    for (path, field) in bad_queries {
        let (status, body) = call(&server, Method::GET, path, Some(&token), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(fields, [field], "{path}: {body}");
        assert!(body[field][0].is_string());
    }
    // Malformed and unknown ids are not found, in OnCall's shape.
    for (method, path) in [
        (Method::GET, "/api/v1/events/not-an-id/"),
        (Method::GET, "/api/v1/events/E0000000000001/"),
        (Method::GET, "/api/v1/deliveries/%3Cscript%3E/"),
        (Method::GET, "/api/v1/deliveries/D0000000000001/"),
        (Method::POST, "/api/v1/deliveries/not-an-id/cancel/"),
        (Method::POST, "/api/v1/deliveries/D0000000000001/cancel/"),
    ] {
        let (status, body) = call(&server, method, path, Some(&token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    let (status, _) = call(&server, Method::GET, "/api/v1/events/", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
