//! Conformance tests of attempts recorded at the same time (the PostgreSQL backend gathers
//! them into shared transactions): every record lands, each log entry gets its own number,
//! and each webhook's stats add up.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::join_all;

use super::{ALL, account, emitted, outbox_of, response, webhook};
use crate::model::BreakerStep;
use crate::model::{Delivery, DeliveryState};
use crate::store::{AttemptRecord, Store};

/// The attempt of `queued` that ends it SUCCEEDED (200) or RETRYING (503, due at 90_000).
fn attempted(queued: &Delivery, ok: bool) -> Delivery {
    let mut d = queued.clone();
    d.attempts = 1;
    if ok {
        d.state = DeliveryState::Succeeded;
        d.last_status_code = Some(200);
    } else {
        d.state = DeliveryState::Retrying;
        d.next_attempt_ms = 90_000;
        d.last_status_code = Some(503);
        d.last_error = "HTTP 503".into();
    }
    d
}

pub async fn concurrent_attempts_of_one_webhook_all_land_with_the_right_stats(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    // `busy` gets 40 attempts at once, half of them successes; `down` 10 failures.
    let busy = webhook(store, &acme, "busy").await;
    let down = webhook(store, &acme, "down").await;
    store.put_webhook(&busy).await.unwrap();
    store.put_webhook(&down).await.unwrap();
    let (_, busy_queued) =
        emitted(store, &acme, busy.id, 1_000, &[DeliveryState::Queued; 40]).await;
    let (_, down_queued) =
        emitted(store, &acme, down.id, 1_000, &[DeliveryState::Queued; 10]).await;
    let mut attempts: Vec<(Delivery, bool, i64)> = Vec::new();
    for (i, queued) in busy_queued.iter().enumerate() {
        let ok = i % 2 == 0;
        attempts.push((attempted(queued, ok), ok, if ok { 7_000 } else { 6_000 }));
    }
    for queued in &down_queued {
        attempts.push((attempted(queued, false), false, 8_000));
    }
    let logged: Vec<_> = attempts
        .iter()
        .map(|(d, ok, at)| response(d, 1, *at, if *ok { 200 } else { 503 }))
        .collect();
    let recorded = join_all(attempts.iter().zip(&logged).map(|((d, ok, _), r)| {
        store.record_attempt(AttemptRecord {
            delivery: d,
            previous_due_ms: 5_000,
            response: Some(r),
            succeeded: *ok,
            lease: None,
            breaker: BreakerStep::default(),
        })
    }))
    .await;

    // Each webhook's entries are numbered 1..=n, one number per attempt.
    let mut busy_seqs = BTreeSet::new();
    let mut down_seqs = BTreeSet::new();
    for ((d, _, _), stats) in attempts.iter().zip(&recorded) {
        let stats = stats.as_ref().unwrap();
        let seqs = if d.webhook_id == busy.id {
            &mut busy_seqs
        } else {
            &mut down_seqs
        };
        assert!(seqs.insert(stats.response_seq), "{stats:?} twice");
    }
    assert_eq!(busy_seqs, (1..=40).collect());
    assert_eq!(down_seqs, (1..=10).collect());

    let busy_stats = store.webhook_stats(busy.id).await.unwrap();
    assert_eq!(busy_stats.response_seq, 40);
    assert_eq!(busy_stats.last_success_ms, Some(7_000));
    assert_eq!(busy_stats.last_failure_ms, Some(6_000));
    let down_stats = store.webhook_stats(down.id).await.unwrap();
    assert_eq!(
        (
            down_stats.response_seq,
            down_stats.last_success_ms,
            down_stats.last_failure_ms,
            down_stats.failing_since_ms
        ),
        (10, None, Some(8_000), Some(8_000))
    );
    assert_eq!(store.count_responses(busy.id).await.unwrap(), 40);
    assert_eq!(store.count_responses(down.id).await.unwrap(), 10);
    let mut logged_ids: Vec<u64> = store
        .list_responses(busy.id, ALL)
        .await
        .unwrap()
        .iter()
        .map(|(_, r)| r.delivery_id)
        .collect();
    logged_ids.sort_unstable();
    let mut busy_ids: Vec<u64> = busy_queued.iter().map(|d| d.id).collect();
    busy_ids.sort_unstable();
    assert_eq!(logged_ids, busy_ids);

    // Every delivery holds its own outcome; the successes left the outbox, the retries moved.
    for (d, ok, _) in &attempts {
        assert_eq!(store.get_delivery(d.id).await.unwrap().as_ref(), Some(d));
        let expected = if *ok { vec![] } else { vec![(90_000, d.id)] };
        assert_eq!(outbox_of(store, &[d]).await, expected);
    }
}
