//! Test support: a real webhookd (in-process, or the built binary as a child process) on
//! ephemeral ports with its own temp data dir, a real HTTP receiver on 127.0.0.1 that
//! records what it gets and answers with a status the test controls, and small clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;
use webhookd::Config;
use webhookd::faults::Faults;
use webhookd::grpc::pb;
use webhookd::grpc::pb::admin_service_client::AdminServiceClient;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The settings of a test server on `dir`: private targets allowed, a millisecond retry
/// schedule, no jitter.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir);
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.allow_private_targets = true;
    config.retry_schedule = vec![
        Duration::from_millis(10),
        Duration::from_millis(20),
        Duration::from_millis(50),
    ];
    config.retry_jitter = false;
    config.request_timeout = Duration::from_secs(2);
    config.render_worker = env!("CARGO_BIN_EXE_webhookd").into();
    config
}

/// Where a test server keeps its state: its own temp data directory, and its own fresh
/// PostgreSQL database when WEBHOOKD_TEST_POSTGRES_URL names a server (scripts/with-postgres
/// sets it), so the whole suite runs on either backend.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub postgres_url: Option<String>,
}

impl TestStore {
    pub async fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let postgres_url = match std::env::var("WEBHOOKD_TEST_POSTGRES_URL") {
            Ok(admin) => Some(fresh_database(&admin).await),
            Err(_) => None,
        };
        TestStore { dir, postgres_url }
    }

    /// The test settings (`test_config`) of a server on this store.
    pub fn config(&self) -> Config {
        let mut config = test_config(self.dir.path());
        if let Some(url) = &self.postgres_url {
            config.store = webhookd::config::StoreBackend::Postgres(url.clone());
        }
        config
    }

    /// The `--store` value that opens this store.
    pub fn flag(&self) -> String {
        self.postgres_url.clone().unwrap_or_else(|| "sled".into())
    }

    /// Everything stored, as (where, bytes): every file of the data directory, and on
    /// PostgreSQL every row of every table as text.
    pub async fn contents(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
                }
            }
        }
        if let Some(url) = &self.postgres_url {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert!(!tables.is_empty(), "no tables in {url}");
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                out.push((format!("table {table}"), rows.join("\n").into_bytes()));
            }
        }
        out
    }
}

/// A new database on the PostgreSQL server of `admin_url`; returns its URL.
async fn fresh_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("t_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A webhookd running inside the test process.
pub struct TestServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Faults to inject into the server's delivery attempts.
    pub faults: Faults,
    shutdown: CancellationToken,
    /// The server's task, until `restart_with` waits for it to end.
    running: Option<tokio::task::JoinHandle<webhookd::error::Result<()>>>,
    store: TestStore,
}

