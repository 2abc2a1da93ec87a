//! The store conformance suite: store-level tests written once against the `Store` trait and
//! run against every backend. A backend's test module invokes
//! `conformance_suite!(open)`, where `async fn open() -> Option<TestBackend>` opens a fresh
//! store (None skips the suite, e.g. when the backend's database is not configured).
//!
//! `open` gives each test a store of its own (retention, for one, sweeps the whole store);
//! tests also keep to accounts and ids of their own.

mod attempts;
mod breaker;
mod cancel;
mod changes;

use std::sync::Arc;

pub use attempts::*;
pub use breaker::*;
pub use cancel::*;
pub use changes::*;
use std::time::Duration;

use super::{
    AttemptRecord, Claim, IdempotencyKey, InsertOutcome, Lease, NewEvent, OutboxEntry, Owner, Page,
    Sealed, SecretBox, Store,
};
use crate::error::Error;
use crate::model::{
    ApiToken, BreakerStep, Delivery, DeliveryState, Event, EventType, Ordering, RenderedRequest,
    ResponseRecord, Scope, Webhook, now_ms,
};

/// The instance every backend under test is opened for: what it writes is leased to it.
pub const OWNER: Owner = Owner {
    id: 1,
    lease: Duration::from_secs(30),
};

pub use super::conformance_queries::*;

/// A store under test and whatever keeps it alive (a temporary directory, a database).
pub struct TestBackend {
    /// The backend, unsealed.
    pub store: Arc<dyn Store>,
    /// Dropped after the test and the store.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Generates one `#[tokio::test]` per conformance test, each on a store from `$open`.
macro_rules! conformance_suite {
    ($open:path) => {
        $crate::store::conformance::conformance_suite!(
            @tests $open,
            ids_are_unique_and_increasing,
            webhooks_list_per_account_in_creation_order_and_page,
            deleting_a_webhook_removes_its_stats_and_log,
            tokens_are_found_by_hash_and_revoked_by_id,
            an_event_is_stored_with_its_deliveries_and_due_outbox_entries,
            an_idempotency_key_returns_the_first_event_while_it_holds,
            redelivery_adds_deliveries_to_their_events,
            attempts_move_the_outbox_log_and_update_the_stats,
            concurrent_attempts_of_one_webhook_all_land_with_the_right_stats,
            the_response_log_is_trimmed_to_its_newest_entries,
            retention_deletes_old_finished_events_and_expired_keys_only,
            claims_take_each_webhooks_earliest_due_entries_within_their_bounds,
            a_lease_keeps_other_owners_away_until_it_expires_or_is_released,
            new_entries_are_born_leased_and_attempts_keep_or_release_the_lease,
            through_the_sealed_layer_the_backend_holds_no_secret_in_clear,
            event_types_are_unique_per_account_and_list_in_name_order,
            event_types_are_replaced_and_deleted_only_when_they_exist,
            events_and_deliveries_list_newest_first_per_account_by_keyset,
            a_cancelled_delivery_leaves_the_outbox_and_an_attempt_in_flight_keeps_it_cancelled,
            the_change_log_holds_each_accounts_state_changes_in_order_once,
            pruning_the_change_log_expires_older_cursors_only,
            the_stored_breaker_opens_backs_off_and_closes_reporting_each_change_once,
            concurrent_failures_add_up_and_only_one_of_them_opens_the_breaker,
            claims_pass_over_an_open_breaker_and_take_one_probe_once_it_is_half_open,
            an_ordered_delivery_waits_without_an_outbox_entry_until_the_one_before_is_final,
            a_cancelled_head_holds_its_queue_until_its_lease_holder_lets_go
        );
    };
    (@tests $open:path, $($test:ident),*) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some(backend) = $open().await else {
                    return;
                };
                let $crate::store::conformance::TestBackend { store, guard } = backend;
                $crate::store::conformance::$test(store).await;
                // The store is gone (the test owned it) before what it lives in.
                drop(guard);
            }
        )*
    };
}
pub(crate) use conformance_suite;

/// An account name no other test uses.
async fn account(store: &dyn Store) -> String {
    format!("acct-{}", store.next_id().await.unwrap())
}

async fn webhook(store: &dyn Store, account_id: &str, name: &str) -> Webhook {
    Webhook {
        id: store.next_id().await.unwrap(),
        account_id: account_id.into(),
        name: name.into(),
        is_webhook_enabled: true,
        url: "https://example.com/hook".into(),
        forward_all: true,
        http_method: "POST".into(),
        trigger_types: vec!["alert group created".into()],
        created_at_ms: 1_000,
        ..Webhook::default()
    }
}

fn event(id: u64, account_id: &str, created_at_ms: i64, deliveries: &[Delivery]) -> Event {
    Event {
        id,
        account_id: account_id.into(),
        event_type: "alert group created".into(),
        data: serde_json::json!({"alert_group": {"id": "I1"}}),
        created_at_ms,
        delivery_ids: deliveries.iter().map(|d| d.id).collect(),
        operational: false,
    }
}

