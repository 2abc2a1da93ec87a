//! Group commit of attempt records: a collector task gathers the `record_attempt` calls of
//! concurrent workers and writes each gathered batch in one transaction, answering every
//! caller after the COMMIT that covers it (on the bookkeeping pool: that COMMIT does not wait
//! for the WAL flush, see `bookkeeping`). One batch at a time, and no fixed window: a batch
//! goes out as soon as the one before has committed, and what arrives meanwhile forms the
//! next, larger one. (Two at a time only halved the batches: twice the statements, 20% more
//! webhookd CPU per delivery at 8 producers, no faster; the batches of one webhook queue on
//! its stats row anyway, and an attempt's record is not on its emit's path: the webhook's
//! slot was freed at the endpoint's answer.)
//!
//! A batch's transaction, in this lock order (the one every writer of these rows keeps, so
//! two instances' batches never deadlock):
//! 1. the advisory locks of the ordering queues of its ordered deliveries, in queue order
//!    (as emits take them): one that ends, or that a cancel left to its attempt, releases the
//!    next of its queue;
//! 2. its deliveries' state rows (with their outbox part) in delivery order, then the
//!    `webhook_stats` rows of the webhooks with logged attempts in webhook order, locked and
//!    read in one
//!    statement (`LOCK`); `WebhookStats::record` then replays the batch's attempts on them in
//!    attempt order (the same rule as the sled backend: run of failures, breaker), so each
//!    caller gets the stats as its own attempt left them: its own log number, and the
//!    breaker transition it made, if any (each transition is seen by exactly one write);
//! 3. one statement for the rest: per record the delivery's state (kept CANCELLED when it
//!    was cancelled meanwhile, whatever the attempt said), due again in the outbox or out
//!    of it, its change-log entry (one row per account) and its log entry; per webhook
//!    its stats row, written once; the batch's changes to the other instances (the state
//!    each delivery was left in) in `pg_notify` calls of up to `notify::PER_PAYLOAD`
//!    changes each (sent at COMMIT);
//! 4. the ordering releases (the next delivery of a queue is queued in the outbox) of the
//!    ordered deliveries that ended or were kept CANCELLED.
//!
//! The response log is in attempt order: a batch begins (and takes its place in each log)
//! only once the batch formed before it has committed, so a later batch cannot take the next
//! log numbers while an earlier one waits for a row (a delivery's state row held by a cancel,
//! say) and commits after it.
//!
//! A delivery recorded twice before a batch goes out (one statement cannot update it twice)
//! waits for the next batch. A failed transaction fails every record of its batch (each is
//! then not recorded, and attempted again).

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgPool;
use sqlx::{Connection as _, PgConnection, Row};
use tokio::sync::{mpsc, oneshot};

use super::held::Held;
use super::{db, notify, ordering, sql_id, state_name, stats_of, to_json};
use crate::error::{Error, Result};
use crate::model::{BreakerStep, Delivery, ResponseRecord, WebhookStats, now_ms};
use crate::store::change_log::update_of;
use crate::store::{AttemptRecord, Owner};

/// Records of one batch at most.
const MAX_BATCH: usize = 512;

/// One attempt as the batch takes it, owned (it travels to the collector task), its JSON
/// encoded by the caller.
struct Attempt {
    delivery_id: i64,
    event_id: i64,
    webhook_id: i64,
    state: String,
    attempts: i64,
    next_attempt_ms: i64,
    status_code: Option<i32>,
    error: String,
    is_final: bool,
    account_id: String,
    notification: String,
    updated_at_ms: i64,
    change: String,
    /// The log entry (None: nothing logged, stats untouched).
    logged: Option<Logged>,
    succeeded: bool,
    breaker: BreakerStep,
    lease: Option<(i64, i64)>,
    /// An ordered delivery: it releases the next of its queue if it ends (or was kept
    /// CANCELLED: its cancel waited for this attempt).
    ordered: Option<Delivery>,
}

impl Attempt {
    fn of(record: &AttemptRecord<'_>, instance: u64) -> Result<Attempt> {
        let d = record.delivery;
        Ok(Attempt {
            delivery_id: sql_id(d.id),
            event_id: sql_id(d.event_id),
            webhook_id: sql_id(d.webhook_id),
            state: state_name(d.state)?,
            attempts: i64::from(d.attempts),
            next_attempt_ms: d.next_attempt_ms,
            status_code: d.last_status_code.map(i32::from),
            error: d.last_error.clone(),
            is_final: d.state.is_final(),
            account_id: d.account_id.clone(),
            notification: notify::payload(instance, d)?,
            updated_at_ms: d.updated_at_ms,
            change: super::changes::body(&update_of(d))?,
            logged: record.response.map(|r| Logged::of(r, d)).transpose()?,
            succeeded: record.succeeded,
            breaker: record.breaker,
            lease: record.lease.map(|l| (sql_id(l.owner), l.until_ms)),
            ordered: d.ordering.is_some().then(|| d.clone()),
        })
    }
}

