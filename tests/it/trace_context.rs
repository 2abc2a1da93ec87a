//! Distributed tracing: a W3C `traceparent` on the emit (gRPC metadata or REST header) is
//! continued by every delivery request (same trace, a new span id per attempt), also without
//! an exporter and across a restart; with `--otlp-endpoint` the built binary exports the
//! `emit`, `render` and `attempt` spans, with the API ids, to an OTLP/HTTP collector written
//! here.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use tokio::net::TcpListener;
use webhookd::grpc::pb;

use crate::support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn caller_traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

/// (trace id, span id, flags) of a traceparent the receiver got.
fn parts(received: &Received) -> (String, String, String) {
    let value = received.header("traceparent").expect("no traceparent");
    let fields: Vec<&str> = value.split('-').collect();
    assert_eq!(fields.len(), 4, "{value}");
    assert_eq!(fields[0], "00", "{value}");
    assert_eq!(fields[1].len(), 32, "{value}");
    assert_eq!(fields[2].len(), 16, "{value}");
    (fields[1].into(), fields[2].into(), fields[3].into())
}

/// EmitEvent with `traceparent` metadata.
async fn emit_traced(
    client: &mut pb::webhook_service_client::WebhookServiceClient<tonic::transport::Channel>,
    token: &str,
    traceparent: &str,
) -> Vec<pb::DeliveryStatus> {
    let mut request = authed(
        token,
        pb::EmitEventRequest {
            event_type: "alert group created".into(),
            data: Some(to_struct(json!({"alert_group": {"id": "AG1"}}))),
            idempotency_key: String::new(),
            ordering_key: String::new(),
        },
    );
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let mut stream = client.emit_event(request).await.unwrap().into_inner();
    let mut statuses = Vec::new();
    while let Some(status) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("stream stalled")
        .unwrap()
    {
        statuses.push(status);
    }
    statuses
}

#[tokio::test]
async fn every_attempt_continues_the_emits_trace_with_a_span_id_of_its_own() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    receiver.fail_next(1);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("traced", &receiver.url("/hook")),
    )
    .await;
    let statuses = emit_traced(&mut client, &token, &caller_traceparent()).await;
    assert_eq!(
        states(&statuses),
        ["ACCEPTED", "QUEUED", "RETRYING", "SUCCEEDED"]
    );
    let (first, retry) = (receiver.next().await, receiver.next().await);
    let (first, retry) = (parts(&first), parts(&retry));
    assert_eq!(first.0, TRACE_ID);
    assert_eq!(retry.0, TRACE_ID);
    assert_ne!(first.1, CALLER_SPAN);
    assert_ne!(first.1, retry.1, "each attempt has its own span id");
    assert_eq!((first.2.as_str(), retry.2.as_str()), ("01", "01"));
}

#[tokio::test]
async fn a_rest_emit_is_continued_and_an_untraced_emit_starts_a_trace() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("traced", &receiver.url("/hook")),
    )
    .await;
    let event =
        json!({"event": {"type": "alert group created"}, "alert_group": {"id": "AG1"}}).to_string();
    let url = format!("http://{}/api/v1/events/", server.http_addr);
    let auth = format!("Bearer {token}");
    let traced = caller_traceparent();
    let (status, _, body) = http_raw(
        Method::POST,
        &url,
        Some(&auth),
        Some(&event),
        &[("traceparent", &traced)],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(parts(&receiver.next().await).0, TRACE_ID);
    // No traceparent, or an invalid one: a new trace, still sent.
    let mut traces = Vec::new();
    for headers in [vec![], vec![("traceparent", "00-not-a-trace-01")]] {
        let (status, _, body) =
            http_raw(Method::POST, &url, Some(&auth), Some(&event), &headers).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (trace_id, _, flags) = parts(&receiver.next().await);
        assert_ne!(trace_id, TRACE_ID);
        assert_eq!(flags, "01");
        traces.push(trace_id);
    }
    assert_ne!(traces[0], traces[1]);
}