async fn delivery(
    store: &dyn Store,
    event_id: u64,
    webhook_id: u64,
    state: DeliveryState,
) -> Delivery {
    let id = store.next_id().await.unwrap();
    Delivery {
        state,
        next_attempt_ms: 5_000,
        request: Some(RenderedRequest {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            headers: vec![("X-Team".into(), "sre".into())],
            body: Some(r#"{"alert_group":{"id":"I1"}}"#.into()),
            traceparent: None,
        }),
        ..Delivery::queued(
            id,
            event_id,
            webhook_id,
            "https://example.com/hook".into(),
            String::new(),
            0,
        )
    }
}

/// Stores an event of `account_id` with one delivery per state, without idempotency key.
async fn emitted(
    store: &dyn Store,
    account_id: &str,
    webhook_id: u64,
    created_at_ms: i64,
    states: &[DeliveryState],
) -> (Event, Vec<Delivery>) {
    let id = store.next_id().await.unwrap();
    let mut deliveries = Vec::new();
    for state in states {
        deliveries.push(delivery(store, id, webhook_id, *state).await);
    }
    let event = event(id, account_id, created_at_ms, &deliveries);
    let new = NewEvent {
        event: &event,
        deliveries: &deliveries,
        idempotency: None,
    };
    let outcomes = store.insert_events(&[new]).await.unwrap();
    assert_eq!(outcomes, [InsertOutcome::Inserted]);
    (event, deliveries)
}

pub(crate) fn response(
    delivery: &Delivery,
    attempt: u32,
    at_ms: i64,
    status: u16,
) -> ResponseRecord {
    ResponseRecord {
        timestamp_ms: at_ms,
        url: delivery.url.clone(),
        request_trigger: String::new(),
        request_headers: Some(r#"{"X-Team":"sre"}"#.into()),
        request_data: delivery.request.as_ref().and_then(|r| r.body.clone()),
        status_code: Some(status),
        content: Some("answer".into()),
        event_id: delivery.event_id,
        attempt,
        delivery_id: delivery.id,
        duration_ms: 3,
        error: String::new(),
    }
}

/// Every item of a listing.
pub(crate) const ALL: Page = Page {
    after: None,
    offset: 0,
    limit: usize::MAX,
};

/// The outbox entries of these deliveries: (due, delivery). Seen by a claim far in the
/// future (every lease has expired) under a lease that has already ended.
async fn outbox_of(store: &dyn Store, deliveries: &[&Delivery]) -> Vec<(i64, u64)> {
    let ids: Vec<u64> = deliveries.iter().map(|d| d.id).collect();
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
    let mut entries: Vec<(i64, u64)> = store
        .claim(claim)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| ids.contains(&e.delivery_id))
        .map(|e| (e.due_ms, e.delivery_id))
        .collect();
    entries.sort();
    entries
}

pub async fn ids_are_unique_and_increasing(store: Arc<dyn Store>) {
    let mut last = store.next_id().await.unwrap();
    for _ in 0..1000 {
        let next = store.next_id().await.unwrap();
        assert!(next > last, "{next} after {last}");
        last = next;
    }
}

pub async fn webhooks_list_per_account_in_creation_order_and_page(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let (acme, globex) = (account(store).await, account(store).await);
    let mut created = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let hook = webhook(store, &acme, name).await;
        store.put_webhook(&hook).await.unwrap();
        created.push(hook);
    }
    store
        .put_webhook(&webhook(store, &globex, "other").await)
        .await
        .unwrap();
    assert_eq!(store.count_webhooks(&acme).await.unwrap(), 4);
    assert!(store.count_all_webhooks().await.unwrap() >= 5);
    let names = |hooks: Vec<Webhook>| hooks.into_iter().map(|w| w.name).collect::<Vec<_>>();
    let all = store.list_webhooks(&acme, ALL).await.unwrap();
    assert_eq!(all, created);
    let offset = Page {
        offset: 1,
        limit: 2,
        ..ALL
    };
    assert_eq!(
        names(store.list_webhooks(&acme, offset).await.unwrap()),
        ["b", "c"]
    );
    let after = Page {
        after: Some(created[1].id),
        limit: 10,
        ..ALL
    };
    assert_eq!(
        names(store.list_webhooks(&acme, after).await.unwrap()),
        ["c", "d"]
    );

    let mut renamed = created[0].clone();
    renamed.name = "a2".into();
    store.put_webhook(&renamed).await.unwrap();
    assert_eq!(store.get_webhook(renamed.id).await.unwrap(), Some(renamed));
    assert_eq!(
        store.count_webhooks(&acme).await.unwrap(),
        4,
        "replaced, not added"
    );
    assert_eq!(
        store
            .get_webhook(store.next_id().await.unwrap())
            .await
            .unwrap(),
        None
    );
}