/// A log entry as stored: its time and JSON, without the body it sent when that is its
/// delivery's (`body_is_request`, migration 0011: read back from the delivery).
struct Logged {
    at_ms: i64,
    body: String,
    body_is_request: bool,
}

impl Logged {
    fn of(response: &ResponseRecord, delivery: &Delivery) -> Result<Logged> {
        let without = response.without_the_body_of(delivery);
        Ok(Logged {
            at_ms: response.timestamp_ms,
            body: to_json(without.as_ref().unwrap_or(response))?,
            body_is_request: without.is_some(),
        })
    }
}

struct Job {
    attempt: Attempt,
    done: oneshot::Sender<Result<WebhookStats>>,
}

/// Handle to the collector task; it stops when every handle is gone.
pub struct Attempts {
    jobs: mpsc::UnboundedSender<Job>,
    owner: Owner,
}

impl Attempts {
    /// Starts the collector on the current runtime; `owner` names this instance in the
    /// notifications and leases the deliveries its releases queue.
    pub fn start(pool: PgPool, owner: Owner) -> Attempts {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(collect(pool, owner, queue));
        Attempts { jobs, owner }
    }

    /// Records an attempt; returns once it is committed (or its batch failed).
    pub async fn record(&self, record: AttemptRecord<'_>) -> Result<WebhookStats> {
        let stopped = || Error::Internal("the store is shutting down".into());
        let attempt = Attempt::of(&record, self.owner.id)?;
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { attempt, done })
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn collect(pool: PgPool, owner: Owner, mut queue: mpsc::UnboundedReceiver<Job>) {
    let connections = Held::new(pool);
    // A record of a delivery already in the batch being gathered: it starts the next one.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match queue.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut ids = HashSet::from([first.attempt.delivery_id]);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) if ids.insert(job.attempt.delivery_id) => batch.push(job),
                Ok(job) => {
                    carried = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        let attempts: Vec<&Attempt> = batch.iter().map(|j| &j.attempt).collect();
        let written = connections
            .run(async |conn| commit(conn, owner, &attempts).await)
            .await;
        match written {
            Ok(stats) => {
                for (job, stats) in batch.into_iter().zip(stats) {
                    let _ = job.done.send(Ok(stats));
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Locks the rows the batch writes, each kind in key order and the kinds in the order every
/// writer of them keeps (delivery states, then stats: a cancel takes a state row, lease
/// renewals and releases take state rows in delivery order), so no other writer and no other
/// batch can deadlock with it: the state rows of $3 (their outbox part with them), then the
/// stats rows of the webhooks in $1 (created when missing), read with those of $2 (only read:
/// none of their attempts is logged). Each step waits for the one before through a scalar
/// subquery (evaluated once, before its own rows are locked).
pub const LOCK: &str = concat!(
    "WITH d AS (
         SELECT id FROM delivery_states WHERE id = ANY($3) ORDER BY id FOR UPDATE),
     locked AS (
         INSERT INTO webhook_stats AS s (webhook_id)
         SELECT w FROM UNNEST($1::bigint[]) AS w WHERE (SELECT count(*) FROM d) >= 0
         ORDER BY w
         ON CONFLICT (webhook_id) DO UPDATE SET webhook_id = s.webhook_id
         RETURNING webhook_id, ",
    stats_columns!(),
    ")
     SELECT ",
    stats_columns!(),
    ", webhook_id FROM locked
     UNION ALL
     SELECT ",
    stats_columns!(),
    ", webhook_id FROM webhook_stats
     WHERE webhook_id = ANY($2) AND (SELECT count(*) FROM d) >= 0"
);

/// The batch's writes (see the module header). Parameters: $1-$15 one element per record (in
/// batch order), $16 the notification channel, $17 now, $18-$20 and $33 the log entries,
/// $21-$31 the stats rows as the batch leaves them, $32 `notify::PER_PAYLOAD`. It answers one
/// row: the number of notifications sent and the ids of the deliveries kept CANCELLED.
///
/// Each write reaches its rows by key through an array as well as the join (`d.id = ANY($1)`):
/// the bookkeeping sessions plan a statement once, and a plan made while the tables were
/// small joined the batch to a sequential scan of `delivery_states` (and of the outbox), read whole
/// by every batch from then on as the tables grew (a 10 s bench's plan still did at the end).
pub const RECORD: &str = "WITH new AS (
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
             $5::bigint[], $6::bigint[], $7::integer[], $8::text[], $9::bool[], $10::text[],
             $11::text[], $12::bigint[], $13::text[], $14::bigint[], $15::bigint[])
             WITH ORDINALITY
             AS t (id, event_id, webhook_id, state, attempts, next_ms, code, error, is_final,
                 account_id, notification, updated_ms, change, lease_owner, lease_until, n)),
     updated AS (
         -- Still queued (due again, under the lease given) unless it ended or was
         -- cancelled while the attempt was in flight (it stays so).
         UPDATE delivery_states d SET
             state = CASE WHEN d.state = 'CANCELLED' THEN d.state ELSE new.state END,
             attempts = new.attempts, next_attempt_ms = new.next_ms,
             last_status_code = new.code, last_error = new.error, updated_at_ms = new.updated_ms,
             webhook_id = new.webhook_id,
             queued = d.state <> 'CANCELLED' AND NOT new.is_final,
             lease_owner = CASE WHEN d.state <> 'CANCELLED' AND NOT new.is_final
                 THEN new.lease_owner END,
             lease_until_ms = CASE WHEN d.state <> 'CANCELLED' AND NOT new.is_final
                 THEN new.lease_until END
         FROM new WHERE d.id = new.id AND d.id = ANY($1)
         RETURNING d.id, d.state),
     kept AS (
         -- kept_cancelled: cancelled while the attempt was in flight, and it stays so.
         SELECT new.*, coalesce(u.state = 'CANCELLED', false) AS kept_cancelled
         FROM new LEFT JOIN updated u ON u.id = new.id),
     changed AS (
         -- The state each delivery was left in (CANCELLED when it stayed so), under its
         -- account (from its event for a delivery stored before deliveries kept it): a row
         -- per account, its entries in batch order, as `append_rows!` writes them.
         INSERT INTO delivery_changes (seq, account_id, at_ms, body, seqs)
         OVERRIDING SYSTEM VALUE
         SELECT s[cardinality(s)], account_id, $17, body, s
         FROM (SELECT account_id, json_agg(entry ORDER BY n) AS body,
                 array_agg(v ORDER BY v) AS s
             FROM (SELECT k.n, nextval('delivery_changes_seq_seq') AS v,
                     coalesce(nullif(k.account_id, ''),
                         (SELECT e.account_id FROM events e WHERE e.id = k.event_id), '')
                         AS account_id,
                     CASE WHEN k.kept_cancelled
                         THEN (jsonb_set(k.change::jsonb, '{state}',
                                 to_jsonb('CANCELLED'::text)) - 'next_attempt_ms')::json
                         ELSE k.change::json END AS entry
                 FROM kept k) e
             GROUP BY account_id) r),
     logged AS (
         INSERT INTO responses (webhook_id, seq, body, body_is_request)
         SELECT w, seq, body::json, body_is_request
         FROM UNNEST($18::bigint[], $19::bigint[], $20::text[], $33::bool[])
             AS l (w, seq, body, body_is_request)),
     stats AS (
         UPDATE webhook_stats s SET
             last_success_ms = u.last_success, last_failure_ms = u.last_failure,
             failing_since_ms = u.failing_since, response_seq = u.seq,
             breaker_failures = u.failures, breaker_open_until_ms = u.open_until,
             breaker_level = u.level, breaker_opened_at_ms = u.opened_at,
             breaker_changed_seq = u.changed_seq, breaker_changed_at_ms = u.changed_at
         FROM UNNEST($21::bigint[], $22::bigint[], $23::bigint[], $24::bigint[], $25::bigint[],
             $26::integer[], $27::bigint[], $28::integer[], $29::bigint[], $30::bigint[],
             $31::bigint[])
             AS u (w, last_success, last_failure, failing_since, seq, failures, open_until,
                 level, opened_at, changed_seq, changed_at)
         WHERE s.webhook_id = u.w AND s.webhook_id = ANY($21)),
     notified AS (
         -- Each delivery's notification (the state it was left in), $32 to a payload.
         SELECT pg_notify($16, '[' || string_agg(payload, ',' ORDER BY n) || ']')
         FROM (SELECT n, CASE WHEN kept_cancelled
                 THEN jsonb_set(notification::jsonb, '{s}', to_jsonb('CANCELLED'::text))::text
                 ELSE notification END AS payload
             FROM kept) p
         GROUP BY (n - 1) / $32)
     SELECT (SELECT count(*) FROM notified),
         array(SELECT id FROM kept WHERE kept_cancelled ORDER BY id)";

/// Counters are integer in the database.
fn sql_count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Writes a batch in one transaction; one stats value per record, in order.
async fn commit(
    conn: &mut PgConnection,
    owner: Owner,
    batch: &[&Attempt],
) -> Result<Vec<WebhookStats>> {
    let mut ordered: Vec<&Delivery> = batch.iter().filter_map(|a| a.ordered.as_ref()).collect();
    ordered.sort_by(|a, b| {
        let queue = |d: &Delivery| d.ordering.as_ref().map(|o| o.queue.clone());
        (a.webhook_id, queue(a)).cmp(&(b.webhook_id, queue(b)))
    });
    let mut logged_by: Vec<i64> = batch
        .iter()
        .filter(|a| a.logged.is_some())
        .map(|a| a.webhook_id)
        .collect();
    logged_by.sort_unstable();
    logged_by.dedup();
    let mut read_only: Vec<i64> = batch
        .iter()
        .map(|a| a.webhook_id)
        .filter(|w| logged_by.binary_search(w).is_err())
        .collect();
    read_only.sort_unstable();
    read_only.dedup();

    let mut tx = conn.begin().await.map_err(db)?;
    for d in &ordered {
        ordering::lock_for_release(&mut tx, d).await?;
    }
    let rows = sqlx::query(LOCK)
        .bind(&logged_by)
        .bind(&read_only)
        .bind(batch.iter().map(|a| a.delivery_id).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let mut current: HashMap<i64, WebhookStats> = HashMap::with_capacity(rows.len());
    for row in &rows {
        current.insert(row.try_get(10).map_err(db)?, stats_of(row)?);
    }

    // The batch's attempts in order, each on the stats the one before left.
    let mut answers = Vec::with_capacity(batch.len());
    let mut entries: (Vec<i64>, Vec<i64>, Vec<&str>, Vec<bool>) = Default::default();
    for a in batch {
        let stats = current.entry(a.webhook_id).or_default();
        if let Some(logged) = &a.logged {
            stats.record(logged.at_ms, a.succeeded, a.breaker);
            entries.0.push(a.webhook_id);
            entries.1.push(stats.response_seq as i64);
            entries.2.push(&logged.body);
            entries.3.push(logged.body_is_request);
        }
        answers.push(stats.clone());
    }
    let written: Vec<(i64, &WebhookStats)> = logged_by.iter().map(|w| (*w, &current[w])).collect();
    let stat = |f: &dyn Fn(&WebhookStats) -> Option<i64>| {
        written.iter().map(|(_, s)| f(s)).collect::<Vec<_>>()
    };
    let count = |f: &dyn Fn(&WebhookStats) -> u32| {
        written
            .iter()
            .map(|(_, s)| sql_count(f(s)))
            .collect::<Vec<_>>()
    };
    let column = |f: &dyn Fn(&Attempt) -> i64| batch.iter().map(|a| f(a)).collect::<Vec<_>>();
    let texts = |f: &dyn Fn(&Attempt) -> &str| batch.iter().map(|a| f(a)).collect::<Vec<_>>();
    let (_, kept_cancelled): (i64, Vec<i64>) = sqlx::query_as(RECORD)
        .bind(column(&|a| a.delivery_id))
        .bind(column(&|a| a.event_id))
        .bind(column(&|a| a.webhook_id))
        .bind(texts(&|a| &a.state))
        .bind(column(&|a| a.attempts))
        .bind(column(&|a| a.next_attempt_ms))
        .bind(batch.iter().map(|a| a.status_code).collect::<Vec<_>>())
        .bind(texts(&|a| &a.error))
        .bind(batch.iter().map(|a| a.is_final).collect::<Vec<_>>())
        .bind(texts(&|a| &a.account_id))
        .bind(texts(&|a| &a.notification))
        .bind(column(&|a| a.updated_at_ms))
        .bind(texts(&|a| &a.change))
        .bind(
            batch
                .iter()
                .map(|a| a.lease.map(|l| l.0))
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|a| a.lease.map(|l| l.1))
                .collect::<Vec<_>>(),
        )
        .bind(notify::CHANNEL)
        .bind(now_ms())
        .bind(&entries.0)
        .bind(&entries.1)
        .bind(&entries.2)
        .bind(written.iter().map(|(w, _)| *w).collect::<Vec<_>>())
        .bind(stat(&|s| s.last_success_ms))
        .bind(stat(&|s| s.last_failure_ms))
        .bind(stat(&|s| s.failing_since_ms))
        .bind(stat(&|s| Some(s.response_seq as i64)))
        .bind(count(&|s| s.breaker.consecutive_failures))
        .bind(stat(&|s| s.breaker.open_until_ms))
        .bind(count(&|s| s.breaker.cooldown_level))
        .bind(stat(&|s| s.breaker.opened_at_ms))
        .bind(stat(&|s| Some(s.breaker.changed_seq as i64)))
        .bind(stat(&|s| Some(s.breaker.changed_at_ms)))
        .bind(notify::PER_PAYLOAD)
        .bind(&entries.3)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let lease = owner.lease_from(now_ms());
    for d in ordered {
        if d.state.is_final() || kept_cancelled.contains(&sql_id(d.id)) {
            ordering::release(&mut tx, d, lease).await?;
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(answers)
}
