//! The emit memory bound (`--emit-memory-mib`) holds for batch calls from their first byte to
//! their answer: while one client's batch is still arriving and holds all the bytes the bound
//! lets wait, further batch calls are refused at once (gRPC RESOURCE_EXHAUSTED with ErrorInfo
//! and RetryInfo, REST 429 with Retry-After and OnCall's `{"detail"}`), never queued without
//! end, and the server serves them again once those bytes are gone, even when the call that
//! held them broke off. Big batches beyond the bound wait for each other, all are accepted,
//! and the process's memory stays within the bound plus a fixed overhead.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_types::StatusExt;
use webhookd::grpc::pb;

use crate::process::Process;
use crate::rest_oncall::call;
use crate::support::*;

/// The bounds of the first test: 1 MiB of emit memory and of batch bytes waiting.
const BOUND: usize = 1024 * 1024;

type Chunks = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;
type Streamed = StreamBody<ReceiverStream<Result<Frame<Bytes>, Infallible>>>;

/// Starts a call to `path_and_query` on `addr` whose body is sent as the returned sender
/// gives it (HTTP/2 for gRPC, HTTP/1.1 chunked for REST); the answer comes from the task.
fn streaming_call(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    grpc: bool,
) -> (
    Chunks,
    tokio::task::JoinHandle<Option<axum::http::Response<hyper::body::Incoming>>>,
) {
    let (chunks, body) = mpsc::channel(4);
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(grpc);
    let client = client.build_http::<Streamed>();
    let mut request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {token}"));
    request = if grpc {
        request
            .header("content-type", "application/grpc")
            .header("te", "trailers")
    } else {
        request.header("content-type", "application/json")
    };
    let request = request
        .body(StreamBody::new(ReceiverStream::new(body)))
        .unwrap();
    let answer = tokio::spawn(async move { client.request(request).await.ok() });
    (chunks, answer)
}

/// A small well-formed EmitEvents request.
fn small_batch(tag: &str) -> pb::EmitEventsRequest {
    pb::EmitEventsRequest {
        events: (0..3)
            .map(|i| pb::EmitEventRequest {
                event_type: "alert group created".into(),
                data: Some(to_struct(
                    json!({"alert_group": {"id": format!("{tag}-{i}")}}),
                )),
                ..Default::default()
            })
            .collect(),
    }
}

/// A small well-formed REST batch body.
fn small_rest_batch(tag: &str) -> serde_json::Value {
    json!({"events": [{"data": {"event": {"type": "alert group created"},
                                "alert_group": {"id": tag}}}]})
}

/// Waits until the metrics show every byte allowed to wait held (by the call still arriving).
async fn waiting_bytes_are_full(server: &TestServer) {
    eventually(|| async {
        let waiting = metric(
            &scrape(server).await,
            "webhookd_emit_memory_bytes{bound=\"waiting\"}",
        );
        (waiting >= BOUND as f64).then_some(())
    })
    .await;
}

/// A small gRPC batch is refused as overloaded, with its status and details; a single-event
/// emit is not a batch and is still served.
async fn a_grpc_batch_is_refused(server: &TestServer, token: &str) {
    let mut client = server.webhooks().await;
    let status = client
        .emit_events(authed(token, small_batch("refused")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("retry later"), "{status:?}");
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "OVERLOADED");
    let retry = details.retry_info().unwrap().retry_delay.unwrap();
    assert_eq!(retry, Duration::from_secs(1));
    let sent = client
        .emit_event(authed(
            token,
            pb::EmitEventRequest {
                event_type: "alert group created".into(),
                data: Some(to_struct(json!({"alert_group": {"id": "single"}}))),
                ..Default::default()
            },
        ))
        .await;
    assert!(sent.is_ok(), "{sent:?}");
}

