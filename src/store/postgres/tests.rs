//! Tests of the PostgreSQL store, each on a fresh database of the server named by
//! WEBHOOKD_TEST_POSTGRES_URL (scripts/with-postgres starts one); without it they pass
//! without running. The store conformance suite, then what only this backend has: a schema
//! version check, ids shared by instances, idempotency keys claimed across transactions.

use std::sync::Arc;

use sqlx::Connection;

use super::*;
use crate::model::DeliveryState;
use crate::store::IdempotencyKey;
use crate::store::conformance::{ALL, OWNER, TestBackend, conformance_suite, response};

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

fn histogram() -> Histogram {
    Histogram::with_opts(prometheus::HistogramOpts::new("commit", "commit")).unwrap()
}

/// A store on `url` as instance `owner`.
async fn connect(url: &str, owner: Owner) -> PostgresStore {
    PostgresStore::connect(url, owner, POOL_SIZE, histogram())
        .await
        .unwrap()
}

async fn backend() -> Option<TestBackend> {
    let url = fresh_url().await?;
    Some(TestBackend {
        store: Arc::new(connect(&url, OWNER).await),
        guard: Box::new(()),
    })
}

conformance_suite!(backend);

fn event(id: u64, created_at_ms: i64, delivery_ids: Vec<u64>) -> Event {
    Event {
        id,
        account_id: "acme".into(),
        event_type: "alert group created".into(),
        data: serde_json::json!({"n": id}),
        created_at_ms,
        delivery_ids,
        operational: false,
    }
}

fn delivery(id: u64, event_id: u64, state: DeliveryState) -> Delivery {
    Delivery {
        state,
        next_attempt_ms: 5,
        ..Delivery::queued(id, event_id, 1, "http://x".into(), String::new(), 0)
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
        connect(&url, OWNER).await,
        connect(&url, Owner { id: 2, ..OWNER }).await,
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
    connect(&url, OWNER).await;
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let error = PostgresStore::connect(&url, OWNER, POOL_SIZE, histogram())
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
    let store = Arc::new(connect(&url, OWNER).await);
    let mut tasks = Vec::new();
    for id in 1..=20u64 {
        let store = Arc::clone(&store);
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
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_states WHERE queued")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_claim_walks_the_index_however_big_one_webhooks_backlog() {
    let Some(url) = fresh_url().await else { return };
    let store = connect(&url, OWNER).await;
    // A dead webhook's 200,000 due deliveries, 10 each of 50 other webhooks, and as many
    // finished ones as the dead webhook has due.
    for statement in [
        "INSERT INTO delivery_states (id, created_at_ms, state, attempts, next_attempt_ms,
             last_error, webhook_id, queued)
         SELECT g, g, 'RETRYING', 1, g, '', 1, true FROM generate_series(1, 200000) g",
        "INSERT INTO delivery_states (id, created_at_ms, state, attempts, next_attempt_ms,
             last_error, webhook_id, queued)
         SELECT 1000000 + g, g, 'QUEUED', 0, g, '', 2 + g % 50, true
         FROM generate_series(1, 500) g",
        "INSERT INTO delivery_states (id, created_at_ms, state, attempts, next_attempt_ms,
             last_error, webhook_id, queued)
         SELECT 2000000 + g, g, 'SUCCEEDED', 1, g, '', 2 + g % 50, false
         FROM generate_series(1, 200000) g",
        "ANALYZE delivery_states",
    ] {
        sqlx::query(statement).execute(&store.pool).await.unwrap();
    }
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE) {}", claims::CLAIM))
        .bind(i64::MAX)
        .bind(1_i64)
        .bind(10_i64)
        .bind(Vec::<i64>::new())
        .bind(1000_i64)
        .bind(7_i64)
        .bind(60_000_i64)
        .bind(1_i64)
        .fetch_all(&store.pool)
        .await
        .unwrap();
    let plan = plan.join("\n");
    println!("{plan}");
    // One index probe per webhook and at most its share of rows: no scan of the backlog.
    assert!(!plan.contains("Seq Scan on delivery_states"), "{plan}");
    assert!(plan.contains("delivery_states_queued"), "{plan}");
    let leased: i64 =
        sqlx::query_scalar("SELECT count(*) FROM delivery_states WHERE lease_owner = 7")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(leased, 10 + 50 * 10);
}

