//! Conformance tests of the change log (`Store::read_changes`, `change_head`,
//! `prune_changes`): every state change an account's deliveries go through, in order, once,
//! resumable from any cursor, pruned from its oldest end behind a horizon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{account, delivery, emitted, response, webhook};
use crate::model::{BreakerStep, DeliveryState, now_ms};
use crate::store::change_log::{Change, ChangeCursor};
use crate::store::{AttemptRecord, Store};

/// Reads an account's entries after `after` page by page until `count` arrived (a
/// PostgreSQL reader may have to wait for transactions elsewhere in the cluster to end).
async fn read(
    store: &dyn Store,
    account_id: &str,
    mut after: ChangeCursor,
    limit: usize,
    count: usize,
) -> Vec<Change> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < count {
        assert!(Instant::now() < deadline, "only {out:?} arrived");
        let page = store.read_changes(account_id, after, limit).await.unwrap();
        assert!(!page.expired);
        assert!(page.changes.len() <= limit);
        assert!(page.next >= after);
        after = page.next;
        if page.changes.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out.extend(page.changes);
    }
    out
}

fn states(changes: &[Change]) -> Vec<(DeliveryState, u32)> {
    changes
        .iter()
        .map(|c| (c.update.state, c.update.attempt))
        .collect()
}

pub async fn the_change_log_holds_each_accounts_state_changes_in_order_once(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let start = store.change_head().await.unwrap();
    let acme = account(store).await;
    let other = account(store).await;
    let mut hook = webhook(store, &acme, "h").await;
    hook.url = "https://user:pw@example.com/hook".into();
    store.put_webhook(&hook).await.unwrap();
    let theirs = webhook(store, &other, "h").await;
    store.put_webhook(&theirs).await.unwrap();

    let (event, deliveries) = emitted(
        store,
        &acme,
        hook.id,
        1_000,
        &[DeliveryState::Queued, DeliveryState::Skipped],
    )
    .await;
    emitted(store, &other, theirs.id, 1_000, &[DeliveryState::Queued]).await;
    let mut retrying = deliveries[0].clone();
    retrying.url = hook.url.clone();
    retrying.state = DeliveryState::Retrying;
    retrying.attempts = 1;
    retrying.next_attempt_ms = 9_000;
    retrying.last_status_code = Some(503);
    store
        .record_attempt(AttemptRecord {
            delivery: &retrying,
            previous_due_ms: deliveries[0].next_attempt_ms,
            response: Some(&response(&retrying, 1, 6_000, 503)),
            succeeded: false,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    let copy = delivery(store, event.id, hook.id, DeliveryState::Queued).await;
    store
        .insert_deliveries(std::slice::from_ref(&copy))
        .await
        .unwrap();
    let mut succeeded = copy.clone();
    succeeded.state = DeliveryState::Succeeded;
    succeeded.attempts = 1;
    succeeded.last_status_code = Some(200);
    store
        .record_attempt(AttemptRecord {
            delivery: &succeeded,
            previous_due_ms: copy.next_attempt_ms,
            response: Some(&response(&succeeded, 1, 7_000, 200)),
            succeeded: true,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();

    let all = read(store, &acme, start, 100, 5).await;
    assert_eq!(
        states(&all),
        [
            (DeliveryState::Queued, 0),
            (DeliveryState::Skipped, 0),
            (DeliveryState::Retrying, 1),
            (DeliveryState::Queued, 0),
            (DeliveryState::Succeeded, 1),
        ]
    );
    let ids: Vec<u64> = all.iter().map(|c| c.update.delivery_id).collect();
    let first = deliveries[0].id;
    assert_eq!(ids, [first, deliveries[1].id, first, copy.id, copy.id]);
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor));
    assert!(all.iter().all(|c| c.account_id == acme));
    assert_eq!(all[2].update.status_code, Some(503));
    assert_eq!(all[2].update.next_attempt_ms, Some(9_000));
    assert_eq!(
        all[2].update.url,
        "https://user:****************@example.com/hook"
    );

    // Two at a time, and on from any entry's cursor: the same entries, each once.
    let paged = read(store, &acme, start, 2, 5).await;
    assert_eq!(paged, all);
    // One at a time: the emit's two entries were written together, and a page ends
    // between them.
    let single = read(store, &acme, start, 1, 5).await;
    assert_eq!(single, all);
    let rest = read(store, &acme, all[1].cursor, 100, 3).await;
    assert_eq!(rest, all[2..]);
    let after_last = store.read_changes(&acme, all[4].cursor, 100).await.unwrap();
    assert!(after_last.changes.is_empty());
    // The other account sees only its own.
    let theirs = read(store, &other, start, 100, 1).await;
    assert_eq!(states(&theirs), [(DeliveryState::Queued, 0)]);
    // The head is past everything written.
    let head = store.change_head().await.unwrap();
    assert!(head > all[4].cursor || head >= after_last.next);
    assert!(
        store
            .read_changes(&acme, head, 100)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
}

pub async fn pruning_the_change_log_expires_older_cursors_only(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let start = store.change_head().await.unwrap();
    let acme = account(store).await;
    let hook = webhook(store, &acme, "h").await;
    store.put_webhook(&hook).await.unwrap();
    emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Queued]).await;
    emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Queued]).await;
    let both = read(store, &acme, start, 100, 2).await;
    // Retention only prunes what readers can see (on PostgreSQL, once every transaction
    // that was running when these were written has ended).
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.change_head().await.unwrap() < both[1].cursor {
        assert!(
            Instant::now() < deadline,
            "the head never passed the entries"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Nothing is old enough yet.
    assert_eq!(store.prune_changes(0, 100).await.unwrap(), (0, false));
    // Everything written so far is: one entry per pass with a budget of one.
    let later = now_ms() + 60_000;
    // A pass finds nothing while another holds the retention lock (on PostgreSQL, another
    // instance's or test's retention on the same database): try again until one runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let pruned = loop {
        let pruned = store.prune_changes(later, 1).await.unwrap();
        if pruned != (0, false) || Instant::now() > deadline {
            break pruned;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(pruned, (1, true));
    let expired = store.read_changes(&acme, start, 100).await.unwrap();
    assert!(expired.expired && expired.changes.is_empty());
    let still = store
        .read_changes(&acme, both[0].cursor, 100)
        .await
        .unwrap();
    assert!(!still.expired);
    assert_eq!(still.changes, both[1..]);
    while store.prune_changes(later, 1).await.unwrap().1 {}
    assert!(
        store
            .read_changes(&acme, both[0].cursor, 100)
            .await
            .unwrap()
            .expired
    );
    let head = store.change_head().await.unwrap();
    let fresh = store.read_changes(&acme, head, 100).await.unwrap();
    assert!(!fresh.expired && fresh.changes.is_empty());
    emitted(store, &acme, hook.id, 1_000, &[DeliveryState::Queued]).await;
    assert_eq!(read(store, &acme, head, 100, 1).await.len(), 1);
}