#[tokio::test]
async fn every_event_of_an_emit_events_batch_continues_the_callers_trace() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("traced", &receiver.url("/hook")),
    )
    .await;
    let event = |i: u32| pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(json!({"alert_group": {"id": format!("AG{i}")}}))),
        idempotency_key: String::new(),
        ordering_key: String::new(),
    };
    let mut request = authed(
        &token,
        pb::EmitEventsRequest {
            events: vec![event(1), event(2)],
        },
    );
    request
        .metadata_mut()
        .insert("traceparent", caller_traceparent().parse().unwrap());
    client.emit_events(request).await.unwrap();
    let (first, second) = (parts(&receiver.next().await), parts(&receiver.next().await));
    assert_eq!((first.0.as_str(), second.0.as_str()), (TRACE_ID, TRACE_ID));
    assert_ne!(first.1, second.1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The built binary on `dir`, with private targets allowed and `extra` flags.
struct Process {
    child: Child,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

impl Process {
    async fn start(dir: &std::path::Path, extra: &[&str]) -> Process {
        let (grpc, http) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_webhookd"))
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--allow-private-targets", "--retry-jitter", "false"])
            .args(extra)
            .env("WEBHOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            // Export batches every 50 ms instead of every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let process = Process {
            child,
            grpc: format!("127.0.0.1:{grpc}").parse().unwrap(),
            http: format!("127.0.0.1:{http}").parse().unwrap(),
        };
        eventually(|| async { tokio::net::TcpStream::connect(process.http).await.ok() }).await;
        process
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_retry_after_a_restart_continues_the_same_trace() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    // The first attempt is still waiting for its answer when the process is killed.
    receiver.delay(Duration::from_secs(30));
    let first = Process::start(dir.path(), &[]).await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    create(
        &mut client,
        &token,
        webhook("traced", &receiver.url("/hook")),
    )
    .await;
    let mut request = authed(
        &token,
        pb::EmitEventRequest {
            event_type: "alert group created".into(),
            data: Some(to_struct(json!({}))),
            idempotency_key: String::new(),
            ordering_key: String::new(),
        },
    );
    request
        .metadata_mut()
        .insert("traceparent", caller_traceparent().parse().unwrap());
    let mut stream = client.emit_event(request).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    let before = parts(&receiver.next().await);
    drop(stream);
    drop(first);
    receiver.delay(Duration::ZERO);
    let _second = Process::start(dir.path(), &[]).await;
    let after = parts(&receiver.next().await);
    assert_eq!(before.0, TRACE_ID);
    assert_eq!(after.0, TRACE_ID);
    assert_ne!(before.1, after.1);
}

/// An OTLP/HTTP collector on 127.0.0.1 keeping every span posted to /v1/traces.
async fn collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return (StatusCode::BAD_REQUEST, Vec::new());
                };
                let mut kept = kept.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans);
                    }
                }
                let answer = ExportTraceServiceResponse::default().encode_to_vec();
                (StatusCode::OK, answer)
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(text) => Some(text.clone()),
            AnyValue::IntValue(n) => Some(n.to_string()),
            _ => None,
        })
}

#[tokio::test]
async fn otlp_export_shows_emit_render_and_attempt_spans_of_the_callers_trace() {
    let (collector_addr, spans) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{collector_addr}");
    let process = Process::start(dir.path(), &["--otlp-endpoint", &endpoint]).await;
    let receiver = Receiver::start().await;
    let token = TestServer::token_via(process.http).await;
    let mut client = connect_webhooks(process.grpc).await;
    let hook = create(
        &mut client,
        &token,
        webhook("traced", &receiver.url("/hook")),
    )
    .await;
    let statuses = emit_traced(&mut client, &token, &caller_traceparent()).await;
    assert_eq!(states(&statuses), ["ACCEPTED", "QUEUED", "SUCCEEDED"]);
    let (event_id, delivery_id) = (&statuses[0].event_id, &statuses[1].delivery_id);
    let sent = parts(&receiver.next().await);
    let by_name = |spans: &[Span], name: &str| spans.iter().find(|s| s.name == name).cloned();
    let (emit, render, attempt) = eventually(|| async {
        let spans = spans.lock().unwrap().clone();
        Some((
            by_name(&spans, "emit")?,
            by_name(&spans, "render")?,
            by_name(&spans, "attempt")?,
        ))
    })
    .await;
    for span in [&emit, &render, &attempt] {
        assert_eq!(hex(&span.trace_id), TRACE_ID, "{}", span.name);
    }
    assert_eq!(hex(&emit.parent_span_id), CALLER_SPAN);
    assert_eq!(render.parent_span_id, emit.span_id);
    assert_eq!(attempt.parent_span_id, emit.span_id);
    // The receiver's traceparent names the attempt span.
    assert_eq!(sent.0, TRACE_ID);
    assert_eq!(sent.1, hex(&attempt.span_id));
    assert_eq!(attribute(&emit, "event_id").as_ref(), Some(event_id));
    assert_eq!(attribute(&emit, "delivery_ids").as_ref(), Some(delivery_id));
    assert_eq!(attribute(&render, "event_id").as_ref(), Some(event_id));
    assert_eq!(attribute(&render, "webhook_ids"), Some(hook.id.clone()));
    assert_eq!(attribute(&attempt, "event_id").as_ref(), Some(event_id));
    assert_eq!(attribute(&attempt, "webhook_id"), Some(hook.id.clone()));
    assert_eq!(
        attribute(&attempt, "delivery_id").as_ref(),
        Some(delivery_id)
    );
    assert_eq!(attribute(&attempt, "status_code").as_deref(), Some("200"));
}

#[test]
fn a_bad_otlp_endpoint_is_refused_naming_the_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_webhookd"))
        .args(["serve", "--otlp-endpoint", "collector:4318"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--otlp-endpoint"), "{stderr}");
}
