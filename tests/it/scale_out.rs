//! Several webhookd instances on one PostgreSQL database (run when WEBHOOKD_TEST_POSTGRES_URL
//! names a server; scripts/with-postgres sets it): each answers any request, and every
//! acknowledged event is delivered exactly once.

use std::collections::HashSet;

use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

/// Events emitted across the instances.
const EVENTS: usize = 3000;

/// Emits in flight at once.
const PRODUCERS: usize = 24;

#[tokio::test]
async fn three_instances_on_one_database_share_webhooks_and_deliver_each_event_once() {
    let Some(instances) = TestServer::cluster(3).await else {
        return;
    };
    let receiver = Receiver::start().await;
    // A token made through one instance works on all; so does a webhook.
    let token = instances[0].writer("acme").await;
    let mut client = instances[1].webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("shared", &receiver.url("/hook")),
    )
    .await;
    for instance in &instances {
        let fetched = instance
            .webhooks()
            .await
            .get_webhook(authed(
                &token,
                pb::GetWebhookRequest {
                    id: hook.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched.name, "shared");
    }

    // Emits round-robin over the instances; each stream must end with the delivery done.
    let mut clients = Vec::new();
    for instance in &instances {
        clients.push(instance.webhooks().await);
    }
    let (results, mut collected) = (tokio::sync::mpsc::unbounded_channel(), Vec::new());
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let (clients, token, next, results) = (
            clients.clone(),
            token.clone(),
            next.clone(),
            results.0.clone(),
        );
        producers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= EVENTS {
                    return;
                }
                let mut client = clients[n % clients.len()].clone();
                let statuses =
                    emit_all(&mut client, &token, "alert group created", json!({"n": n})).await;
                results.send((n, states(&statuses), statuses)).unwrap();
            }
        }));
    }
    drop(results.0);
    for producer in producers {
        producer.await.unwrap();
    }
    let mut results = results.1;
    while let Some(result) = results.recv().await {
        collected.push(result);
    }
    assert_eq!(collected.len(), EVENTS);
    let mut acknowledged = HashSet::new();
    for (n, states, statuses) in &collected {
        assert_eq!(states.last(), Some(&"SUCCEEDED"), "event {n}: {states:?}");
        acknowledged.insert(statuses[0].delivery_id.clone());
    }

    // Every acknowledged delivery reached the receiver, none twice.
    let mut delivered = HashSet::new();
    while delivered.len() < EVENTS {
        let request = receiver.next().await;
        let id = request.header("webhook-id").unwrap().to_string();
        assert!(delivered.insert(id.clone()), "{id} delivered twice");
    }
    assert_eq!(delivered, acknowledged);
    receiver.assert_quiet().await;
}

/// Emits an event with an idempotency key and returns its status stream (after checking the
/// first message is ACCEPTED).
async fn emit_keyed(
    server: &TestServer,
    token: &str,
    key: &str,
) -> tonic::Streaming<pb::DeliveryStatus> {
    let request = pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(json!({"key": key}))),
        idempotency_key: key.into(),
        ordering_key: String::new(),
    };
    let mut stream = server
        .webhooks()
        .await
        .emit_event(authed(token, request))
        .await
        .unwrap()
        .into_inner();
    let accepted = stream.message().await.unwrap().unwrap();
    assert_eq!(states(&[accepted]), ["ACCEPTED"]);
    stream
}

/// The rest of a status stream, until it ends.
async fn rest_of(mut stream: tonic::Streaming<pb::DeliveryStatus>) -> Vec<pb::DeliveryStatus> {
    let mut statuses = Vec::new();
    while let Some(status) =
        tokio::time::timeout(std::time::Duration::from_secs(30), stream.message())
            .await
            .expect("stream stalled")
            .unwrap()
    {
        statuses.push(status);
    }
    statuses
}

/// The stream ended with its one delivery SUCCEEDED at `attempt`, reporting that final state
/// once and no (attempt, state) twice.
fn assert_followed_to_success(statuses: &[pb::DeliveryStatus], attempt: i32) {
    let seen: Vec<(i32, &str)> = statuses
        .iter()
        .map(|s| s.attempt)
        .zip(states(statuses))
        .collect();
    assert_eq!(seen.last(), Some(&(attempt, "SUCCEEDED")), "{seen:?}");
    let finals = seen
        .iter()
        .filter(|(_, s)| *s != "QUEUED" && *s != "RETRYING");
    assert_eq!(finals.count(), 1, "{seen:?}");
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "{seen:?}");
}

#[tokio::test]
async fn a_stream_opened_on_one_instance_follows_the_attempts_another_makes() {
    let Some(instances) = TestServer::cluster(2).await else {
        return;
    };
    let (a, b) = (&instances[0], &instances[1]);
    let receiver = Receiver::start().await;
    let token = a.writer("acme").await;
    create(
        &mut b.webhooks().await,
        &token,
        webhook("followed", &receiver.url("/hook")),
    )
    .await;
    // B accepts the event and attempts it: a slow 500, then a slow 200 (within the
    // servers' 2 s request timeout).
    receiver.fail_next(1);
    receiver.delay(std::time::Duration::from_secs(1));
    let on_b = tokio::spawn(rest_of(emit_keyed(b, &token, "k-1").await));
    receiver.next().await;
    // The same key through A, while B's first attempt is in flight: A's stream follows B.
    let on_a = emit_keyed(a, &token, "k-1").await;
    let on_a = rest_of(on_a).await;
    assert_followed_to_success(&on_a, 2);
    assert!(
        states(&on_a).contains(&"RETRYING"),
        "A saw B's first attempt: {:?}",
        states(&on_a)
    );
    assert_followed_to_success(&on_b.await.unwrap(), 2);
}

#[tokio::test]
async fn a_stream_whose_listener_missed_the_change_reads_it_when_the_listener_is_back() {
    let Some(instances) = TestServer::cluster(2).await else {
        return;
    };
    let (a, b) = (&instances[0], &instances[1]);
    let receiver = Receiver::start().await;
    let token = a.writer("acme").await;
    create(
        &mut b.webhooks().await,
        &token,
        webhook("followed", &receiver.url("/hook")),
    )
    .await;
    receiver.delay(std::time::Duration::from_secs(1));
    let on_b = tokio::spawn(rest_of(emit_keyed(b, &token, "k-2").await));
    receiver.next().await;
    let on_a = tokio::spawn(rest_of(emit_keyed(a, &token, "k-2").await));

    // The listeners lose their connections and cannot reconnect (the database refuses new
    // connections) while B records the attempt: A's notification is lost.
    let url = a.store().postgres_url.clone().unwrap();
    let database = url.rsplit_once('/').unwrap().1.to_string();
    let admin_url = std::env::var("WEBHOOKD_TEST_POSTGRES_URL").unwrap();
    let admin = |sql: String| {
        let admin_url = admin_url.clone();
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
    };
    admin(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false")).await;
    admin(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{database}' AND query LIKE 'LISTEN%'"
    ))
    .await;
    let on_b = on_b.await.unwrap();
    assert_followed_to_success(&on_b, 1);
    admin(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true")).await;
    // A's listener reconnects and A reads the state it missed from the store.
    assert_followed_to_success(&on_a.await.unwrap(), 1);
}