/// The same through `POST /api/v1/events/batch/`: 429, Retry-After, OnCall's detail.
async fn a_rest_batch_is_refused(server: &TestServer, token: &str) {
    let url = format!("http://{}/api/v1/events/batch/", server.http_addr);
    let body = small_rest_batch("refused").to_string();
    let bearer = format!("Bearer {token}");
    let (status, headers, answer) =
        http_raw(Method::POST, &url, Some(&bearer), Some(&body), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(headers["retry-after"], "1");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(
        answer["detail"].as_str().unwrap().contains("retry later"),
        "{answer}"
    );
}

/// Once the held bytes are gone, batches are served again on both transports.
async fn batches_are_served_again(server: &TestServer, token: &str) {
    let client = server.webhooks().await;
    eventually(|| {
        let mut client = client.clone();
        async move {
            client
                .emit_events(authed(token, small_batch("again")))
                .await
                .ok()
        }
    })
    .await;
    let (status, body) = call(
        server,
        Method::POST,
        "/api/v1/events/batch/",
        Some(token),
        Some(small_rest_batch("again")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn while_one_batch_still_arriving_holds_all_the_bytes_allowed_to_wait_others_are_refused_with_a_retry_hint()
 {
    let server = TestServer::start_with(|config| {
        config.emit_budget_bytes = BOUND;
        config.batch_waiting_bytes = BOUND;
    })
    .await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    create(
        &mut server.webhooks().await,
        &token,
        webhook("one", &receiver.url("/one")),
    )
    .await;

    // A gRPC call announcing a 2 MiB message sends more than the bound lets wait, then
    // stalls: alone, it may (a call larger than the bound takes all of it).
    let (chunks, answer) = streaming_call(
        server.grpc_addr,
        "/webhooks.v1.WebhookService/EmitEvents",
        &token,
        true,
    );
    let mut header = vec![0];
    header.extend_from_slice(&(2 * BOUND as u32).to_be_bytes());
    chunks
        .send(Ok(Frame::data(Bytes::from(header))))
        .await
        .unwrap();
    for _ in 0..5 {
        let part = Bytes::from(vec![0x0a; BOUND / 4]);
        chunks.send(Ok(Frame::data(part))).await.unwrap();
    }
    waiting_bytes_are_full(&server).await;
    a_grpc_batch_is_refused(&server, &token).await;
    a_rest_batch_is_refused(&server, &token).await;
    // The held call breaks off, cut short of what it announced: its bytes are given back
    // and it is answered with a status, not left hanging.
    drop(chunks);
    let answer = tokio::time::timeout(Duration::from_secs(30), answer)
        .await
        .expect("the broken-off call got no answer")
        .unwrap();
    if let Some(answer) = answer {
        let status = answer
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let trailers = answer
            .into_body()
            .collect()
            .await
            .map(|c| c.trailers().cloned());
        let status = status.or_else(|| {
            let trailers = trailers.ok()??;
            Some(trailers.get("grpc-status")?.to_str().ok()?.to_owned())
        });
        assert_ne!(status.as_deref(), Some("0"), "a broken-off call succeeded");
    }
    batches_are_served_again(&server, &token).await;

    // The same with a REST batch still arriving as the one holding the bytes.
    let (chunks, answer) = streaming_call(server.http_addr, "/api/v1/events/batch/", &token, false);
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"{\"events\": ["))))
        .await
        .unwrap();
    for _ in 0..5 {
        let part = Bytes::from(vec![b' '; BOUND / 4]);
        chunks.send(Ok(Frame::data(part))).await.unwrap();
    }
    waiting_bytes_are_full(&server).await;
    a_grpc_batch_is_refused(&server, &token).await;
    a_rest_batch_is_refused(&server, &token).await;
    // It ends as malformed JSON: OnCall's 400, and the bytes are given back.
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"7, ]"))))
        .await
        .unwrap();
    drop(chunks);
    let answer = tokio::time::timeout(Duration::from_secs(30), answer)
        .await
        .expect("the malformed batch got no answer")
        .unwrap()
        .expect("the malformed batch's connection broke");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("JSON parse error"),
        "{body}"
    );
    batches_are_served_again(&server, &token).await;

    // Everything accepted is delivered: the last batch's events arrive.
    loop {
        if receiver.next().await.json()["alert_group"]["id"] == "again" {
            break;
        }
    }
}

