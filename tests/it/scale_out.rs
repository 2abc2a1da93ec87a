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
