//! The live tail: WatchDeliveries (gRPC) and `GET /api/v1/deliveries/stream` (SSE) show every
//! state change of the account's deliveries with a cursor; a watcher that disconnects and
//! comes back with its last cursor gets exactly the changes it missed; filters, tenancy,
//! bad input, a watcher that stops reading, a cursor past retention, and (PostgreSQL) a
//! watcher on one instance following deliveries another instance makes.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tonic::Code;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;
use webhookd::model::DeliveryState;

use crate::support::{
    Receiver, TestServer, authed, busy_retry_delay, create, eventually, http_raw, is_store_busy,
    metric, scrape, states, to_struct, violated_fields, webhook,
};

/// What identifies one change: delivery, state, attempt.
type Key = (String, &'static str, i32);

fn key(status: &pb::DeliveryStatus) -> Key {
    (
        status.delivery_id.clone(),
        states(std::slice::from_ref(status))[0],
        status.attempt,
    )
}

/// Opens a tail as a well-behaved client does: a busy store's answer (PostgreSQL's pool
/// full while the machine is loaded) is retried after its RetryInfo delay; any other
/// answer is the test's.
async fn watch(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    request: pb::WatchDeliveriesRequest,
) -> Result<Streaming<pb::DeliveryStatus>, tonic::Status> {
    loop {
        match client
            .watch_deliveries(authed(token, request.clone()))
            .await
        {
            Err(status) if is_store_busy(&status) => {
                tokio::time::sleep(busy_retry_delay(&status)).await
            }
            answer => return answer.map(|r| r.into_inner()),
        }
    }
}

/// The next message of a tail, waiting up to 10 s; None when the stream ended.
async fn next(stream: &mut Streaming<pb::DeliveryStatus>) -> Option<pb::DeliveryStatus> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the tail stalled")
        .unwrap()
}

/// The next message, or None when none comes within 5 s.
async fn next_within(stream: &mut Streaming<pb::DeliveryStatus>) -> Option<pb::DeliveryStatus> {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .ok()
        .and_then(|message| message.unwrap())
}

/// Emits `n` "alert group created" events in one EmitEvents call.
async fn emit(client: &mut WebhookServiceClient<Channel>, token: &str, n: usize) {
    let events = (0..n)
        .map(|i| pb::EmitEventRequest {
            event_type: "alert group created".into(),
            data: Some(to_struct(json!({"alert_group": {"id": i}}))),
            ..Default::default()
        })
        .collect();
    client
        .emit_events(authed(token, pb::EmitEventsRequest { events }))
        .await
        .unwrap();
}

/// Checks that `seen` holds, for each of `deliveries` deliveries, QUEUED, then `retries`
/// RETRYING in all, then SUCCEEDED, each exactly once and in that order per delivery.
fn assert_complete(seen: &[Key], deliveries: usize, retries: usize) {
    let unique: HashSet<&Key> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a change arrived twice: {seen:?}");
    let mut per_delivery: BTreeMap<&str, Vec<(&str, i32)>> = BTreeMap::new();
    for (delivery, state, attempt) in seen {
        per_delivery
            .entry(delivery)
            .or_default()
            .push((state, *attempt));
    }
    assert_eq!(per_delivery.len(), deliveries, "{per_delivery:?}");
    let mut retried = 0;
    for changes in per_delivery.values() {
        match changes.as_slice() {
            [("QUEUED", 0), ("SUCCEEDED", 1)] => {}
            [("QUEUED", 0), ("RETRYING", 1), ("SUCCEEDED", 2)] => retried += 1,
            other => panic!("unexpected changes of a delivery: {other:?}"),
        }
    }
    assert_eq!(retried, retries);
}

/// A receiver whose first `failing` requests get a 500 (each then retried once), and a
/// webhook of `token`'s account delivering to it.
async fn hook(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    receiver: &Receiver,
    name: &str,
) -> pb::Webhook {
    create(client, token, webhook(name, &receiver.url("/hook"))).await
}