pub async fn deleting_a_webhook_removes_its_stats_and_log(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "doomed").await;
    store.put_webhook(&hook).await.unwrap();
    let (_, deliveries) = emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Queued]).await;
    let mut attempted = deliveries[0].clone();
    attempted.state = DeliveryState::Succeeded;
    attempted.attempts = 1;
    store
        .record_attempt(AttemptRecord {
            delivery: &attempted,
            previous_due_ms: deliveries[0].next_attempt_ms,
            response: Some(&response(&attempted, 1, 2_000, 200)),
            succeeded: true,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    assert_eq!(store.count_responses(hook.id).await.unwrap(), 1);

    assert!(store.delete_webhook(hook.id).await.unwrap());
    assert!(
        !store.delete_webhook(hook.id).await.unwrap(),
        "already gone"
    );
    assert_eq!(store.get_webhook(hook.id).await.unwrap(), None);
    assert_eq!(store.count_webhooks(&acme).await.unwrap(), 0);
    assert!(store.list_webhooks(&acme, ALL).await.unwrap().is_empty());
    assert_eq!(store.count_responses(hook.id).await.unwrap(), 0);
    assert_eq!(
        store.webhook_stats(hook.id).await.unwrap(),
        Default::default()
    );
}

pub async fn tokens_are_found_by_hash_and_revoked_by_id(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let token = ApiToken {
        id: store.next_id().await.unwrap(),
        account_id: account(store).await,
        scopes: vec![Scope::Read, Scope::Write],
    };
    let hash = [token.id as u8; 32];
    store.put_token(&hash, &token).await.unwrap();
    assert_eq!(
        store.token_by_hash(&hash).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.token_by_hash(&[0xfe; 32]).await.unwrap(), None);
    assert!(store.delete_token(token.id).await.unwrap());
    assert_eq!(store.token_by_hash(&hash).await.unwrap(), None);
    assert!(!store.delete_token(token.id).await.unwrap());
}

pub async fn an_event_is_stored_with_its_deliveries_and_due_outbox_entries(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    let states = [DeliveryState::Queued, DeliveryState::Skipped];
    let (stored, deliveries) = emitted(store, &acme, hook.id, 1_000, &states).await;
    assert_eq!(store.get_event(stored.id).await.unwrap(), Some(stored));
    for d in &deliveries {
        assert_eq!(store.get_delivery(d.id).await.unwrap().as_ref(), Some(d));
    }
    assert_eq!(
        outbox_of(store, &[&deliveries[0], &deliveries[1]]).await,
        [(5_000, deliveries[0].id)],
        "only the delivery still to attempt is due"
    );

    // Several events in one call, each with its outcome.
    let (a, b) = (
        store.next_id().await.unwrap(),
        store.next_id().await.unwrap(),
    );
    let batch = [event(a, &acme, 1_000, &[]), event(b, &acme, 1_000, &[])];
    let new: Vec<NewEvent<'_>> = batch
        .iter()
        .map(|e| NewEvent {
            event: e,
            deliveries: &[],
            idempotency: None,
        })
        .collect();
    let outcomes = store.insert_events(&new).await.unwrap();
    assert_eq!(outcomes, [InsertOutcome::Inserted, InsertOutcome::Inserted]);
    assert!(store.get_event(b).await.unwrap().is_some());
    assert_eq!(
        store
            .get_event(store.next_id().await.unwrap())
            .await
            .unwrap(),
        None
    );
}

pub async fn an_idempotency_key_returns_the_first_event_while_it_holds(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let acme = account(store).await;
    let key = IdempotencyKey {
        account_id: &acme,
        key: "order-1",
        ttl_ms: 60_000,
    };
    let ids = [
        store.next_id().await.unwrap(),
        store.next_id().await.unwrap(),
        store.next_id().await.unwrap(),
        store.next_id().await.unwrap(),
    ];
    let at = |id: u64, at_ms: i64| event(id, &acme, at_ms, &[]);
    let first = keyed(store, at(ids[0], 1_000), &[], key).await;
    assert_eq!(first, [InsertOutcome::Inserted]);
    let again = keyed(store, at(ids[1], 2_000), &[], key).await;
    assert_eq!(again, [InsertOutcome::Duplicate(ids[0])]);
    assert_eq!(
        store.get_event(ids[1]).await.unwrap(),
        None,
        "nothing written"
    );
    let other_account = IdempotencyKey {
        account_id: "someone-else",
        ..key
    };
    let elsewhere = keyed(store, at(ids[2], 2_000), &[], other_account).await;
    assert_eq!(elsewhere, [InsertOutcome::Inserted]);
    // Once the key expired, the same key makes a new event.
    let later = keyed(store, at(ids[3], 70_000), &[], key).await;
    assert_eq!(later, [InsertOutcome::Inserted]);
}

/// Inserts one event with an idempotency key.
async fn keyed(
    store: &dyn Store,
    event: Event,
    deliveries: &[Delivery],
    key: IdempotencyKey<'_>,
) -> Vec<InsertOutcome> {
    let new = NewEvent {
        event: &event,
        deliveries,
        idempotency: Some(key),
    };
    store.insert_events(&[new]).await.unwrap()
}

pub async fn redelivery_adds_deliveries_to_their_events(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    let (first, _) = emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Failed]).await;
    let (second, _) = emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Failed]).await;
    let copies = [
        delivery(store, first.id, hook.id, DeliveryState::Queued).await,
        delivery(store, second.id, hook.id, DeliveryState::Queued).await,
        delivery(store, first.id, hook.id, DeliveryState::Queued).await,
    ];
    store.insert_deliveries(&copies).await.unwrap();
    for copy in &copies {
        assert_eq!(
            store.get_delivery(copy.id).await.unwrap().as_ref(),
            Some(copy)
        );
    }
    let first = store.get_event(first.id).await.unwrap().unwrap();
    assert_eq!(first.delivery_ids[1..], [copies[0].id, copies[2].id]);
    let second = store.get_event(second.id).await.unwrap().unwrap();
    assert_eq!(second.delivery_ids[1..], [copies[1].id]);
    assert_eq!(
        outbox_of(store, &copies.iter().collect::<Vec<_>>())
            .await
            .len(),
        3
    );

    let missing = store.next_id().await.unwrap();
    let orphan = delivery(store, missing, hook.id, DeliveryState::Queued).await;
    let error = store.insert_deliveries(&[orphan]).await.unwrap_err();
    assert!(
        matches!(error, Error::NotFound { kind: "event", .. }),
        "{error:?}"
    );
}

