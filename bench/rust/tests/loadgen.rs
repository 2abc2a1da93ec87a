//! The load generator against a real receiver on 127.0.0.1: the ceiling phase's requests all
//! reach the receiver and its result says so, a receiver answering 500 makes errors, not
//! requests; `ready` waits for a server that answers and gives up on a port nobody listens on.

use std::time::Duration;

use tokio::net::TcpListener;
use webhookd_bench::loadgen::ceiling::{self, CeilingArgs};
use webhookd_bench::loadgen::setup::ready;
use webhookd_bench::loadgen::{CeilingResult, Measure};
use webhookd_bench::receiver::Receiver;

async fn receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(Receiver::new(Duration::from_millis(10)).serve(listener));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ceiling_request_reaches_the_receiver() {
    let addr = receiver().await;
    let out = tempfile::NamedTempFile::new().unwrap();
    let args = CeilingArgs {
        recv: format!("http://{addr}"),
        sink: "ceiling".into(),
        connections: 4,
        client_threads: Some(2),
        measure: Measure {
            duration: 0.5,
            warmup: 0.1,
            webhookd_pids: Vec::new(),
            receiver_pid: Some(std::process::id()),
            out: Some(out.path().to_path_buf()),
        },
    };
    ceiling::run(args).await.unwrap();
    let result: CeilingResult =
        serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap();
    assert!(result.requests > 0, "{result:?}");
    assert_eq!(result.errors, 0, "{result:?}");
    assert_eq!(result.receiver_arrivals, result.requests);
    assert_eq!(result.connections, 4);
    assert!(result.latency.n > 0);
    assert!(result.cpu.contains_key("receiver") && result.cpu.contains_key("loadgen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceiling_against_a_receiver_that_fails_counts_errors_not_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(Receiver::failing(Duration::from_millis(1), 100).serve(listener));
    let out = tempfile::NamedTempFile::new().unwrap();
    let args = CeilingArgs {
        recv: format!("http://{addr}"),
        sink: "failing".into(),
        connections: 2,
        client_threads: None,
        measure: Measure {
            duration: 0.3,
            warmup: 0.1,
            webhookd_pids: Vec::new(),
            receiver_pid: None,
            out: Some(out.path().to_path_buf()),
        },
    };
    ceiling::run(args).await.unwrap();
    let result: CeilingResult =
        serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap();
    assert_eq!(result.requests, 0, "{result:?}");
    assert!(result.errors > 0, "{result:?}");
    let error = result.first_error.unwrap_or_default();
    assert!(error.contains("answered 500"), "{error}");
}

#[tokio::test]
async fn ready_waits_for_an_answer_and_gives_up_on_a_closed_port() {
    let addr = receiver().await;
    let waited = ready(
        std::slice::from_ref(&addr),
        std::slice::from_ref(&addr),
        Duration::from_secs(10),
    )
    .await;
    assert!(waited.is_ok(), "{waited:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let error = ready(
        &[format!("127.0.0.1:{port}")],
        &[],
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("not ready"), "{error}");
}
