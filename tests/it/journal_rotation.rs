//! The embedded store's journal is fsynced outside the engine's lock while producers keep
//! writing, and the engine moves to a new journal file every 64 MB. Producers emit large
//! events concurrently through the built binary until the journal has rotated twice, the
//! binary is killed with SIGKILL in the middle of their emits, and after a restart on the
//! same data directory every acknowledged event reaches the receiver.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use webhookd::grpc::pb;

use crate::process::Process;
use crate::support::*;

/// The highest journal file number in the embedded store (`<data-dir>/store/<n>.jnl`).
fn newest_journal(store: &TestStore) -> u64 {
    std::fs::read_dir(store.dir.path().join("store"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name();
                    name.to_str()?.strip_suffix(".jnl")?.parse().ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// `len` hex digits that the journal's compression cannot shrink (xorshift).
fn incompressible(len: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from_digit((state % 16) as u32, 16).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn acknowledged_events_survive_a_kill_9_across_journal_rotations() {
    let store = TestStore::new().await;
    if store.postgres_url.is_some() {
        return; // the journal is the embedded store's
    }
    let receiver = Receiver::start().await;
    let mut first = Process::start(&store, &[]).await;
    first.ready().await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    create(
        &mut client,
        &token,
        webhook("large", &receiver.url("/hook")),
    )
    .await;

    // Four producers, each emitting ~600 KB events one after another until the emits fail.
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let padding = incompressible(600 * 1024);
    let mut producers = Vec::new();
    for producer in 0..4 {
        let (mut client, token) = (client.clone(), token.clone());
        let (acknowledged, padding) = (Arc::clone(&acknowledged), padding.clone());
        producers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("P{producer}-{i}");
                let request = pb::EmitEventRequest {
                    event_type: "alert group created".into(),
                    data: Some(to_struct(serde_json::json!({"id": id, "padding": padding}))),
                    idempotency_key: String::new(),
                    ordering_key: String::new(),
                };
                let Ok(response) = client.emit_event(authed(&token, request)).await else {
                    return;
                };
                match response.into_inner().message().await {
                    Ok(Some(accepted))
                        if states(std::slice::from_ref(&accepted)) == ["ACCEPTED"] =>
                    {
                        acknowledged.lock().unwrap().insert(id);
                    }
                    _ => return,
                }
            }
        }));
    }

    // Two rotations at least, then the kill while the producers are still emitting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while newest_journal(&store) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the journal did not rotate twice within 180 s (newest {})",
            newest_journal(&store)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill_9();
    for producer in producers {
        producer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "{} acknowledged",
        acknowledged.len()
    );

    let second = Process::start(&store, &[]).await;
    second.ready().await;
    let mut delivered = HashSet::new();
    while !acknowledged.is_subset(&delivered) {
        let request = receiver.next().await;
        delivered.insert(request.json()["id"].as_str().unwrap().to_string());
    }
    drop(second);
}