pub async fn attempts_move_the_outbox_log_and_update_the_stats(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    store.put_webhook(&hook).await.unwrap();
    let (_, deliveries) = emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Queued]).await;
    let queued = &deliveries[0];

    // A failed attempt: RETRYING, due later, logged, failing since its time.
    let mut retrying = queued.clone();
    retrying.state = DeliveryState::Retrying;
    retrying.attempts = 1;
    retrying.next_attempt_ms = 9_000;
    retrying.last_status_code = Some(503);
    retrying.last_error = "HTTP 503".into();
    let failed = response(&retrying, 1, 6_000, 503);
    let stats = store
        .record_attempt(AttemptRecord {
            delivery: &retrying,
            previous_due_ms: queued.next_attempt_ms,
            response: Some(&failed),
            succeeded: false,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (
            stats.last_failure_ms,
            stats.failing_since_ms,
            stats.response_seq
        ),
        (Some(6_000), Some(6_000), 1)
    );
    assert_eq!(
        store.get_delivery(queued.id).await.unwrap(),
        Some(retrying.clone())
    );
    assert_eq!(outbox_of(store, &[queued]).await, [(9_000, queued.id)]);

    // A successful retry: final, off the outbox, the failure run over.
    let mut succeeded = retrying.clone();
    succeeded.state = DeliveryState::Succeeded;
    succeeded.attempts = 2;
    succeeded.last_status_code = Some(200);
    succeeded.last_error.clear();
    let ok = response(&succeeded, 2, 10_000, 200);
    let stats = store
        .record_attempt(AttemptRecord {
            delivery: &succeeded,
            previous_due_ms: retrying.next_attempt_ms,
            response: Some(&ok),
            succeeded: true,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (
            stats.last_success_ms,
            stats.last_failure_ms,
            stats.failing_since_ms,
            stats.response_seq
        ),
        (Some(10_000), Some(6_000), None, 2)
    );
    assert_eq!(store.webhook_stats(hook.id).await.unwrap(), stats);
    assert_eq!(
        store.get_delivery(queued.id).await.unwrap(),
        Some(succeeded)
    );
    assert!(outbox_of(store, &[queued]).await.is_empty());

    // The log, newest first, the logged request body intact.
    assert_eq!(store.count_responses(hook.id).await.unwrap(), 2);
    let log = store.list_responses(hook.id, ALL).await.unwrap();
    let records: Vec<&ResponseRecord> = log.iter().map(|(_, r)| r).collect();
    assert_eq!(records, [&ok, &failed]);
    let next = Page {
        after: Some(log[0].0),
        limit: 10,
        ..ALL
    };
    let rest = store.list_responses(hook.id, next).await.unwrap();
    assert_eq!(rest.iter().map(|(_, r)| r).collect::<Vec<_>>(), [&failed]);
}

pub async fn the_response_log_is_trimmed_to_its_newest_entries(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    store.put_webhook(&hook).await.unwrap();
    let (_, deliveries) = emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Queued]).await;
    let mut current = deliveries[0].clone();
    let mut seq = 0;
    for attempt in 1..=5 {
        let previous_due_ms = current.next_attempt_ms;
        current.state = DeliveryState::Retrying;
        current.attempts = attempt;
        current.next_attempt_ms += 1_000;
        let logged = response(&current, attempt, 1_000 * i64::from(attempt), 503);
        let stats = store
            .record_attempt(AttemptRecord {
                delivery: &current,
                previous_due_ms,
                response: Some(&logged),
                succeeded: false,
                breaker: BreakerStep::default(),
                lease: None,
            })
            .await
            .unwrap();
        seq = stats.response_seq;
    }
    store.trim_responses(hook.id, seq, 2).await.unwrap();
    let log = store.list_responses(hook.id, ALL).await.unwrap();
    let attempts: Vec<u32> = log.iter().map(|(_, r)| r.attempt).collect();
    assert_eq!(attempts, [5, 4]);
    assert_eq!(store.count_responses(hook.id).await.unwrap(), 2);
    assert_eq!(
        outbox_of(store, &[&current]).await,
        [(current.next_attempt_ms, current.id)]
    );
    store
        .remove_outbox_entry(OutboxEntry {
            due_ms: current.next_attempt_ms,
            delivery_id: current.id,
            webhook_id: current.webhook_id,
        })
        .await
        .unwrap();
    assert!(outbox_of(store, &[&current]).await.is_empty());
}

