//! The database lost while webhookd runs (the built binary on a private PostgreSQL cluster
//! of the test's own, which it stops and starts): emits answer 503 / UNAVAILABLE and are
//! never acknowledged without their commit, /healthz and grpc.health say NOT_SERVING,
//! delivery pauses and resumes by itself, every acknowledged event is delivered, and the
//! log says "lost" once and "back" once. The outage tests run when scripts/with-postgres
//! exports where the PostgreSQL binaries are (WEBHOOKD_TEST_PG_BINDIR); the health of a store
//! that answers is checked on either backend.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use webhookd::grpc::pb;

use crate::support::*;

/// A PostgreSQL cluster of this test only, on 127.0.0.1 with a password; stopped and
/// removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    owner: Option<String>,
    port: u16,
    password: String,
}

impl Cluster {
    /// A new running cluster; None without scripts/with-postgres.
    fn start() -> Option<Cluster> {
        let bindir = PathBuf::from(std::env::var("WEBHOOKD_TEST_PG_BINDIR").ok()?);
        let owner = std::env::var("WEBHOOKD_TEST_PG_OWNER")
            .ok()
            .filter(|o| !o.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let password = format!("{:032x}", rand::random::<u128>());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            dir,
            bindir,
            owner,
            port,
            password,
        };
        if let Some(owner) = &cluster.owner {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            let status = Command::new("chown")
                .arg(owner)
                .arg(cluster.dir.path())
                .arg(&pwfile)
                .status()
                .unwrap();
            assert!(status.success());
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data().to_str().unwrap(),
                "-U",
                "webhookd",
                &format!("--pwfile={}", pwfile.display()),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        cluster.start_again();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a PostgreSQL program as the cluster's owner; panics with its output on failure.
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bindir.join(program);
        let mut command = match &self.owner {
            Some(owner) => {
                let mut c = Command::new("runuser");
                c.args(["-u", owner, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server (again), on the same port.
    fn start_again(&self) {
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                data.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-s",
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
            ],
        );
    }

    /// Stops the server; connected clients are disconnected.
    fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-D",
                data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-s",
            ],
        );
    }

    fn url(&self) -> String {
        format!(
            "postgres://webhookd:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let data = self.data();
            let _ = std::panic::catch_unwind(|| {
                self.run(
                    "pg_ctl",
                    &[
                        "stop",
                        "-D",
                        data.to_str().unwrap(),
                        "-m",
                        "immediate",
                        "-s",
                    ],
                )
            });
        }
    }
}

/// `webhookd serve` on `store`, with JSON logs collected as they come; killed when dropped.
struct Webhookd {
    child: std::process::Child,
    http: String,
    grpc: String,
    log: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

impl Webhookd {
    fn start(store: &str) -> Webhookd {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_webhookd"))
            .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
            .args(["--store", store])
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--log-format", "json", "--retry-schedule", "10ms"])
            .args(["--allow-private-targets"])
            .env("WEBHOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (serving, serving_at) = std::sync::mpsc::channel();
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let line: Value = serde_json::from_str(&line).unwrap_or(json!({"raw": line}));
                if line["fields"]["message"] == "webhookd is serving" {
                    let _ = serving.send(line.clone());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let serving = serving_at
            .recv_timeout(Duration::from_secs(30))
            .expect("the server never said it is serving");
        Webhookd {
            child,
            http: serving["fields"]["http"].as_str().unwrap().to_string(),
            grpc: serving["fields"]["grpc"].as_str().unwrap().to_string(),
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The log lines so far whose message contains `text`.
    fn logged(&self, text: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text))
            })
            .cloned()
            .collect()
    }