#[tokio::test]
async fn every_change_of_40_events_arrives_once_across_a_reconnect_with_the_last_cursor() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    hook(&mut client, &token, &receiver, "tail").await;
    receiver.fail_next(10);

    let mut first = watch(&mut client, &token, Default::default())
        .await
        .unwrap();
    emit(&mut client, &token, 40).await;
    // 40 QUEUED + 40 SUCCEEDED + 10 RETRYING; the first connection leaves after 30.
    let mut seen = Vec::new();
    let mut last_cursor = String::new();
    while seen.len() < 30 {
        let status = next(&mut first).await.unwrap();
        assert!(!status.cursor.is_empty(), "{status:?}");
        assert!(!status.event_id.is_empty() && !status.webhook_id.is_empty());
        last_cursor = status.cursor.clone();
        seen.push(key(&status));
    }
    drop(first);

    let request = pb::WatchDeliveriesRequest {
        cursor: last_cursor,
        ..Default::default()
    };
    let mut second = watch(&mut client, &token, request).await.unwrap();
    while seen.len() < 90 {
        seen.push(key(&next(&mut second).await.unwrap()));
    }
    assert_complete(&seen, 40, 10);
    // Nothing else was pending: the next change is a new event's.
    emit(&mut client, &token, 1).await;
    let sentinel = next(&mut second).await.unwrap();
    assert_eq!(states(std::slice::from_ref(&sentinel)), ["QUEUED"]);
    assert!(!seen.iter().any(|k| k.0 == sentinel.delivery_id));
}

/// One Server-Sent Event.
#[derive(Debug)]
struct SseEvent {
    id: String,
    event: String,
    data: Value,
}

/// A client of the SSE endpoint that reads events as they come.
struct Sse {
    body: hyper::body::Incoming,
    buffer: String,
}

impl Sse {
    /// Opens the stream; the status and the body text when it is not 200.
    async fn open(
        server: &TestServer,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Result<Sse, (StatusCode, String)> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let mut request = axum::http::Request::get(format!(
            "http://{}/api/v1/deliveries/stream?{query}",
            server.http_addr
        ))
        .header("authorization", token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = client
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            return Err((status, String::from_utf8_lossy(&body).into()));
        }
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert_eq!(content_type, "text/event-stream");
        Ok(Sse {
            body: response.into_body(),
            buffer: String::new(),
        })
    }

    /// The next event (keep-alive comments skipped), waiting up to 10 s.
    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: String::new(),
                    event: String::new(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                event.data = serde_json::from_str(&data).unwrap();
                return event;
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("the event stream stalled")
                .expect("the event stream ended")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

fn sse_key(event: &SseEvent) -> Key {
    let name = event.data["state"].as_str().unwrap();
    let state = DeliveryState::parse(name).unwrap_or_else(|| panic!("unexpected state {name}"));
    (
        event.data["delivery_id"].as_str().unwrap().into(),
        state.as_str(),
        event.data["attempt"].as_i64().unwrap() as i32,
    )
}

#[tokio::test]
async fn the_sse_stream_resumes_from_last_event_id_without_gaps_or_repeats() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    let hook = hook(&mut client, &token, &receiver, "tail").await;
    receiver.fail_next(10);

    let mut first = Sse::open(&server, &token, "", None).await.unwrap();
    emit(&mut client, &token, 40).await;
    let mut seen = Vec::new();
    let mut last_id = String::new();
    while seen.len() < 30 {
        let event = first.next().await;
        assert_eq!(event.id, event.data["cursor"].as_str().unwrap());
        assert_eq!(event.data["webhook_id"], hook.id.as_str());
        assert!(event.data["url"].as_str().unwrap().ends_with("/hook"));
        last_id = event.id.clone();
        seen.push(sse_key(&event));
    }
    drop(first);

    // As an EventSource reconnects: the URL it was opened with, plus Last-Event-ID.
    let mut second = Sse::open(&server, &token, "cursor=", Some(&last_id))
        .await
        .unwrap();
    while seen.len() < 90 {
        seen.push(sse_key(&second.next().await));
    }
    assert_complete(&seen, 40, 10);
    let retrying = seen.iter().filter(|k| k.1 == "RETRYING").count();
    assert_eq!(retrying, 10);

    // ?cursor= resumes too: from the 30th change, the 60 after it.
    let mut third = Sse::open(&server, &token, &format!("cursor={last_id}"), None)
        .await
        .unwrap();
    let mut again = Vec::new();
    while again.len() < 60 {
        again.push(sse_key(&third.next().await));
    }
    assert_eq!(again, seen[30..]);
}

#[tokio::test]
async fn filters_pick_one_webhook_and_some_states() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    let wanted = hook(&mut client, &token, &receiver, "wanted").await;
    hook(&mut client, &token, &receiver, "other").await;

