//! An operator upgrades webhookd on a PostgreSQL database written by a version before schema
//! 9 (a delivery's state in its wide row; before 10, a copy of its body in every delivery;
//! before 11, a copy of the body sent in every log entry; before 12, a change-log row per
//! entry; before 13, the outbox a table of its own): the new binary moves the states at start, answers every delivery, listing by
//! state, logged attempt and change in the live tail (with the cursors it handed out)
//! exactly as before, and goes on delivering what was waiting (run when WEBHOOKD_TEST_POSTGRES_URL names a server; scripts/with-postgres sets it).

use std::time::Duration;

use sqlx::Connection;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use crate::process::Process;
use crate::support::*;

type Client = WebhookServiceClient<tonic::transport::Channel>;

/// Turns a database of schema 13 back into what webhookd left before version 13 (schema 12):
/// the queued deliveries' due times and leases in an `outbox` table of their own, migration
/// 13 not recorded.
const BACK_TO_SCHEMA_12: &[&str] = &[
    "CREATE TABLE outbox (delivery_id bigint PRIMARY KEY, event_id bigint NOT NULL,
         webhook_id bigint NOT NULL, due_ms bigint NOT NULL, lease_until_ms bigint,
         lease_owner bigint)",
    "CREATE INDEX outbox_webhook_due ON outbox (webhook_id, due_ms, delivery_id)",
    "CREATE INDEX outbox_event ON outbox (event_id)",
    "INSERT INTO outbox (delivery_id, event_id, webhook_id, due_ms, lease_until_ms,
         lease_owner)
     SELECT s.id, d.event_id, s.webhook_id, s.next_attempt_ms, s.lease_until_ms, s.lease_owner
     FROM delivery_states s JOIN deliveries d ON d.id = s.id WHERE s.queued",
    "ALTER TABLE delivery_states DROP COLUMN webhook_id, DROP COLUMN queued,
         DROP COLUMN lease_owner, DROP COLUMN lease_until_ms",
    "DELETE FROM _sqlx_migrations WHERE version = 13",
];

/// Turns a database of schema 12 back into what webhookd left before version 12 (schema 11):
/// one change-log row per entry, at the entry's own position, migration 12 not recorded.
const BACK_TO_SCHEMA_11: &[&str] = &[
    "CREATE TEMP TABLE entries AS
         SELECT c.xid, s.seq, c.account_id, c.at_ms, e.body
         FROM delivery_changes c,
             unnest(c.seqs) WITH ORDINALITY AS s (seq, n),
             json_array_elements(c.body) WITH ORDINALITY AS e (body, m)
         WHERE c.seqs IS NOT NULL AND s.n = e.m",
    "DELETE FROM delivery_changes WHERE seqs IS NOT NULL",
    "ALTER TABLE delivery_changes DROP COLUMN seqs",
    "INSERT INTO delivery_changes (xid, seq, account_id, at_ms, body) OVERRIDING SYSTEM VALUE
         SELECT xid, seq, account_id, at_ms, body FROM entries",
    "DELETE FROM _sqlx_migrations WHERE version = 12",
];

/// Turns a database of schema 11 back into what webhookd left before version 11 (schema 10):
/// every log entry with its own copy of the body it sent, migration 11 not recorded.
const BACK_TO_SCHEMA_10: &[&str] = &[
    "UPDATE responses r SET body = jsonb_set(r.body::jsonb, '{request_data}',
         to_jsonb(CASE WHEN d.body_is_event_data
             THEN (SELECT (e.body -> 'data')::text FROM events e WHERE e.id = d.event_id)
             ELSE d.request -> 'request' ->> 'body' END))::json
     FROM deliveries d WHERE r.body_is_request AND d.id = (r.body ->> 'delivery_id')::bigint",
    "ALTER TABLE responses DROP COLUMN body_is_request",
    "DELETE FROM _sqlx_migrations WHERE version = 11",
];

