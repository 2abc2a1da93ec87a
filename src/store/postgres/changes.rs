//! The change log of the PostgreSQL backend (`delivery_changes`, migrations/0007): rows
//! appended inside the transaction of the change they record (the emit's group commit, the
//! redelivery's transaction, the attempt batch's transaction), so nothing extra is
//! committed on the delivery path.
//!
//! One row per account per write (migration 0012): its entries as a JSON array in order,
//! each with a value of the table's sequence of its own (`seqs`, ascending), the row's `seq`
//! being the last of them. A batch of attempts or of emitted events adds one row and its
//! two index entries, not one per delivery. A row written before version 12 holds one entry
//! (`seqs` NULL), at its `seq`: cursors handed out before the upgrade keep their meaning.
//!
//! Cursor order across instances: a sequence value taken early can commit after a larger
//! one, so a reader of `seq > cursor` would skip it. Rows are instead ordered by
//! `(xid, seq)`, `xid` being the writing transaction's id (`pg_current_xact_id()`), and a
//! reader reads only rows with `xid < pg_snapshot_xmin(pg_current_snapshot())`: every
//! transaction below that bound has ended, and every transaction that is running or starts
//! later has an id at or above it, so once a reader passes a cursor no row can appear
//! below it. The price: a long transaction anywhere in the cluster holds rows back (they
//! arrive late, never lost); watchers poll while they wait. A cursor is `(xid, seq)` of an
//! entry; the head is `(xmin, 0)`, everything below the bound. The entries of one row come
//! after those of the rows its transaction wrote before (its sequence values are larger),
//! so reading rows in `(xid, seq)` order and entries in row order is cursor order.

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};

use super::{db, from_json, sql_count, to_json, try_retention_lock};
use crate::error::{Error, Result};
use crate::model::DeliveryUpdate;
use crate::store::change_log::{Change, ChangeCursor, ChangePage, StoredUpdate, update_of};

fn xid_of(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::Internal(format!("database: not a transaction id: {text}")))
}

