//! Conformance tests of the circuit breaker kept in the webhook's stats (`WebhookStats::record`,
//! `BreakerState`): moved by `record_attempt` by the same rules on every backend, concurrent
//! attempts adding up with each transition seen by exactly one of them, a failing egress
//! proxy blamed on nothing, and claims passing over a webhook whose breaker is open.

use std::sync::Arc;

use super::{account, emitted, outbox_of, response, webhook};
use crate::model::{
    Breaker, BreakerPolicy, BreakerState, BreakerStep, BreakerTransition, Delivery, DeliveryState,
    Verdict, WebhookStats, now_ms,
};
use crate::store::{AttemptRecord, Claim, Lease, Store};

/// Opens after 3 failures for 1 s, doubling up to 2.5 s.
const POLICY: BreakerPolicy = BreakerPolicy {
    threshold: 3,
    cooldown_ms: 1_000,
    max_cooldown_ms: 2_500,
};

/// Records attempt `attempt` of `delivery` at `at_ms` (a retry due 100 ms later) with
/// `verdict`; returns the stats after it.
async fn attempt(
    store: &dyn Store,
    delivery: &mut Delivery,
    at_ms: i64,
    verdict: Verdict,
) -> WebhookStats {
    let previous_due_ms = delivery.next_attempt_ms;
    let succeeded = verdict == Verdict::Answered;
    delivery.attempts += 1;
    delivery.state = if succeeded {
        DeliveryState::Succeeded
    } else {
        DeliveryState::Retrying
    };
    delivery.next_attempt_ms = at_ms + 100;
    let status = if succeeded { 200 } else { 503 };
    let mut logged = response(delivery, delivery.attempts, at_ms, status);
    if verdict == Verdict::ProxyFailed {
        logged.status_code = None;
        logged.error = "egress proxy: connection refused".into();
    }
    store
        .record_attempt(AttemptRecord {
            delivery,
            previous_due_ms,
            response: Some(&logged),
            succeeded,
            breaker: BreakerStep {
                verdict,
                policy: POLICY,
            },
            lease: None,
        })
        .await
        .unwrap()
}

pub async fn the_stored_breaker_opens_backs_off_and_closes_reporting_each_change_once(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    store.put_webhook(&hook).await.unwrap();
    let (_, deliveries) = emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Queued]).await;
    let mut d = deliveries[0].clone();

    // Two failures: counted, still closed, no transition.
    for at in [10_000, 10_100] {
        let stats = attempt(store, &mut d, at, Verdict::Failing).await;
        assert_eq!(stats.breaker.phase(at), Breaker::Closed);
        assert_eq!(stats.breaker_transition(), None);
    }
    // A failing proxy and a request that never left change nothing, nor the failure run.
    let stats = attempt(store, &mut d, 10_200, Verdict::ProxyFailed).await;
    assert_eq!(
        (
            stats.breaker.consecutive_failures,
            stats.last_failure_ms,
            stats.failing_since_ms
        ),
        (2, Some(10_100), Some(10_000))
    );
    let stats = attempt(store, &mut d, 10_250, Verdict::Unknown).await;
    assert_eq!(stats.breaker.consecutive_failures, 2);
    assert_eq!(stats.breaker_transition(), None);

    // The third failure opens it, once.
    let stats = attempt(store, &mut d, 10_300, Verdict::Failing).await;
    assert_eq!(
        stats.breaker_transition(),
        Some(BreakerTransition::Opened {
            consecutive_failures: 3,
            opened_at_ms: 10_300,
            open_until_ms: 11_300
        })
    );
    assert_eq!(stats.breaker.phase(11_299), Breaker::Open);
    assert_eq!(stats.breaker.phase(11_300), Breaker::HalfOpen);
    // What every instance reads.
    assert_eq!(store.webhook_stats(hook.id).await.unwrap(), stats);

    // An attempt that was in flight fails meanwhile: counted, nothing else.
    let stats = attempt(store, &mut d, 10_400, Verdict::Failing).await;
    assert_eq!(
        (
            stats.breaker.consecutive_failures,
            stats.breaker.open_until_ms
        ),
        (4, Some(11_300))
    );
    assert_eq!(stats.breaker_transition(), None);
    // Failed probes double the pause up to its cap; still open, not a new opening.
    let stats = attempt(store, &mut d, 11_300, Verdict::Failing).await;
    assert_eq!(
        (stats.breaker.open_until_ms, stats.breaker.cooldown_level),
        (Some(13_300), 1)
    );
    assert_eq!(stats.breaker_transition(), None);
    let stats = attempt(store, &mut d, 13_300, Verdict::Failing).await;
    assert_eq!(stats.breaker.open_until_ms, Some(15_800));

    // An answer closes it, once; the failure run ends.
    let stats = attempt(store, &mut d, 15_800, Verdict::Answered).await;
    assert_eq!(
        stats.breaker_transition(),
        Some(BreakerTransition::Closed {
            opened_at_ms: 10_300,
            closed_at_ms: 15_800
        })
    );
    assert_eq!(
        (stats.breaker.consecutive_failures, stats.failing_since_ms),
        (0, None)
    );
    assert_eq!(stats.breaker.phase(15_800), Breaker::Closed);
    let read = store.webhook_stats(hook.id).await.unwrap();
    assert_eq!(read, stats);
    assert_eq!(
        read.breaker,
        BreakerState {
            consecutive_failures: 0,
            open_until_ms: None,
            cooldown_level: 0,
            opened_at_ms: Some(10_300),
            changed_seq: 9,
            changed_at_ms: 15_800,
        }
    );
}

