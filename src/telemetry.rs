//! Distributed tracing: W3C trace context through webhookd, and OTLP export of its spans.
//!
//! Every emit continues the caller's `traceparent` (gRPC metadata or REST header; an invalid
//! one starts a new trace, as W3C Trace Context says) and every delivery request carries a
//! `traceparent` of the same trace with a span id of its own, whether or not spans are
//! exported. The emit's trace context is stored with each delivery's request, so a retry after
//! a restart continues the same trace.
//!
//! The spans `emit`, `render` and `attempt` are `tracing` spans at DEBUG level, carrying the
//! API ids of the event, webhooks and delivery. Only with `--otlp-endpoint` does a layer
//! (tracing-opentelemetry over the OpenTelemetry SDK's batch processor and the OTLP
//! HTTP/protobuf exporter) see them; without it they are disabled at their call sites (the
//! default log filter is INFO), and no OpenTelemetry context is built: tracing then costs
//! reading the stored `traceparent` (by hand, without allocating) and formatting one header
//! with a random span id per attempt.
//! The exporter posts with webhookd's own hyper client on the service's runtime.
//! Depends on `ids` only.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, SdkTracerProvider};
use tokio::runtime::Handle;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::ids::{self, Kind};

/// The W3C Trace Context header (and gRPC metadata key).
pub const TRACEPARENT: &str = "traceparent";

/// The path OTLP/HTTP receivers take traces on.
const TRACES_PATH: &str = "/v1/traces";

/// One export request, response included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest collector response read.
const EXPORT_RESPONSE_LIMIT: usize = 64 * 1024;

/// The caller's span context from a `traceparent` value; None when absent or invalid.
///
/// W3C Trace Context level 1, read by hand (no allocation): `version-traceid-parentid-flags`
/// in lowercase hex; version `ff` is invalid, version `00` has exactly these four parts and a
/// later version may append more after a `-`; the trace and parent ids must not be all zeros.
pub fn remote_parent(traceparent: &str) -> Option<SpanContext> {
    let value = traceparent.trim().as_bytes();
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex_u8(&value[0..2])?;
    let extended = value.len() > 55;
    if version == 0xff || (version == 0 && extended) || (extended && value[55] != b'-') {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex_array::<16>(&value[3..35])?);
    let span_id = SpanId::from_bytes(hex_array::<8>(&value[36..52])?);
    let flags = TraceFlags::new(hex_u8(&value[53..55])?) & TraceFlags::SAMPLED;
    let context = SpanContext::new(trace_id, span_id, flags, true, TraceState::NONE);
    context.is_valid().then_some(context)
}

/// The value of one lowercase hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Two lowercase hex digits as a byte.
fn hex_u8(pair: &[u8]) -> Option<u8> {
    Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?)
}

/// `2 * N` lowercase hex digits as `N` bytes.
fn hex_array<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = hex_u8(pair)?;
    }
    Some(bytes)
}

