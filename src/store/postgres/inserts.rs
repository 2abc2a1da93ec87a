//! Group commit of emits: a collector task gathers the events of concurrent callers and
//! writes them in one statement (events, deliveries, their states and change-log entries as
//! CTEs over arrays; a transaction when keys or queues come first, or when the batch has
//! more deliveries than one statement carries: `STATEMENT_DELIVERIES`), answering every caller
//! after its COMMIT. No fixed window: a batch goes out at once when fewer than
//! `COMMITS_IN_FLIGHT` are committing, and what arrives meanwhile forms the next. The
//! deliveries a batch wrote are kept for their first attempt's read (`fresh`).
//!
//! Idempotency keys are claimed row by row in the same transaction, in key order (so two
//! batches never wait on each other's keys in opposite orders): `INSERT ... ON CONFLICT DO
//! NOTHING`, else the existing row is locked and read; a key whose lifetime ended or whose
//! event retention deleted is taken over, otherwise the event is a duplicate of that one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prometheus::Histogram;
use sqlx::postgres::PgPool;
use sqlx::{Connection as _, PgConnection, Postgres, Transaction};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::fresh::Written;
use super::held::Held;
use super::{db, sql_id, state_name, to_json};
use crate::error::{Error, Result};
use crate::model::{Delivery, Event, now_ms};
use crate::store::change_log::update_of;
use crate::store::{InsertOutcome, Lease, Owner};

/// Events of one batch at most (a larger emit still goes in one transaction of its own).
const MAX_BATCH_EVENTS: usize = 1000;

/// Batches committing at the same time. Two: one batch's statement runs while the other's
/// WAL flush and answer travel, and whatever arrives meanwhile forms the next batch, as large
/// as the load makes it. Measured on a 2-core Xeon at 8 producers: one in flight made 5.5
/// events per commit and 1,950-2,030 events/s, two made 2.2 and 2,115-2,207 (x64 the same
/// within noise); three (with the collector's kept connections, `held`) made no difference,
/// and 4 in flight made batches of 1.5 events and cost more CPU per event in PostgreSQL and
/// here.
const COMMITS_IN_FLIGHT: usize = 2;

/// Deliveries one write statement carries at most; a batch with more (or larger ones than
/// `STATEMENT_BYTES` holds) is written in several statements of one transaction. Each statement holds its rows three more times while it
/// is sent (their text, sqlx's arguments, the connection's write buffer: ~6 KB per delivery
/// of a 1.3 KB event), so a batch of 1,000 events x 10 webhooks in one statement held
/// ~100 MB more than its deliveries; in runs of 1,000 it holds about a tenth of that.
const STATEMENT_DELIVERIES: usize = 1000;

/// The rows' size (`row_bytes`) one write statement carries at most: larger events make
/// shorter runs, so what a statement holds while it is sent stays about the same.
const STATEMENT_BYTES: usize = 2 * 1024 * 1024;

/// An idempotency key, owned.
pub struct Key {
    pub account_id: String,
    pub key: String,
    pub ttl_ms: i64,
}

/// One event to write, owned (it travels to the collector task).
pub struct Pending {
    pub event: Event,
    pub deliveries: Vec<Delivery>,
    pub idempotency: Option<Key>,
}

struct Job {
    events: Vec<Pending>,
    done: oneshot::Sender<Result<Vec<InsertOutcome>>>,
}