/// The plan a bookkeeping session makes once for `sql` (its `$n` given as NULLs: the plan is
/// generic whatever the values), one line per node.
async fn generic_plan(store: &PostgresStore, sql: &str, parameters: usize) -> String {
    let mut conn = store.bookkeeping.acquire().await.unwrap();
    sqlx::query(&format!("PREPARE planned AS {sql}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    let nulls = vec!["NULL"; parameters].join(", ");
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE planned({nulls})"))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DEALLOCATE planned")
        .execute(&mut *conn)
        .await
        .unwrap();
    plan.join("\n")
}

#[tokio::test]
async fn attempt_records_and_claims_planned_on_small_tables_still_find_their_rows_by_key() {
    let Some(url) = fresh_url().await else { return };
    let store = connect(&url, OWNER).await;
    // Planned once while the tables hold a page or so (as at a fresh start), then used for
    // every batch while `delivery_states` grows with every delivery retained: a scan of a
    // table here would be a scan per batch for good.
    sqlx::query(
        "INSERT INTO delivery_states (id, created_at_ms, state, attempts, next_attempt_ms,
             last_error, webhook_id, queued)
         SELECT g, g, 'QUEUED', 0, g, '', 1, true FROM generate_series(1, 20) g",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    let plans = [
        ("RECORD", generic_plan(&store, attempts::RECORD, 33).await),
        ("LOCK", generic_plan(&store, attempts::LOCK, 3).await),
        ("CLAIM", generic_plan(&store, claims::CLAIM, 8).await),
        ("RENEW", generic_plan(&store, claims::RENEW, 3).await),
        ("RELEASE", generic_plan(&store, claims::RELEASE, 2).await),
    ];
    for (name, plan) in plans {
        for table in ["delivery_states", "webhook_stats"] {
            assert!(
                !plan.contains(&format!("Seq Scan on {table}")),
                "{name}: {plan}"
            );
        }
    }
}