/// `00-<trace id>-<span id>-<flags>`.
fn format_traceparent(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> String {
    format!("00-{trace_id}-{span_id}-{:02x}", flags.to_u8())
}

/// The exported span context of `span`, when a tracing layer exports it.
fn exported(span: &Span) -> Option<SpanContext> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Makes `span` a child of the remote `parent` (a no-op when nothing exports spans).
fn continue_remote(span: &Span, parent: &SpanContext) {
    // Fails only when no OpenTelemetry layer sees the span: then there is nothing to parent.
    let _ = span.set_parent(Context::new().with_remote_span_context(parent.clone()));
}

/// The trace of one emit: its span, and the trace context its deliveries continue.
pub struct EmitTrace {
    /// The `emit` span (record `event_id` and `delivery_ids` on it).
    pub span: Span,
    /// `traceparent` of the emit, stored with each delivery's request.
    pub traceparent: String,
}

impl EmitTrace {
    /// Starts the trace of an emit of `event_type`, continuing the caller's `traceparent`.
    pub fn start(event_type: &str, traceparent: Option<&str>) -> EmitTrace {
        let span = tracing::debug_span!(
            "emit",
            event_type,
            event_id = tracing::field::Empty,
            delivery_ids = tracing::field::Empty
        );
        let parent = traceparent.and_then(remote_parent);
        let traceparent = match (own_context(&span, parent.as_ref()), parent) {
            (Some(own), _) => format_traceparent(own.trace_id(), own.span_id(), own.trace_flags()),
            (None, Some(parent)) => {
                format_traceparent(parent.trace_id(), parent.span_id(), parent.trace_flags())
            }
            (None, None) => {
                let ids = RandomIdGenerator::default();
                format_traceparent(ids.new_trace_id(), ids.new_span_id(), TraceFlags::SAMPLED)
            }
        };
        EmitTrace { span, traceparent }
    }
}

/// The exported context of `span`, made a child of the remote `parent`; None (and no work
/// at all) when the span is disabled, as it is without an exporter.
fn own_context(span: &Span, parent: Option<&SpanContext>) -> Option<SpanContext> {
    if span.is_disabled() {
        return None;
    }
    if let Some(parent) = parent {
        continue_remote(span, parent);
    }
    exported(span)
}

/// The span of one delivery attempt, and the `traceparent` its request carries: the trace
/// of `parent` (the emit's stored context; a new trace without one), with the attempt's own
/// span id.
pub fn attempt(
    parent: Option<&str>,
    event_id: u64,
    webhook_id: u64,
    delivery_id: u64,
    attempt: u32,
) -> (Span, String) {
    // The ids are formatted only when the span is on.
    let span = tracing::debug_span!(
        "attempt",
        event_id = ids::format(Kind::Event, event_id).as_str(),
        webhook_id = ids::format(Kind::Webhook, webhook_id).as_str(),
        delivery_id = ids::format(Kind::Delivery, delivery_id).as_str(),
        attempt,
        status_code = tracing::field::Empty,
        outcome = tracing::field::Empty
    );
    let parent = parent.and_then(remote_parent);
    let ids = RandomIdGenerator::default();
    let traceparent = match (own_context(&span, parent.as_ref()), parent) {
        (Some(own), _) => format_traceparent(own.trace_id(), own.span_id(), own.trace_flags()),
        (None, Some(parent)) => {
            format_traceparent(parent.trace_id(), ids.new_span_id(), parent.trace_flags())
        }
        (None, None) => {
            format_traceparent(ids.new_trace_id(), ids.new_span_id(), TraceFlags::SAMPLED)
        }
    };
    (span, traceparent)
}

/// The OTLP/HTTP traces URL of an `--otlp-endpoint` value: `http(s)://host:port` gets
/// `/v1/traces` (as OTEL_EXPORTER_OTLP_ENDPOINT does); a URL with a path is used as given.
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected http://host:4318"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("expected an http:// or https:// URL, e.g. http://collector:4318".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if uri.query().is_some() {
        return Err("the URL takes no query".into());
    }
    let base = endpoint.trim_end_matches('/');
    Ok(match uri.path() {
        "" | "/" => format!("{base}{TRACES_PATH}"),
        _ => endpoint.to_string(),
    })
}

/// The span exporter: a tracing layer feeding the SDK, and the provider to shut down (which
/// flushes what is buffered) when the process ends.
pub struct Exporter<S> {
    pub layer: Box<dyn Layer<S> + Send + Sync>,
    pub provider: SdkTracerProvider,
}

/// Exports webhookd's spans to the OTLP/HTTP `traces_url` (see [`traces_url`]), posting on
/// `runtime`. Batching follows the SDK's `OTEL_BSP_*` environment variables.
pub fn exporter<S>(traces_url: &str, runtime: Handle) -> Result<Exporter<S>, String>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpClient::new(runtime))
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot export to {traces_url}: {e}"))?;
    let resource = Resource::builder()
        .with_service_name("webhookd")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("webhookd");
    // webhookd's own spans and events only: the exporter's (and hyper's) never loop back.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("webhookd", tracing::Level::DEBUG));
    Ok(Exporter {
        layer: Box::new(layer),
        provider,
    })
}

