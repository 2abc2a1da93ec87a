//! A data directory written by the sled versions opens: everything in it is read through the
//! store as before, the sled directory is gone, new ids follow sled's, and a copy that a
//! crash interrupted starts again from the sled directory.

use std::path::Path;
use std::time::{Duration, Instant};

use super::super::codec::be;
use super::super::*;
use super::{COPYING, SLED, STORE};
use crate::model::{DeliveryState, RenderedRequest};
use crate::store::conformance::OWNER;

fn histogram() -> Histogram {
    Histogram::with_opts(prometheus::HistogramOpts::new("f", "f")).unwrap()
}

/// Retries `open` while the previous holder of the directory's lock lets go of it.
fn retry<T>(mut open: impl FnMut() -> Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open() {
            Err(Error::Conflict(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.unwrap(),
        }
    }
}

fn open_store(dir: &Path) -> SledStore {
    retry(|| SledStore::open(dir, SLED_CACHE_BYTES, OWNER, histogram()))
}

fn webhook(id: u64) -> Webhook {
    Webhook {
        id,
        account_id: "acme".into(),
        name: "pager".into(),
        is_webhook_enabled: true,
        url: "http://127.0.0.1:9/hook".into(),
        forward_all: true,
        http_method: "POST".into(),
        created_at_ms: 1_000,
        ..Webhook::default()
    }
}

fn delivery(id: u64, event_id: u64, webhook_id: u64) -> Delivery {
    Delivery {
        id,
        event_id,
        webhook_id,
        url: "http://127.0.0.1:9/hook".into(),
        state: DeliveryState::Queued,
        attempts: 0,
        next_attempt_ms: 1_000,
        request_trigger: String::new(),
        request: Some(RenderedRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:9/hook".into(),
            headers: vec![],
            body: Some(r#"{"alert_group":{"id":"I1"}}"#.into()),
            traceparent: None,
        }),
        render_error: None,
        last_status_code: None,
        last_error: String::new(),
        account_id: "acme".into(),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
        operational: false,
        ordering: None,
    }
}

/// What the sled versions wrote: the same trees, keys and values (the layout did not change),
/// written here through the store and copied into a sled database at `dir/db`, with sled's id
/// counter past `ids` ids.
async fn sled_dir_of(dir: &Path, write: impl AsyncFnOnce(&SledStore), ids: u64) {
    let staging = tempfile::tempdir().unwrap();
    write(&open_store(staging.path())).await;
    let engine = retry(|| {
        engine::Db::open(&staging.path().join(STORE), SLED_CACHE_BYTES).map_err(|e| {
            if engine::is_locked(&e) {
                Error::Conflict(e.to_string())
            } else {
                internal(e)
            }
        })
    });
    let old = sled::open(dir.join(SLED)).unwrap();
    for name in engine.tree_names() {
        let from = engine.open_tree(&name).unwrap();
        let to = old.open_tree(&name).unwrap();
        for item in from.iter() {
            let (key, value) = item.unwrap();
            to.insert(&*key, &*value).unwrap();
        }
    }
    while old.generate_id().unwrap() < ids {}
    old.flush().unwrap();
}

#[tokio::test]
async fn a_sled_data_dir_is_moved_over_once_and_serves_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let hook = webhook(5);
    let first = delivery(11, 10, 5);
    let event = Event {
        id: 10,
        account_id: "acme".into(),
        event_type: "alert group created".into(),
        data: serde_json::json!({"alert_group": {"id": "I1"}}),
        created_at_ms: 1_000,
        delivery_ids: vec![11],
        operational: false,
    };
    sled_dir_of(
        dir.path(),
        async |store| {
            store.put_webhook(&hook).await.unwrap();
            let new = [NewEvent {
                event: &event,
                deliveries: std::slice::from_ref(&first),
                idempotency: None,
            }];
            store.insert_events(&new).await.unwrap();
        },
        500,
    )
    .await;

    let store = open_store(dir.path());
    assert!(
        !dir.path().join(SLED).exists(),
        "the sled directory is gone"
    );
    assert_eq!(store.get_webhook(5).await.unwrap(), Some(hook.clone()));
    assert_eq!(store.get_event(10).await.unwrap(), Some(event));
    assert_eq!(store.get_delivery(11).await.unwrap(), Some(first.clone()));
    assert!(store.next_id().await.unwrap() >= 500, "ids follow sled's");
    let claim = Claim {
        lease: OWNER.lease_from(2_000),
        now_ms: 2_000,
        due_before_ms: 2_000,
        per_webhook: 10,
        limit: 10,
        skip: &[],
    };
    let claimed = store.claim(claim).await.unwrap();
    assert_eq!(claimed, [outbox_entry(&first)]);

    // Written after the move, and still there after a restart.
    let second = webhook(store.next_id().await.unwrap());
    store.put_webhook(&second).await.unwrap();
    drop(store);
    let store = open_store(dir.path());
    assert_eq!(store.count_webhooks("acme").await.unwrap(), 2);
    assert_eq!(store.get_webhook(second.id).await.unwrap(), Some(second));
}

#[tokio::test]
async fn a_move_cut_short_by_a_crash_starts_again_from_the_sled_directory() {
    let dir = tempfile::tempdir().unwrap();
    sled_dir_of(
        dir.path(),
        async |store| store.put_webhook(&webhook(5)).await.unwrap(),
        10,
    )
    .await;
    {
        // A copy a crash interrupted: half written, never renamed.
        let partial = engine::Db::open(&dir.path().join(COPYING), SLED_CACHE_BYTES).unwrap();
        let webhooks = partial.open_tree("webhooks").unwrap();
        webhooks
            .insert(be(6), encode(&webhook(6)).unwrap())
            .unwrap();
        partial.flush().unwrap();
    }
    let store = open_store(dir.path());
    assert_eq!(store.get_webhook(5).await.unwrap(), Some(webhook(5)));
    assert_eq!(store.get_webhook(6).await.unwrap(), None);
    assert!(!dir.path().join(COPYING).exists());
}