/// Appends one row per account of `entries`, in `tx`.
pub async fn append(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[(&str, DeliveryUpdate)],
    at_ms: i64,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut accounts = Vec::with_capacity(entries.len());
    let mut bodies = Vec::with_capacity(entries.len());
    for (account, update) in entries {
        accounts.push(*account);
        bodies.push(body(update)?);
    }
    sqlx::query(append_rows!("$1", "$2", "$3"))
        .bind(accounts)
        .bind(bodies)
        .bind(at_ms)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Appends the entry of `delivery`'s current state in `tx`, under its account (looked up
/// from its event for a delivery stored before deliveries kept their account).
pub async fn append_delivery(
    tx: &mut Transaction<'_, Postgres>,
    delivery: &crate::model::Delivery,
    at_ms: i64,
) -> Result<()> {
    let account = if delivery.account_id.is_empty() {
        sqlx::query_scalar::<_, String>("SELECT account_id FROM events WHERE id = $1")
            .bind(delivery.event_id as i64)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?
            .unwrap_or_default()
    } else {
        delivery.account_id.clone()
    };
    append(tx, &[(&account, update_of(delivery))], at_ms).await
}

/// The JSON of an update as the log stores it (for statements that append themselves).
pub fn body(update: &DeliveryUpdate) -> Result<String> {
    to_json(&StoredUpdate::from(update))
}

/// Every row readable later is after this cursor.
pub async fn head(pool: &PgPool) -> Result<ChangeCursor> {
    let xmin: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(ChangeCursor {
        high: xid_of(&xmin)?,
        low: 0,
    })
}

/// Up to `limit` rows of `account_id` after `after`, below the bound, with the horizon
/// check, in one statement (one snapshot).
pub async fn read(
    pool: &PgPool,
    account_id: &str,
    after: ChangeCursor,
    limit: usize,
) -> Result<ChangePage> {
    let rows = sqlx::query(
        "WITH bound AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
              horizon AS (
                  SELECT coalesce(bool_or(($2::text::xid8, $3::bigint) < (h.xid, h.seq)), false)
                      AS expired
                  FROM delivery_changes_horizon h)
         SELECT bound.xmin::text, horizon.expired, c.xid::text, c.seq, c.body::text, c.seqs
         FROM bound CROSS JOIN horizon
         LEFT JOIN LATERAL (
             SELECT xid, seq, body, seqs FROM delivery_changes
             WHERE account_id = $1 AND (xid, seq) > ($2::text::xid8, $3::bigint)
                 AND xid < bound.xmin
             ORDER BY xid, seq LIMIT $4) c ON true",
    )
    .bind(account_id)
    .bind(after.high.to_string())
    .bind(after.low as i64)
    .bind(sql_count(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut page = ChangePage {
        next: after,
        ..ChangePage::default()
    };
    let Some(first) = rows.first() else {
        return Ok(page);
    };
    if first.try_get::<bool, _>(1).map_err(db)? {
        page.expired = true;
        return Ok(page);
    }
    let bound = xid_of(&first.try_get::<String, _>(0).map_err(db)?)?;
    // Up to `limit` rows, each with at least one entry after `after` (its last): enough
    // entries for the page, or every one there is.
    'rows: for row in &rows {
        let Some(xid) = row.try_get::<Option<String>, _>(2).map_err(db)? else {
            continue;
        };
        let high = xid_of(&xid)?;
        let body = row.try_get::<String, _>(4).map_err(db)?;
        let entries: Vec<(i64, StoredUpdate)> =
            match row.try_get::<Option<Vec<i64>>, _>(5).map_err(db)? {
                None => vec![(row.try_get::<i64, _>(3).map_err(db)?, from_json(&body)?)],
                Some(seqs) => {
                    let updates: Vec<StoredUpdate> = from_json(&body)?;
                    if updates.len() != seqs.len() {
                        return Err(Error::Internal(format!(
                            "database: a change-log row of {} entries and {} positions",
                            updates.len(),
                            seqs.len()
                        )));
                    }
                    seqs.into_iter().zip(updates).collect()
                }
            };
        for (seq, stored) in entries {
            let cursor = ChangeCursor {
                high,
                low: seq as u64,
            };
            if cursor <= after {
                continue;
            }
            if page.changes.len() == limit {
                break 'rows;
            }
            page.changes.push(Change {
                cursor,
                account_id: account_id.to_string(),
                update: stored.into(),
            });
        }
    }
    page.next = match page.changes.last() {
        Some(last) if page.changes.len() == limit => last.cursor,
        // Everything of the account below the bound has been read.
        _ => after.max(ChangeCursor {
            high: bound,
            low: 0,
        }),
    };
    Ok(page)
}

/// Deletes up to `budget` of the oldest rows written before `before_ms` (whose
/// transactions have ended), moving the horizon in the same transaction; one instance at
/// a time (retention's advisory lock). Returns how many entries they held, and whether the
/// budget stopped it.
pub async fn prune(pool: &PgPool, before_ms: i64, budget: usize) -> Result<(u64, bool)> {
    let mut tx = pool.begin().await.map_err(db)?;
    if !try_retention_lock(&mut tx).await? {
        return Ok((0, false));
    }
    // The oldest rows in cursor order, one past the budget to know whether more are left.
    let rows = sqlx::query(
        "SELECT xid::text, seq, at_ms, coalesce(cardinality(seqs), 1) FROM delivery_changes
         WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY xid, seq LIMIT $1",
    )
    .bind(sql_count(budget.saturating_add(1)))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut last = None;
    let (mut taken, mut entries) = (0usize, 0u64);
    let mut more = false;
    for row in &rows {
        if row.try_get::<i64, _>(2).map_err(db)? >= before_ms {
            break;
        }
        if taken == budget {
            more = true;
            break;
        }
        last = Some((
            row.try_get::<String, _>(0).map_err(db)?,
            row.try_get::<i64, _>(1).map_err(db)?,
        ));
        taken += 1;
        entries += row.try_get::<i32, _>(3).map_err(db)? as u64;
    }
    let Some((xid, seq)) = last else {
        return Ok((0, false));
    };
    sqlx::query(
        "WITH gone AS (
             DELETE FROM delivery_changes WHERE (xid, seq) <= ($1::text::xid8, $2))
         INSERT INTO delivery_changes_horizon (xid, seq) VALUES ($1::text::xid8, $2)
         ON CONFLICT (only_row) DO UPDATE SET xid = excluded.xid, seq = excluded.seq
             WHERE (delivery_changes_horizon.xid, delivery_changes_horizon.seq)
                 < (excluded.xid, excluded.seq)",
    )
    .bind(&xid)
    .bind(seq)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok((entries, more))
}
