//! Instances share the due work through leases (run when WEBHOOKD_TEST_POSTGRES_URL names a
//! PostgreSQL server; scripts/with-postgres sets it): a killed instance's deliveries are
//! delivered by the others once its leases expire, and a restarted instance leaves alone
//! what a live one holds; an ordering key whose head's instance died resumes in order after
//! the lease. Real binaries, `kill -9`, a slow receiver.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::process::Process;
use crate::support::*;

/// Lease of every instance here: short, so a takeover comes quickly.
const LEASE: &str = "2s";

/// `n` instances of webhookd on one fresh database (the first made the schema and the
/// secret key the others share), each with `--delivery-concurrency concurrency`; None without
/// a PostgreSQL server.
async fn cluster(n: usize, concurrency: &str) -> Option<(Vec<TestStore>, Vec<Process>)> {
    let first = TestStore::new().await;
    let Some(url) = first.postgres_url.clone() else {
        eprintln!("skipped: WEBHOOKD_TEST_POSTGRES_URL is not set (takeover needs PostgreSQL)");
        return None;
    };
    let flags = ["--lease", LEASE, "--delivery-concurrency", concurrency];
    let leader = Process::start(&first, &flags).await;
    leader.ready().await;
    let key_file = first.dir.path().join("secret.key");
    let key_file = key_file.to_str().unwrap();
    let (mut stores, mut processes) = (vec![first], vec![leader]);
    for _ in 1..n {
        let store = TestStore {
            dir: tempfile::tempdir().unwrap(),
            postgres_url: Some(url.clone()),
        };
        let mut flags = flags.to_vec();
        flags.extend(["--secret-key-file", key_file]);
        let process = Process::start(&store, &flags).await;
        process.ready().await;
        stores.push(store);
        processes.push(process);
    }
    Some((stores, processes))
}

/// Emits event `id` through the instance at `grpc`; returns once it is acknowledged.
pub async fn emit(grpc: std::net::SocketAddr, token: &str, id: &str) {
    emit_ordered(grpc, token, id, "").await
}

/// Emits event `id` under `ordering_key` (empty: none); returns once it is acknowledged.
async fn emit_ordered(grpc: std::net::SocketAddr, token: &str, id: &str, ordering_key: &str) {
    let mut client = connect_webhooks(grpc).await;
    emit_acknowledged(&mut client, token, id, ordering_key).await;
}

/// Receives until every event of `expected` arrived; returns how often each delivery id came.
pub async fn collect(receiver: &Receiver, expected: &HashSet<String>) -> HashMap<String, usize> {
    let (mut events, mut deliveries) = (HashSet::new(), HashMap::new());
    while !expected.is_subset(&events) {
        let request = receiver.next().await;
        let event = request.json()["alert_group"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        events.insert(event);
        *deliveries
            .entry(request.header("webhook-id").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(&events, expected);
    deliveries
}

#[tokio::test]
async fn a_killed_instances_deliveries_are_taken_over_after_its_lease() {
    let Some((_stores, mut instances)) = cluster(3, "2").await else {
        return;
    };
    let receiver = Receiver::start().await;
    // Slow: each instance has its 2 attempts in flight and the rest of its share waiting.
    receiver.delay(Duration::from_millis(400));
    let token = TestServer::token_via(instances[0].http).await;
    let mut client = connect_webhooks(instances[1].grpc).await;
    create(
        &mut client,
        &token,
        webhook("shared", &receiver.url("/hook")),
    )
    .await;

    let mut acknowledged = HashSet::new();
    for i in 0..60 {
        let id = format!("AG{i}");
        emit(instances[i % 3].grpc, &token, &id).await;
        acknowledged.insert(id);
    }
    // The second instance dies holding the leases of its 20 deliveries, 2 of them in flight.
    instances[1].kill_9();

    let deliveries = collect(&receiver, &acknowledged).await;
    let repeated: Vec<(&String, &usize)> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.iter().map(|(_, n)| **n - 1).sum::<usize>() <= 2,
        "only the attempts in flight at the kill may repeat: {repeated:?}"
    );
}

#[tokio::test]
async fn a_restarted_instance_leaves_alone_what_a_live_one_holds() {
    let Some((stores, mut instances)) = cluster(2, "1").await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(500));
    let token = TestServer::token_via(instances[0].http).await;
    let mut client = connect_webhooks(instances[0].grpc).await;
    create(&mut client, &token, webhook("held", &receiver.url("/hook"))).await;
    // All emitted through the first instance: it holds every delivery, one in flight.
    let mut acknowledged = HashSet::new();
    for i in 0..6 {
        let id = format!("AG{i}");
        emit(instances[0].grpc, &token, &id).await;
        acknowledged.insert(id);
    }
    // The second instance restarts meanwhile and claims what is free: nothing.
    instances[1].kill_9();
    let key_file = stores[0].dir.path().join("secret.key");
    let restarted = Process::start(
        &stores[1],
        &[
            "--lease",
            LEASE,
            "--secret-key-file",
            key_file.to_str().unwrap(),
        ],
    )
    .await;
    restarted.ready().await;

    let deliveries = collect(&receiver, &acknowledged).await;
    assert!(
        deliveries.values().all(|n| *n == 1),
        "each delivery exactly once: {deliveries:?}"
    );
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_killed_instance_holding_a_keys_head_holds_up_only_that_key_until_its_lease() {
    let Some((_stores, mut instances)) = cluster(2, "2").await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(1000));
    let token = TestServer::token_via(instances[0].http).await;
    let mut client = connect_webhooks(instances[1].grpc).await;
    create(
        &mut client,
        &token,
        webhook("keyed", &receiver.url("/hook")),
    )
    .await;
    let event_of = |r: &Received| r.json()["alert_group"]["id"].as_str().unwrap().to_string();

    // Key K's three events go through the first instance, which holds K's head.
    for id in ["K1", "K2", "K3"] {
        emit_ordered(instances[0].grpc, &token, id, "K").await;
    }
    // It dies while the receiver holds K1's request.
    let first = receiver.next().await;
    assert_eq!(event_of(&first), "K1");
    instances[0].kill_9();
    // Another key goes on through the live instance meanwhile.
    emit_ordered(instances[1].grpc, &token, "L1", "L").await;

    let mut seen = vec![event_of(&first)];
    while !(seen.iter().any(|e| e == "K3") && seen.iter().any(|e| e == "L1")) {
        seen.push(event_of(&receiver.next().await));
    }
    // After the lease the live instance attempts K1 again (at-least-once), then K2, then K3.
    let mut keyed: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with('K'))
        .collect();
    keyed.dedup();
    assert_eq!(keyed, ["K1", "K2", "K3"], "{seen:?}");
    assert_eq!(
        seen.iter().filter(|e| *e == "K1").count(),
        2,
        "K1 repeats once, after the lease: {seen:?}"
    );
    let at = |id: &str| seen.iter().position(|e| e == id).unwrap();
    assert!(at("L1") < at("K2"), "L1 is not held up by K: {seen:?}");
}