pub async fn retention_deletes_old_finished_events_and_expired_keys_only(store: Arc<dyn Store>) {
    use DeliveryState::{Queued, Succeeded};
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    let key = |k: &'static str| IdempotencyKey {
        account_id: &acme,
        key: k,
        ttl_ms: i64::MAX,
    };
    let (old_done, old_done_delivery) = (
        store.next_id().await.unwrap(),
        store.next_id().await.unwrap(),
    );
    let mut done = delivery(store, old_done, hook.id, Succeeded).await;
    done.id = old_done_delivery;
    let inserted = keyed(
        store,
        event(old_done, &acme, 1_000, &[done.clone()]),
        &[done],
        key("a"),
    )
    .await;
    assert_eq!(inserted, [InsertOutcome::Inserted]);
    let (old_pending, pending) = emitted(store, &acme, hook.id, 1_000, &[Queued]).await;
    let recent = store.next_id().await.unwrap();
    let inserted = keyed(store, event(recent, &acme, 9_000, &[]), &[], key("b")).await;
    assert_eq!(inserted, [InsertOutcome::Inserted]);

    // A budget of one record per pass: passes go on until there is no more.
    let mut passes = 0;
    loop {
        passes += 1;
        let pass = store.prune(5_000, 2_000, 1).await.unwrap();
        if !pass.more {
            break;
        }
        assert!(passes < 10_000, "retention never finished");
    }
    assert!(passes > 1, "a budget of one stops early");
    assert_eq!(store.get_event(old_done).await.unwrap(), None);
    assert_eq!(store.get_delivery(old_done_delivery).await.unwrap(), None);
    assert!(
        store.get_event(old_pending.id).await.unwrap().is_some(),
        "pending deliveries keep their event"
    );
    assert!(store.get_delivery(pending[0].id).await.unwrap().is_some());
    assert!(
        store.get_event(recent).await.unwrap().is_some(),
        "recent events stay"
    );
    // Key "a" (used at 1 000, before 2 000) is gone, key "b" (9 000) still holds.
    let again = event(store.next_id().await.unwrap(), &acme, 10_000, &[]);
    assert_eq!(
        keyed(store, again, &[], key("a")).await,
        [InsertOutcome::Inserted]
    );
    let again = event(store.next_id().await.unwrap(), &acme, 10_000, &[]);
    assert_eq!(
        keyed(store, again, &[], key("b")).await,
        [InsertOutcome::Duplicate(recent)]
    );
}