/// Events per big batch and the batches sent at once in the memory test: 4 x 1,000 events to
/// 10 webhooks, each batch ~30 MB from decode to answer (measured), so a 32 MiB bound holds
/// one at a time.
const BIG_EVENTS: usize = 1000;
const BIG_WEBHOOKS: usize = 10;
const BIG_CALLS: usize = 4;

/// A /proc/<pid>/status field, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn big_batch(call: usize) -> pb::EmitEventsRequest {
    pb::EmitEventsRequest {
        events: (0..BIG_EVENTS)
            .map(|i| pb::EmitEventRequest {
                event_type: "alert group created".into(),
                data: Some(to_struct(json!({
                    "alert_group": {"id": format!("AG{call}-{i}"), "title": "bench alert",
                                    "state": "firing"},
                    "alert_payload": {"severity": "critical", "message": "disk full on db-1"},
                    "integration": {"id": "CBENCH", "type": "webhook", "name": "bench"},
                }))),
                ..Default::default()
            })
            .collect(),
    }
}

#[tokio::test]
async fn big_batches_beyond_the_emit_memory_wait_for_each_other_and_memory_stays_within_the_bound()
{
    let store = TestStore::new().await;
    // Deliveries go to a port nobody listens on and are retried only after an hour: each is
    // attempted once, so the process holds the batches, not their attempts.
    let dead = "http://127.0.0.1:9/dead";
    let process = Process::spawn(
        &store,
        &[
            "--allow-private-targets",
            "--retry-schedule",
            "1h",
            "--emit-memory-mib",
            "32",
            "--sled-cache-mib",
            "8",
        ],
        Some(ADMIN_TOKEN),
    )
    .await;
    process.ready().await;
    let token = TestServer::token_via(process.http).await;
    let client = connect_webhooks(process.grpc).await;
    for i in 0..BIG_WEBHOOKS {
        create(
            &mut client.clone(),
            &token,
            webhook(&format!("dead{i}"), dead),
        )
        .await;
    }
    // A first batch warms the process up (pools, caches, allocator arenas).
    let first = client
        .clone()
        .emit_events(authed(&token, big_batch(BIG_CALLS)))
        .await
        .expect("the first batch is accepted");
    assert_eq!(first.into_inner().results.len(), BIG_EVENTS);
    let pid = process.pid();
    let before = proc_status_kib(pid, "VmRSS:");
    // The peak is counted from here on.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();

    let requests: Vec<_> = (0..BIG_CALLS)
        .map(|call| authed(&token, big_batch(call)))
        .collect();
    let calls = requests.into_iter().map(|request| {
        let mut client = client.clone();
        async move { client.emit_events(request).await }
    });
    for answer in futures::future::join_all(calls).await {
        let results = answer
            .expect("a batch that had to wait was refused")
            .into_inner();
        assert_eq!(results.results.len(), BIG_EVENTS);
        assert!(
            results
                .results
                .iter()
                .all(|r| r.deliveries.len() == BIG_WEBHOOKS)
        );
    }
    let peak = proc_status_kib(pid, "VmHWM:");
    // The bound: one big batch planned at a time (it is larger than the emit bound, so it
    // runs alone, holding its ~30 MB), the calls decoded within the decoding bound (32 MiB),
    // the bytes waiting (4 x 260 KB), plus a fixed overhead for what else runs (delivery,
    // the store's buffers).
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib <= 32 + 32 + 24,
        "RSS grew by {grown_mib} MiB over {before} KiB while {BIG_CALLS} big batches were emitted"
    );
    eprintln!("RSS grew by {grown_mib} MiB over {before} KiB");
}