/// Handle to the collector task; it stops when every handle is gone.
pub struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts the collector on the current runtime.
    /// The deliveries it queues are leased to `owner`, and the deliveries it wrote go to
    /// `written`.
    pub fn start(
        pool: PgPool,
        owner: Owner,
        commit_seconds: Histogram,
        written: Arc<Written>,
    ) -> GroupCommit {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(collect(pool, owner, commit_seconds, written, queue));
        GroupCommit { jobs }
    }

    /// Writes `events`; returns once they are committed (or the transaction failed).
    pub async fn insert(&self, events: Vec<Pending>) -> Result<Vec<InsertOutcome>> {
        let stopped = || Error::Internal("the store is shutting down".into());
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { events, done })
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn collect(
    pool: PgPool,
    owner: Owner,
    commit_seconds: Histogram,
    written: Arc<Written>,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    let held = Arc::new(Held::new(pool));
    let commits = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = Arc::clone(&commits).acquire_owned().await else {
            return;
        };
        let mut size = first.events.len();
        let mut batch = vec![first];
        while size < MAX_BATCH_EVENTS {
            match queue.try_recv() {
                Ok(job) => {
                    size += job.events.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let (held, commit_seconds, written) = (
            Arc::clone(&held),
            commit_seconds.clone(),
            Arc::clone(&written),
        );
        tokio::spawn(async move {
            let _commit = permit;
            let events: Vec<&Pending> = batch.iter().flat_map(|j| &j.events).collect();
            let timer = commit_seconds.start_timer();
            let result = held
                .run(async |conn| commit(conn, &events, owner).await)
                .await;
            timer.observe_duration();
            let mut outcomes = match result {
                Ok(outcomes) => {
                    written.put(
                        events
                            .iter()
                            .zip(&outcomes)
                            .filter(|(_, o)| **o == InsertOutcome::Inserted)
                            .flat_map(|(e, _)| &e.deliveries)
                            .filter(|d| !d.state.is_final()),
                    );
                    outcomes.into_iter()
                }
                Err(e) => {
                    for job in batch {
                        let _ = job.done.send(Err(e.clone()));
                    }
                    return;
                }
            };
            for job in batch {
                let mine = outcomes.by_ref().take(job.events.len()).collect();
                let _ = job.done.send(Ok(mine));
            }
        });
    }
}

/// Writes a batch; one outcome per event, in order. Without idempotency keys or ordered
/// deliveries it is one statement (one round trip, one COMMIT); otherwise the keys are
/// claimed and the queues written first in one transaction.
async fn commit(
    conn: &mut PgConnection,
    events: &[&Pending],
    owner: Owner,
) -> Result<Vec<InsertOutcome>> {
    let simple = events
        .iter()
        .all(|e| e.idempotency.is_none() && e.deliveries.iter().all(|d| d.ordering.is_none()));
    let parts = parts(events);
    if simple && parts.len() == 1 {
        write(
            conn,
            events,
            &[],
            &HashSet::new(),
            owner.lease_from(now_ms()),
        )
        .await?;
        return Ok(vec![InsertOutcome::Inserted; events.len()]);
    }
    if simple {
        let mut tx = conn.begin().await.map_err(db)?;
        let lease = owner.lease_from(now_ms());
        for part in parts {
            write(&mut tx, part, &[], &HashSet::new(), lease).await?;
        }
        tx.commit().await.map_err(db)?;
        return Ok(vec![InsertOutcome::Inserted; events.len()]);
    }
    let mut tx = conn.begin().await.map_err(db)?;
    let mut outcomes = vec![InsertOutcome::Inserted; events.len()];
    let mut keyed: Vec<(usize, &Key)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.idempotency.as_ref().map(|k| (i, k)))
        .collect();
    keyed.sort_by(|(i, a), (j, b)| (&a.account_id, &a.key, i).cmp(&(&b.account_id, &b.key, j)));
    // Keys claimed in this batch (a later event with the same key is its duplicate).
    let mut claimed: HashMap<(&str, &str), u64> = HashMap::new();
    for (i, key) in keyed {
        let event = &events[i].event;
        if let Some(first) = claimed.get(&(key.account_id.as_str(), key.key.as_str())) {
            outcomes[i] = InsertOutcome::Duplicate(*first);
            continue;
        }
        match claim(&mut tx, key, event).await? {
            Some(earlier) => outcomes[i] = InsertOutcome::Duplicate(earlier),
            None => {
                claimed.insert((&key.account_id, &key.key), event.id);
            }
        }
    }
    let written: Vec<&Pending> = events
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o == InsertOutcome::Inserted)
        .map(|(e, _)| *e)
        .collect();
    let deliveries: Vec<&Delivery> = written.iter().flat_map(|e| &e.deliveries).collect();
    // Ordered deliveries behind an unfinished one of their queue wait out of the outbox.
    let held = super::ordering::enqueue(&mut tx, &deliveries).await?;
    let lease = owner.lease_from(now_ms());
    for part in self::parts(&written) {
        write(&mut tx, part, &[], &held, lease).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(outcomes)
}

/// `events` cut into runs of whole events of at most `STATEMENT_DELIVERIES` deliveries and
/// `STATEMENT_BYTES` of their requests each (an event with more is a run of its own), in
/// order.
fn parts<'a, 'p>(events: &'a [&'p Pending]) -> Vec<&'a [&'p Pending]> {
    let mut parts = Vec::new();
    let (mut start, mut deliveries, mut bytes) = (0, 0, 0);
    for (i, event) in events.iter().enumerate() {
        let more = event.deliveries.len();
        let more_bytes: usize = event.deliveries.iter().map(row_bytes).sum();
        let full = deliveries + more > STATEMENT_DELIVERIES || bytes + more_bytes > STATEMENT_BYTES;
        if i > start && full {
            parts.push(&events[start..i]);
            (start, deliveries, bytes) = (i, 0, 0);
        }
        deliveries += more;
        bytes += more_bytes;
    }
    parts.push(&events[start..]);
    parts
}

/// About the size of a delivery's row as sent: its request body and a kilobyte for the rest.
fn row_bytes(delivery: &Delivery) -> usize {
    let body = delivery.request.as_ref().and_then(|r| r.body.as_ref());
    1024 + body.map_or(0, String::len)
}