    /// webhookd's own log lines so far at WARN or ERROR, and anything not JSON (a panic).
    /// sqlx's "slow statement" warnings are left out: a loaded machine makes statements
    /// slow whatever the outage, and they say nothing about it.
    fn complaints(&self) -> Vec<Value> {
        let own = |l: &Value| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("webhookd"))
        };
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                ((l["level"] == "WARN" || l["level"] == "ERROR") && own(l))
                    || l.get("raw").is_some()
            })
            .cloned()
            .collect()
    }

    /// A read+write token of "acme" and a webhook of it to `receiver`, through REST.
    async fn webhook_to(&self, receiver: &Receiver) -> String {
        let token = TestServer::token_via(self.http.parse().unwrap()).await;
        let (status, hook) = http_json(
            Method::POST,
            &self.url("/api/v1/webhooks/"),
            Some(&token),
            Some(
                json!({"name": "outage", "url": receiver.url("/hook"), "trigger_type": "resolve"}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        token
    }

    /// What /healthz and grpc.health say: (HTTP status, gRPC status of the server, "", and
    /// of the webhook service).
    async fn health(&self) -> (StatusCode, ServingStatus, ServingStatus) {
        let (http, body) = http_json(Method::GET, &self.url("/healthz"), None, None).await;
        let expected = if http == StatusCode::OK {
            "ok"
        } else {
            "unavailable"
        };
        assert_eq!(body["status"], expected, "{body}");
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let mut check = async |service: &str| {
            let request = HealthCheckRequest {
                service: service.into(),
            };
            let status = client.check(request).await.unwrap().into_inner().status;
            ServingStatus::try_from(status).unwrap()
        };
        let whole = check("").await;
        (http, whole, check("webhooks.v1.WebhookService").await)
    }

    /// Waits until both health endpoints say `serving`.
    async fn wait_health(&self, serving: bool) {
        let expected = if serving {
            (
                StatusCode::OK,
                ServingStatus::Serving,
                ServingStatus::Serving,
            )
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                ServingStatus::NotServing,
                ServingStatus::NotServing,
            )
        };
        eventually(|| async { (self.health().await == expected).then_some(()) }).await;
    }
}

impl Drop for Webhookd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the emits of the load saw.
#[derive(Default)]
struct Outcomes {
    /// Delivery ids of acknowledged events.
    acknowledged: HashSet<String>,
    /// Emits refused with 503 / UNAVAILABLE.
    unavailable: usize,
}

/// Emits over REST and gRPC until `stop`; any answer other than an acknowledgement or a
/// clean 503 / UNAVAILABLE fails the test.
fn load(
    server: &Webhookd,
    token: &str,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut producers = Vec::new();
    for _ in 0..3 {
        let (url, token) = (server.url("/api/v1/events/"), token.to_string());
        let (stop, outcomes) = (Arc::clone(&stop), Arc::clone(&outcomes));
        producers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let event = json!({"event": {"type": "resolve"}});
                let (status, body) = http_json(Method::POST, &url, Some(&token), Some(event)).await;
                let mut outcomes = outcomes.lock().unwrap();
                match status {
                    StatusCode::ACCEPTED => {
                        let id = body["deliveries"][0]["id"].as_str().unwrap();
                        outcomes.acknowledged.insert(id.to_string());
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        let detail = body["detail"].as_str().unwrap_or_default();
                        assert!(detail.contains("database"), "{body}");
                        outcomes.unavailable += 1;
                    }
                    other => panic!("emit answered {other}: {body}"),
                }
            }
        }));
    }
    let (grpc, token) = (server.grpc.clone(), token.to_string());
    producers.push(tokio::spawn(async move {
        let mut client = connect_webhooks(grpc.parse().unwrap()).await;
        while !stop.load(Ordering::SeqCst) {
            let request = pb::EmitEventRequest {
                event_type: "resolve".into(),
                data: Some(to_struct(json!({}))),
                idempotency_key: String::new(),
                ordering_key: String::new(),
            };
            let answered = client.emit_event(authed(&token, request)).await;
            let outcome = match answered {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let accepted = stream.message().await.unwrap().unwrap();
                    assert_eq!(states(&[accepted]), ["ACCEPTED"]);
                    Ok(stream.message().await.unwrap().unwrap().delivery_id)
                }
                Err(status) => Err(status),
            };
            let mut outcomes = outcomes.lock().unwrap();
            match outcome {
                Ok(id) => {
                    outcomes.acknowledged.insert(id);
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    outcomes.unavailable += 1
                }
                Err(status) => panic!("EmitEvent answered {status:?}"),
            }
        }
    }));
    producers
}

