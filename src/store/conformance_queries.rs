//! The store conformance tests of the operator queries (listing events and deliveries,
//! cancellation), run against every backend by `conformance_suite!` like the others.

use std::sync::Arc;

use super::{
    AttemptRecord, Cancelled, Claim, DeliveryQuery, EventQuery, Keyset, Lease, NewEvent, Store,
};
use crate::model::{BreakerStep, Delivery, DeliveryState, Event, RenderedRequest};

async fn account(store: &dyn Store) -> String {
    format!("acct-{}", store.next_id().await.unwrap())
}

/// Stores an event of `account_id` and `event_type` at `at_ms`, with one delivery of
/// `webhook_id` per state.
async fn stored(
    store: &dyn Store,
    account_id: &str,
    event_type: &str,
    webhook_id: u64,
    at_ms: i64,
    states: &[DeliveryState],
) -> (Event, Vec<Delivery>) {
    let event_id = store.next_id().await.unwrap();
    let mut deliveries = Vec::new();
    for state in states {
        let id = store.next_id().await.unwrap();
        deliveries.push(Delivery {
            state: *state,
            request: Some(RenderedRequest {
                method: "POST".into(),
                url: "https://example.com/hook".into(),
                headers: vec![],
                body: Some("{}".into()),
                traceparent: None,
            }),
            ..Delivery::queued(
                id,
                event_id,
                webhook_id,
                "https://example.com/hook".into(),
                account_id.into(),
                at_ms,
            )
        });
    }
    let event = Event {
        id: event_id,
        account_id: account_id.into(),
        event_type: event_type.into(),
        data: serde_json::json!({"n": event_id}),
        created_at_ms: at_ms,
        delivery_ids: deliveries.iter().map(|d| d.id).collect(),
        operational: false,
    };
    let new = NewEvent {
        event: &event,
        deliveries: &deliveries,
        idempotency: None,
    };
    store.insert_events(&[new]).await.unwrap();
    (event, deliveries)
}

fn events_of<'a>(account_id: &'a str) -> EventQuery<'a> {
    EventQuery {
        account_id,
        event_type: None,
        created_after_ms: None,
        created_before_ms: None,
        after: None,
        limit: 100,
    }
}

fn deliveries_of<'a>(account_id: &'a str) -> DeliveryQuery<'a> {
    DeliveryQuery {
        account_id,
        webhook_id: None,
        states: &[],
        created_after_ms: None,
        created_before_ms: None,
        after: None,
        limit: 100,
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> u64) -> Vec<u64> {
    items.iter().map(id).collect()
}

