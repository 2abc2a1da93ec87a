//! The pooled HTTP client that sends one delivery attempt.
//!
//! One [`HttpClient`] is shared by all delivery workers: a hyper-util legacy client (keep-alive
//! pool, HTTP/1.1 and HTTP/2 via ALPN) over rustls (ring, webpki roots) and the
//! [`EgressConnector`]: directly through an `HttpConnector` whose DNS resolver is the SSRF
//! guard, or through the egress proxy for an address the same guard checked. Literal IP hosts
//! are checked against the same [`TargetPolicy`] before sending. Redirects are never followed,
//! one timeout covers the whole exchange, and at most [`RESPONSE_BODY_LIMIT`] bytes of the
//! response body are read. A webhook with its own TLS settings (mTLS client certificate,
//! private CAs) gets a pool of its own, kept by the settings' digest (at most
//! [`TLS_POOLS_MAX`]), through the same egress. Depends on `delivery::ssrf`, `delivery::tls`
//! and `delivery::egress`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body;
use hyper::header::{HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::egress::{EgressConnector, EgressProxy, ProxyFailure};
use super::ssrf::{RefusedTarget, TargetPolicy};
use super::tls::TlsSettings;

/// Response bodies are kept up to this many bytes (cut at a UTF-8 character boundary).
pub const RESPONSE_BODY_LIMIT: usize = 20 * 1024;

/// Idle keep-alive connections kept per host: enough for many concurrent deliveries to one
/// receiver without reconnecting.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One attempt to send: the rendered request of a delivery.
#[derive(Clone)]
pub struct OutgoingRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
    /// The webhook's own TLS settings (default: none).
    pub tls: TlsSettings,
}

/// The receiver's answer to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Lossy UTF-8, truncated to [`RESPONSE_BODY_LIMIT`] bytes at a char boundary.
    pub body: String,
    /// From the `Retry-After` header (seconds or an HTTP date; a past date is zero).
    pub retry_after: Option<Duration>,
}

/// Why an attempt got no response. The `Display` text is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("timed out before the response was complete")]
    Timeout,
    #[error("connection error: {0}")]
    Connect(String),
    /// The egress proxy failed (unreachable, refused the CONNECT, SOCKS5 error); says
    /// nothing about the endpoint.
    #[error("egress proxy: {0}")]
    Proxy(String),
    /// The SSRF policy refused the target address.
    #[error("refused target: {0}")]
    Refused(String),
    /// A bad url, method or header.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("request failed: {0}")]
    Io(String),
}

type Connector = HttpsConnector<EgressConnector>;

/// Webhooks with their own TLS settings whose pools are kept; beyond it, one is dropped.
const TLS_POOLS_MAX: usize = 64;

type Pooled = Client<Connector, Full<Bytes>>;

/// The shared, pooled delivery client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Pooled,
    /// One pool per set of webhook TLS settings (mTLS), by their digest.
    tls_pools: Arc<Mutex<HashMap<[u8; 32], Pooled>>>,
    policy: Arc<TargetPolicy>,
    proxy: Option<EgressProxy>,
    timeout: Duration,
}

/// A pooled client over the guarded connector (through `proxy` when there is one), with
/// `tls` or the default roots.
fn pooled(
    policy: &Arc<TargetPolicy>,
    proxy: &Option<EgressProxy>,
    tls: Option<rustls::ClientConfig>,
) -> Pooled {
    let connector = EgressConnector::new(Arc::clone(policy), proxy.clone());
    let builder = match tls {
        Some(config) => HttpsConnectorBuilder::new().with_tls_config(config),
        None => HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("the ring provider supports rustls' default protocol versions"),
    };
    let https = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(https)
}

impl HttpClient {
    /// A client refusing the targets `policy` refuses, with `timeout` per attempt.
    pub fn new(policy: Arc<TargetPolicy>, timeout: Duration) -> HttpClient {
        HttpClient::with_proxy(policy, timeout, None)
    }

    /// Like [`HttpClient::new`], connecting through `proxy` when there is one.
    pub fn with_proxy(
        policy: Arc<TargetPolicy>,
        timeout: Duration,
        proxy: Option<EgressProxy>,
    ) -> HttpClient {
        HttpClient {
            inner: pooled(&policy, &proxy, None),
            tls_pools: Arc::default(),
            policy,
            proxy,
            timeout,
        }
    }

