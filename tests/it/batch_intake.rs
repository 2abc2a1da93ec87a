//! Batch calls are read as bytes first and decoded only once the emit memory bound grants
//! them their share: many large EmitEvents calls over one HTTP/2 connection, far more than the
//! bound admits at once and together larger than the connection's flow-control window, all
//! complete; a body too large or not protobuf still gets tonic's own clear status. REST batches
//! wait their turn the same way.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tonic::Code;
use webhookd::grpc::pb;

use crate::rest_oncall::call;
use crate::support::*;

/// Concurrent calls on one channel (one HTTP/2 connection).
const CALLS: usize = 12;
/// Events per call: with its ~1.3 KB of data each, a call is ~300 KB on the wire, several
/// times one stream's 64 KiB window, and all of them together more than the connection's.
const EVENTS: usize = 200;

fn event(call: usize, i: usize) -> pb::EmitEventRequest {
    pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(json!({
            "alert_group": {"id": format!("AG{call}-{i}"), "title": "t".repeat(1200)},
        }))),
        ..Default::default()
    }
}

#[tokio::test]
async fn many_large_batches_on_one_connection_all_complete_though_the_bound_admits_one_at_a_time() {
    // 1 MiB of emit memory: each call's decoded share is more than that, so one at a time.
    let server = TestServer::start_with(|config| config.emit_budget_bytes = 1024 * 1024).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let client = server.webhooks().await;
    create(
        &mut client.clone(),
        &token,
        webhook("one", &receiver.url("/one")),
    )
    .await;

    let calls = (0..CALLS).map(|call| {
        let mut client = client.clone();
        let request = authed(
            &token,
            pb::EmitEventsRequest {
                events: (0..EVENTS).map(|i| event(call, i)).collect(),
            },
        );
        async move { client.emit_events(request).await }
    });
    // A deadline against a hang, far beyond what the calls need.
    let answers = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(calls))
        .await
        .expect("batch calls on one connection hung");
    for answer in answers {
        let results = answer.expect("a batch call failed").into_inner().results;
        assert_eq!(results.len(), EVENTS);
        assert!(results.iter().all(|r| states(&r.deliveries) == ["QUEUED"]));
    }

    // And they are delivered: the last event of the last call arrives.
    let last = format!("AG{}-{}", CALLS - 1, EVENTS - 1);
    loop {
        if receiver.next().await.json()["alert_group"]["id"] == last.as_str() {
            break;
        }
    }
}

/// The answer to an EmitEvents call whose body is `body`, sent as is over HTTP/2.
async fn post_emit_events(
    server: &TestServer,
    token: &str,
    body: Vec<u8>,
) -> axum::http::Response<hyper::body::Incoming> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!(
            "http://{}/webhooks.v1.WebhookService/EmitEvents",
            server.grpc_addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    client.request(request).await.unwrap()
}

/// The `grpc-status` and `grpc-message` of an EmitEvents call whose body is `body`, sent as
/// is over HTTP/2 (from the trailers, or the headers of a trailers-only answer).
async fn raw_emit_events(server: &TestServer, token: &str, body: Vec<u8>) -> (String, String) {
    let response = post_emit_events(server, token, body).await;
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (field("grpc-status"), field("grpc-message"))
}

/// A gRPC frame: uncompressed, its 4-byte length, then `message`.
fn frame(message: &[u8], length: u32) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

#[tokio::test]
async fn a_batch_too_large_cut_short_or_not_protobuf_gets_a_clear_status() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;

    // Larger than the 4 MiB a call may carry: refused, not read into memory.
    let events = (0..3500).map(|i| event(0, i)).collect();
    let error = client
        .emit_events(authed(&token, pb::EmitEventsRequest { events }))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::OutOfRange, "{error:?}");
    assert!(error.message().contains("too large"), "{}", error.message());

    // Not a protobuf message.
    let (status, message) = raw_emit_events(&server, &token, frame(b"\xff\xff\xff\xff", 4)).await;
    assert_eq!(status, (Code::Internal as i32).to_string(), "{message}");
    assert!(message.contains("decode"), "{message}");

    // A frame announcing more bytes than the body has.
    let (status, message) = raw_emit_events(&server, &token, frame(b"\x0a\x00", 1000)).await;
    assert_eq!(status, (Code::Internal as i32).to_string(), "{message}");
    assert!(!message.is_empty());

    // The service still answers well-formed calls.
    let results = client
        .emit_events(authed(
            &token,
            pb::EmitEventsRequest {
                events: vec![event(1, 1)],
            },
        ))
        .await
        .expect("a small batch is emitted")
        .into_inner()
        .results;
    assert_eq!(results.len(), 1);
}

#[tokio::test]
async fn a_refused_batch_is_answered_trailers_only_as_every_grpc_client_expects() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    // An event without a type: the whole batch is refused with INVALID_ARGUMENT.
    let mut events = vec![event(0, 0), event(0, 1)];
    events[1].event_type.clear();
    let message = prost::Message::encode_to_vec(&pb::EmitEventsRequest { events });
    let response = post_emit_events(&server, &token, frame(&message, message.len() as u32)).await;
    // The status is in the HEADERS frame and that frame ends the stream: grpc-go and
    // grpc-python refuse a status followed by an empty DATA frame.
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(status.as_deref(), Some("3"), "{:?}", response.headers());
    assert!(
        response.body().is_end_stream(),
        "the answer's headers end the stream"
    );
}

#[tokio::test]
async fn rest_batches_beyond_the_bound_wait_their_turn_and_all_are_accepted() {
    let server = TestServer::start_with(|config| config.emit_budget_bytes = 64 * 1024).await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    create(
        &mut server.webhooks().await,
        &token,
        webhook("one", &receiver.url("/one")),
    )
    .await;

    let batches = (0..6).map(|b| {
        let (server, token) = (&server, &token);
        async move {
            let events: Vec<_> = (0..50)
                .map(|i| {
                    json!({"data": {
                        "event": {"type": "alert group created"},
                        "alert_group": {"id": format!("B{b}-{i}"), "title": "t".repeat(1200)},
                    }})
                })
                .collect();
            call(
                server,
                Method::POST,
                "/api/v1/events/batch/",
                Some(token),
                Some(json!({ "events": events })),
            )
            .await
        }
    });
    for (status, body) in futures::future::join_all(batches).await {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 50);
        assert!(
            results
                .iter()
                .all(|r| r["deliveries"][0]["state"] == "QUEUED")
        );
    }

    // A malformed batch still gets OnCall's field errors.
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/batch/",
        Some(&token),
        Some(json!({"events": [{"data": "not an object"}, 7]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.get("events[0].data").is_some(), "{body}");
    assert!(body.get("events[1].data").is_some(), "{body}");
}
