//! Backend-specific tests of the PostgreSQL store, each on a fresh database of the server
//! named by WEBHOOKD_TEST_POSTGRES_URL (scripts/with-postgres starts one); without it they
//! pass without running.

use sqlx::Connection;

use super::*;
use crate::model::DeliveryState;
use crate::store::IdempotencyKey;

/// A fresh database on the test server, or None when no server is configured.
async fn fresh_url() -> Option<String> {
    let admin = std::env::var("WEBHOOKD_TEST_POSTGRES_URL").ok()?;
    let name = format!("u_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    Some(format!("{base}/{name}"))
}

fn event(id: u64, created_at_ms: i64, delivery_ids: Vec<u64>) -> Event {
    Event {
        id,
        account_id: "acme".into(),
        event_type: "alert group created".into(),
        data: serde_json::json!({"n": id}),
        created_at_ms,
        delivery_ids,
    }
}

fn delivery(id: u64, event_id: u64, state: DeliveryState) -> Delivery {
    Delivery {
        id,
        event_id,
        webhook_id: 1,
        url: "http://x".into(),
        state,
        attempts: 0,
        next_attempt_ms: 5,
        request_trigger: String::new(),
        request: None,
        render_error: None,
        last_status_code: None,
        last_error: String::new(),
    }
}

fn new<'a>(
    event: &'a Event,
    deliveries: &'a [Delivery],
    idempotency: Option<IdempotencyKey<'a>>,
) -> NewEvent<'a> {
    NewEvent {
        event,
        deliveries,
        idempotency,
    }
}

fn key(k: &str) -> Option<IdempotencyKey<'_>> {
    Some(IdempotencyKey {
        account_id: "acme",
        key: k,
        ttl_ms: 60_000,
    })
}

#[tokio::test]
async fn a_second_start_finds_the_schema_and_ids_never_repeat() {
    let Some(url) = fresh_url().await else { return };
    let (a, b) = (
        PostgresStore::connect(&url).await.unwrap(),
        PostgresStore::connect(&url).await.unwrap(),
    );
    let mut seen = std::collections::HashSet::new();
    for _ in 0..300 {
        assert!(seen.insert(a.next_id().await.unwrap()));
        assert!(seen.insert(b.next_id().await.unwrap()));
    }
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_webhookd_is_refused() {
    let Some(url) = fresh_url().await else { return };
    PostgresStore::connect(&url).await.unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let error = PostgresStore::connect(&url)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("schema is at version 9999"), "{error}");
    assert!(!error.contains(url.split('@').next().unwrap().rsplit(':').next().unwrap()));
}

#[tokio::test]
async fn concurrent_emits_with_one_idempotency_key_write_one_event() {
    let Some(url) = fresh_url().await else { return };
    let store = std::sync::Arc::new(PostgresStore::connect(&url).await.unwrap());
    let mut tasks = Vec::new();
    for id in 1..=20u64 {
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let d = [delivery(100 + id, id, DeliveryState::Queued)];
            let e = event(id, 1_000, vec![d[0].id]);
            store
                .insert_events(&[new(&e, &d, key("order-1"))])
                .await
                .unwrap()[0]
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let inserted: Vec<_> = outcomes
        .iter()
        .filter(|o| **o == InsertOutcome::Inserted)
        .collect();
    assert_eq!(inserted.len(), 1, "{outcomes:?}");
    let winner = (1..=20u64)
        .find(|id| outcomes[(*id - 1) as usize] == InsertOutcome::Inserted)
        .unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| *o == InsertOutcome::Inserted || *o == InsertOutcome::Duplicate(winner))
    );
    assert_eq!(store.outbox().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_attempt_moves_the_outbox_row_logs_and_counts() {
    let Some(url) = fresh_url().await else { return };
    let store = PostgresStore::connect(&url).await.unwrap();
    let mut d = delivery(11, 1, DeliveryState::Queued);
    let e = event(1, 1_000, vec![11]);
    store
        .insert_events(&[new(&e, std::slice::from_ref(&d), None)])
        .await
        .unwrap();
    assert_eq!(store.outbox().await.unwrap()[0].due_ms, 5);
    let response = ResponseRecord {
        timestamp_ms: 2_000,
        url: d.url.clone(),
        request_trigger: String::new(),
        request_headers: None,
        request_data: None,
        status_code: Some(503),
        content: None,
        event_id: 1,
        attempt: 1,
        delivery_id: 11,
        duration_ms: 1,
        error: "HTTP 503".into(),
    };
    d.state = DeliveryState::Retrying;
    d.attempts = 1;
    d.next_attempt_ms = 3_000;
    d.last_status_code = Some(503);
    let stats = store
        .record_attempt(AttemptRecord {
            delivery: &d,
            previous_due_ms: 5,
            response: Some(&response),
            succeeded: false,
        })
        .await
        .unwrap();
    assert_eq!(
        (stats.response_seq, stats.failing_since_ms),
        (1, Some(2_000))
    );
    assert_eq!(store.get_delivery(11).await.unwrap().unwrap(), d);
    assert_eq!(store.outbox().await.unwrap()[0].due_ms, 3_000);
    d.state = DeliveryState::Succeeded;
    let stats = store
        .record_attempt(AttemptRecord {
            delivery: &d,
            previous_due_ms: 3_000,
            response: Some(&response),
            succeeded: true,
        })
        .await
        .unwrap();
    assert_eq!((stats.response_seq, stats.failing_since_ms), (2, None));
    assert!(store.outbox().await.unwrap().is_empty());
    let log = store
        .list_responses(
            1,
            Page {
                limit: 10,
                ..Page::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    let older = store
        .list_responses(
            1,
            Page {
                after: Some(log[0].0),
                limit: 10,
                offset: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    store.trim_responses(1, 2, 1).await.unwrap();
    assert_eq!(store.count_responses(1).await.unwrap(), 1);
}

#[tokio::test]
async fn retention_deletes_old_finished_events_and_expired_keys_only() {
    use DeliveryState::{Queued, Succeeded};
    let Some(url) = fresh_url().await else { return };
    let store = PostgresStore::connect(&url).await.unwrap();
    let events = [
        event(1, 1_000, vec![11]),
        event(2, 1_000, vec![21]),
        event(3, 9_000, vec![31]),
    ];
    let deliveries = [
        [delivery(11, 1, Succeeded)],
        [delivery(21, 2, Queued)],
        [delivery(31, 3, Succeeded)],
    ];
    store
        .insert_events(&[
            new(&events[0], &deliveries[0], key("a")),
            new(&events[1], &deliveries[1], None),
            new(&events[2], &deliveries[2], key("b")),
        ])
        .await
        .unwrap();
    let pruned = store.prune(5_000, 2_000, 100).await.unwrap();
    assert_eq!((pruned.events, pruned.idempotency_keys), (1, 1));
    assert!(store.get_event(1).await.unwrap().is_none());
    assert!(store.get_delivery(11).await.unwrap().is_none());
    assert!(
        store.get_event(2).await.unwrap().is_some(),
        "pending deliveries keep their event"
    );
    assert!(
        store.get_event(3).await.unwrap().is_some(),
        "recent events stay"
    );
}