    let request = pb::WatchDeliveriesRequest {
        webhook_id: wanted.id.clone(),
        states: vec![pb::DeliveryState::Succeeded as i32],
        ..Default::default()
    };
    let mut tail = watch(&mut client, &token, request).await.unwrap();
    let query = format!("webhook_id={}&state=succeeded&state=FAILED", wanted.id);
    let mut sse = Sse::open(&server, &token, &query, None).await.unwrap();
    emit(&mut client, &token, 3).await;
    for _ in 0..3 {
        let status = next(&mut tail).await.unwrap();
        assert_eq!(states(std::slice::from_ref(&status)), ["SUCCEEDED"]);
        assert_eq!(status.webhook_id, wanted.id);
        assert_eq!(status.status_code, Some(200));
        let event = sse.next().await;
        assert_eq!(event.data["state"], "SUCCEEDED");
        assert_eq!(event.data["webhook_id"], wanted.id.as_str());
        assert_eq!(event.data["status_code"], 200);
    }
}

#[tokio::test]
async fn another_accounts_changes_and_webhooks_stay_invisible() {
    let server = TestServer::start().await;
    let acme = server.writer("acme").await;
    let globex = server.writer("globex").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    let acme_hook = hook(&mut client, &acme, &receiver, "acme").await;
    hook(&mut client, &globex, &receiver, "globex").await;

    let mut theirs = watch(&mut client, &globex, Default::default())
        .await
        .unwrap();
    let mut their_sse = Sse::open(&server, &globex, "", None).await.unwrap();
    emit(&mut client, &acme, 5).await;
    // globex's first change is its own event's, none of acme's, on both transports.
    emit(&mut client, &globex, 1).await;
    let first = next(&mut theirs).await.unwrap();
    assert_eq!(states(std::slice::from_ref(&first)), ["QUEUED"]);
    assert_ne!(first.webhook_id, acme_hook.id);
    let second = next(&mut theirs).await.unwrap();
    assert_eq!(second.delivery_id, first.delivery_id);
    let queued = their_sse.next().await;
    assert_eq!(
        sse_key(&queued),
        (first.delivery_id.clone(), "QUEUED", 0),
        "{:?}",
        queued.data
    );
    assert_eq!(
        their_sse.next().await.data["delivery_id"],
        first.delivery_id.as_str()
    );

    let request = pb::WatchDeliveriesRequest {
        webhook_id: acme_hook.id.clone(),
        ..Default::default()
    };
    let error = watch(&mut client, &globex, request).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "{error:?}");
    let query = format!("webhook_id={}", acme_hook.id);
    let (status, _) = Sse::open(&server, &globex, &query, None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_cursors_states_and_tokens_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let writer_only = server.token("acme", &["webhooks:write"]).await;
    let mut client = server.webhooks().await;

    let refused = |request: pb::WatchDeliveriesRequest| {
        let mut client = client.clone();
        let token = token.clone();
        async move { watch(&mut client, &token, request).await.unwrap_err() }
    };
    for cursor in ["nope", "0123", &"g".repeat(32), &"0".repeat(33)] {
        let error = refused(pb::WatchDeliveriesRequest {
            cursor: cursor.to_string(),
            ..Default::default()
        })
        .await;
        assert_eq!(error.code(), Code::InvalidArgument, "{cursor}: {error:?}");
        assert_eq!(violated_fields(&error), ["cursor"]);
    }
    let error = refused(pb::WatchDeliveriesRequest {
        states: vec![
            pb::DeliveryState::Failed as i32,
            99,
            pb::DeliveryState::Accepted as i32,
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&error), ["states[1]", "states[2]"]);
    let error = refused(pb::WatchDeliveriesRequest {
        webhook_id: "not-a-webhook".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(error.code(), Code::NotFound);
    let error = watch(&mut client, &writer_only, Default::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let error = watch(&mut client, "wrong", Default::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);

    // REST: OnCall's field errors, and its auth errors.
    let (status, body) = Sse::open(&server, &token, "state=bogus&state=failed", None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["state"][0].as_str().unwrap().contains("bogus"),
        "{body}"
    );
    let (status, body) = Sse::open(&server, &token, "", Some("nope"))
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Last-Event-ID"), "{body}");
    let (status, body) = Sse::open(&server, &token, "cursor=nope", None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("cursor"), "{body}");
    let (status, _, _) = http_raw(
        Method::GET,
        &format!("http://{}/api/v1/deliveries/stream", server.http_addr),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = Sse::open(&server, &writer_only, "", None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_watcher_that_stops_reading_gets_resync_while_deliveries_go_on() {
    // Each delivery must succeed at its first attempt (the count below is exact): a
    // loaded machine must not turn a slow answer into a timeout and a retry.
    let server = TestServer::start_with(|c| {
        c.watch_stall_timeout = Duration::from_millis(200);
        c.request_timeout = Duration::from_secs(30);
    })
    .await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    // Long URLs make big messages, so the transport's buffers fill after a few hundred.
    let padding = "p".repeat(4000);
    let url = receiver.url(&format!("/hook?{padding}"));
    create(&mut client, &token, webhook("big", &url)).await;

    // A client with small HTTP/2 windows that reads nothing for a while.
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .unwrap();
    let mut slow_client = WebhookServiceClient::new(channel);
    let mut slow = watch(&mut slow_client, &token, Default::default())
        .await
        .unwrap();
    for _ in 0..4 {
        emit(&mut client, &token, 100).await;
    }
    // Every delivery is made while the watcher reads nothing, and its tail gives up on it.
    for _ in 0..400 {
        receiver.next().await;
    }
    eventually(|| async {
        (metric(&scrape(&server).await, "webhookd_watch_resyncs_total") >= 1.0).then_some(())
    })
    .await;

    // It then finds what was buffered, a RESYNC, and the end of the stream.
    let mut seen = Vec::new();
    let resync = loop {
        let status = next(&mut slow)
            .await
            .expect("the stream ended without RESYNC");
        if status.state == pb::DeliveryState::Resync as i32 {
            break status;
        }
        seen.push(key(&status));
    };
    assert!(
        !resync.cursor.is_empty() && !resync.error.is_empty(),
        "{resync:?}"
    );
    assert!(next(&mut slow).await.is_none());
    assert!(seen.len() < 800, "nothing was held back");
    // Resuming from the RESYNC cursor brings the rest, each change once.
    let request = pb::WatchDeliveriesRequest {
        cursor: resync.cursor,
        ..Default::default()
    };
    let mut resumed = watch(&mut client, &token, request).await.unwrap();
    while seen.len() < 800 {
        seen.push(key(&next(&mut resumed).await.unwrap()));
    }
    assert_complete(&seen, 400, 0);
}

#[tokio::test]
async fn a_cursor_older_than_the_change_retention_gets_resync_from_the_present() {
    let server = TestServer::start_with(|c| {
        c.change_retention = Some(Duration::from_millis(1));
        c.prune_every = Duration::from_millis(50);
    })
    .await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    hook(&mut client, &token, &receiver, "tail").await;
    let mut tail = watch(&mut client, &token, Default::default())
        .await
        .unwrap();
    emit(&mut client, &token, 1).await;
    let queued = next(&mut tail).await.unwrap();
    // Its SUCCEEDED may be pruned (retention is 1 ms) before this tail reads it from the
    // log on PostgreSQL: wait for it a while, but only the QUEUED cursor matters here.
    next_within(&mut tail).await;
    drop(tail);

    // Once retention has pruned the log, the old cursor resyncs (first message) and the
    // stream goes on from the present. On PostgreSQL the log is pruned and read only below
    // the oldest transaction open anywhere in the cluster (other tests' too: pg_busy holds a
    // table lock, and so a transaction id, through several 5 s pool waits), so a prune or a
    // message may come late: retry under one generous deadline.
    let request = pb::WatchDeliveriesRequest {
        cursor: queued.cursor.clone(),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let (resync, mut tail) = loop {
        let mut tail = watch(&mut client, &token, request.clone()).await.unwrap();
        if let Some(first) = next_within(&mut tail).await
            && first.state == pb::DeliveryState::Resync as i32
        {
            break (first, tail);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old cursor was never resynced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(resync.error.contains("older"), "{resync:?}");
    assert_ne!(resync.cursor, queued.cursor);
    // Retention keeps 1 ms here, so a change may be pruned before this watcher reads it (it
    // then resyncs again): emit until a fresh QUEUED arrives.
    let fresh = loop {
        emit(&mut client, &token, 1).await;
        let message = next_within(&mut tail).await;
        if let Some(message) = message.filter(|m| m.state == pb::DeliveryState::Queued as i32) {
            break message;
        }
        assert!(std::time::Instant::now() < deadline, "no fresh QUEUED");
    };
    assert_ne!(fresh.delivery_id, queued.delivery_id);
}

#[tokio::test]
async fn on_postgres_a_watcher_on_one_instance_sees_deliveries_made_by_another() {
    let Some(servers) = TestServer::cluster(2).await else {
        return;
    };
    let token = servers[0].writer("acme").await;
    let mut on_a = servers[0].webhooks().await;
    let mut on_b = servers[1].webhooks().await;
    let receiver = Receiver::start().await;
    hook(&mut on_b, &token, &receiver, "tail").await;
    receiver.fail_next(5);

    let mut tail = watch(&mut on_a, &token, Default::default()).await.unwrap();
    // B accepts the events; either instance may deliver them.
    emit(&mut on_b, &token, 20).await;
    let mut seen = Vec::new();
    while seen.len() < 45 {
        seen.push(key(&next(&mut tail).await.unwrap()));
    }
    assert_complete(&seen, 20, 5);
}

#[tokio::test]
async fn a_cancelled_delivery_shows_as_cancelled_in_the_tail() {
    // A long first retry delay keeps the delivery RETRYING until it is cancelled.
    let server =
        TestServer::start_with(|c| c.retry_schedule = vec![Duration::from_secs(600)]).await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let receiver = Receiver::start().await;
    hook(&mut client, &token, &receiver, "tail").await;
    receiver.answer(503);

    let mut tail = watch(&mut client, &token, Default::default())
        .await
        .unwrap();
    emit(&mut client, &token, 1).await;
    let queued = next(&mut tail).await.unwrap();
    let retrying = next(&mut tail).await.unwrap();
    assert_eq!(states(&[queued.clone(), retrying]), ["QUEUED", "RETRYING"]);
    client
        .cancel_delivery(authed(
            &token,
            pb::CancelDeliveryRequest {
                id: queued.delivery_id.clone(),
            },
        ))
        .await
        .unwrap();
    let cancelled = next(&mut tail).await.unwrap();
    assert_eq!(states(std::slice::from_ref(&cancelled)), ["CANCELLED"]);
    assert_eq!(cancelled.delivery_id, queued.delivery_id);
}