impl TestServer {
    /// A server with private targets allowed, a millisecond retry schedule and no jitter.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_on(TestStore::new().await, adjust).await
    }

    /// `n` servers on one fresh PostgreSQL database, with the same admin token and secret
    /// key (as an operator runs several instances); None without a PostgreSQL server.
    pub async fn cluster(n: usize) -> Option<Vec<TestServer>> {
        Self::cluster_with(n, |_| {}).await
    }

    /// `cluster`, each server's settings adjusted by `adjust`.
    pub async fn cluster_with(n: usize, adjust: impl Fn(&mut Config)) -> Option<Vec<TestServer>> {
        let first = TestStore::new().await;
        let url = first.postgres_url.clone()?;
        let first = Self::start_on(first, &adjust).await;
        // The first has created the schema and its key file; the others share both.
        first.writer("setup").await;
        let key_file = first.data_dir().join("secret.key");
        let mut servers = vec![first];
        for _ in 1..n {
            let store = TestStore {
                dir: tempfile::tempdir().unwrap(),
                postgres_url: Some(url.clone()),
            };
            let key_file = key_file.clone();
            let adjusted = |c: &mut Config| {
                adjust(c);
                c.secret_key_file = Some(key_file);
            };
            servers.push(Self::start_on(store, adjusted).await);
        }
        Some(servers)
    }

    async fn start_on(store: TestStore, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = store.config();
        adjust(&mut config);
        let faults = config.faults.clone();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(webhookd::run(config, grpc, http, shutdown.clone()));
        TestServer {
            grpc_addr,
            http_addr,
            faults,
            shutdown,
            running: Some(running),
            store,
        }
    }

    /// Shuts the server down, waits until it has ended, and starts it again on the same
    /// store with its settings adjusted by `adjust` (as an operator restarts webhookd with
    /// other settings). The new server has new ports.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
        let stopped = TestStore {
            dir: tempfile::tempdir().unwrap(),
            postgres_url: None,
        };
        let store = std::mem::replace(&mut self.store, stopped);
        Self::start_on(store, adjust).await
    }

    /// A token of `account` with `scopes`, made through the admin REST API.
    pub async fn token(&self, account: &str, scopes: &[&str]) -> String {
        let (status, body) = http_json(
            Method::POST,
            &format!("http://{}/admin/v1/tokens", self.http_addr),
            Some(&format!("Bearer {ADMIN_TOKEN}")),
            Some(serde_json::json!({"account_id": account, "scopes": scopes})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.store.dir.path()
    }

    /// Where the server keeps its state.
    pub fn store(&self) -> &TestStore {
        &self.store
    }

    /// A read+write token of account "acme" from a server at `http_addr` (e.g. a child process).
    pub async fn token_via(http_addr: SocketAddr) -> String {
        let (status, body) = http_json(
            Method::POST,
            &format!("http://{http_addr}/admin/v1/tokens"),
            Some(&format!("Bearer {ADMIN_TOKEN}")),
            Some(serde_json::json!({"account_id": "acme", "scopes": ["webhooks:read", "webhooks:write"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// A read+write token of `account`.
    pub async fn writer(&self, account: &str) -> String {
        self.token(account, &["webhooks:read", "webhooks:write"])
            .await
    }

    pub async fn webhooks(&self) -> WebhookServiceClient<Channel> {
        connect_webhooks(self.grpc_addr).await
    }

    /// What `GET /healthz` answers: its status and JSON body.
    pub async fn healthz(&self) -> (StatusCode, Value) {
        http_json(
            Method::GET,
            &format!("http://{}/healthz", self.http_addr),
            None,
            None,
        )
        .await
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        let channel = channel(self.grpc_addr).await;
        AdminServiceClient::new(channel)
    }

    /// A client of the server reflection service (v1), as grpcurl uses it.
    pub async fn reflection(
        &self,
    ) -> tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient<Channel> {
        let channel = channel(self.grpc_addr).await;
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn channel(addr: SocketAddr) -> Channel {
    let endpoint = format!("http://{addr}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Channel::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => return channel,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("cannot connect to {addr}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

pub async fn connect_webhooks(addr: SocketAddr) -> WebhookServiceClient<Channel> {
    WebhookServiceClient::new(channel(addr).await)
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A minimal valid webhook delivering to `url` on "alert group created".
pub fn webhook(name: &str, url: &str) -> pb::Webhook {
    pb::Webhook {
        name: name.into(),
        url: url.into(),
        trigger_type: "alert group created".into(),
        ..Default::default()
    }
}

/// Creates a webhook, panicking on error.
pub async fn create(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    webhook: pb::Webhook,
) -> pb::Webhook {
    client
        .create_webhook(authed(
            token,
            pb::CreateWebhookRequest {
                webhook: Some(webhook),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The first 100 logged attempts of a webhook, newest first.
pub async fn responses(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    id: &str,
) -> Vec<pb::WebhookResponse> {
    client
        .list_responses(authed(
            token,
            pb::ListResponsesRequest {
                webhook_id: id.into(),
                page_size: 100,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .responses
}

/// A JSON object as a protobuf Struct.
pub fn to_struct(value: Value) -> prost_types::Struct {
    let Value::Object(map) = value else {
        panic!("not an object")
    };
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(value: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_value).collect(),
        }),
        Value::Object(_) => Kind::StructValue(to_struct(value)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Emits an event of `event_type` with `data` (no keys) over gRPC; returns its open status
/// stream, whose first message is ACCEPTED.
pub async fn emit_stream(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    event_type: &str,
    data: Option<prost_types::Struct>,
) -> tonic::Streaming<pb::DeliveryStatus> {
    let request = pb::EmitEventRequest {
        event_type: event_type.into(),
        data,
        ..Default::default()
    };
    client
        .emit_event(authed(token, request))
        .await
        .unwrap()
        .into_inner()
}

/// Emits an event and collects the whole status stream after its first message, which is
/// checked to be ACCEPTED with the event id and the count of the deliveries that follow.
pub async fn emit_all(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    event_type: &str,
    data: Value,
) -> Vec<pb::DeliveryStatus> {
    let mut stream = emit_stream(client, token, event_type, Some(to_struct(data))).await;
    let mut statuses = Vec::new();
    let deadline = Duration::from_secs(20);
    while let Some(status) = tokio::time::timeout(deadline, stream.message())
        .await
        .expect("stream stalled")
        .unwrap()
    {
        statuses.push(status);
    }
    let accepted = statuses.remove(0);
    assert_eq!(
        states(std::slice::from_ref(&accepted)),
        ["ACCEPTED"],
        "{accepted:?}"
    );
    assert!(!accepted.event_id.is_empty());
    // The initial messages (QUEUED or SKIPPED) report attempt 0; attempts count from 1.
    let initial = statuses.iter().filter(|s| s.attempt == 0).count();
    assert_eq!(
        accepted.matched_deliveries as usize, initial,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| s.event_id == accepted.event_id));
    statuses
}

/// Emits alert group `alert_id` ("alert group created") over gRPC with `ordering_key` (none
/// when empty); returns the event's status stream once it is acknowledged (ACCEPTED).
pub async fn emit_acknowledged(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    alert_id: &str,
    ordering_key: &str,
) -> tonic::Streaming<pb::DeliveryStatus> {
    let request = pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(
            serde_json::json!({"alert_group": {"id": alert_id}}),
        )),
        ordering_key: ordering_key.into(),
        ..Default::default()
    };
    let mut stream = client
        .emit_event(authed(token, request))
        .await
        .unwrap()
        .into_inner();
    let accepted = stream.message().await.unwrap().unwrap();
    assert_eq!(states(std::slice::from_ref(&accepted)), ["ACCEPTED"]);
    stream
}

/// Like [`emit_acknowledged`]; returns the id of the event's first delivery once it is durable.
pub async fn emit_keyed(
    client: &mut WebhookServiceClient<Channel>,
    token: &str,
    alert_id: &str,
    ordering_key: &str,
) -> String {
    let mut stream = emit_acknowledged(client, token, alert_id, ordering_key).await;
    let queued = stream.message().await.unwrap().unwrap();
    queued.delivery_id
}

/// Whether an answer is a busy store's: UNAVAILABLE with ErrorInfo STORE_BUSY.
pub fn is_store_busy(status: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    status.code() == tonic::Code::Unavailable
        && status
            .get_error_details()
            .error_info()
            .is_some_and(|i| i.reason == "STORE_BUSY")
}

/// When to retry a call the store was too busy for: the RetryInfo delay of a STORE_BUSY
/// answer. Any other error fails the test.
pub fn busy_retry_delay(status: &tonic::Status) -> Duration {
    use tonic_types::StatusExt;
    match status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
    {
        Some(delay) if is_store_busy(status) => delay,
        _ => panic!("not a busy store's answer: {status:?}"),
    }
}

/// The fields named by the `google.rpc.BadRequest` details of an error.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    details
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The state names of a status sequence, e.g. ["QUEUED", "SUCCEEDED"].
pub fn states(statuses: &[pb::DeliveryStatus]) -> Vec<&'static str> {
    statuses
        .iter()
        .map(|s| match pb::DeliveryState::try_from(s.state).unwrap() {
            pb::DeliveryState::Queued => "QUEUED",
            pb::DeliveryState::Retrying => "RETRYING",
            pb::DeliveryState::Succeeded => "SUCCEEDED",
            pb::DeliveryState::Failed => "FAILED",
            pb::DeliveryState::Skipped => "SKIPPED",
            pb::DeliveryState::Cancelled => "CANCELLED",
            pb::DeliveryState::Accepted => "ACCEPTED",
            pb::DeliveryState::Resync => "RESYNC",
            pb::DeliveryState::Unspecified => "UNSPECIFIED",
        })
        .collect()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A real HTTP receiver on 127.0.0.1.
pub struct Receiver {
    pub addr: SocketAddr,
    requests: Mutex<mpsc::UnboundedReceiver<Received>>,
    status: Arc<AtomicU16>,
    /// Answer this many requests with 500 before the configured status.
    failures_left: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    /// Seconds of the `Retry-After` header on every answer; 0 = none.
    retry_after_s: Arc<AtomicU64>,
    body: Arc<std::sync::Mutex<String>>,
    /// Requests being answered now, and the most there ever were at once.
    concurrency: Arc<Concurrency>,
}

/// Requests a receiver is answering at once.
#[derive(Default)]
struct Concurrency {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Concurrency {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    pub async fn serve(listener: TcpListener) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let (sender, requests) = mpsc::unbounded_channel();
        let status = Arc::new(AtomicU16::new(200));
        let failures_left = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let retry_after_s = Arc::new(AtomicU64::new(0));
        let body = Arc::new(std::sync::Mutex::new("{\"ok\": true}".to_string()));
        let concurrency = Arc::new(Concurrency::default());
        let (s, f, d, r, b, c) = (
            status.clone(),
            failures_left.clone(),
            delay_ms.clone(),
            retry_after_s.clone(),
            body.clone(),
            concurrency.clone(),
        );
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (sender, s, f, d, r, b, c) = (
                    sender.clone(),
                    s.clone(),
                    f.clone(),
                    d.clone(),
                    r.clone(),
                    b.clone(),
                    c.clone(),
                );
                async move {
                    c.enter();
                    let _ = sender.send(Received {
                        method,
                        path: uri.path().to_string(),
                        headers,
                        body,
                    });
                    let delay = d.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let failing = f
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let code = if failing {
                        500
                    } else {
                        s.load(Ordering::SeqCst)
                    };
                    let answer = b.lock().unwrap().clone();
                    let mut headers = HeaderMap::new();
                    let retry_after = r.load(Ordering::SeqCst);
                    if retry_after > 0 {
                        headers.insert("retry-after", retry_after.into());
                    }
                    c.leave();
                    (StatusCode::from_u16(code).unwrap(), headers, answer)
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            addr,
            requests: Mutex::new(requests),
            status,
            failures_left,
            delay_ms,
            retry_after_s,
            body,
            concurrency,
        }
    }

    /// The most requests it was answering at once so far.
    pub fn peak_concurrency(&self) -> u64 {
        self.concurrency.peak.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Answers this body from now on.
    pub fn answer_body(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    pub fn fail_next(&self, n: u64) {
        self.failures_left.store(n, Ordering::SeqCst);
    }

    pub fn delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answers from now on carry `Retry-After: <seconds>`.
    pub fn retry_after(&self, seconds: u64) {
        self.retry_after_s.store(seconds, Ordering::SeqCst);
    }

    /// The next request, waiting up to 10 s.
    pub async fn next(&self) -> Received {
        let mut requests = self.requests.lock().await;
        tokio::time::timeout(Duration::from_secs(10), requests.recv())
            .await
            .expect("no request reached the receiver")
            .unwrap()
    }

    /// Every request that has arrived and was not taken yet.
    pub async fn take_arrived(&self) -> Vec<Received> {
        let mut requests = self.requests.lock().await;
        std::iter::from_fn(|| requests.try_recv().ok()).collect()
    }

    /// Asserts that nothing arrives within a short grace period.
    pub async fn assert_quiet(&self) {
        let mut requests = self.requests.lock().await;
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(300), requests.recv()).await
        {
            panic!("unexpected request: {} {}", r.method, r.path);
        }
    }
}

/// Sends a JSON request and returns the status and the JSON body (Null when empty).
pub async fn http_json(
    method: Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let raw = body.map(|b| b.to_string());
    let (status, _, text) = http_raw(method, url, authorization, raw.as_deref(), &[]).await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Sends a request with a raw body and extra headers; returns status, headers, body text.
pub async fn http_raw(
    method: Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = axum::http::Request::builder().method(method).uri(url);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let content_type_given = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if body.is_some() && !content_type_given {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).to_string())
}

/// The sum of the samples of metric `name` (all label sets) in a Prometheus text scrape.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The server's /metrics text.
pub async fn scrape(server: &TestServer) -> String {
    let (status, _, text) = http_raw(
        Method::GET,
        &format!("http://{}/metrics", server.http_addr),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    text
}

/// Polls `check` until it returns Some, for up to 10 s.
pub async fn eventually<T, F, Fut>(check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(Duration::from_secs(10), check).await
}

/// Polls `check` until it returns Some, for up to `limit` (for what takes longer when the
/// whole suite shares the machine).
pub async fn eventually_within<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