/// Claims an idempotency key for `event`; returns the earlier event it names if that one
/// still holds it.
async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    key: &Key,
    event: &Event,
) -> Result<Option<u64>> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, event_id, used_at_ms)
         VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, key) DO NOTHING",
    )
    .bind(&key.account_id)
    .bind(&key.key)
    .bind(sql_id(event.id))
    .bind(event.created_at_ms)
    .execute(&mut **tx)
    .await
    .map_err(db)?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    // Held: lock it (a concurrent claimer waits here) and see whether it is still live.
    let (earlier, used_at_ms, exists): (i64, i64, bool) = sqlx::query_as(
        "SELECT k.event_id, k.used_at_ms, EXISTS (SELECT 1 FROM events e WHERE e.id = k.event_id)
         FROM idempotency_keys k WHERE account_id = $1 AND key = $2 FOR UPDATE",
    )
    .bind(&key.account_id)
    .bind(&key.key)
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    if exists && event.created_at_ms - used_at_ms < key.ttl_ms {
        return Ok(Some(earlier as u64));
    }
    sqlx::query(
        "UPDATE idempotency_keys SET event_id = $3, used_at_ms = $4
         WHERE account_id = $1 AND key = $2",
    )
    .bind(&key.account_id)
    .bind(&key.key)
    .bind(sql_id(event.id))
    .bind(event.created_at_ms)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(None)
}

/// Writes new deliveries of existing events (redelivery), those still to attempt queued
/// under `lease` (an ordered one only when it heads its queue); their change-log entries are
/// the caller's.
pub async fn write_deliveries(
    tx: &mut Transaction<'_, Postgres>,
    deliveries: &[Delivery],
    lease: Lease,
) -> Result<()> {
    let refs: Vec<&Delivery> = deliveries.iter().collect();
    let held = super::ordering::enqueue(tx, &refs).await?;
    write(tx, &[], &refs, &held, lease).await
}

/// One statement: the events and their deliveries (each its row and its state row; a body
/// that is its event's data is not copied, see migration 0010), `more` deliveries (of
/// existing events, stored whole), those still to attempt (not final, not `held` behind
/// another of their queue) queued in the outbox under `lease` (migration 0013: in their state
/// rows), and the events' deliveries' change-log entries, in order (a row per account).
const WRITE: &str = concat!(
    "WITH written AS (
         INSERT INTO events (id, account_id, created_at_ms, body, event_type)
         SELECT id, account_id, created_at_ms, body::json, event_type
         FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $22::text[])
             AS t (id, account_id, created_at_ms, body, event_type)),
     new AS (
         SELECT * FROM UNNEST($5::bigint[], $6::bigint[], $7::bigint[], $8::text[],
             $9::bigint[], $10::bigint[], $11::integer[], $12::text[], $13::text[], $14::bool[],
             $20::text[], $21::bigint[], $23::bool[])
             AS t (id, event_id, webhook_id, state, attempts, due_ms, code, error, request,
                 pending, account_id, created_ms, body_is_event_data)),
     stored AS (
         INSERT INTO deliveries (id, event_id, webhook_id, request, account_id, created_at_ms,
             body_is_event_data)
         SELECT id, event_id, webhook_id, request::json, account_id, created_ms,
             body_is_event_data
         FROM new),
     states AS (
         INSERT INTO delivery_states (id, account_id, created_at_ms, state, attempts,
             next_attempt_ms, last_status_code, last_error, webhook_id, queued, lease_owner,
             lease_until_ms)
         SELECT id, account_id, created_ms, state, attempts, due_ms, code, error, webhook_id,
             pending, CASE WHEN pending THEN $15::bigint END,
             CASE WHEN pending THEN $16::bigint END
         FROM new),
     changed AS (",
    append_rows!("$17", "$18", "$19"),
    ")
     SELECT 1"
);