#[tokio::test]
async fn postgres_restarted_mid_load_refuses_emits_cleanly_and_loses_no_acknowledged_event() {
    let Some(cluster) = tokio::task::spawn_blocking(Cluster::start).await.unwrap() else {
        return;
    };
    let receiver = Receiver::start().await;
    let server = Webhookd::start(&cluster.url());
    let token = server.webhook_to(&receiver).await;
    server.wait_health(true).await;

    let (stop, outcomes) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let producers = load(&server, &token, Arc::clone(&stop), Arc::clone(&outcomes));
    let acknowledged = || outcomes.lock().unwrap().acknowledged.len();
    eventually(|| async { (acknowledged() >= 50).then_some(()) }).await;

    // The database goes away: health says so, emits are refused.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .unwrap();
    server.wait_health(false).await;
    let refused = outcomes.lock().unwrap().unavailable;
    eventually(|| async { (outcomes.lock().unwrap().unavailable > refused).then_some(()) }).await;

    // It is back: health says so and emits are acknowledged again.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again();
        cluster
    })
    .await
    .unwrap();
    server.wait_health(true).await;
    let before = acknowledged();
    eventually(|| async { (acknowledged() >= before + 50).then_some(()) }).await;
    stop.store(true, Ordering::SeqCst);
    for producer in producers {
        producer.await.unwrap();
    }

    // Every acknowledged event reached the receiver.
    let acknowledged = std::mem::take(&mut outcomes.lock().unwrap().acknowledged);
    let mut delivered = HashSet::new();
    while !acknowledged.is_subset(&delivered) {
        let request = receiver.next().await;
        delivered.insert(request.header("webhook-id").unwrap().to_string());
    }
    // The log said "lost" once and "back" once, and complained of nothing else.
    assert_eq!(server.logged("the store is unreachable").len(), 1);
    assert_eq!(server.logged("the store is reachable again").len(), 1);
    let complaints = server.complaints();
    assert_eq!(complaints.len(), 1, "{complaints:#?}");
    drop(cluster);
}

#[tokio::test]
async fn deliveries_in_flight_or_queued_when_postgres_stops_are_delivered_once_it_is_back() {
    let Some(cluster) = tokio::task::spawn_blocking(Cluster::start).await.unwrap() else {
        return;
    };
    let receiver = Receiver::start().await;
    let server = Webhookd::start(&cluster.url());
    let token = server.webhook_to(&receiver).await;
    receiver.delay(Duration::from_millis(1500));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = http_json(
            Method::POST,
            &server.url("/api/v1/events/"),
            Some(&token),
            Some(json!({"event": {"type": "resolve"}})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["deliveries"][0]["id"].as_str().unwrap().to_string());
    }
    // The first attempt is at the (slow) receiver when the database stops.
    receiver.next().await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .unwrap();
    server.wait_health(false).await;
    receiver.delay(Duration::ZERO);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again();
        cluster
    })
    .await
    .unwrap();
    server.wait_health(true).await;

    // Each delivery has a logged 200, whatever the outage interrupted.
    let (status, hooks) = http_json(
        Method::GET,
        &server.url("/api/v1/webhooks/"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hooks}");
    let hook = hooks["results"][0]["id"].as_str().unwrap().to_string();
    let client = connect_webhooks(server.grpc.parse().unwrap()).await;
    eventually(|| {
        let (mut client, token, hook, ids) = (client.clone(), &token, &hook, &ids);
        async move {
            let succeeded: HashSet<String> = responses(&mut client, token, hook)
                .await
                .into_iter()
                .filter(|r| r.status_code == Some(200))
                .map(|r| r.delivery_id)
                .collect();
            ids.iter().all(|id| succeeded.contains(id)).then_some(())
        }
    })
    .await;
    drop(cluster);
}

#[tokio::test]
async fn health_says_serving_for_the_server_and_both_services_while_the_store_answers() {
    let server = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect_lazy();
    let mut client = HealthClient::new(channel);
    for service in ["", "webhooks.v1.WebhookService", "webhooks.v1.AdminService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let status = eventually(|| {
            let (mut client, request) = (client.clone(), request.clone());
            async move { client.check(request).await.ok() }
        })
        .await
        .into_inner()
        .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(
        server.healthz().await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}