/// Turns a database of schema 10 back into what webhookd left before version 10 (schema 9):
/// every delivery with its own copy of its body, the event's type and the delivery's account
/// and creation time drawn from their JSON by PostgreSQL, migration 10 not recorded.
const BACK_TO_SCHEMA_9: &[&str] = &[
    "UPDATE deliveries d SET request = jsonb_set(d.request::jsonb, '{request,body}',
         to_jsonb((e.body -> 'data')::text))::json
     FROM events e WHERE d.body_is_event_data AND e.id = d.event_id",
    "ALTER TABLE deliveries DROP COLUMN body_is_event_data, DROP COLUMN account_id,
         DROP COLUMN created_at_ms",
    "ALTER TABLE deliveries
         ADD COLUMN account_id text GENERATED ALWAYS AS (request->>'account_id') STORED,
         ADD COLUMN created_at_ms bigint
             GENERATED ALWAYS AS (coalesce((request->>'created_at_ms')::bigint, 0)) STORED",
    "CREATE INDEX deliveries_account_created
         ON deliveries (account_id, created_at_ms DESC, id DESC)",
    "CREATE INDEX deliveries_webhook_created
         ON deliveries (webhook_id, created_at_ms DESC, id DESC)",
    "ALTER TABLE events DROP COLUMN event_type",
    "ALTER TABLE events
         ADD COLUMN event_type text GENERATED ALWAYS AS (body->>'event_type') STORED",
    "CREATE INDEX events_account_type_created
         ON events (account_id, event_type, created_at_ms DESC, id DESC)",
    "DELETE FROM _sqlx_migrations WHERE version = 10",
];

/// Turns a database of schema 9 back into what webhookd left before version 9 (schema 8):
/// the states in the deliveries' own columns, indexed by account and state, no
/// `delivery_states` table, migration 9 not recorded.
const BACK_TO_SCHEMA_8: &[&str] = &[
    "ALTER TABLE deliveries
         ADD COLUMN state text, ADD COLUMN attempts bigint, ADD COLUMN next_attempt_ms bigint,
         ADD COLUMN last_status_code integer, ADD COLUMN last_error text,
         ADD COLUMN updated_at_ms bigint",
    "UPDATE deliveries d SET state = s.state, attempts = s.attempts,
         next_attempt_ms = s.next_attempt_ms, last_status_code = s.last_status_code,
         last_error = s.last_error, updated_at_ms = s.updated_at_ms
     FROM delivery_states s WHERE s.id = d.id",
    "ALTER TABLE deliveries
         ALTER COLUMN state SET NOT NULL, ALTER COLUMN attempts SET NOT NULL,
         ALTER COLUMN next_attempt_ms SET NOT NULL, ALTER COLUMN last_error SET NOT NULL",
    "CREATE INDEX deliveries_account_state_created
         ON deliveries (account_id, state, created_at_ms DESC, id DESC)",
    "DROP TABLE delivery_states",
    "DELETE FROM _sqlx_migrations WHERE version = 9",
];

const ALL_STATES: [pb::DeliveryState; 6] = [
    pb::DeliveryState::Queued,
    pb::DeliveryState::Retrying,
    pb::DeliveryState::Succeeded,
    pb::DeliveryState::Failed,
    pb::DeliveryState::Skipped,
    pb::DeliveryState::Cancelled,
];

