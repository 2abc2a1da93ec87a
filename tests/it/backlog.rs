//! A dead endpoint's big backlog waits in the store without holding up anyone else: after a
//! restart, with thousands of its deliveries due, another webhook's deliveries arrive while
//! the dead one's backlog waits (claims take a bounded share per webhook); and one webhook's
//! backlog far beyond its share is claimed as it drains. Both backends,
//! through the built binary.

use std::collections::HashSet;

use webhookd::grpc::pb;

use crate::process::Process;
use crate::support::*;

/// Deliveries queued to the dead endpoint.
const BACKLOG: usize = 3000;

/// Deliveries to the healthy webhook, queued after the backlog (so due later).
const OTHERS: usize = 20;

fn flags(store: &TestStore) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--allow-private-targets",
        "--retry-schedule",
        "1h",
        "--retry-jitter",
        "false",
        "--per-webhook-concurrency",
        "2",
        "--lease",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    flags.extend(["--store".into(), store.flag()]);
    flags
}

async fn start(store: &TestStore) -> Process {
    let flags = flags(store);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    // `spawn` passes the data dir and --store itself: drop the duplicate --store.
    let process = Process::spawn(store, &args[..args.len() - 2], Some(ADMIN_TOKEN)).await;
    process.ready().await;
    process
}

fn events(event_type: &str, ids: impl Iterator<Item = String>) -> Vec<pb::EmitEventRequest> {
    ids.map(|id| pb::EmitEventRequest {
        event_type: event_type.into(),
        data: Some(to_struct(serde_json::json!({"alert_group": {"id": id}}))),
        idempotency_key: String::new(),
        ordering_key: String::new(),
    })
    .collect()
}

#[tokio::test]
async fn a_dead_endpoints_backlog_does_not_delay_another_webhooks_deliveries() {
    let store = TestStore::new().await;
    let receiver = Receiver::start().await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", listener.local_addr().unwrap())
    };
    let mut first = start(&store).await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    let dead_hook = create(&mut client, &token, webhook("dead", &dead)).await;
    let healthy = pb::Webhook {
        trigger_type: "resolve".into(),
        ..webhook("healthy", &receiver.url("/hook"))
    };
    create(&mut client, &token, healthy).await;
    let backlog: Vec<String> = (0..BACKLOG).map(|i| format!("D{i}")).collect();
    for chunk in backlog.chunks(1000) {
        let batch = events("alert group created", chunk.iter().cloned());
        let request = pb::EmitEventsRequest { events: batch };
        client.emit_events(authed(&token, request)).await.unwrap();
    }
    let others: HashSet<String> = (0..OTHERS).map(|i| format!("H{i}")).collect();
    let batch = events("resolve", others.iter().cloned());
    let request = pb::EmitEventsRequest { events: batch };
    client.emit_events(authed(&token, request)).await.unwrap();
    // Everything is in the store, nothing in memory: the restart claims it all from there.
    first.kill_9();

    let second = start(&store).await;
    let mut arrived = HashSet::new();
    while !others.is_subset(&arrived) {
        let request = receiver.next().await;
        arrived.insert(
            request.json()["alert_group"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Meanwhile the dead endpoint got a handful of attempts, its circuit open, the rest waits.
    let mut client = connect_webhooks(second.grpc).await;
    let attempts = responses(&mut client, &token, &dead_hook.id).await;
    assert!(attempts.len() < 100, "{} attempts", attempts.len());
}

/// Deliveries queued to one webhook at once: many times what it may hold in memory.
const ONE_WEBHOOKS_BACKLOG: usize = 2000;

#[tokio::test]
async fn one_webhooks_backlog_in_the_store_is_claimed_as_fast_as_it_drains() {
    let store = TestStore::new().await;
    let receiver = Receiver::start().await;
    // Two attempts at once: the webhook holds at most 4 × 2 entries claimed in memory, and
    // the rest of its backlog waits in the store.
    let process = start(&store).await;
    let token = TestServer::token_via(process.http).await;
    let mut client = connect_webhooks(process.grpc).await;
    create(&mut client, &token, webhook("busy", &receiver.url("/hook"))).await;
    let ids: Vec<String> = (0..ONE_WEBHOOKS_BACKLOG).map(|i| format!("B{i}")).collect();
    for chunk in ids.chunks(500) {
        let batch = events("alert group created", chunk.iter().cloned());
        let request = pb::EmitEventsRequest { events: batch };
        client.emit_events(authed(&token, request)).await.unwrap();
    }

    // Each attempt's end claims the next from the store: the backlog is not claimed a few
    // entries per claimer poll (1 s): that took 50 s for 1,200 here, against 3.5 s.
    let expected: HashSet<String> = ids.into_iter().collect();
    let mut arrived = HashSet::new();
    tokio::time::timeout(std::time::Duration::from_secs(45), async {
        while arrived.len() < expected.len() {
            let request = receiver.next().await;
            let id = request.json()["alert_group"]["id"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(expected.contains(&id), "unexpected {id}");
            assert!(arrived.insert(id.clone()), "{id} delivered twice");
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} of {ONE_WEBHOOKS_BACKLOG} delivered within 45 s",
            arrived.len()
        )
    });
}
