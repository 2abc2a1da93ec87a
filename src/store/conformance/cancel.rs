//! Conformance tests of a cancel that meets an attempt: a cancelled delivery stays CANCELLED
//! whatever its attempt in flight records, and the head of an ordering queue cancelled while
//! its entry is leased (its holder may be attempting it) keeps the queue until the holder
//! lets go of it: its attempt recorded, or its stale entry dropped (also by another instance
//! once the lease ended). So the next one never overlaps it.

use std::sync::Arc;

use super::{ALL, OWNER, account, claim_at, ordered, response, webhook};
use crate::model::{BreakerStep, Delivery, DeliveryState, now_ms};
use crate::store::{AttemptRecord, Cancelled, Store};

/// The delivery that heads `first`'s queue now, and whether this instance holds its lease.
async fn head_of(store: &dyn Store, first: &Delivery) -> Option<(u64, bool)> {
    let queue = &first.ordering.as_ref().unwrap().queue;
    let head = store.ordering_head(first.webhook_id, queue).await.unwrap();
    head.map(|h| (h.entry.delivery_id, h.is_held_by(OWNER.id)))
}

async fn cancel(store: &dyn Store, delivery: &Delivery) {
    let cancelled = store.cancel_delivery(delivery.id, now_ms()).await.unwrap();
    assert!(matches!(cancelled, Cancelled::Now(_)), "{cancelled:?}");
}

pub async fn a_cancelled_head_holds_its_queue_until_its_lease_holder_lets_go(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    store.put_webhook(&hook).await.unwrap();
    let mut queue = Vec::new();
    for _ in 0..4 {
        queue.push(ordered(store, &acme, hook.id, "K").await);
    }
    let [first, second, third, fourth] = &queue[..] else {
        unreachable!()
    };

    // The first is born leased to this instance, which may be attempting it: cancelled, it
    // still heads the queue, and nobody else can claim it.
    cancel(store, first).await;
    assert_eq!(head_of(store, first).await, Some((first.id, true)));
    assert_eq!(store.ordering_backlog().await.unwrap().blocked_keys, 1);
    let others = store.claim(claim_at(8, now_ms(), 10, 10)).await.unwrap();
    assert!(others.is_empty(), "{others:?}");

    // Its attempt in flight succeeds and is recorded: logged, still CANCELLED, and only
    // now the second one goes (born leased to the instance that recorded it).
    let mut attempted = first.clone();
    attempted.state = DeliveryState::Succeeded;
    attempted.attempts = 1;
    attempted.last_status_code = Some(200);
    let logged = response(first, 1, 6_000, 200);
    store
        .record_attempt(AttemptRecord {
            delivery: &attempted,
            previous_due_ms: first.next_attempt_ms,
            response: Some(&logged),
            succeeded: true,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    let kept = store.get_delivery(first.id).await.unwrap().unwrap();
    assert_eq!((kept.state, kept.attempts), (DeliveryState::Cancelled, 1));
    let log = store.list_responses(hook.id, ALL).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(head_of(store, first).await, Some((second.id, true)));

    // The second is cancelled while leased, and its holder dies: once the lease has ended
    // another instance claims the entry, finds it cancelled and drops it, which releases
    // the third (leased to that instance).
    cancel(store, second).await;
    assert_eq!(head_of(store, first).await, Some((second.id, true)));
    let after_lease = now_ms() + 2 * OWNER.lease.as_millis() as i64;
    let claimed = store.claim(claim_at(8, after_lease, 10, 10)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.delivery_id).collect::<Vec<_>>(),
        [second.id]
    );
    store.remove_outbox_entry(claimed[0]).await.unwrap();
    assert_eq!(head_of(store, first).await, Some((third.id, true)));

    // A head nobody holds (its lease released) lets the next one go at once.
    store.release_leases(OWNER.id, &[third.id]).await.unwrap();
    cancel(store, third).await;
    assert_eq!(head_of(store, first).await.map(|h| h.0), Some(fourth.id));
    assert_eq!(store.ordering_backlog().await.unwrap().blocked_keys, 0);
}