pub(super) async fn write(
    conn: &mut PgConnection,
    events: &[&Pending],
    more: &[&Delivery],
    held: &HashSet<u64>,
    lease: Lease,
) -> Result<()> {
    let n = events.len();
    let (mut ids, mut accounts, mut created, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut types, mut data) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut change_accounts, mut changes) = (Vec::new(), Vec::new());
    for new in events {
        ids.push(sql_id(new.event.id));
        accounts.push(new.event.account_id.as_str());
        created.push(new.event.created_at_ms);
        bodies.push(to_json(&new.event)?);
        types.push(new.event.event_type.as_str());
        data.push(to_json(&new.event.data)?);
        for d in &new.deliveries {
            change_accounts.push(new.event.account_id.as_str());
            changes.push(super::changes::body(&update_of(d))?);
        }
    }
    // Each delivery with the JSON text of its event's data, when that is at hand.
    let deliveries: Vec<(&Delivery, Option<&str>)> = events
        .iter()
        .zip(&data)
        .flat_map(|(e, data)| e.deliveries.iter().map(|d| (d, Some(data.as_str()))))
        .chain(more.iter().map(|d| (*d, None)))
        .collect();
    let n = deliveries.len();
    let (mut d_ids, mut d_events, mut webhooks) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut states, mut attempts, mut due) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut codes, mut errors, mut requests, mut pending) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut d_accounts, mut d_created) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut by_reference = Vec::with_capacity(n);
    for (d, event_data) in deliveries {
        d_ids.push(sql_id(d.id));
        d_events.push(sql_id(d.event_id));
        webhooks.push(sql_id(d.webhook_id));
        states.push(state_name(d.state)?);
        attempts.push(i64::from(d.attempts));
        due.push(d.next_attempt_ms);
        codes.push(d.last_status_code.map(i32::from));
        errors.push(d.last_error.as_str());
        let body = d.request.as_ref().and_then(|r| r.body.as_deref());
        let is_event_data = body.is_some() && body == event_data;
        requests.push(if is_event_data {
            to_json(&without_body(d))?
        } else {
            to_json(d)?
        });
        by_reference.push(is_event_data);
        pending.push(!d.state.is_final() && !held.contains(&d.id));
        d_accounts.push(d.account_id.as_str());
        d_created.push(d.created_at_ms);
    }
    sqlx::query(WRITE)
        .bind(ids)
        .bind(accounts)
        .bind(created)
        .bind(bodies)
        .bind(d_ids)
        .bind(d_events)
        .bind(webhooks)
        .bind(states)
        .bind(attempts)
        .bind(due)
        .bind(codes)
        .bind(errors)
        .bind(requests)
        .bind(pending)
        .bind(sql_id(lease.owner))
        .bind(lease.until_ms)
        .bind(change_accounts)
        .bind(changes)
        .bind(now_ms())
        .bind(d_accounts)
        .bind(d_created)
        .bind(types)
        .bind(by_reference)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    // The connection's write buffer grew to the statement (tens of MB for a batch of 1,000
    // events) and sqlx keeps that capacity: back to its default, or every connection of the
    // pool that once wrote a large batch holds its size for good.
    conn.shrink_buffers();
    Ok(())
}

/// `delivery` with no request body (stored as a reference to its event's data).
fn without_body(delivery: &Delivery) -> Delivery {
    let mut copy = delivery.clone();
    if let Some(request) = copy.request.as_mut() {
        request.body = None;
    }
    copy
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::RenderedRequest;

    /// An event with `webhooks` deliveries whose request bodies are `body` bytes long.
    fn pending(id: u64, webhooks: u64, body: usize) -> Pending {
        let deliveries = (0..webhooks)
            .map(|w| Delivery {
                request: Some(RenderedRequest {
                    method: "POST".into(),
                    url: "http://127.0.0.1/".into(),
                    headers: Vec::new(),
                    body: Some("x".repeat(body)),
                    traceparent: None,
                }),
                ..Delivery::queued(
                    id * 100 + w,
                    id,
                    w,
                    "http://127.0.0.1/".into(),
                    "a".into(),
                    0,
                )
            })
            .collect();
        Pending {
            event: Event {
                id,
                account_id: "a".into(),
                event_type: "t".into(),
                data: json!({}),
                created_at_ms: 0,
                delivery_ids: Vec::new(),
                operational: false,
            },
            deliveries,
            idempotency: None,
        }
    }

    fn sizes(events: &[Pending]) -> Vec<usize> {
        let refs: Vec<&Pending> = events.iter().collect();
        parts(&refs).iter().map(|part| part.len()).collect()
    }

    #[test]
    fn a_big_batch_is_written_in_runs_of_whole_events_bounded_by_rows_and_by_bytes() {
        // 1,000 events x 10 small deliveries: runs of 100 events (1,000 deliveries).
        let small: Vec<_> = (0..1000).map(|i| pending(i, 10, 300)).collect();
        assert_eq!(sizes(&small), vec![100; 10]);
        // Large bodies: fewer deliveries per run (about 2 MiB of rows each).
        let large: Vec<_> = (0..100).map(|i| pending(i, 10, 20 * 1024)).collect();
        assert_eq!(
            sizes(&large),
            vec![9; 11].into_iter().chain([1]).collect::<Vec<_>>()
        );
        // An event larger than a run is a run of its own; a small batch is one run.
        let mixed = vec![pending(1, 2, 10), pending(2, 2000, 10), pending(3, 2, 10)];
        assert_eq!(sizes(&mixed), vec![1, 1, 1]);
        assert_eq!(sizes(&small[..3]), vec![3]);
    }
}
