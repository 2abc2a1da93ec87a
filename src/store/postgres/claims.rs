//! Claiming queued deliveries under leases (the outbox: the `queued` state rows, migration
//! 0013). One statement claims: a recursive CTE walks the distinct webhooks of the outbox
//! through its partial (webhook_id, next_attempt_ms, id) index (one index probe per webhook,
//! however many rows each has), a LATERAL subquery takes each
//! webhook's earliest due free rows `FOR UPDATE SKIP LOCKED` (rows another instance is
//! claiming at the same moment are passed over, never waited for), the webhooks take turns
//! up to the limit, and the chosen rows get the lease. A webhook whose stored circuit
//! breaker is open (whichever instance opened it) is passed over; once its open period has
//! passed (half-open) a claim takes one row of it, the probe. Rows this owner's predecessor
//! (the same id before a restart) leased are claimable at once. Renewal and release touch only
//! the rows named, locked in delivery order (as attempt records lock them, so the two never
//! deadlock), and only while this owner holds them. Every write reaches its rows through the
//! primary key's index by an array (`= ANY`), never through a join the planner may run as a
//! scan of the whole table (see `attempts::RECORD`). All of them run on the bookkeeping pool
//! (commits that do not wait for the WAL flush: a lease lost in a crash of PostgreSQL is
//! only claimed again).

use sqlx::{PgPool, Row};

use super::{db, sql_count, sql_id};
use crate::error::Result;
use crate::store::{Claim, Lease, OutboxEntry};

/// The claim: $1 due before, $2 now, $3 per webhook, $4 webhooks to skip, $5 limit, $6 owner,
/// $7 lease until, $8 the owner's own leases ending before this are its predecessor's.
pub const CLAIM: &str = "WITH RECURSIVE hooks (webhook_id) AS (
             (SELECT webhook_id FROM delivery_states WHERE queued ORDER BY webhook_id LIMIT 1)
             UNION ALL
             SELECT (SELECT o.webhook_id FROM delivery_states o
                     WHERE o.queued AND o.webhook_id > h.webhook_id
                     ORDER BY o.webhook_id LIMIT 1)
             FROM hooks h WHERE h.webhook_id IS NOT NULL),
         candidates AS (
             SELECT c.id, c.webhook_id, c.next_attempt_ms FROM hooks h
             LEFT JOIN webhook_stats b ON b.webhook_id = h.webhook_id
             CROSS JOIN LATERAL (
                 SELECT o.id, o.webhook_id, o.next_attempt_ms FROM delivery_states o
                 WHERE o.queued AND o.webhook_id = h.webhook_id AND o.next_attempt_ms <= $1
                     AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $2
                         OR (o.lease_owner = $6 AND o.lease_until_ms < $8))
                     AND (b.breaker_open_until_ms IS NULL OR b.breaker_open_until_ms <= $2)
                 ORDER BY o.next_attempt_ms, o.id
                 LIMIT CASE WHEN b.breaker_open_until_ms IS NULL THEN $3 ELSE 1 END
                 FOR UPDATE OF o SKIP LOCKED) c
             WHERE h.webhook_id IS NOT NULL AND h.webhook_id <> ALL($4)),
         chosen AS (
             SELECT id FROM (
                 SELECT id, next_attempt_ms, row_number() OVER (
                     PARTITION BY webhook_id ORDER BY next_attempt_ms, id) AS turn
                 FROM candidates) t
             ORDER BY turn, next_attempt_ms, id
             LIMIT $5)
         UPDATE delivery_states o SET lease_owner = $6, lease_until_ms = $7
         WHERE o.id = ANY(ARRAY(SELECT id FROM chosen))
         RETURNING o.next_attempt_ms, o.id, o.webhook_id";

/// Leases due free rows, and those of `owner`'s predecessor (its leases ending before
/// `reclaim_before_ms`); see `Store::claim`.
pub async fn claim(
    pool: &PgPool,
    claim: Claim<'_>,
    reclaim_before_ms: i64,
) -> Result<Vec<OutboxEntry>> {
    let skip: Vec<i64> = claim.skip.iter().map(|&id| sql_id(id)).collect();
    let rows = sqlx::query(CLAIM)
        .bind(claim.due_before_ms)
        .bind(claim.now_ms)
        .bind(sql_count(claim.per_webhook))
        .bind(skip)
        .bind(sql_count(claim.limit))
        .bind(sql_id(claim.lease.owner))
        .bind(claim.lease.until_ms)
        .bind(reclaim_before_ms)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    let mut entries = rows
        .iter()
        .map(|r| {
            Ok(OutboxEntry {
                due_ms: r.try_get(0).map_err(db)?,
                delivery_id: r.try_get::<i64, _>(1).map_err(db)? as u64,
                webhook_id: r.try_get::<i64, _>(2).map_err(db)? as u64,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    entries.sort_by_key(|e| (e.due_ms, e.delivery_id));
    Ok(entries)
}

/// The renewal: $1 the deliveries, $2 the owner, $3 its lease's new end.
pub const RENEW: &str = "WITH mine AS (
             SELECT id FROM delivery_states WHERE id = ANY($1) AND lease_owner = $2
             ORDER BY id FOR UPDATE)
         UPDATE delivery_states o SET lease_until_ms = $3 FROM mine
         WHERE o.id = mine.id AND o.id = ANY($1)";

/// The release: $1 the deliveries, $2 the owner.
pub const RELEASE: &str = "WITH mine AS (
             SELECT id FROM delivery_states WHERE id = ANY($1) AND lease_owner = $2
             ORDER BY id FOR UPDATE)
         UPDATE delivery_states o SET lease_owner = NULL, lease_until_ms = NULL FROM mine
         WHERE o.id = mine.id AND o.id = ANY($1)";

/// Extends this owner's leases on the named rows.
pub async fn renew(pool: &PgPool, lease: Lease, delivery_ids: &[u64]) -> Result<()> {
    let ids: Vec<i64> = delivery_ids.iter().map(|&id| sql_id(id)).collect();
    sqlx::query(RENEW)
        .bind(ids)
        .bind(sql_id(lease.owner))
        .bind(lease.until_ms)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

/// Frees the named rows this owner holds.
pub async fn release(pool: &PgPool, owner: u64, delivery_ids: &[u64]) -> Result<()> {
    let ids: Vec<i64> = delivery_ids.iter().map(|&id| sql_id(id)).collect();
    sqlx::query(RELEASE)
        .bind(ids)
        .bind(sql_id(owner))
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}