pub async fn events_and_deliveries_list_newest_first_per_account_by_keyset(store: Arc<dyn Store>) {
    use DeliveryState::{Failed, Queued, Succeeded};
    let store = store.as_ref();
    let (acme, other) = (account(store).await, account(store).await);
    let (hook, second) = (
        store.next_id().await.unwrap(),
        store.next_id().await.unwrap(),
    );
    let (a, a_deliveries) = stored(store, &acme, "resolve", hook, 1_000, &[Succeeded]).await;
    // Two events in one millisecond: ordered by id.
    let (b, b_deliveries) = stored(store, &acme, "acknowledge", hook, 2_000, &[Failed]).await;
    let (c, c_deliveries) = stored(store, &acme, "resolve", second, 2_000, &[Queued]).await;
    stored(
        store,
        &other,
        "resolve",
        store.next_id().await.unwrap(),
        2_500,
        &[Failed],
    )
    .await;

    let all = store.list_events(&events_of(&acme)).await.unwrap();
    assert_eq!(ids(&all, |e| e.id), [c.id, b.id, a.id]);
    assert_eq!(all[0], c);
    let resolves = EventQuery {
        event_type: Some("resolve"),
        ..events_of(&acme)
    };
    assert_eq!(
        ids(&store.list_events(&resolves).await.unwrap(), |e| e.id),
        [c.id, a.id]
    );
    // Time window: created_after <= created_at < created_before.
    let window = EventQuery {
        created_after_ms: Some(1_000),
        created_before_ms: Some(2_000),
        ..events_of(&acme)
    };
    assert_eq!(
        ids(&store.list_events(&window).await.unwrap(), |e| e.id),
        [a.id]
    );
    // Pages continue strictly after the last item.
    let first = EventQuery {
        limit: 1,
        ..events_of(&acme)
    };
    assert_eq!(
        ids(&store.list_events(&first).await.unwrap(), |e| e.id),
        [c.id]
    );
    let rest = EventQuery {
        after: Some(Keyset {
            created_at_ms: c.created_at_ms,
            id: c.id,
        }),
        ..events_of(&acme)
    };
    assert_eq!(
        ids(&store.list_events(&rest).await.unwrap(), |e| e.id),
        [b.id, a.id]
    );

    let all = store.list_deliveries(&deliveries_of(&acme)).await.unwrap();
    let expected = [c_deliveries[0].id, b_deliveries[0].id, a_deliveries[0].id];
    assert_eq!(ids(&all, |d| d.id), expected);
    assert_eq!(all[2], a_deliveries[0]);
    let of_hook = DeliveryQuery {
        webhook_id: Some(hook),
        ..deliveries_of(&acme)
    };
    let listed = store.list_deliveries(&of_hook).await.unwrap();
    assert_eq!(
        ids(&listed, |d| d.id),
        [b_deliveries[0].id, a_deliveries[0].id]
    );
    let not_succeeded = DeliveryQuery {
        states: &[Queued, Failed],
        ..deliveries_of(&acme)
    };
    let listed = store.list_deliveries(&not_succeeded).await.unwrap();
    assert_eq!(
        ids(&listed, |d| d.id),
        [c_deliveries[0].id, b_deliveries[0].id]
    );
    let failed_of_hook_before = DeliveryQuery {
        webhook_id: Some(hook),
        states: &[Failed],
        created_before_ms: Some(2_001),
        ..deliveries_of(&acme)
    };
    let listed = store.list_deliveries(&failed_of_hook_before).await.unwrap();
    assert_eq!(ids(&listed, |d| d.id), [b_deliveries[0].id]);

    // A state change moves a delivery between state filters.
    let mut retried = c_deliveries[0].clone();
    retried.state = Failed;
    retried.attempts = 1;
    retried.updated_at_ms = 3_000;
    store
        .record_attempt(AttemptRecord {
            delivery: &retried,
            previous_due_ms: c_deliveries[0].next_attempt_ms,
            response: None,
            succeeded: false,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    let failed = DeliveryQuery {
        states: &[Failed],
        ..deliveries_of(&acme)
    };
    let listed = store.list_deliveries(&failed).await.unwrap();
    assert_eq!(ids(&listed, |d| d.id), [retried.id, b_deliveries[0].id]);
    assert_eq!(listed[0].updated_at_ms, 3_000);
    let queued = DeliveryQuery {
        states: &[Queued],
        ..deliveries_of(&acme)
    };
    assert!(store.list_deliveries(&queued).await.unwrap().is_empty());

    // Retention takes the index entries with the records.
    store.prune(i64::MAX, 0, 1000).await.unwrap();
    assert!(
        store
            .list_events(&events_of(&acme))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_deliveries(&deliveries_of(&acme))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_cancelled_delivery_leaves_the_outbox_and_an_attempt_in_flight_keeps_it_cancelled(
    store: Arc<dyn Store>,
) {
    use DeliveryState::{Cancelled as CancelledState, Queued, Retrying, Succeeded};
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = store.next_id().await.unwrap();
    let (_, deliveries) = stored(store, &acme, "resolve", hook, 1_000, &[Queued, Queued]).await;
    let (first, second) = (&deliveries[0], &deliveries[1]);
    let in_outbox = |id: u64| async move {
        // Seen by a claim far in the future (every lease expired), under an ended lease.
        let claim = Claim {
            lease: Lease {
                owner: 99,
                until_ms: 0,
            },
            now_ms: i64::MAX / 2,
            due_before_ms: i64::MAX,
            per_webhook: usize::MAX,
            limit: usize::MAX,
            skip: &[],
        };
        store
            .claim(claim)
            .await
            .unwrap()
            .iter()
            .any(|e| e.delivery_id == id)
    };
    assert!(in_outbox(first.id).await);

    let Cancelled::Now(cancelled) = store.cancel_delivery(first.id, 4_000).await.unwrap() else {
        panic!("not cancelled")
    };
    assert_eq!(
        (cancelled.state, cancelled.updated_at_ms),
        (CancelledState, 4_000)
    );
    assert_eq!(
        store.get_delivery(first.id).await.unwrap(),
        Some(cancelled.clone())
    );
    assert!(!in_outbox(first.id).await);
    assert_eq!(
        store.cancel_delivery(first.id, 5_000).await.unwrap(),
        Cancelled::AlreadyFinal(cancelled)
    );
    assert_eq!(
        store.cancel_delivery(u64::MAX / 2, 5_000).await.unwrap(),
        Cancelled::Missing
    );

    // An attempt that was in flight records a retry: it stays CANCELLED, with no retry due.
    let mut retry = first.clone();
    retry.state = Retrying;
    retry.attempts = 1;
    retry.next_attempt_ms = 9_000;
    retry.last_status_code = Some(503);
    store
        .record_attempt(AttemptRecord {
            delivery: &retry,
            previous_due_ms: first.next_attempt_ms,
            response: None,
            succeeded: false,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    let kept = store.get_delivery(first.id).await.unwrap().unwrap();
    assert_eq!((kept.state, kept.attempts), (CancelledState, 1));
    assert!(!in_outbox(first.id).await);
    let cancelled_ones = DeliveryQuery {
        states: &[CancelledState],
        ..deliveries_of(&acme)
    };
    let listed = store.list_deliveries(&cancelled_ones).await.unwrap();
    assert_eq!(ids(&listed, |d| d.id), [first.id]);

    // An attempt in flight that succeeds is logged, and the delivery stays CANCELLED too.
    store.cancel_delivery(second.id, 4_000).await.unwrap();
    let mut done = second.clone();
    done.state = Succeeded;
    done.attempts = 1;
    store
        .record_attempt(AttemptRecord {
            delivery: &done,
            previous_due_ms: second.next_attempt_ms,
            response: None,
            succeeded: true,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    let now = store.get_delivery(second.id).await.unwrap().unwrap();
    assert_eq!((now.state, now.attempts), (CancelledState, 1));
    assert!(!in_outbox(second.id).await);
}