/// Until `pool` has `idle` idle connections (a connection given back is tested first).
async fn until_idle(pool: &PgPool, idle: usize) {
    for _ in 0..200 {
        if pool.num_idle() == idle {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{} idle connections, not {idle}", pool.num_idle());
}

#[tokio::test]
async fn a_collector_keeps_its_connection_between_batches_but_never_a_pools_last_one() {
    let Some(url) = fresh_url().await else { return };
    let backend = async |conn: &mut PgConnection| -> Result<i32> {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
            .map_err(db)
    };
    // A pool of two: one batch after another runs on the same connection, kept between them.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let batches = held::Held::new(pool.clone());
    let first = batches.run(backend).await.unwrap();
    assert_eq!(batches.run(backend).await.unwrap(), first);
    assert_eq!((pool.size(), pool.num_idle()), (1, 0));
    // A failed batch gives its connection back to the pool (whose test closes a broken one).
    let failed = batches
        .run(async |conn: &mut PgConnection| {
            sqlx::query("SELECT no_such_column")
                .execute(conn)
                .await
                .map_err(db)
        })
        .await;
    assert!(failed.is_err());
    until_idle(&pool, 1).await;

    // A pool of one: its only connection goes back after each batch, for the other calls.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect(&url)
        .await
        .unwrap();
    let batches = held::Held::new(pool.clone());
    batches.run(backend).await.unwrap();
    until_idle(&pool, 1).await;
    let other_call = sqlx::query("SELECT 1").execute(&pool).await;
    assert!(other_call.is_ok(), "{other_call:?}");
}

#[tokio::test]
async fn an_instance_id_has_one_live_holder_and_a_restart_takes_back_its_leases_at_once() {
    let Some(url) = fresh_url().await else { return };
    let first = connect(&url, OWNER).await;
    // Rows leased for 30 s more: one to this instance, one to another live instance.
    let until = now_ms() + 30_000;
    for (delivery_id, owner) in [(1_i64, OWNER.id), (2, 77)] {
        sqlx::query(
            "INSERT INTO delivery_states (id, created_at_ms, state, attempts, next_attempt_ms,
                 last_error, webhook_id, queued, lease_owner, lease_until_ms)
             VALUES ($1, 0, 'QUEUED', 0, 0, '', 1, true, $2, $3)",
        )
        .bind(delivery_id)
        .bind(sql_id(owner))
        .bind(until)
        .execute(&first.pool)
        .await
        .unwrap();
    }
    let claim = |owner: Owner| Claim {
        lease: owner.lease_from(now_ms()),
        now_ms: now_ms(),
        due_before_ms: i64::MAX,
        per_webhook: 10,
        limit: 10,
        skip: &[],
    };
    // The live instance claims nothing it already holds.
    assert_eq!(first.claim(claim(OWNER)).await.unwrap(), vec![]);

    // A second start with the same id while the first lives is refused, saying why.
    let refused = PostgresStore::connect(&url, OWNER, POOL_SIZE, histogram())
        .await
        .err()
        .expect("a second live holder of one id");
    assert!(
        refused
            .to_string()
            .contains("another live webhookd instance uses instance id 1"),
        "{refused}"
    );

    // Restarted (the first one gone), the same id takes back its own lease at once, and
    // only its own.
    drop(first);
    let restarted = connect(&url, OWNER).await;
    let taken = restarted.claim(claim(OWNER)).await.unwrap();
    assert_eq!(
        taken.iter().map(|e| e.delivery_id).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(restarted.claim(claim(OWNER)).await.unwrap(), vec![]);
}

#[tokio::test]
async fn only_the_engines_bookkeeping_commits_without_waiting_for_the_wal_flush() {
    let Some(url) = fresh_url().await else { return };
    let store = connect(&url, OWNER).await;
    let setting = |pool: &PgPool, name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(&format!("SHOW {name}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // Emits, CRUD and cancels: an acknowledgement follows the flush that covers it.
    assert_eq!(setting(&store.pool, "synchronous_commit").await, "on");
    // Claims, leases and attempt records: a crash of PostgreSQL may only repeat an attempt.
    assert_eq!(
        setting(&store.bookkeeping, "synchronous_commit").await,
        "off"
    );
    // Those find their rows by key: planned once, not again for each batch's values; the
    // operator listings on the main pool are planned for their filters.
    assert_eq!(
        setting(&store.bookkeeping, "plan_cache_mode").await,
        "force_generic_plan"
    );
    assert_eq!(setting(&store.pool, "plan_cache_mode").await, "auto");
    // Nor with a scan of a table.
    assert_eq!(setting(&store.bookkeeping, "enable_seqscan").await, "off");
    assert_eq!(setting(&store.pool, "enable_seqscan").await, "on");
}

#[tokio::test]
async fn listings_by_state_read_the_state_index_and_the_others_the_deliveries_own() {
    let Some(url) = fresh_url().await else { return };
    let store = connect(&url, OWNER).await;
    // 100,000 deliveries of one account over 20 webhooks, one in 1,000 FAILED.
    for statement in [
        "INSERT INTO deliveries (id, event_id, webhook_id, request, account_id, created_at_ms)
         SELECT g, g, 1 + g % 20, json_build_object('account_id', 'acme', 'created_at_ms', g),
             'acme', g
         FROM generate_series(1, 100000) g",
        "INSERT INTO delivery_states (id, account_id, created_at_ms, state, attempts,
             next_attempt_ms, last_error)
         SELECT g, 'acme', g, CASE WHEN g % 1000 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, 1, 0, ''
         FROM generate_series(1, 100000) g",
        "ANALYZE deliveries",
        "ANALYZE delivery_states",
    ] {
        sqlx::query(statement).execute(&store.pool).await.unwrap();
    }
    let plan = |by_webhook: bool, states: Vec<&'static str>| {
        let pool = store.pool.clone();
        async move {
            let sql = queries::deliveries_sql(by_webhook, !states.is_empty());
            let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE) {sql}"))
                .bind(by_webhook.then_some(3_i64))
                .bind(states)
                .bind(i64::MIN)
                .bind(i64::MAX)
                .bind(i64::MAX)
                .bind(i64::MAX)
                .bind(50_i32)
                .bind("acme")
                .fetch_all(&pool)
                .await
                .unwrap();
            plan.join("\n")
        }
    };
    let failed = plan(false, vec!["FAILED"]).await;
    assert!(
        failed.contains("delivery_states_account_state_created"),
        "{failed}"
    );
    assert!(!failed.contains("Seq Scan"), "{failed}");
    let all = plan(false, vec![]).await;
    assert!(all.contains("deliveries_account_created"), "{all}");
    assert!(!all.contains("Seq Scan"), "{all}");
    let of_webhook = plan(true, vec![]).await;
    assert!(
        of_webhook.contains("deliveries_webhook_created"),
        "{of_webhook}"
    );
    assert!(!of_webhook.contains("Seq Scan"), "{of_webhook}");
    // A webhook's deliveries in a state: either index, as the planner sees fit.
    let failed_of_webhook = plan(true, vec!["FAILED"]).await;
    assert!(
        !failed_of_webhook.contains("Seq Scan"),
        "{failed_of_webhook}"
    );
}

#[tokio::test]
async fn the_response_log_is_in_attempt_order_when_an_earlier_batch_waits_for_a_row() {
    let Some(url) = fresh_url().await else { return };
    let store = Arc::new(connect(&url, OWNER).await);
    let deliveries = [
        delivery(1, 10, DeliveryState::Queued),
        delivery(2, 10, DeliveryState::Queued),
    ];
    let emitted = event(10, 0, vec![1, 2]);
    store
        .insert_events(&[new(&emitted, &deliveries, None)])
        .await
        .unwrap();
    // Another transaction holds the first delivery's state row (as a cancel would).
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM delivery_states WHERE id = 1 FOR UPDATE")
        .execute(&mut *held)
        .await
        .unwrap();
    let record = |d: &Delivery| {
        let store = Arc::clone(&store);
        let mut done = d.clone();
        done.state = DeliveryState::Succeeded;
        done.attempts = 1;
        tokio::spawn(async move {
            let response = response(&done, 1, 1, 200);
            store
                .record_attempt(AttemptRecord {
                    delivery: &done,
                    previous_due_ms: done.next_attempt_ms,
                    response: Some(&response),
                    succeeded: true,
                    breaker: Default::default(),
                    lease: None,
                })
                .await
        })
    };
    let first = record(&deliveries[0]);
    // Its batch waits for the held row.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the first attempt's batch never waited for the held row"
        );
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'webhookd-bookkeeping' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        if waiting == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut second = record(&deliveries[1]);
    // The second attempt's batch may not take the log's next place before the first: give
    // it the chance to (it commits meanwhile where nothing holds it back), then let the
    // first go on.
    let early = tokio::time::timeout(Duration::from_secs(1), &mut second)
        .await
        .ok();
    held.rollback().await.unwrap();
    first.await.unwrap().unwrap();
    match early {
        Some(done) => done,
        None => second.await,
    }
    .unwrap()
    .unwrap();
    let logged: Vec<u64> = store
        .list_responses(1, ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.delivery_id)
        .collect();
    // Newest first.
    assert_eq!(logged, vec![2, 1]);
}

