//! A data directory written by the versions before framed values and in-memory stats (JSON
//! events and request parts, index entries rewritten at each attempt, the stats record
//! written by each attempt) opens and delivers what it holds.

use std::path::Path;

use super::codec::{be, delivery::encode_request_json, encode};
use super::*;
use crate::model::{BreakerStep, DeliveryState, RenderedRequest};
use crate::store::conformance::OWNER;

fn histogram() -> Histogram {
    Histogram::with_opts(prometheus::HistogramOpts::new("f", "f")).unwrap()
}

/// Opens `dir` once the previous `Db` of this process let go of its file lock.
fn open_store(dir: &Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(dir, super::SLED_CACHE_BYTES, OWNER, histogram()) {
            Err(Error::Conflict(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.unwrap(),
        }
    }
}

fn event() -> Event {
    Event {
        id: 10,
        account_id: "acme".into(),
        event_type: "alert group created".into(),
        data: serde_json::json!({"alert_group": {"id": "I1"}}),
        created_at_ms: 1_000,
        delivery_ids: vec![11, 12],
        operational: false,
    }
}

fn delivery(id: u64, state: DeliveryState) -> Delivery {
    Delivery {
        state,
        request: Some(RenderedRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:9/hook".into(),
            headers: vec![],
            body: Some(event().data.to_string()),
            traceparent: None,
        }),
        ..Delivery::queued(
            id,
            10,
            7,
            "http://127.0.0.1:9/hook".into(),
            "acme".into(),
            1_000,
        )
    }
}

#[tokio::test]
async fn a_data_dir_of_the_json_records_opens_and_delivers_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let queued = delivery(11, DeliveryState::Queued);
    let mut failed = delivery(12, DeliveryState::Failed);
    failed.attempts = 3;
    {
        // What the older versions wrote, record by record.
        let trees = Trees::open(dir.path(), super::SLED_CACHE_BYTES, OWNER).unwrap();
        for d in [&queued, &failed] {
            let mut batch = trees.db.batch();
            trees.indexes.add_delivery(&mut batch, d);
            batch.commit().unwrap();
            trees
                .requests
                .insert(be(d.id), encode_request_json(d).unwrap())
                .unwrap();
        }
        // The failed one's attempts wrote its state and moved its index entries to FAILED.
        trees
            .deliveries
            .insert(be(12), delivery::encode_state(&failed).unwrap())
            .unwrap();
        trees.outbox.put(outbox_entry(&queued), None).unwrap();
        trees
            .events
            .insert(be(10), encode(&event()).unwrap())
            .unwrap();
        let stats = WebhookStats {
            response_seq: 3,
            ..WebhookStats::default()
        };
        trees
            .db
            .open_tree("webhook_stats")
            .unwrap()
            .insert(be(7), encode(&stats).unwrap())
            .unwrap();
        trees.db.flush().unwrap();
    }

    let store = open_store(dir.path());
    assert_eq!(store.get_event(10).await.unwrap(), Some(event()));
    assert_eq!(
        store.get_delivery(11).await.unwrap().as_ref(),
        Some(&queued)
    );
    assert_eq!(
        store.get_delivery(12).await.unwrap().as_ref(),
        Some(&failed)
    );
    let failed_only = DeliveryQuery {
        account_id: "acme",
        webhook_id: None,
        states: &[DeliveryState::Failed],
        created_after_ms: None,
        created_before_ms: None,
        after: None,
        limit: 10,
    };
    let listed = store.list_deliveries(&failed_only).await.unwrap();
    assert_eq!(listed, [failed.clone()]);

    let claim = Claim {
        lease: OWNER.lease_from(2_000),
        now_ms: 2_000,
        due_before_ms: 2_000,
        per_webhook: 10,
        limit: 10,
        skip: &[],
    };
    let claimed = store.claim(claim).await.unwrap();
    assert_eq!(claimed, [outbox_entry(&queued)]);

    // Its attempt is recorded after the three logged before.
    let mut done = queued.clone();
    done.state = DeliveryState::Succeeded;
    done.attempts = 1;
    let response = ResponseRecord {
        timestamp_ms: 2_000,
        url: done.url.clone(),
        request_trigger: String::new(),
        request_headers: Some("{}".into()),
        request_data: queued.request.as_ref().unwrap().body.clone(),
        status_code: Some(200),
        content: Some("ok".into()),
        event_id: 10,
        attempt: 1,
        delivery_id: 11,
        duration_ms: 1,
        error: String::new(),
    };
    let stats = store
        .record_attempt(AttemptRecord {
            delivery: &done,
            previous_due_ms: queued.next_attempt_ms,
            response: Some(&response),
            succeeded: true,
            breaker: BreakerStep::default(),
            lease: None,
        })
        .await
        .unwrap();
    assert_eq!(stats.response_seq, 4);
    let page = Page {
        after: None,
        offset: 0,
        limit: 10,
    };
    let logged = store.list_responses(7, page).await.unwrap();
    assert_eq!(logged, [(!4, response)]);
    assert_eq!(store.get_delivery(11).await.unwrap(), Some(done));
}