    /// The pool for a request's TLS settings: the shared one (borrowed), or the settings' own.
    fn pool_for(&self, tls: &TlsSettings) -> Result<Cow<'_, Pooled>, AttemptError> {
        if !tls.is_custom() {
            return Ok(Cow::Borrowed(&self.inner));
        }
        let digest = tls.digest();
        let mut pools = self.tls_pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(&digest) {
            return Ok(Cow::Owned(pool.clone()));
        }
        let config = tls.client_config().map_err(|problems| {
            let described: Vec<String> = problems
                .into_iter()
                .map(|p| format!("{} {}", p.field, p.message))
                .collect();
            AttemptError::InvalidRequest(format!("TLS settings: {}", described.join("; ")))
        })?;
        if pools.len() >= TLS_POOLS_MAX
            && let Some(evicted) = pools.keys().next().copied()
        {
            pools.remove(&evicted);
        }
        let pool = pooled(&self.policy, &self.proxy, Some(config));
        pools.insert(digest, pool.clone());
        Ok(Cow::Owned(pool))
    }

    /// Sends one attempt: never follows redirects (a 3xx is just a response), applies the per-attempt timeout to the whole exchange (connect + response + body read), reads at most RESPONSE_BODY_LIMIT of the body (discard the rest, don't buffer unbounded).
    ///
    /// When the body is longer than the limit, the rest is not read and the connection is
    /// closed instead of being returned to the pool.
    pub async fn send(&self, request: OutgoingRequest) -> Result<AttemptResponse, AttemptError> {
        let pool = self.pool_for(&request.tls)?;
        let request = self.build(request)?;
        tokio::time::timeout(self.timeout, self.exchange(&pool, request))
            .await
            .unwrap_or(Err(AttemptError::Timeout))
    }

    fn build(&self, request: OutgoingRequest) -> Result<Request<Full<Bytes>>, AttemptError> {
        let invalid = AttemptError::InvalidRequest;
        // The url and the header values become the request's own without a copy.
        let uri =
            Uri::try_from(request.url).map_err(|error| invalid(format!("invalid url: {error}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "unsupported url scheme \"{other}\" (use http or https)"
                )));
            }
            None => return Err(invalid("url must start with http:// or https://".into())),
        }
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| invalid("url has no host".into()))?;
        let literal = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.policy.check(ip).map_err(AttemptError::Refused)?;
        }
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| invalid(format!("invalid http method {:?}", request.method)))?;
        let mut built = Request::new(Full::new(request.body.unwrap_or_default()));
        *built.method_mut() = method;
        *built.uri_mut() = uri;
        let headers = built.headers_mut();
        for (name, value) in request.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
            // The value may be a credential: never echo it.
            let value = HeaderValue::try_from(value)
                .map_err(|_| invalid(format!("invalid value for header {name:?}")))?;
            headers.append(header, value);
        }
        Ok(built)
    }

    async fn exchange(
        &self,
        pool: &Pooled,
        request: Request<Full<Bytes>>,
    ) -> Result<AttemptResponse, AttemptError> {
        let response = pool
            .request(request)
            .await
            .map_err(|error| request_error(&error))?;
        let (parts, body) = response.into_parts();
        let retry_after = parts
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let body = read_limited(body, RESPONSE_BODY_LIMIT)
            .await
            .map_err(|error| {
                let error: &(dyn std::error::Error + 'static) = &error;
                AttemptError::Io(format!("reading the response body: {}", describe(error)))
            })?;
        Ok(AttemptResponse {
            status: parts.status.as_u16(),
            headers,
            body,
            retry_after,
        })
    }
}

/// Maps a client error: an SSRF refusal from the resolver, a failure of the egress proxy,
/// else connect or other failure.
fn request_error(error: &hyper_util::client::legacy::Error) -> AttemptError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = source {
        if let Some(ProxyFailure(reason)) = current.downcast_ref::<ProxyFailure>() {
            return AttemptError::Proxy(reason.clone());
        }
        let refused = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<RefusedTarget>());
        if let Some(RefusedTarget(reason)) = refused {
            return AttemptError::Refused(reason.clone());
        }
        source = current.source();
    }
    let detail = match error.source() {
        Some(source) => describe(source),
        None => error.to_string(),
    };
    if error.is_connect() {
        AttemptError::Connect(detail)
    } else {
        AttemptError::Io(detail)
    }
}

/// "outer: inner: innermost", skipping a message that merely repeats the previous one.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        let message = current.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = current.source();
    }
    text
}

