//! Ordering-key queues in PostgreSQL: table `ordering_queue` (migration 0006). Every change of
//! a queue runs in a transaction holding the queue's advisory lock (`pg_advisory_xact_lock`,
//! taken in queue order when a transaction writes several), so instances sharing the database
//! agree on who is the head: a delivery written while its queue has another row is not queued
//! in the outbox, and the transaction that records the head's final state queues the next
//! one before it commits.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};

use super::{PostgresStore, db, sql_id, state_name};
use crate::error::Result;
use crate::model::{Delivery, DeliveryState};
use crate::store::{Lease, OrderingBacklog, OrderingHead, OrderingStore, OutboxEntry};

/// Takes the advisory lock of a webhook's queue until the transaction ends.
async fn lock(tx: &mut Transaction<'_, Postgres>, webhook_id: u64, queue: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))")
        .bind(webhook_id.to_string())
        .bind(queue)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Puts the unfinished ordered deliveries at the back of their queues; returns those that
/// wait behind another (they are not queued in the outbox).
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    deliveries: &[&Delivery],
) -> Result<HashSet<u64>> {
    let mut ordered: Vec<(&Delivery, &str)> = deliveries
        .iter()
        .filter(|d| !d.state.is_final())
        .filter_map(|d| Some((*d, d.ordering.as_ref()?.queue.as_str())))
        .collect();
    // Locks in one order everywhere (stable: a queue's deliveries keep their emit order).
    ordered.sort_by_key(|(d, queue)| (d.webhook_id, *queue));
    let mut held = HashSet::new();
    for (d, queue) in ordered {
        lock(tx, d.webhook_id, queue).await?;
        let before: i64 = sqlx::query_scalar(
            "WITH added AS (
                 INSERT INTO ordering_queue (delivery_id, webhook_id, queue) VALUES ($1, $2, $3))
             SELECT count(*) FROM ordering_queue WHERE webhook_id = $2 AND queue = $3",
        )
        .bind(sql_id(d.id))
        .bind(sql_id(d.webhook_id))
        .bind(queue)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
        if before > 0 {
            held.insert(d.id);
        }
    }
    Ok(held)
}

/// Locks the queue of an ordered delivery that is becoming final (before its state is
/// written), so no write of the queue runs in between.
pub async fn lock_for_release(tx: &mut Transaction<'_, Postgres>, d: &Delivery) -> Result<()> {
    match &d.ordering {
        Some(ordering) => lock(tx, d.webhook_id, &ordering.queue).await,
        None => Ok(()),
    }
}

/// Takes a final delivery out of its queue and makes sure the first one left is queued in
/// the outbox if it is unfinished: one queued now is leased with `lease` (the releasing
/// instance schedules it at once; should it not, any instance claims it once the lease
/// ends). One queued already (the head, when a delivery behind it ended) keeps its due time
/// and lease. A final first one is a head cancelled while leased (`cancel`): it holds the
/// queue until it is released in turn.
pub async fn release(tx: &mut Transaction<'_, Postgres>, d: &Delivery, lease: Lease) -> Result<()> {
    match &d.ordering {
        Some(ordering) => release_from(tx, d.id, d.webhook_id, &ordering.queue, lease).await,
        None => Ok(()),
    }
}

/// `release` of delivery `id` from the queue `queue` of webhook `webhook_id`.
async fn release_from(
    tx: &mut Transaction<'_, Postgres>,
    id: u64,
    webhook_id: u64,
    queue: &str,
    lease: Lease,
) -> Result<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM ordering_queue WHERE delivery_id = $1),
         first AS (
             SELECT q.delivery_id FROM ordering_queue q
             WHERE q.webhook_id = $2 AND q.queue = $3 AND q.delivery_id <> $1
             ORDER BY q.seq LIMIT 1)
         UPDATE delivery_states s SET queued = true, webhook_id = $2, lease_owner = $6,
             lease_until_ms = $7
         FROM first WHERE s.id = first.delivery_id AND s.state IN ($4, $5) AND NOT s.queued",
    )
    .bind(sql_id(id))
    .bind(sql_id(webhook_id))
    .bind(queue)
    .bind(state_name(DeliveryState::Queued)?)
    .bind(state_name(DeliveryState::Retrying)?)
    .bind(sql_id(lease.owner))
    .bind(lease.until_ms)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Cancels an ordered delivery; the caller's transaction holds its queue's lock. A head