/// The account's deliveries in `state`, newest first, and every delivery read one by one.
async fn listing(client: &mut Client, token: &str) -> Vec<(i32, Vec<pb::Delivery>)> {
    let mut out = Vec::new();
    for state in ALL_STATES {
        let page = client
            .list_deliveries(authed(
                token,
                pb::ListDeliveriesRequest {
                    states: vec![state as i32],
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        out.push((state as i32, page.deliveries));
    }
    out
}

/// Webhook `webhook_id`'s deliveries in `state`, newest first, once there are `n` of them.
async fn once_listed(
    client: &Client,
    token: &str,
    webhook_id: &str,
    state: pb::DeliveryState,
    n: usize,
) -> Vec<pb::Delivery> {
    eventually(|| {
        let (mut client, token) = (client.clone(), token.to_string());
        let request = pb::ListDeliveriesRequest {
            webhook_id: webhook_id.into(),
            states: vec![state as i32],
            ..Default::default()
        };
        async move {
            let page = client
                .list_deliveries(authed(&token, request))
                .await
                .unwrap()
                .into_inner();
            (page.deliveries.len() == n).then_some(page.deliveries)
        }
    })
    .await
}

/// The changes a tail sends until none comes for 3 s.
async fn until_quiet(tail: &mut tonic::Streaming<pb::DeliveryStatus>) -> Vec<pb::DeliveryStatus> {
    let mut seen = Vec::new();
    while let Ok(message) = tokio::time::timeout(Duration::from_secs(3), tail.message()).await {
        seen.push(message.unwrap().expect("the tail ended"));
    }
    seen
}

/// A live tail of the account's changes after `cursor` (empty: from now).
async fn tail(
    client: &mut Client,
    token: &str,
    cursor: &str,
) -> tonic::Streaming<pb::DeliveryStatus> {
    let request = pb::WatchDeliveriesRequest {
        cursor: cursor.into(),
        ..Default::default()
    };
    client
        .watch_deliveries(authed(token, request))
        .await
        .unwrap()
        .into_inner()
}

async fn get(client: &mut Client, token: &str, id: &str) -> pb::Delivery {
    client
        .get_delivery(authed(token, pb::GetDeliveryRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn deliveries_in_every_state_survive_the_upgrade_from_schema_8_and_keep_going() {
    let store = TestStore::new().await;
    let Some(url) = store.postgres_url.clone() else {
        return;
    };
    let (ok, down) = (Receiver::start().await, Receiver::start().await);
    down.answer(500);
    let args = [
        "--allow-private-targets",
        "--retry-schedule",
        "50ms",
        "--retry-jitter",
        "false",
    ];

    // Before the upgrade: one event fans out to a healthy endpoint (SUCCEEDED), one that
    // fails with no retry left (FAILED), one that fails and retries in an hour (RETRYING),
    // and a trigger that says no (SKIPPED). Two more events share an ordering key: the
    // second waits behind the retrying first (QUEUED). A third retrying one is cancelled.
    let before = Process::spawn(&store, &args, Some(ADMIN_TOKEN)).await;
    before.ready().await;
    let token = TestServer::token_via(before.http).await;
    let mut client = connect_webhooks(before.grpc).await;
    let ok_hook = create(&mut client, &token, webhook("ok", &ok.url("/ok"))).await;
    let failing = pb::Webhook {
        max_attempts: 1,
        ..webhook("failing", &down.url("/failing"))
    };
    let failing = create(&mut client, &token, failing).await;
    let retrying = pb::Webhook {
        retry_schedule: vec!["1h".into()],
        max_attempts: 5,
        ..webhook("retrying", &down.url("/retrying"))
    };
    let retrying = create(&mut client, &token, retrying).await;
    let never = pb::Webhook {
        trigger_template: Some("{{ 1 == 2 }}".into()),
        ..webhook("never", &ok.url("/never"))
    };
    create(&mut client, &token, never).await;
    let hooks = [ok_hook, failing, retrying.clone()];
    let mut watched = tail(&mut client, &token, "").await;
    emit_acknowledged(&mut client, &token, "1", "key").await;
    emit_acknowledged(&mut client, &token, "2", "key").await;
    emit_acknowledged(&mut client, &token, "3", "").await;
    // Settled: the first and third events' retrying deliveries wait an hour, the second's
    // waits behind the first (nothing else is left to do).
    let waiting = once_listed(
        &client,
        &token,
        &retrying.id,
        pb::DeliveryState::Retrying,
        2,
    )
    .await;
    // Newest first: the third event's delivery, then the first's.
    let (third, first) = (waiting[0].id.clone(), waiting[1].id.clone());
    client
        .cancel_delivery(authed(&token, pb::CancelDeliveryRequest { id: third }))
        .await
        .unwrap();
    // (Up to a minute: the whole suite shares the machine with PostgreSQL in CI.)
    let expected = [
        (pb::DeliveryState::Succeeded, 3),
        (pb::DeliveryState::Failed, 3),
        (pb::DeliveryState::Skipped, 3),
        (pb::DeliveryState::Retrying, 1),
        (pb::DeliveryState::Queued, 1),
        (pb::DeliveryState::Cancelled, 1),
    ];
    let settled = eventually_within(Duration::from_secs(60), || {
        let (mut client, token) = (client.clone(), token.clone());
        async move {
            let listing = listing(&mut client, &token).await;
            let settled = expected.iter().all(|(state, n)| {
                listing
                    .iter()
                    .find(|(s, _)| *s == *state as i32)
                    .map_or(0, |(_, l)| l.len())
                    == *n
            });
            settled.then_some(listing)
        }
    })
    .await;
    let mut one_by_one = Vec::new();
    for (_, deliveries) in &settled {
        for d in deliveries {
            one_by_one.push(get(&mut client, &token, &d.id).await);
        }
    }
    let mut logged = Vec::new();
    for hook in &hooks {
        logged.push(responses(&mut client, &token, &hook.id).await);
    }
    assert!(logged.iter().any(|l| !l.is_empty()));
    let changes = until_quiet(&mut watched).await;
    assert!(changes.len() > 10, "{changes:?}");
    drop(watched);
    // A graceful stop waits for open connections (the client goes first), and is waited for
    // off the runtime (the receivers answer on it until the process is gone).
    drop(client);
    let (status, _) = tokio::task::spawn_blocking(move || before.terminate())
        .await
        .unwrap();
    assert!(status.success());

    // Schema 10 stored the forwarded bodies as references to their events' data.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let by_reference: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE body_is_event_data")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(by_reference > 0);

    // Schema 11 logged the bodies sent as references to their deliveries'.
    let logged_by_reference: i64 =
        sqlx::query_scalar("SELECT count(*) FROM responses WHERE body_is_request")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(logged_by_reference > 0);

    // Schema 12 logged the changes of each write in one row per account.
    let entries_per_row: i32 =
        sqlx::query_scalar("SELECT max(cardinality(seqs)) FROM delivery_changes")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(entries_per_row > 1);

    // Schema 13 kept the waiting deliveries' place in the outbox in their state rows.
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_states WHERE queued")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(queued > 0);

    // The database as a webhookd before version 9 left it.
    for statement in BACK_TO_SCHEMA_12
        .iter()
        .chain(BACK_TO_SCHEMA_11)
        .chain(BACK_TO_SCHEMA_10)
        .chain(BACK_TO_SCHEMA_9)
        .chain(BACK_TO_SCHEMA_8)
    {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }

    // The new binary migrates at start and tells the same story, by state and one by one.
    let after = Process::spawn(&store, &args, Some(ADMIN_TOKEN)).await;
    after.ready().await;
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 13);
    let mut client = connect_webhooks(after.grpc).await;
    assert_eq!(listing(&mut client, &token).await, settled);
    for d in &one_by_one {
        assert_eq!(&get(&mut client, &token, &d.id).await, d);
    }
    for (hook, log) in hooks.iter().zip(&logged) {
        assert_eq!(&responses(&mut client, &token, &hook.id).await, log);
    }
    // The tail resumes from a cursor handed out before the upgrade: the same changes after
    // it, with the same cursors.
    let mut resumed = tail(&mut client, &token, &changes[0].cursor).await;
    let mut replayed = Vec::new();
    for _ in 1..changes.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), resumed.message()).await;
        replayed.push(message.expect("the tail stalled").unwrap().unwrap());
    }
    assert_eq!(replayed, changes[1..]);

    // And serves them: the ordered head cancelled, the delivery behind it goes out (to an
    // endpoint healthy again) and succeeds.
    down.answer(200);
    let cancelled = client
        .cancel_delivery(authed(&token, pb::CancelDeliveryRequest { id: first }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, pb::DeliveryState::Cancelled as i32);
    // (The endpoint's earlier requests come first.)
    loop {
        let arrived = down.next().await;
        if arrived.path == "/retrying" && arrived.json()["alert_group"]["id"] == "2" {
            break;
        }
    }
    once_listed(
        &client,
        &token,
        &retrying.id,
        pb::DeliveryState::Succeeded,
        1,
    )
    .await;
    // The tail goes on past them with what the new binary logs.
    let mut last = replayed.last().unwrap().cursor.clone();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), resumed.message()).await;
        let change = message.expect("the tail stalled").unwrap().unwrap();
        assert!(change.cursor > last);
        last = change.cursor.clone();
        if change.state == pb::DeliveryState::Succeeded as i32 {
            break;
        }
    }
    drop(resumed);
    drop(client);
    let (status, _) = tokio::task::spawn_blocking(move || after.terminate())
        .await
        .unwrap();
    assert!(status.success());
}