pub async fn through_the_sealed_layer_the_backend_holds_no_secret_in_clear(
    backend: Arc<dyn Store>,
) {
    let dir = tempfile::tempdir().unwrap();
    let secrets = SecretBox::load_or_create(&dir.path().join("secret.key")).unwrap();
    let sealed = Sealed::new(Arc::clone(&backend), secrets);
    let acme = account(&sealed).await;
    let mut hook = webhook(&sealed, &acme, "secretive").await;
    hook.url = "https://alice:url-secret@example.com/a".into();
    hook.urls = vec!["https://carol:urls-secret@example.com/b".into()];
    hook.password = Some("password-secret".into());
    hook.authorization_header = Some("Bearer authorization-secret".into());
    hook.secret = Some("cloudflare-secret".into());
    hook.signing_secrets = vec![crate::model::SigningSecret {
        secret: "whsec_signingsecretAAAAAAAAAAAAAAAAAAAA".into(),
        expires_at_ms: None,
    }];
    hook.custom_headers = [("X-Api".to_string(), "header-secret".to_string())].into();
    sealed.put_webhook(&hook).await.unwrap();
    let event = store_event(&sealed, &acme, &hook).await;
    let stored_delivery = sealed
        .get_delivery(event.delivery_ids[0])
        .await
        .unwrap()
        .unwrap();

    let shown = |value: String| {
        for secret in [
            "url-secret",
            "urls-secret",
            "password-secret",
            "authorization-secret",
            "cloudflare-secret",
            "signingsecret",
            "header-secret",
        ] {
            assert!(
                !value.contains(secret),
                "the backend holds {secret}: {value}"
            );
        }
    };
    let stored = backend.get_webhook(hook.id).await.unwrap().unwrap();
    shown(format!("{stored:?}"));
    let listed = backend.list_webhooks(&acme, ALL).await.unwrap();
    shown(format!("{listed:?}"));
    let stored = backend
        .get_delivery(stored_delivery.id)
        .await
        .unwrap()
        .unwrap();
    shown(format!("{stored:?}"));

    // Through the layer everything reads as it was written.
    assert_eq!(
        sealed.get_webhook(hook.id).await.unwrap(),
        Some(hook.clone())
    );
    assert_eq!(
        sealed.list_webhooks(&acme, ALL).await.unwrap(),
        [hook.clone()]
    );
    assert_eq!(stored_delivery.url, hook.url);
    assert_eq!(stored_delivery.request.as_ref().unwrap().url, hook.url);

    // An attempt record and a redelivery keep the delivery's secrets sealed too.
    let mut retrying = stored_delivery.clone();
    retrying.state = DeliveryState::Retrying;
    retrying.attempts = 1;
    sealed
        .record_attempt(AttemptRecord {
            delivery: &retrying,
            previous_due_ms: stored_delivery.next_attempt_ms,
            response: None,
            succeeded: false,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    let mut copy = stored_delivery.clone();
    copy.id = sealed.next_id().await.unwrap();
    sealed.insert_deliveries(&[copy.clone()]).await.unwrap();
    for id in [retrying.id, copy.id] {
        let stored = backend.get_delivery(id).await.unwrap().unwrap();
        shown(format!("{stored:?}"));
    }
    assert_eq!(
        sealed.get_delivery(retrying.id).await.unwrap(),
        Some(retrying)
    );
    assert_eq!(sealed.get_delivery(copy.id).await.unwrap(), Some(copy));
}

/// An event with one delivery to `hook`'s URL (credentials included), through `store`.
async fn store_event(store: &dyn Store, account_id: &str, hook: &Webhook) -> Event {
    let id = store.next_id().await.unwrap();
    let mut d = delivery(store, id, hook.id, DeliveryState::Queued).await;
    d.url = hook.url.clone();
    if let Some(request) = d.request.as_mut() {
        request.url = hook.url.clone();
    }
    let deliveries = [d];
    let event = event(id, account_id, 1_000, &deliveries);
    let new = NewEvent {
        event: &event,
        deliveries: &deliveries,
        idempotency: None,
    };
    store.insert_events(&[new]).await.unwrap();
    event
}

fn event_type(account_id: &str, name: &str, revision: u64) -> EventType {
    EventType {
        account_id: account_id.into(),
        name: name.into(),
        description: format!("{name} happened"),
        json_schema: Some(serde_json::json!({"type": "object", "required": ["id"]})),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
        revision,
    }
}

pub async fn event_types_are_unique_per_account_and_list_in_name_order(store: Arc<dyn Store>) {
    let (a, b) = (account(&*store).await, account(&*store).await);
    for name in [
        "incident.resolved",
        "alert group created",
        "incident.created",
    ] {
        assert!(
            store
                .insert_event_type(&event_type(&a, name, 1))
                .await
                .unwrap()
        );
    }
    // A second create of a name is refused and changes nothing; another account may use it.
    let mut again = event_type(&a, "incident.created", 2);
    again.description = "overwritten?".into();
    assert!(!store.insert_event_type(&again).await.unwrap());
    assert!(
        store
            .insert_event_type(&event_type(&b, "incident.created", 3))
            .await
            .unwrap()
    );
    let stored = store.get_event_type(&a, "incident.created").await.unwrap();
    assert_eq!(stored, Some(event_type(&a, "incident.created", 1)));
    assert_eq!(store.get_event_type(&a, "incident").await.unwrap(), None);

    let names = |types: Vec<EventType>| types.into_iter().map(|t| t.name).collect::<Vec<_>>();
    let all = store.list_event_types(&a, None, usize::MAX).await.unwrap();
    assert_eq!(
        names(all),
        [
            "alert group created",
            "incident.created",
            "incident.resolved"
        ]
    );
    let first = store.list_event_types(&a, None, 2).await.unwrap();
    assert_eq!(names(first), ["alert group created", "incident.created"]);
    let rest = store
        .list_event_types(&a, Some("incident.created"), 2)
        .await
        .unwrap();
    assert_eq!(names(rest), ["incident.resolved"]);
    assert_eq!(store.count_event_types(&a).await.unwrap(), 3);
    assert_eq!(store.count_event_types(&b).await.unwrap(), 1);
}

pub async fn event_types_are_replaced_and_deleted_only_when_they_exist(store: Arc<dyn Store>) {
    let a = account(&*store).await;
    let missing = event_type(&a, "never.created", 1);
    assert!(!store.replace_event_type(&missing).await.unwrap());
    assert_eq!(
        store.get_event_type(&a, "never.created").await.unwrap(),
        None
    );

    assert!(
        store
            .insert_event_type(&event_type(&a, "x", 1))
            .await
            .unwrap()
    );
    let mut changed = event_type(&a, "x", 2);
    changed.json_schema = None;
    changed.updated_at_ms = 2_000;
    assert!(store.replace_event_type(&changed).await.unwrap());
    assert_eq!(store.get_event_type(&a, "x").await.unwrap(), Some(changed));

    assert!(store.delete_event_type(&a, "x").await.unwrap());
    assert!(!store.delete_event_type(&a, "x").await.unwrap());
    assert_eq!(store.get_event_type(&a, "x").await.unwrap(), None);
    assert_eq!(store.count_event_types(&a).await.unwrap(), 0);
}

/// A time after every lease the store's own writes took (they last `OWNER.lease`).
fn after_born_leases() -> i64 {
    now_ms() + 10 * 60_000
}

fn claim_at(owner: u64, now_ms: i64, per_webhook: usize, limit: usize) -> Claim<'static> {
    Claim {
        lease: Lease {
            owner,
            until_ms: now_ms + 1_000,
        },
        now_ms,
        due_before_ms: now_ms,
        per_webhook,
        limit,
        skip: &[],
    }
}

/// `count` queued deliveries of one webhook, due 1_000, 2_000, ...
async fn backlog(
    store: &dyn Store,
    account_id: &str,
    webhook_id: u64,
    count: usize,
) -> Vec<Delivery> {
    let mut all = Vec::new();
    for n in 0..count {
        let (_, mut deliveries) = emitted(
            store,
            account_id,
            webhook_id,
            1_000,
            &[DeliveryState::Queued],
        )
        .await;
        let mut d = deliveries.remove(0);
        let previous_due_ms = d.next_attempt_ms;
        d.next_attempt_ms = 1_000 * (n as i64 + 1);
        store
            .record_attempt(AttemptRecord {
                delivery: &d,
                previous_due_ms,
                response: None,
                succeeded: false,
                breaker: BreakerStep::default(),
                lease: None,
            })
            .await
            .unwrap();
        all.push(d);
    }
    all
}

fn ids(entries: &[OutboxEntry]) -> Vec<u64> {
    let mut ids: Vec<u64> = entries.iter().map(|e| e.delivery_id).collect();
    ids.sort_unstable();
    ids
}

pub async fn claims_take_each_webhooks_earliest_due_entries_within_their_bounds(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    let (busy, quiet) = (
        webhook(store, &acme, "busy").await,
        webhook(store, &acme, "quiet").await,
    );
    let busy_backlog = backlog(store, &acme, busy.id, 6).await;
    let quiet_backlog = backlog(store, &acme, quiet.id, 2).await;
    let now = after_born_leases();

    // At most 2 per webhook and 3 in all, each webhook's earliest first.
    let first = store.claim(claim_at(7, now, 2, 3)).await.unwrap();
    assert_eq!(first.len(), 3, "{first:?}");
    for backlog in [&busy_backlog, &quiet_backlog] {
        let mine: Vec<u64> = first
            .iter()
            .filter(|e| e.webhook_id == backlog[0].webhook_id)
            .map(|e| e.delivery_id)
            .collect();
        assert!(mine.len() <= 2, "{mine:?}");
        let earliest: Vec<u64> = backlog.iter().take(mine.len()).map(|d| d.id).collect();
        assert_eq!(
            ids(&first)
                .iter()
                .filter(|id| earliest.contains(id))
                .count(),
            mine.len()
        );
    }
    // A skipped webhook gets nothing; nothing is claimed twice; nothing due later is claimed.
    let skip = [busy.id];
    let quiet_only = store
        .claim(Claim {
            skip: &skip,
            ..claim_at(7, now, 10, 10)
        })
        .await
        .unwrap();
    assert!(
        quiet_only.iter().all(|e| e.webhook_id == quiet.id),
        "{quiet_only:?}"
    );
    let early = Claim {
        due_before_ms: 3_000,
        ..claim_at(7, now, 10, 10)
    };
    let rest = store.claim(early).await.unwrap();
    assert!(rest.iter().all(|e| e.due_ms <= 3_000), "{rest:?}");
    let everything = store.claim(claim_at(7, now, 10, 10)).await.unwrap();
    let mut all = [first, quiet_only, rest, everything].concat();
    let claimed = ids(&all);
    all.dedup_by_key(|e| e.delivery_id);
    let mut expected: Vec<u64> = busy_backlog
        .iter()
        .chain(&quiet_backlog)
        .map(|d| d.id)
        .collect();
    expected.sort_unstable();
    assert_eq!(claimed, expected, "each entry claimed exactly once");
}

pub async fn a_lease_keeps_other_owners_away_until_it_expires_or_is_released(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    let backlog = backlog(store, &acme, hook.id, 3).await;
    let mut expected: Vec<u64> = backlog.iter().map(|d| d.id).collect();
    expected.sort_unstable();
    let now = after_born_leases();

    let held = store.claim(claim_at(7, now, 10, 10)).await.unwrap();
    assert_eq!(ids(&held), expected);
    // Leased to 7 until now + 1 s: another owner gets nothing meanwhile.
    assert!(
        store
            .claim(claim_at(8, now + 500, 10, 10))
            .await
            .unwrap()
            .is_empty()
    );
    // Renewed until now + 5 s: still nothing after the first lease would have ended.
    let renewed = Lease {
        owner: 7,
        until_ms: now + 5_000,
    };
    store.renew_leases(renewed, &expected).await.unwrap();
    assert!(
        store
            .claim(claim_at(8, now + 2_000, 10, 10))
            .await
            .unwrap()
            .is_empty()
    );
    // Another owner can neither renew nor release 7's leases.
    let stranger = Lease {
        owner: 8,
        until_ms: now + 60_000,
    };
    store.renew_leases(stranger, &expected).await.unwrap();
    store.release_leases(8, &expected).await.unwrap();
    assert!(
        store
            .claim(claim_at(8, now + 2_000, 10, 10))
            .await
            .unwrap()
            .is_empty()
    );
    // Released by 7: free at once.
    store.release_leases(7, &expected[..1]).await.unwrap();
    let freed = store.claim(claim_at(8, now + 2_000, 10, 10)).await.unwrap();
    assert_eq!(ids(&freed), expected[..1]);
    // Expired (7 died, and 8's lease of the freed one ended too): anyone's.
    let taken_over = store.claim(claim_at(9, now + 5_001, 10, 10)).await.unwrap();
    assert_eq!(ids(&taken_over), expected);
}

pub async fn new_entries_are_born_leased_and_attempts_keep_or_release_the_lease(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    let (_, deliveries) = emitted(
        store,
        &acme,
        hook.id,
        1_000,
        &[DeliveryState::Queued, DeliveryState::Queued],
    )
    .await;
    let now = now_ms();
    // Leased to the writer: another instance cannot claim them while the lease lasts.
    assert!(
        store
            .claim(claim_at(8, now, 10, 10))
            .await
            .unwrap()
            .is_empty()
    );

    // A retry kept by the writer stays its own; a released one is anyone's.
    let lease = OWNER.lease_from(now);
    for (d, kept) in deliveries.iter().zip([Some(lease), None]) {
        let mut retrying = d.clone();
        retrying.state = DeliveryState::Retrying;
        retrying.attempts = 1;
        retrying.next_attempt_ms = 6_000;
        store
            .record_attempt(AttemptRecord {
                delivery: &retrying,
                previous_due_ms: d.next_attempt_ms,
                response: Some(&response(&retrying, 1, 5_500, 503)),
                succeeded: false,
                breaker: BreakerStep::default(),
                lease: kept,
            })
            .await
            .unwrap();
    }
    let released = store.claim(claim_at(8, now, 10, 10)).await.unwrap();
    assert_eq!(
        released
            .iter()
            .map(|e| (e.due_ms, e.delivery_id))
            .collect::<Vec<_>>(),
        [(6_000, deliveries[1].id)]
    );
    // Once the writer's lease ends, the kept one is claimable too.
    let later = store
        .claim(claim_at(9, lease.until_ms + 1, 10, 10))
        .await
        .unwrap();
    let mut both = [deliveries[0].id, deliveries[1].id];
    both.sort_unstable();
    assert_eq!(ids(&later), both);
}

/// Writes one event per delivery, each delivery ordered under `key`.
async fn ordered(store: &dyn Store, account_id: &str, webhook_id: u64, key: &str) -> Delivery {
    let id = store.next_id().await.unwrap();
    let mut delivery = delivery(store, id, webhook_id, DeliveryState::Queued).await;
    delivery.ordering = Some(Ordering::new(key, &delivery.url));
    let event = event(id, account_id, 1_000, std::slice::from_ref(&delivery));
    let new = NewEvent {
        event: &event,
        deliveries: std::slice::from_ref(&delivery),
        idempotency: None,
    };
    store.insert_events(&[new]).await.unwrap();
    delivery
}

pub async fn an_ordered_delivery_waits_without_an_outbox_entry_until_the_one_before_is_final(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    store.put_webhook(&hook).await.unwrap();
    let first = ordered(store, &acme, hook.id, "K").await;
    let second = ordered(store, &acme, hook.id, "K").await;
    let other = ordered(store, &acme, hook.id, "L").await;
    let third = ordered(store, &acme, hook.id, "K").await;
    let queue = |d: &Delivery| d.ordering.clone().unwrap().queue;

    // Only the heads are due; the second of K waits, and K is blocked.
    let due = |d: &Delivery| (d.next_attempt_ms, d.id);
    let mut heads = vec![due(&first), due(&other)];
    heads.sort();
    assert_eq!(
        outbox_of(store, &[&first, &second, &other, &third]).await,
        heads
    );
    let head = store.ordering_head(hook.id, &queue(&first)).await.unwrap();
    assert_eq!(head.map(|h| h.entry.delivery_id), Some(first.id));
    let backlog = store.ordering_backlog().await.unwrap();
    assert_eq!(backlog.blocked_keys, 1);
    assert_eq!(backlog.oldest_blocked_head_ms, Some(first.next_attempt_ms));

    // A retry keeps its place at the head.
    let mut retrying = first.clone();
    retrying.state = DeliveryState::Retrying;
    retrying.attempts = 1;
    retrying.next_attempt_ms = 9_000;
    fn record(delivery: &Delivery, previous_due_ms: i64) -> AttemptRecord<'_> {
        AttemptRecord {
            delivery,
            previous_due_ms,
            response: None,
            succeeded: false,
            lease: None,
            breaker: BreakerStep::default(),
        }
    }
    let record_retry = record(&retrying, first.next_attempt_ms);
    store.record_attempt(record_retry).await.unwrap();
    assert_eq!(
        outbox_of(store, &[&first, &second]).await,
        [(9_000, first.id)]
    );

    // Its final state releases the second in the same write.
    let mut failed = retrying.clone();
    failed.state = DeliveryState::Failed;
    store.record_attempt(record(&failed, 9_000)).await.unwrap();
    // Born leased to the instance that released it (which schedules it at once).
    let head = store.ordering_head(hook.id, &queue(&second)).await.unwrap();
    assert!(
        head.is_some_and(|h| h.entry.delivery_id == second.id && h.is_held_by(OWNER.id)),
        "{head:?}"
    );
    let others = store.claim(claim_at(8, now_ms(), 10, 10)).await.unwrap();
    assert!(
        others.iter().all(|e| e.delivery_id != second.id),
        "{others:?}"
    );
    assert_eq!(outbox_of(store, &[&first, &second]).await, [due(&second)]);
    assert_eq!(store.ordering_backlog().await.unwrap().blocked_keys, 1);

    // A cancel of one waiting behind the head only takes it out of the queue.
    let fourth = ordered(store, &acme, hook.id, "K").await;
    store.cancel_delivery(fourth.id, 7_000).await.unwrap();
    assert_eq!(
        outbox_of(store, &[&second, &third, &fourth]).await,
        [due(&second)]
    );

    // A cancel ends it too, and releases the third.
    store.cancel_delivery(second.id, 7_000).await.unwrap();
    assert_eq!(
        outbox_of(store, &[&first, &second, &third]).await,
        [due(&third)]
    );
    // The last one of a queue leaves it empty.
    let mut done = third.clone();
    done.state = DeliveryState::Succeeded;
    store
        .record_attempt(record(&done, third.next_attempt_ms))
        .await
        .unwrap();
    assert_eq!(
        store.ordering_head(hook.id, &queue(&third)).await.unwrap(),
        None
    );
    assert_eq!(store.ordering_backlog().await.unwrap(), Default::default());
}