/// Reads at most `limit` bytes of `body` as lossy UTF-8, cut at a character boundary.
/// Stops reading (and drops the body) as soon as the limit is passed.
async fn read_limited<B>(mut body: B, limit: usize) -> Result<String, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut raw = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let room = limit - raw.len();
        if data.len() > room {
            raw.extend_from_slice(&data[..room]);
            truncated = true;
            break;
        }
        raw.extend_from_slice(&data);
    }
    if truncated {
        let cut = raw.len() - incomplete_tail(&raw);
        raw.truncate(cut);
    }
    let mut text = String::from_utf8_lossy(&raw).into_owned();
    // Replacement characters can make the text longer than the raw bytes.
    if text.len() > limit {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(text)
}

/// Length of an incomplete UTF-8 sequence at the end of `raw` (0 when there is none).
fn incomplete_tail(raw: &[u8]) -> usize {
    for back in 1..=raw.len().min(3) {
        let byte = raw[raw.len() - back];
        if byte & 0xC0 != 0x80 {
            let needed = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if needed > back { back } else { 0 };
        }
    }
    0
}

/// `Retry-After` (RFC 9110 §10.2.3): delay seconds or an HTTP date (IMF-fixdate, or the
/// obsolete RFC 850 and asctime forms recipients must accept), relative to `now`.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::{any, get};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn policy(allow_private: bool) -> Arc<TargetPolicy> {
        Arc::new(TargetPolicy {
            allow_private,
            allow_cidrs: Vec::new(),
        })
    }

    fn request(method: &str, url: String) -> OutgoingRequest {
        OutgoingRequest {
            method: method.into(),
            url,
            headers: Vec::new(),
            body: None,
            tls: TlsSettings::default(),
        }
    }

    /// The test receiver: counts the requests that reach it.
    async fn serve() -> (SocketAddr, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = Router::new()
            .route(
                "/echo",
                any(|headers: HeaderMap, body: Bytes| async move {
                    let tag = headers
                        .get("x-tag")
                        .map(|value| value.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    ([("x-echo-tag", tag)], body)
                }),
            )
            .route(
                "/big",
                get(|| async { format!("a{}", "é".repeat(RESPONSE_BODY_LIMIT * 50)) }),
            )
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/echo")]) }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route(
                "/busy",
                get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "120")],
                    )
                }),
            )
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(req)
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, hits)
    }

    fn header<'a>(response: &'a AttemptResponse, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    #[tokio::test]
    async fn sends_method_headers_and_body() {
        let (addr, _) = serve().await;
        let client = HttpClient::new(policy(true), TIMEOUT);
        let mut outgoing = request("PUT", format!("http://{addr}/echo"));
        outgoing.headers.push(("X-Tag".into(), "42".into()));
        outgoing.body = Some(Bytes::from_static(b"{\"hello\":\"world\"}"));
        let response = client.send(outgoing.clone()).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "{\"hello\":\"world\"}");
        assert_eq!(header(&response, "x-echo-tag"), Some("42"));
        assert_eq!(response.retry_after, None);
        // Pooled: a second request on the same client works too.
        assert_eq!(client.send(outgoing).await.unwrap().status, 200);
    }

    #[tokio::test]
    async fn truncates_the_body_at_a_char_boundary() {
        let (addr, _) = serve().await;
        let client = HttpClient::new(policy(true), TIMEOUT);
        let response = client
            .send(request("GET", format!("http://{addr}/big")))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        // "a" + 2-byte chars: the limit falls inside a character, which is dropped.
        assert_eq!(response.body.len(), RESPONSE_BODY_LIMIT - 1);
        assert!(response.body.starts_with("aé"));
        assert!(response.body.ends_with('é'));
        assert!(!response.body.contains('\u{FFFD}'));
    }

    #[tokio::test]
    async fn does_not_follow_redirects() {
        let (addr, hits) = serve().await;
        let client = HttpClient::new(policy(true), TIMEOUT);
        let response = client
            .send(request("GET", format!("http://{addr}/redirect")))
            .await
            .unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(header(&response, "location"), Some("/echo"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn times_out() {
        let (addr, _) = serve().await;
        let client = HttpClient::new(policy(true), Duration::from_millis(200));
        let started = std::time::Instant::now();
        let error = client
            .send(request("GET", format!("http://{addr}/slow")))
            .await
            .unwrap_err();
        assert_eq!(error, AttemptError::Timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn connection_refused_on_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = HttpClient::new(policy(true), TIMEOUT);
        let error = client
            .send(request("POST", format!("http://{addr}/")))
            .await
            .unwrap_err();
        let AttemptError::Connect(detail) = &error else {
            panic!("expected a connect error, got {error:?}");
        };
        assert!(detail.to_lowercase().contains("refused"), "{detail}");
        assert!(error.to_string().starts_with("connection error: "));
    }

    #[tokio::test]
    async fn refuses_private_targets() {
        let (addr, hits) = serve().await;
        let client = HttpClient::new(policy(false), TIMEOUT);
        let port = addr.port();
        for url in [
            format!("http://127.0.0.1:{port}/echo"),
            format!("http://[::1]:{port}/echo"),
            format!("http://[::ffff:127.0.0.1]:{port}/echo"),
            format!("http://localhost:{port}/echo"),
        ] {
            let error = client.send(request("POST", url.clone())).await.unwrap_err();
            let AttemptError::Refused(reason) = &error else {
                panic!("{url}: expected a refusal, got {error:?}");
            };
            assert!(reason.contains("is loopback"), "{url}: {reason}");
            assert!(
                reason.contains("--allow-private-targets"),
                "{url}: {reason}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with("refused target: target address ")
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn resolves_localhost_when_private_targets_are_allowed() {
        let (addr, hits) = serve().await;
        let client = HttpClient::new(policy(true), TIMEOUT);
        let url = format!("http://localhost:{}/echo", addr.port());
        // localhost may resolve to ::1 first, where nothing listens; the connector then
        // falls back to 127.0.0.1.
        let response = client.send(request("POST", url)).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn reads_retry_after() {
        let (addr, _) = serve().await;
        let client = HttpClient::new(policy(true), TIMEOUT);
        let response = client
            .send(request("GET", format!("http://{addr}/busy")))
            .await
            .unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.retry_after, Some(Duration::from_secs(120)));
    }

    #[tokio::test]
    async fn rejects_invalid_requests() {
        let client = HttpClient::new(policy(true), TIMEOUT);
        let cases = [
            (
                "POST",
                "ftp://example.com/x",
                "unsupported url scheme \"ftp\"",
            ),
            ("POST", "/relative", "must start with http:// or https://"),
            ("POST", "http://exa mple.com/", "invalid url"),
            ("BAD METHOD", "http://example.com/", "invalid http method"),
        ];
        for (method, url, expected) in cases {
            let error = client.send(request(method, url.into())).await.unwrap_err();
            let AttemptError::InvalidRequest(message) = &error else {
                panic!("{url}: expected InvalidRequest, got {error:?}");
            };
            assert!(message.contains(expected), "{url}: {message}");
        }
        let mut bad_header = request("POST", "http://example.com/".into());
        bad_header.headers.push(("Bad Name".into(), "x".into()));
        assert!(matches!(
            client.send(bad_header).await,
            Err(AttemptError::InvalidRequest(message)) if message.contains("header name")
        ));
        let mut bad_value = request("POST", "http://example.com/".into());
        bad_value
            .headers
            .push(("Authorization".into(), "secret\nvalue".into()));
        let Err(AttemptError::InvalidRequest(message)) = client.send(bad_value).await else {
            panic!("expected InvalidRequest");
        };
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn parses_retry_after_values() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:07 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 01 Mar 1995 00:00:00 GMT", now),
            Some(Duration::from_secs(794_016_000 - 784_111_777))
        );
        for bad in [
            "-5",
            "soon",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_takes_every_http_date_form() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        for form in [
            "Sun, 06 Nov 1994 08:50:37 GMT",
            "Sunday, 06-Nov-94 08:50:37 GMT",
            "Sun Nov  6 08:50:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(form, now),
                Some(Duration::from_secs(60)),
                "{form}"
            );
        }
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2000 12:00:00 GMT", UNIX_EPOCH),
            Some(Duration::from_secs(951_825_600))
        );
    }

    #[tokio::test]
    async fn limited_read_of_small_and_invalid_bodies() {
        let small = read_limited(Full::new(Bytes::from_static(b"ok")), 10)
            .await
            .unwrap();
        assert_eq!(small, "ok");
        let exact = read_limited(Full::new(Bytes::from_static(b"0123456789")), 10)
            .await
            .unwrap();
        assert_eq!(exact, "0123456789");
        let invalid = read_limited(Full::new(Bytes::from_static(b"a\xffb")), 10)
            .await
            .unwrap();
        assert_eq!(invalid, "a\u{FFFD}b");
        // Invalid bytes expand to 3-byte replacement characters; still within the limit.
        let expanded = read_limited(Full::new(Bytes::from_static(&[0xff; 8])), 10)
            .await
            .unwrap();
        assert!(expanded.len() <= 10 && expanded.chars().all(|c| c == '\u{FFFD}'));
        // A 4-byte character cut after 2 bytes is dropped, not replaced.
        let cut = read_limited(Full::new(Bytes::from("ab😀")), 4)
            .await
            .unwrap();
        assert_eq!(cut, "ab");
    }
}
