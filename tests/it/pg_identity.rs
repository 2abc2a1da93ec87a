//! A restarted instance on PostgreSQL is the owner it was (its id is kept in its data
//! directory): it takes back at once the deliveries it held when it was killed, instead of
//! waiting for their leases to expire; and a second live instance on the same data directory
//! is refused with a clear error. Real binaries, `kill -9`, a slow receiver.

use std::collections::HashSet;
use std::time::Duration;

use crate::process::Process;
use crate::support::*;
use crate::takeover::{collect, emit};

/// Far longer than the test: only taking the leases back, never their expiry, delivers.
const FLAGS: [&str; 4] = ["--lease", "1h", "--delivery-concurrency", "1"];

#[tokio::test]
async fn a_restarted_instance_takes_back_what_it_held_at_once_and_a_twin_is_refused() {
    let store = TestStore::new().await;
    if store.postgres_url.is_none() {
        eprintln!("skipped: WEBHOOKD_TEST_POSTGRES_URL is not set (instance ids need PostgreSQL)");
        return;
    }
    let mut first = Process::start(&store, &FLAGS).await;
    first.ready().await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(500));
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    create(&mut client, &token, webhook("held", &receiver.url("/hook"))).await;
    let mut acknowledged = HashSet::new();
    for i in 0..3 {
        let id = format!("AG{i}");
        emit(first.grpc, &token, &id).await;
        acknowledged.insert(id);
    }
    // It dies while the receiver holds its first request, leasing all three for an hour.
    receiver.next().await;
    first.kill_9();

    // Started again on its data directory, it delivers all three now.
    let restarted = Process::start(&store, &FLAGS).await;
    restarted.ready().await;
    let deliveries = collect(&receiver, &acknowledged).await;
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");

    // A second instance on the same data directory (so the same id) is refused.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webhookd"))
        .args(["serve", "--data-dir"])
        .arg(store.dir.path())
        .args(["--store", &store.flag()])
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env("WEBHOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("another live webhookd instance uses instance id"),
        "{stderr}"
    );
}