/// The exporter's HTTP client: hyper (rustls, webpki roots) driven on the service's runtime,
/// as the SDK's batch processor exports from a thread of its own.
#[derive(Clone)]
struct OtlpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: Handle,
}

impl OtlpClient {
    fn new(runtime: Handle) -> OtlpClient {
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("the ring provider supports rustls' default protocol versions")
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(https);
        OtlpClient { client, runtime }
    }
}

impl fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtlpClient")
    }
}

#[async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let request = request.map(Full::new);
        let exchange = async move {
            let response = client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, EXPORT_RESPONSE_LIMIT)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let bounded = async move {
            tokio::time::timeout(EXPORT_TIMEOUT, exchange)
                .await
                .map_err(|_| HttpError::from("the collector did not answer in time"))?
        };
        self.runtime.spawn(bounded).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_valid_traceparents_only() {
        let parent = remote_parent(PARENT).unwrap();
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.is_sampled());
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(remote_parent(bad).is_none(), "{bad:?}");
        }
    }

    /// The hand-written reader agrees with the OpenTelemetry SDK's propagator on every value
    /// W3C Trace Context defines (and is stricter only where the SDK accepts short ids).
    #[test]
    fn reads_traceparents_as_the_sdk_propagator_does() {
        use opentelemetry::propagation::TextMapPropagator as _;
        use opentelemetry_sdk::propagation::TraceContextPropagator;
        let sdk = |value: &str| {
            let carrier =
                std::collections::HashMap::from([(TRACEPARENT.to_string(), value.to_string())]);
            let context = TraceContextPropagator::new().extract(&carrier);
            let span_context = context.span().span_context().clone();
            span_context.is_valid().then_some(span_context)
        };
        for value in [
            PARENT,
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later-fields",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "",
        ] {
            assert_eq!(remote_parent(value), sdk(value), "{value:?}");
        }
    }

    #[test]
    fn without_an_exporter_an_attempt_continues_the_trace_with_its_own_span_id() {
        let emit = EmitTrace::start("alert group created", Some(PARENT));
        assert_eq!(emit.traceparent, PARENT);
        let (_, first) = attempt(Some(&emit.traceparent), 1, 2, 3, 1);
        let (_, second) = attempt(Some(&emit.traceparent), 1, 2, 3, 2);
        for header in [&first, &second] {
            let context = remote_parent(header).unwrap();
            assert_eq!(
                context.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(context.span_id().to_string(), "00f067aa0ba902b7");
        }
        assert_ne!(first, second);
    }

    #[test]
    fn a_missing_or_invalid_traceparent_starts_a_new_sampled_trace() {
        for given in [None, Some("nonsense")] {
            let emit = EmitTrace::start("t", given);
            let context = remote_parent(&emit.traceparent).unwrap();
            assert!(context.is_sampled());
            let (_, header) = attempt(Some(&emit.traceparent), 1, 2, 3, 1);
            assert_eq!(
                remote_parent(&header).unwrap().trace_id(),
                context.trace_id()
            );
        }
        let (_, orphan) = attempt(None, 1, 2, 3, 1);
        assert!(remote_parent(&orphan).is_some());
    }

    #[test]
    fn otlp_endpoints_get_the_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example.com/").unwrap(),
            "https://otel.example.com/v1/traces"
        );
        assert_eq!(
            traces_url("http://gw:8080/otlp/v1/traces").unwrap(),
            "http://gw:8080/otlp/v1/traces"
        );
        for bad in [
            "collector:4318",
            "grpc://collector:4317",
            "http://",
            "nonsense",
        ] {
            assert!(traces_url(bad).is_err(), "{bad}");
        }
    }
}
