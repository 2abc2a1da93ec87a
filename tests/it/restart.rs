//! An accepted event is never lost: the built binary acknowledges events, is killed with
//! SIGKILL before it could deliver them, and after a restart on the same data directory
//! every acknowledged event reaches the receiver.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use webhookd::grpc::pb;

use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process {
    child: Child,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

impl Process {
    fn start(dir: &std::path::Path, extra: &[&str]) -> Process {
        let (grpc, http) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_webhookd"))
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args([
                "--grpc-addr",
                &format!("127.0.0.1:{grpc}"),
                "--http-addr",
                &format!("127.0.0.1:{http}"),
            ])
            .args([
                "--allow-private-targets",
                "--retry-schedule",
                "50ms,100ms",
                "--retry-jitter",
                "false",
            ])
            .args(extra)
            .env("WEBHOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Process {
            child,
            grpc: format!("127.0.0.1:{grpc}").parse().unwrap(),
            http: format!("127.0.0.1:{http}").parse().unwrap(),
        }
    }

    async fn ready(&self) {
        eventually(|| async { tokio::net::TcpStream::connect(self.http).await.ok() }).await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn kill_9_after_the_ack_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    // The receiver holds every request long enough that nothing completes before the kill.
    receiver.delay(Duration::from_secs(5));

    let first = Process::start(dir.path(), &["--delivery-concurrency", "2"]);
    first.ready().await;
    let server = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    create(
        &mut client,
        &server,
        webhook("durable", &receiver.url("/hook")),
    )
    .await;

    let mut acknowledged = HashSet::new();
    for i in 0..40 {
        let request = pb::EmitEventRequest {
            event_type: "alert group created".into(),
            data: Some(to_struct(
                serde_json::json!({"alert_group": {"id": format!("AG{i}")}}),
            )),
            idempotency_key: String::new(),
        };
        let mut stream = client
            .emit_event(authed(&server, request))
            .await
            .unwrap()
            .into_inner();
        let accepted = stream.message().await.unwrap().unwrap();
        assert_eq!(states(std::slice::from_ref(&accepted)), ["ACCEPTED"]);
        assert_eq!(accepted.matched_deliveries, 1);
        acknowledged.insert(format!("AG{i}"));
    }
    // And a batch, acknowledged as a whole.
    let batch = pb::EmitEventsRequest {
        events: (40..60)
            .map(|i| pb::EmitEventRequest {
                event_type: "alert group created".into(),
                data: Some(to_struct(
                    serde_json::json!({"alert_group": {"id": format!("AG{i}")}}),
                )),
                idempotency_key: String::new(),
            })
            .collect(),
    };
    let emitted = client
        .emit_events(authed(&server, batch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(emitted.results.len(), 20);
    acknowledged.extend((40..60).map(|i| format!("AG{i}")));
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    receiver.delay(Duration::ZERO);
    let second = Process::start(dir.path(), &[]);
    second.ready().await;
    let mut delivered = HashSet::new();
    while !acknowledged.is_subset(&delivered) {
        let request = receiver.next().await;
        delivered.insert(
            request.json()["alert_group"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(delivered, acknowledged);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_the_admin_token_file_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_webhookd"))
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args([
                "--grpc-addr",
                &format!("127.0.0.1:{grpc}"),
                "--http-addr",
                &format!("127.0.0.1:{http}"),
            ])
            .env_remove("WEBHOOKD_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = start();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    eventually(|| async { tokio::net::TcpStream::connect(addr).await.ok() }).await;
    let token_file = dir.path().join("admin.token");
    let token = eventually(|| async {
        std::fs::read_to_string(&token_file)
            .ok()
            .filter(|t| !t.is_empty())
    })
    .await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit: {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("admin.token") && !logs.contains(token.trim()),
        "{logs}"
    );

    let child = start();
    eventually(|| async { tokio::net::TcpStream::connect(addr).await.ok() }).await;
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    let url = format!("http://127.0.0.1:{http}/admin/v1/tokens");
    let body = serde_json::json!({"account_id": "acme", "scopes": ["webhooks:read"]});
    let (status, _) = http_json(
        axum::http::Method::POST,
        &url,
        Some(&format!("Bearer {}", token.trim())),
        Some(body),
    )
    .await;
    assert_eq!(status, axum::http::StatusCode::CREATED);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
}

#[tokio::test]
async fn a_webhook_and_a_token_are_durable_once_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Process::start(dir.path(), &[]);
    first.ready().await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    let created = create(
        &mut client,
        &token,
        webhook("kept", "https://example.com/hook"),
    )
    .await;
    first.child.kill().unwrap(); // SIGKILL right after the answers
    first.child.wait().unwrap();

    let second = Process::start(dir.path(), &[]);
    second.ready().await;
    let mut client = connect_webhooks(second.grpc).await;
    let fetched = client
        .get_webhook(authed(&token, pb::GetWebhookRequest { id: created.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.name, "kept");
}