pub async fn concurrent_failures_add_up_and_only_one_of_them_opens_the_breaker(
    store: Arc<dyn Store>,
) {
    let acme = account(store.as_ref()).await;
    let hook = webhook(store.as_ref(), &acme, "h").await;
    store.put_webhook(&hook).await.unwrap();
    let states = [DeliveryState::Queued; 12];
    let (_, deliveries) = emitted(store.as_ref(), &acme, hook.id, 1_000, &states).await;
    let attempts = deliveries.into_iter().map(|mut d| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { attempt(store.as_ref(), &mut d, 20_000, Verdict::Failing).await })
    });
    let mut transitions = Vec::new();
    for stats in futures::future::join_all(attempts).await {
        transitions.extend(stats.unwrap().breaker_transition());
    }
    assert_eq!(
        transitions,
        [BreakerTransition::Opened {
            consecutive_failures: 3,
            opened_at_ms: 20_000,
            open_until_ms: 21_000
        }]
    );
    let stats = store.webhook_stats(hook.id).await.unwrap();
    assert_eq!(
        (
            stats.response_seq,
            stats.breaker.consecutive_failures,
            stats.breaker.open_until_ms
        ),
        (12, 12, Some(21_000))
    );
}

pub async fn claims_pass_over_an_open_breaker_and_take_one_probe_once_it_is_half_open(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let acme = account(store).await;
    let (dead, alive) = (
        webhook(store, &acme, "dead").await,
        webhook(store, &acme, "alive").await,
    );
    store.put_webhook(&dead).await.unwrap();
    store.put_webhook(&alive).await.unwrap();
    let states = [DeliveryState::Queued; 3];
    let (_, mut failing) = emitted(store, &acme, dead.id, 1_000, &states).await;
    let (_, waiting) = emitted(store, &acme, dead.id, 1_000, &states).await;
    let (_, other) = emitted(store, &acme, alive.id, 1_000, &states).await;
    // Emitted entries are born leased to their writer: claims here run after that lease.
    let t = now_ms() + 3_600_000;
    // Three failures at t open the dead webhook's breaker until t + 1 s (their retries
    // are due at t + 100 ms).
    for d in &mut failing {
        attempt(store, d, t, Verdict::Failing).await;
    }
    let claim_at = |now_ms: i64| Claim {
        lease: Lease {
            owner: 7,
            until_ms: now_ms + 1,
        },
        now_ms,
        due_before_ms: i64::MAX,
        per_webhook: 10,
        limit: 100,
        skip: &[],
    };
    let claimed = store.claim(claim_at(t + 500)).await.unwrap();
    let webhook_ids = |claimed: &[crate::store::OutboxEntry], id: u64| {
        claimed.iter().filter(|e| e.webhook_id == id).count()
    };
    assert_eq!(webhook_ids(&claimed, dead.id), 0);
    assert_eq!(webhook_ids(&claimed, alive.id), 3);
    // Half-open: one probe, the earliest due.
    let claimed = store.claim(claim_at(t + 1_000)).await.unwrap();
    let probes: Vec<u64> = claimed
        .iter()
        .filter(|e| e.webhook_id == dead.id)
        .map(|e| e.delivery_id)
        .collect();
    assert_eq!(probes, [waiting[0].id]);
    // Closed again: the rest are claimed.
    let mut probe = waiting[0].clone();
    attempt(store, &mut probe, t + 1_100, Verdict::Answered).await;
    let claimed = store.claim(claim_at(t + 1_200)).await.unwrap();
    assert_eq!(webhook_ids(&claimed, dead.id), 5);
    let left: Vec<&Delivery> = other.iter().collect();
    assert_eq!(outbox_of(store, &left).await.len(), 3);
}