/// A queued delivery of event `event_id` with a rendered body.
fn with_body(id: u64, event_id: u64, body: String) -> Delivery {
    Delivery {
        request: Some(crate::model::RenderedRequest {
            method: "POST".into(),
            url: "http://x".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(body),
            traceparent: None,
        }),
        account_id: "acme".into(),
        created_at_ms: 1,
        updated_at_ms: 1,
        ..delivery(id, event_id, DeliveryState::Queued)
    }
}

/// Emits event `id` with two deliveries (ids `id + 1` and `id + 2`): a forward_all webhook's,
/// whose body is the event's data, and a template's, whose body is its own.
async fn emit_forwarded_and_templated(store: &PostgresStore, id: u64) -> (Delivery, Delivery) {
    let emitted = event(id, 1, vec![id + 1, id + 2]);
    let forwarded = with_body(id + 1, id, serde_json::to_string(&emitted.data).unwrap());
    let templated = with_body(id + 2, id, format!(r#"{{"text": "alert {id}"}}"#));
    let deliveries = [forwarded.clone(), templated.clone()];
    store
        .insert_events(&[new(&emitted, &deliveries, None)])
        .await
        .unwrap();
    (forwarded, templated)
}

#[tokio::test]
async fn a_body_that_is_its_events_data_is_stored_once_and_read_back_whole() {
    let Some(url) = fresh_url().await else { return };
    let store = connect(&url, OWNER).await;
    let (forwarded, templated) = emit_forwarded_and_templated(&store, 10).await;

    // The forwarded body is not copied into the delivery's row; the templated one is.
    let stored: Vec<(i64, bool, bool)> = sqlx::query_as(
        "SELECT id, body_is_event_data, request -> 'request' ->> 'body' IS NULL
         FROM deliveries ORDER BY id",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(stored, vec![(11, true, true), (12, false, false)]);
    // The columns drawn from the records are the writer's (no longer PostgreSQL's).
    let drawn: (String, String, i64) = sqlx::query_as(
        "SELECT e.event_type, d.account_id, d.created_at_ms
         FROM events e JOIN deliveries d ON d.event_id = e.id WHERE d.id = 11",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(drawn, ("alert group created".into(), "acme".into(), 1));

    // Every read gives both back whole: by id (from another instance, which did not write
    // them), in a listing, and from a cancel.
    let other = connect(&url, Owner { id: 2, ..OWNER }).await;
    assert_eq!(
        other.get_delivery(11).await.unwrap(),
        Some(forwarded.clone())
    );
    assert_eq!(
        other.get_delivery(12).await.unwrap(),
        Some(templated.clone())
    );
    let listed = other
        .list_deliveries(&DeliveryQuery {
            account_id: "acme",
            webhook_id: None,
            states: &[],
            created_after_ms: None,
            created_before_ms: None,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed, vec![templated, forwarded.clone()]);
    let Cancelled::Now(cancelled) = other.cancel_delivery(11, 7).await.unwrap() else {
        panic!("the queued delivery was not cancelled");
    };
    assert_eq!(cancelled.request, forwarded.request);
}

#[tokio::test]
async fn a_logged_attempt_keeps_the_body_it_sent_once_with_its_delivery() {
    let Some(url) = fresh_url().await else { return };
    let store = connect(&url, OWNER).await;
    let (forwarded, templated) = emit_forwarded_and_templated(&store, 20).await;

    // Each delivery is attempted and fails; the templated one then logs a template error
    // text in place of its body.
    let mut logged = Vec::new();
    for (n, d) in [&forwarded, &templated, &templated].into_iter().enumerate() {
        let attempted = Delivery {
            state: DeliveryState::Retrying,
            attempts: 1 + u32::from(n == 2),
            next_attempt_ms: 50,
            ..d.clone()
        };
        let mut sent = response(&attempted, attempted.attempts, 10 + n as i64, 503);
        if n == 2 {
            sent.request_data = Some("Data - Template Warning: x".into());
        }
        store
            .record_attempt(AttemptRecord {
                delivery: &attempted,
                previous_due_ms: d.next_attempt_ms,
                response: Some(&sent),
                succeeded: false,
                breaker: Default::default(),
                lease: None,
            })
            .await
            .unwrap();
        logged.push(sent);
    }

    // The bodies that were the deliveries' are not copied into the log; the other is.
    let stored: Vec<(bool, bool)> = sqlx::query_as(
        "SELECT body_is_request, body ->> 'request_data' IS NULL FROM responses ORDER BY seq",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(stored, vec![(true, true), (true, true), (false, false)]);

    // Another instance lists them whole, newest first.
    let other = connect(&url, Owner { id: 2, ..OWNER }).await;
    let listed: Vec<ResponseRecord> = other
        .list_responses(1, ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    logged.reverse();
    assert_eq!(listed, logged);
}

#[tokio::test]
async fn concurrent_reads_of_deliveries_each_get_their_own() {
    let Some(url) = fresh_url().await else { return };
    let writer = connect(&url, OWNER).await;
    let ids: Vec<u64> = (101..=150).collect();
    let emitted = event(100, 1, ids.clone());
    let deliveries: Vec<Delivery> = ids
        .iter()
        .map(|id| Delivery {
            last_error: format!("delivery {id}"),
            ..delivery(*id, 100, DeliveryState::Queued)
        })
        .collect();
    writer
        .insert_events(&[new(&emitted, &deliveries, None)])
        .await
        .unwrap();

    // Another instance (nothing of them in its `fresh`) reads them all at once, one twice,
    // and one that does not exist.
    let reader = connect(&url, Owner { id: 2, ..OWNER }).await;
    let asked: Vec<u64> = ids.iter().copied().chain([101, 999]).collect();
    let answers = futures::future::join_all(asked.iter().map(|id| reader.get_delivery(*id))).await;
    for (id, answer) in asked.iter().zip(answers) {
        let answer = answer.unwrap();
        match *id {
            999 => assert_eq!(answer, None),
            id => assert_eq!(answer.unwrap().last_error, format!("delivery {id}")),
        }
    }
}

/// `account_id`'s change-log entries after `after`, `limit` a page, once `count` are
/// readable (every transaction that wrote them has ended): their delivery ids and cursors.
async fn changes_of(
    store: &PostgresStore,
    account_id: &str,
    mut after: ChangeCursor,
    limit: usize,
    count: usize,
) -> Vec<(u64, ChangeCursor)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut read = Vec::new();
    while read.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "only {read:?} arrived"
        );
        let page = store.read_changes(account_id, after, limit).await.unwrap();
        assert!(page.changes.len() <= limit);
        after = page.next;
        read.extend(
            page.changes
                .iter()
                .map(|c| (c.update.delivery_id, c.cursor)),
        );
    }
    read
}

#[tokio::test]
async fn a_write_logs_its_changes_in_one_row_per_account_read_entry_by_entry() {
    let Some(url) = fresh_url().await else { return };
    let store = connect(&url, OWNER).await;
    let start = store.change_head().await.unwrap();

    // One write of three events, two of them acme's (three deliveries), one another
    // account's.
    let first = event(30, 1, vec![31, 32]);
    let theirs = Event {
        account_id: "other".into(),
        ..event(40, 1, vec![41])
    };
    let last = event(50, 1, vec![51]);
    let (ours, other) = (
        [
            delivery(31, 30, DeliveryState::Queued),
            delivery(32, 30, DeliveryState::Skipped),
        ],
        [delivery(41, 40, DeliveryState::Queued)],
    );
    let later = [delivery(51, 50, DeliveryState::Queued)];
    store
        .insert_events(&[
            new(&first, &ours, None),
            new(&theirs, &other, None),
            new(&last, &later, None),
        ])
        .await
        .unwrap();
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "SELECT account_id, cardinality(seqs) FROM delivery_changes ORDER BY account_id",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![("acme".into(), 3), ("other".into(), 1)]);

    // A row written before version 12 (one entry, no positions) follows in its own
    // transaction.
    let legacy = serde_json::json!({
        "event_id": 60, "webhook_id": 1, "delivery_id": 61, "url": "http://x",
        "state": "QUEUED", "attempt": 0
    });
    sqlx::query("INSERT INTO delivery_changes (account_id, at_ms, body) VALUES ('acme', 1, $1)")
        .bind(legacy)
        .execute(&store.pool)
        .await
        .unwrap();

    // Read whole, one at a time (a page ends inside a row), and on from each entry: the
    // same entries in write order, each once, their cursors ascending.
    let all = changes_of(&store, "acme", start, 100, 4).await;
    let ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [31, 32, 51, 61]);
    assert!(all.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!(changes_of(&store, "acme", start, 1, 4).await, all);
    for (n, (_, cursor)) in all.iter().enumerate() {
        let rest = changes_of(&store, "acme", *cursor, 2, 3 - n).await;
        assert_eq!(rest, all[n + 1..]);
    }
    let other = changes_of(&store, "other", start, 100, 1).await;
    assert_eq!(other[0].0, 41);

    // Pruning counts entries, and a cursor inside a pruned row has expired.
    let later = now_ms() + 60_000;
    let pruned = loop {
        let pruned = store.prune_changes(later, 2).await.unwrap();
        if pruned != (0, false) {
            break pruned;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(pruned, (4, true));
    let expired = store.read_changes("acme", all[0].1, 100).await.unwrap();
    assert!(expired.expired);
    // The row written before version 12 is one entry.
    assert_eq!(store.prune_changes(later, 2).await.unwrap(), (1, false));
    let after_all = store.read_changes("acme", all[3].1, 100).await.unwrap();
    assert!(!after_all.expired && after_all.changes.is_empty());
}

#[tokio::test]
async fn an_emit_write_is_planned_once_per_connection_not_at_every_batch() {
    let Some(url) = fresh_url().await else { return };
    let _migrated = connect(&url, OWNER).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // Batches of one to three events, as concurrent emits make them.
    for n in 0..20u64 {
        let batch: Vec<inserts::Pending> = (0..n % 3 + 1)
            .map(|i| {
                let id = 1000 + n * 100 + i * 10;
                inserts::Pending {
                    event: event(id, 1, vec![id + 1]),
                    deliveries: vec![delivery(id + 1, id, DeliveryState::Queued)],
                    idempotency: None,
                }
            })
            .collect();
        let events: Vec<&inserts::Pending> = batch.iter().collect();
        let lease = OWNER.lease_from(now_ms());
        inserts::write(&mut conn, &events, &[], &Default::default(), lease)
            .await
            .unwrap();
    }
    // PostgreSQL plans the first five for their values, then keeps the generic plan when
    // it costs no more: a statement whose generic plan looks dearer is planned again at
    // every batch (~0.15 ms of the database's CPU each).
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE 'WITH written AS%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((generic, custom), (15, 5));
}
