//! The operator queries on PostgreSQL: keyset listings of an account's events and
//! deliveries, newest first, on the indexes of migration 0005 (`(account_id, created_at_ms
//! DESC, id DESC)`, per webhook) and 0009 (per state, on the state rows), cancellation in
//! one statement, and a webhook's
//! count of deliveries still to deliver (for its health). Bounds that
//! are not given become the widest values, so each listing is one prepared statement whose
//! plan is an index range scan (a webhook filter picks the per-webhook index instead).

use sqlx::PgPool;
use sqlx::postgres::PgRow;

use super::{db, delivery_of, from_json, sql_count, sql_id, state_name};
use crate::error::Result;
use crate::model::{Delivery, Event};
use crate::store::{DeliveryQuery, EventQuery, Keyset};

/// The columns `delivery_of` reads, in its order (`d` a delivery's row, `s` its state row).
const DELIVERY_COLUMNS: &str = delivery_columns!();

/// `(created_at_ms, id)` strictly below which the page starts.
fn cursor(after: Option<Keyset>) -> (i64, i64) {
    after.map_or((i64::MAX, i64::MAX), |k| (k.created_at_ms, sql_id(k.id)))
}

pub async fn list_events(pool: &PgPool, q: &EventQuery<'_>) -> Result<Vec<Event>> {
    let (before_ms, before_id) = cursor(q.after);
    let bodies: Vec<String> = sqlx::query_scalar(
        "SELECT body::text FROM events
         WHERE account_id = $1 AND ($2::text IS NULL OR event_type = $2)
             AND created_at_ms >= $3 AND created_at_ms < $4
             AND (created_at_ms, id) < ($5, $6)
         ORDER BY created_at_ms DESC, id DESC LIMIT $7",
    )
    .bind(q.account_id)
    .bind(q.event_type)
    .bind(q.created_after_ms.unwrap_or(i64::MIN))
    .bind(q.created_before_ms.unwrap_or(i64::MAX))
    .bind(before_ms)
    .bind(before_id)
    .bind(sql_count(q.limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    bodies.iter().map(|b| from_json(b)).collect()
}

/// The statement of `list_deliveries`. Parameters: $1 the webhook (NULL for none), $2 the
/// states (empty for all), $3 and $4 the creation bounds, $5 and $6 the keyset, $7 the limit,
/// $8 the account. The webhook's own index when a webhook is named (its deliveries' states
/// read beside, or the state index when the planner finds it narrower), else the account's:
/// per state from the state rows' index (migration 0009) when states are named, else from
/// the deliveries' own.
pub fn deliveries_sql(by_webhook: bool, by_state: bool) -> String {
    let (by, filter) = match (by_webhook, by_state) {
        (true, false) => (
            "d",
            "d.webhook_id = $1 AND d.account_id = $8 AND cardinality($2::text[]) = 0",
        ),
        // The account on both rows (the same value): the state index is open to the planner.
        (true, true) => (
            "d",
            "d.webhook_id = $1 AND d.account_id = $8 AND s.account_id = $8
             AND s.state = ANY($2::text[])",
        ),
        (false, false) => (
            "d",
            "d.account_id = $8 AND $1::bigint IS NULL AND cardinality($2::text[]) = 0",
        ),
        (false, true) => (
            "s",
            "s.account_id = $8 AND s.state = ANY($2::text[]) AND $1::bigint IS NULL",
        ),
    };
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN delivery_states s ON s.id = d.id
         WHERE {filter}
             AND {by}.created_at_ms >= $3 AND {by}.created_at_ms < $4
             AND ({by}.created_at_ms, {by}.id) < ($5, $6)
         ORDER BY {by}.created_at_ms DESC, {by}.id DESC LIMIT $7"
    )
}

pub async fn list_deliveries(pool: &PgPool, q: &DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
    let (before_ms, before_id) = cursor(q.after);
    let states = q
        .states
        .iter()
        .map(|s| state_name(*s))
        .collect::<Result<Vec<_>>>()?;
    let sql = deliveries_sql(q.webhook_id.is_some(), !states.is_empty());
    let rows: Vec<PgRow> = sqlx::query(&sql)
        .bind(q.webhook_id.map(sql_id))
        .bind(states)
        .bind(q.created_after_ms.unwrap_or(i64::MIN))
        .bind(q.created_before_ms.unwrap_or(i64::MAX))
        .bind(before_ms)
        .bind(before_id)
        .bind(sql_count(q.limit))
        .bind(q.account_id)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(delivery_of).collect()
}

/// A webhook's deliveries still to deliver, counted up to `cap`: those in the outbox (due
/// or retrying, any lease) and its ordered deliveries out of it (waiting behind their head),
/// read through the outbox's and the queues' webhook indexes.
pub async fn count_waiting(pool: &PgPool, webhook_id: u64, cap: usize) -> Result<usize> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM (
                 SELECT 1 FROM delivery_states WHERE queued AND webhook_id = $1 LIMIT $2) o)
             + (SELECT count(*) FROM (
                 SELECT 1 FROM ordering_queue q WHERE q.webhook_id = $1
                     AND NOT EXISTS (SELECT 1 FROM delivery_states s
                         WHERE s.id = q.delivery_id AND s.queued)
                 LIMIT $2) w)",
    )
    .bind(sql_id(webhook_id))
    .bind(sql_count(cap))
    .fetch_one(pool)
    .await
    .map_err(db)?;
    Ok((n as usize).min(cap))
}

/// Cancels a QUEUED or RETRYING delivery, locking its state row, and takes it out of the
/// outbox when `drop_outbox` (else leaves that to the caller: an ordered one's,
/// `ordering::cancel`); None when it is missing or already final.
pub async fn cancel_delivery(
    executor: impl sqlx::PgExecutor<'_>,
    id: u64,
    at_ms: i64,
    drop_outbox: bool,
) -> Result<Option<Delivery>> {
    let sql = format!(
        "UPDATE delivery_states s SET state = 'CANCELLED', updated_at_ms = $2,
             queued = s.queued AND NOT $3,
             lease_owner = CASE WHEN $3 THEN NULL ELSE s.lease_owner END,
             lease_until_ms = CASE WHEN $3 THEN NULL ELSE s.lease_until_ms END
         FROM deliveries d
         WHERE s.id = $1 AND d.id = s.id AND s.state IN ('QUEUED', 'RETRYING')
         RETURNING {DELIVERY_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(sql_id(id))
        .bind(at_ms)
        .bind(drop_outbox)
        .fetch_optional(executor)
        .await
        .map_err(db)?;
    row.map(|r| delivery_of(&r)).transpose()
}