/// queued under a live lease (its holder may have its attempt on the wire) stays queued and
/// keeps its place: the next one waits until the holder lets go of it (its attempt recorded,
/// or the cancel found before one: `remove_stale`), or any instance claims the row once the
/// lease ends and does the same, so the two never overlap. Otherwise the row goes and the
/// next one is released now. None when it is missing or already final.
pub async fn cancel(
    tx: &mut Transaction<'_, Postgres>,
    id: u64,
    at_ms: i64,
    lease: Lease,
) -> Result<Option<Delivery>> {
    let Some(cancelled) = super::queries::cancel_delivery(&mut **tx, id, at_ms, false).await?
    else {
        return Ok(None);
    };
    // Its state row is locked by the cancel (a claim taking it right now went first).
    let held: bool = sqlx::query_scalar(
        "SELECT coalesce(queued AND lease_owner IS NOT NULL AND lease_until_ms > $2, false)
         FROM delivery_states WHERE id = $1",
    )
    .bind(sql_id(id))
    .bind(crate::model::now_ms())
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    if !held {
        sqlx::query(
            "UPDATE delivery_states SET queued = false, lease_owner = NULL,
                 lease_until_ms = NULL
             WHERE id = $1",
        )
        .bind(sql_id(id))
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        release(tx, &cancelled, lease).await?;
    }
    Ok(Some(cancelled))
}

/// `Store::remove_outbox_entry`: takes a stale entry out of the outbox, and when its
/// delivery is final but still in its queue (a head cancelled while leased, see `cancel`),
/// releases the next one, leased with `lease`.
pub async fn remove_stale(pool: &PgPool, entry: OutboxEntry, lease: Lease) -> Result<()> {
    let queued: Option<(i64, String)> = sqlx::query_as(
        "WITH gone AS (
             UPDATE delivery_states SET queued = false, lease_owner = NULL,
                 lease_until_ms = NULL
             WHERE id = $1 AND next_attempt_ms = $2 AND queued)
         SELECT q.webhook_id, q.queue FROM ordering_queue q
         JOIN delivery_states s ON s.id = q.delivery_id
         WHERE q.delivery_id = $1 AND s.state NOT IN ($3, $4)",
    )
    .bind(sql_id(entry.delivery_id))
    .bind(entry.due_ms)
    .bind(state_name(DeliveryState::Queued)?)
    .bind(state_name(DeliveryState::Retrying)?)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    let Some((webhook_id, queue)) = queued else {
        return Ok(());
    };
    let mut tx = pool.begin().await.map_err(db)?;
    lock(&mut tx, webhook_id as u64, &queue).await?;
    release_from(&mut tx, entry.delivery_id, webhook_id as u64, &queue, lease).await?;
    tx.commit().await.map_err(db)
}

#[async_trait]
impl OrderingStore for PostgresStore {
    async fn ordering_head(&self, webhook_id: u64, queue: &str) -> Result<Option<OrderingHead>> {
        let row = sqlx::query(
            "SELECT s.id, s.next_attempt_ms, s.lease_owner, s.lease_until_ms
             FROM ordering_queue q
             JOIN delivery_states s ON s.id = q.delivery_id
             WHERE q.webhook_id = $1 AND q.queue = $2 ORDER BY q.seq LIMIT 1",
        )
        .bind(sql_id(webhook_id))
        .bind(queue)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(row.map(|r| {
            let owner: Option<i64> = r.get(2);
            let until_ms: Option<i64> = r.get(3);
            OrderingHead {
                entry: OutboxEntry {
                    due_ms: r.get(1),
                    delivery_id: r.get::<i64, _>(0) as u64,
                    webhook_id,
                },
                lease: owner.zip(until_ms).map(|(owner, until_ms)| Lease {
                    owner: owner as u64,
                    until_ms,
                }),
            }
        }))
    }

    async fn ordering_backlog(&self) -> Result<OrderingBacklog> {
        let row = sqlx::query(
            "WITH queues AS (
                 SELECT webhook_id, queue, min(seq) AS head FROM ordering_queue
                 GROUP BY webhook_id, queue HAVING count(*) > 1)
             SELECT count(*), min(s.next_attempt_ms) FROM queues
             JOIN ordering_queue q ON q.seq = queues.head
             JOIN delivery_states s ON s.id = q.delivery_id",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(OrderingBacklog {
            blocked_keys: row.get::<i64, _>(0) as u64,
            oldest_blocked_head_ms: row.get(1),
        })
    }
}
