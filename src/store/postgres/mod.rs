//! The PostgreSQL backend (the only module that imports sqlx): several webhookd instances
//! share one database. Tables are created and migrated at start (`schema`); records are the
//! JSON of the model types, with columns for what queries filter, order or update.
//!
//! Durability: every statement or transaction is committed before its call returns, so
//! `flush` has nothing left to do. Emits are group-committed (`inserts`): concurrent events
//! share one transaction and each emit is answered after its COMMIT; so are attempt records
//! (`attempts`), each webhook's stats row written once per batch. The delivery engine's own
//! writes (attempt records, claims, leases) commit without waiting for the WAL flush on a
//! pool of their own (`bookkeeping`): only acknowledgements wait for it. Ids come from one
//! database sequence in blocks, so instances never hand out the same id. The sealing layer
//! above seals webhook secrets before they reach this module; nothing here sees them in clear.
//!
//! Other instances' delivery changes arrive by LISTEN/NOTIFY (`notify`); the listener and
//! the health probe use a small pool of their own, so a busy main pool never delays them.
//! The main and bookkeeping pools test a connection before use only when it sat idle
//! (`liveness`), not with a round trip before every call.
//! Webhooks and tokens are read through per-instance caches (`cache`) that the writes of
//! every instance invalidate by notification; an entry is never used after `cache::MAX_AGE`.

/// The columns of `webhook_stats` that `stats_of` reads, in its order.
macro_rules! stats_columns {
    () => {
        "last_success_ms, last_failure_ms, failing_since_ms, response_seq, breaker_failures,
         breaker_open_until_ms, breaker_level, breaker_opened_at_ms, breaker_changed_seq,
         breaker_changed_at_ms"
    };
}

/// The body of a delivery's row `d` that is its event's data (migration 0010: not copied
/// into the row), as JSON text; NULL for a delivery whose row holds its own body.
macro_rules! event_data_body {
    () => {
        "CASE WHEN d.body_is_event_data THEN \
             (SELECT (e.body -> 'data')::text FROM events e WHERE e.id = d.event_id) END"
    };
}

/// The columns `delivery_of` reads, in its order, from a delivery's row `d` and its state
/// row `s` (migration 0009).
macro_rules! delivery_columns {
    () => {
        concat!(
            "s.state, s.attempts, s.next_attempt_ms, s.last_status_code, s.last_error, \
             d.request::text, coalesce(s.updated_at_ms, s.created_at_ms), ",
            event_data_body!()
        )
    };
}

/// Appends the change-log entries `$accounts`, `$bodies` (arrays, one element per entry, in
/// order) at `$at`: one row per account, its entries' JSON in an array in order, each entry
/// with a value of the table's sequence (ascending in entry order), the row keyed by the last
/// (migration 0012). No set-returning function per row: its default row estimate would make
/// every generic plan look dearer than a custom one, and PostgreSQL would plan the statement
/// again at each execution.
macro_rules! append_rows {
    ($accounts:literal, $bodies:literal, $at:literal) => {
        concat!(
            "INSERT INTO delivery_changes (seq, account_id, at_ms, body, seqs)
             OVERRIDING SYSTEM VALUE
             SELECT s[cardinality(s)], account_id, ",
            $at,
            ", body, s
             FROM (SELECT account_id, json_agg(body ORDER BY n) AS body,
                     array_agg(v ORDER BY v) AS s
                 FROM (SELECT account_id, body::json AS body, n,
                         nextval('delivery_changes_seq_seq') AS v
                     FROM UNNEST(",
            $accounts,
            "::text[], ",
            $bodies,
            "::text[]) WITH ORDINALITY AS t (account_id, body, n)) e
                 GROUP BY account_id) r"
        )
    };
}

mod attempts;
mod bookkeeping;
mod cache;
mod changes;
mod claims;
mod event_types;
mod fresh;
mod held;
mod inserts;
mod instance;
mod liveness;
mod notify;
mod ordering;
mod pressure;
mod queries;
mod schema;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::Histogram;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};

use async_trait::async_trait;

use super::change_log::{ChangeCursor, ChangePage, update_of};
use super::changes::Changes;
use super::trim::{TrimCursors, TrimWindow};
use super::{
    AttemptRecord, Cancelled, Claim, DeliveryQuery, EventQuery, InsertOutcome, Lease, NewEvent,
    OutboxEntry, Owner, Page, Pruned, Store,
};
use crate::error::{Error, Result};
use crate::model::{
    ApiToken, BreakerState, Delivery, DeliveryState, Event, ResponseRecord, Webhook, WebhookStats,
    now_ms,
};

/// Ids one `nextval` reserves (the sequence's INCREMENT BY in migrations/0001_initial.sql).
const ID_BLOCK: u64 = 256;

/// Connections of one instance's main pool unless `--store-pool-size` says otherwise.
pub const POOL_SIZE: u32 = 16;

/// How long the first connection at start may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for a free (or new) connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of the pool of the listener and the health probe (one each).
const AUX_POOL_SIZE: u32 = 2;

/// How long the health probe waits for its connection.
const PROBE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Key of the advisory lock that keeps retention to one instance at a time.
const RETENTION_LOCK: i64 = 0x7765_6268_6f6f_6b64; // "webhookd"

/// Takes retention's advisory lock until `tx` ends, if no other transaction holds it: the
/// passes that prune (events and keys, the change log) run on one instance at a time.
async fn try_retention_lock(tx: &mut Transaction<'_, Postgres>) -> Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RETENTION_LOCK)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

/// The PostgreSQL-backed store.
pub struct PostgresStore {
    pool: PgPool,
    /// The rest of the id block this instance reserved: next id, end (exclusive).
    ids: Mutex<(u64, u64)>,
    inserts: inserts::GroupCommit,
    attempts: attempts::Attempts,
    /// The delivery engine's bookkeeping (claims, leases, trims), committing without
    /// waiting for the WAL flush (see `bookkeeping`).
    bookkeeping: PgPool,
    /// The listener's and the health probe's pool.
    aux: PgPool,
    listener: notify::Listener,
    /// Webhooks and tokens as last read (see `cache`).
    caches: Arc<cache::Caches>,
    /// The deliveries just emitted here, for their first attempt's read (see `fresh`).
    written: Arc<fresh::Written>,
    /// This instance: the deliveries it queues are leased to it, and its id names it in
    /// its notifications (one id per process for both).
    owner: Owner,
    /// Leases of this owner ending before this were taken by its predecessor (the same id
    /// before a restart): claims take them back at once.
    reclaim_before_ms: i64,
    /// This instance's hold on its id (see `instance`).
    identity: instance::Identity,
    /// Where each webhook's response log was last trimmed here.
    trims: TrimCursors,
    /// Connections of `pool` at most.
    pool_size: u32,
    /// What the health probes saw of the pools (see `pressure`).
    pressure: pressure::Pressure,
}

/// A database failure as the domain sees it: BUSY when no connection of the pool was free
/// within the acquire wait (back-pressure: the caller retries; it says nothing about the
/// database's health, see `pressure`), UNAVAILABLE when the database cannot be reached
/// (connection lost or refused, the server shutting down), else INTERNAL. The text never
/// carries the password: sqlx's errors name the host, the user and the server's message only.
///
/// sqlx also answers PoolTimedOut when it could not open a connection in time (the database
/// refusing them): that too answers busy, and the health probe, which tells the two apart
/// (`ping`), reports the outage within a second.
fn db(e: sqlx::Error) -> Error {
    if let sqlx::Error::PoolTimedOut = e {
        return Error::Busy(format!(
            "the database is busy: no connection was free within {}; retry shortly",
            humantime::format_duration(ACQUIRE_TIMEOUT)
        ));
    }
    let lost = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 (connection exception), 57P01-03 (shutdown, cannot connect now).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    };
    if lost {
        Error::Unavailable(format!("the database is unreachable: {e}"))
    } else {
        Error::Internal(format!("database: {e}"))
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("encode: {e}")))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Internal(format!("decode: {e}")))
}

/// A state as stored (its API name, e.g. "RETRYING").
fn state_name(state: DeliveryState) -> Result<String> {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        _ => Err(Error::Internal("encode: a delivery state".into())),
    }
}

fn state_of(name: String) -> Result<DeliveryState> {
    serde_json::from_value(serde_json::Value::String(name))
        .map_err(|e| Error::Internal(format!("decode: {e}")))
}

/// Ids are u64 in the model and bigint in the database; they stay below 2^63.
fn sql_id(id: u64) -> i64 {
    id as i64
}

impl PostgresStore {
    /// The URL without its password, for logs and messages.
    pub fn describe(url: &str) -> String {
        redacted(url)
    }

    /// Connects to the database at `url` and brings its schema up to date; the deliveries
    /// it writes are leased to `owner`, and the duration of each group commit goes to
    /// `commit_seconds`. Fails with one
    /// clear line (without the password) when the database is unreachable, refuses the
    /// credentials, has a schema newer than this binary knows, or another live instance
    /// uses `owner`'s id. The leases `owner` held before (a restart) are claimable at once.
    pub async fn connect(
        url: &str,
        owner: Owner,
        pool_size: u32,
        commit_seconds: Histogram,
    ) -> Result<PostgresStore> {
        let cannot = |e: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "cannot open the PostgreSQL store {}: {e}",
                redacted(url)
            ))
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| cannot(&"not a valid postgres:// URL"))?
            .application_name("webhookd");
        // One connection first: its error says what is wrong (refused, unknown host, bad
        // credentials), where the pool would only report a timeout.
        let reclaim_before_ms = owner.lease_from(now_ms()).until_ms;
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| cannot(&"no answer within 10 s"))?
            .map_err(|e| cannot(&e))?;
        let _ = probe.close().await;
        // Its waits for a lost database (the listener reconnecting) are the health monitor's
        // to report, once; not sqlx's slow-acquire warning at each try.
        let aux = PgPoolOptions::new()
            .max_connections(AUX_POOL_SIZE)
            .acquire_timeout(PROBE_ACQUIRE_TIMEOUT)
            .acquire_slow_threshold(CONNECT_TIMEOUT)
            .connect_lazy_with(options.clone().application_name("webhookd-monitor"));
        // A wait for a connection that ends in time is no complaint (sqlx warns after 2 s):
        // one that does not fails its call, and a lost database is the health monitor's to
        // report, once.
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .acquire_slow_threshold(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(liveness::usable)
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot(&e))?;
        schema::migrate(&pool).await.map_err(|e| cannot(&e))?;
        let bookkeeping = bookkeeping::pool(&options, ACQUIRE_TIMEOUT)
            .await
            .map_err(|e| cannot(&e))?;
        let identity =
            instance::Identity::take(&options.application_name("webhookd-instance"), owner)
                .await
                .map_err(|e| cannot(&e))?;
        let caches = Arc::new(cache::Caches::default());
        let written = Arc::new(fresh::Written::default());
        Ok(PostgresStore {
            inserts: inserts::GroupCommit::start(
                pool.clone(),
                owner,
                commit_seconds,
                Arc::clone(&written),
            ),
            attempts: attempts::Attempts::start(bookkeeping.clone(), owner),
            bookkeeping,
            pool,
            ids: Mutex::new((0, 0)),
            listener: notify::Listener::start(
                aux.clone(),
                owner.id,
                Arc::clone(&caches),
                Arc::clone(&written),
            ),
            caches,
            written,
            aux,
            owner,
            reclaim_before_ms,
            identity,
            trims: TrimCursors::default(),
            pool_size,
            pressure: pressure::Pressure::default(),
        })
    }
}

/// A count or limit as bigint (`usize::MAX`, "no limit", becomes the largest bigint).
fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `postgres://user@host:port/db` without the password, for messages.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split(':').next().unwrap_or_default();
                    format!("{user}@{host}")
                }
                None => authority.to_string(),
            };
            let path = path.split('?').next().unwrap_or_default();
            format!("{scheme}://{authority}{path}")
        }
        None => "(not a URL)".into(),
    }
}

#[async_trait]
impl Store for PostgresStore {
    /// A new unique id (increasing within this instance; blocks of other instances interleave).
    async fn next_id(&self) -> Result<u64> {
        {
            let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
            }
        }
        let start: i64 = sqlx::query_scalar("SELECT nextval('webhookd_ids')")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let start = start as u64;
        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = (start + 1, start + ID_BLOCK);
        Ok(start)
    }

    /// Inserts or replaces a webhook, and tells every instance's caches (at COMMIT).
    async fn put_webhook(&self, webhook: &Webhook) -> Result<()> {
        sqlx::query(
            "WITH written AS (
                 INSERT INTO webhooks (id, account_id, body) VALUES ($1, $2, $3::json)
                 ON CONFLICT (id) DO UPDATE
                     SET account_id = excluded.account_id, body = excluded.body
                 RETURNING id)
             SELECT pg_notify($4, $5) FROM written",
        )
        .bind(sql_id(webhook.id))
        .bind(&webhook.account_id)
        .bind(to_json(webhook)?)
        .bind(notify::SETTINGS)
        .bind(notify::webhook_payload(webhook.id, &webhook.account_id)?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.caches.webhook_changed(webhook.id, &webhook.account_id);
        Ok(())
    }

    /// A webhook by id, whatever its account (from the cache while fresh).
    async fn get_webhook(&self, id: u64) -> Result<Option<Webhook>> {
        if let Some(cached) = self.caches.webhook(id) {
            return Ok(cached);
        }
        let ticket = self.caches.ticket();
        let body: Option<String> =
            sqlx::query_scalar("SELECT body::text FROM webhooks WHERE id = $1")
                .bind(sql_id(id))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let webhook: Option<Webhook> = body.as_deref().map(from_json).transpose()?;
        self.caches.fill_webhook(ticket, id, webhook.clone());
        Ok(webhook)
    }

    /// Deletes a webhook, its stats and its response log; false when it did not exist.
    /// Every instance's caches are told at COMMIT.
    async fn delete_webhook(&self, id: u64) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let account: Option<String> = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM webhooks WHERE id = $1 RETURNING account_id)
             SELECT account_id FROM gone",
        )
        .bind(sql_id(id))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let deleted = u64::from(account.is_some());
        if let Some(account) = &account {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(notify::SETTINGS)
                .bind(notify::webhook_payload(id, account)?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for table in ["webhook_stats", "responses"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE webhook_id = $1"))
                .bind(sql_id(id))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        self.trims.forget(id);
        if let Some(account) = &account {
            self.caches.webhook_changed(id, account);
        }
        Ok(deleted > 0)
    }

    /// Webhooks of an account in id order (all of them from the cache while fresh).
    async fn list_webhooks(&self, account_id: &str, page: Page) -> Result<Vec<Webhook>> {
        let all = page.after.is_none() && page.offset == 0 && page.limit == usize::MAX;
        if all && let Some(cached) = self.caches.list(account_id) {
            return Ok(cached);
        }
        let ticket = self.caches.ticket();
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body::text FROM webhooks WHERE account_id = $1 AND id > $2
             ORDER BY id OFFSET $3 LIMIT $4",
        )
        .bind(account_id)
        .bind(page.after.map_or(-1, sql_id))
        .bind(sql_count(page.offset))
        .bind(sql_count(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let webhooks: Vec<Webhook> = bodies.iter().map(|b| from_json(b)).collect::<Result<_>>()?;
        if all {
            self.caches.fill_list(ticket, account_id, webhooks.clone());
        }
        Ok(webhooks)
    }

    /// Number of webhooks of every account.
    async fn count_all_webhooks(&self) -> Result<usize> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n as usize)
    }

    /// Number of webhooks of an account.
    async fn count_webhooks(&self, account_id: &str) -> Result<usize> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n as usize)
    }

    /// Delivery outcome times of a webhook.
    async fn webhook_stats(&self, id: u64) -> Result<WebhookStats> {
        let row = sqlx::query(concat!(
            "SELECT ",
            stats_columns!(),
            " FROM webhook_stats WHERE webhook_id = $1"
        ))
        .bind(sql_id(id))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|r| stats_of(&r))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The webhook's deliveries in the outbox and the ordered ones behind its queues' heads.
    async fn count_waiting(&self, webhook_id: u64, cap: usize) -> Result<usize> {
        queries::count_waiting(&self.pool, webhook_id, cap).await
    }

    /// Stores a token under the hash of its secret; every instance's caches are told.
    async fn put_token(&self, hash: &[u8; 32], token: &ApiToken) -> Result<()> {
        sqlx::query(
            "WITH written AS (
                 INSERT INTO tokens (hash, id, body) VALUES ($1, $2, $3::json)
                 ON CONFLICT (hash) DO UPDATE SET id = excluded.id, body = excluded.body
                 RETURNING id)
             SELECT pg_notify($4, $5) FROM written",
        )
        .bind(hash.as_slice())
        .bind(sql_id(token.id))
        .bind(to_json(token)?)
        .bind(notify::SETTINGS)
        .bind(notify::TOKENS_PAYLOAD)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.caches.tokens_changed();
        Ok(())
    }

    /// The token whose secret hashes to `hash` (from the cache while fresh).
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        if let Some(cached) = self.caches.token(hash) {
            return Ok(cached);
        }
        let ticket = self.caches.ticket();
        let body: Option<String> =
            sqlx::query_scalar("SELECT body::text FROM tokens WHERE hash = $1")
                .bind(hash.as_slice())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let token: Option<ApiToken> = body.as_deref().map(from_json).transpose()?;
        self.caches.fill_token(ticket, *hash, token.clone());
        Ok(token)
    }

    /// Revokes a token; false when it did not exist. Every instance's caches are told (at
    /// COMMIT): the token is refused everywhere within `cache::MAX_AGE`.
    async fn delete_token(&self, id: u64) -> Result<bool> {
        // One row, one notification, per token deleted.
        let deleted = sqlx::query(
            "WITH gone AS (DELETE FROM tokens WHERE id = $1 RETURNING id)
             SELECT pg_notify($2, $3) FROM gone",
        )
        .bind(sql_id(id))
        .bind(notify::SETTINGS)
        .bind(notify::TOKENS_PAYLOAD)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        self.caches.tokens_changed();
        Ok(deleted > 0)
    }

    /// Writes events and their deliveries (queued) in one transaction shared with
    /// concurrent callers; returns after COMMIT, one outcome per event.
    async fn insert_events(&self, events: &[NewEvent<'_>]) -> Result<Vec<InsertOutcome>> {
        let events = events
            .iter()
            .map(|new| inserts::Pending {
                event: new.event.clone(),
                deliveries: new.deliveries.to_vec(),
                idempotency: new.idempotency.as_ref().map(|k| inserts::Key {
                    account_id: k.account_id.to_string(),
                    key: k.key.to_string(),
                    ttl_ms: k.ttl_ms,
                }),
            })
            .collect();
        self.inserts.insert(events).await
    }

    /// An event by id.
    async fn get_event(&self, id: u64) -> Result<Option<Event>> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body::text FROM events WHERE id = $1")
                .bind(sql_id(id))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        body.as_deref().map(from_json).transpose()
    }

    /// A delivery by id (one just emitted here from `fresh`, once).
    async fn get_delivery(&self, id: u64) -> Result<Option<Delivery>> {
        if let Some(delivery) = self.written.take(id) {
            return Ok(Some(delivery));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries d JOIN delivery_states s ON s.id = d.id WHERE d.id = $1"
        ))
        .bind(sql_id(id))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|r| delivery_of(&r)).transpose()
    }

    /// Writes new deliveries of existing events (redelivery), queued, and adds
    /// them to their events, in one transaction; NOT_FOUND when an event is gone.
    async fn insert_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        let mut by_event: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for d in deliveries {
            by_event.entry(d.event_id).or_default().push(d.id);
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut changes = Vec::with_capacity(deliveries.len());
        for (event_id, ids) in by_event {
            let body: Option<String> =
                sqlx::query_scalar("SELECT body::text FROM events WHERE id = $1 FOR UPDATE")
                    .bind(sql_id(event_id))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            let Some(body) = body else {
                return Err(Error::NotFound {
                    kind: "event",
                    id: event_id.to_string(),
                });
            };
            let mut event: Event = from_json(&body)?;
            for d in deliveries.iter().filter(|d| d.event_id == event_id) {
                changes.push((event.account_id.clone(), update_of(d)));
            }
            event.delivery_ids.extend(ids);
            sqlx::query("UPDATE events SET body = $2::json WHERE id = $1")
                .bind(sql_id(event_id))
                .bind(to_json(&event)?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let lease = self.owner.lease_from(now_ms());
        inserts::write_deliveries(&mut tx, deliveries, lease).await?;
        let changes: Vec<(&str, _)> = changes
            .iter()
            .map(|(a, u)| (a.as_str(), u.clone()))
            .collect();
        changes::append(&mut tx, &changes, now_ms()).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// Records an attempt in the batch of concurrent attempts (`attempts`): its delivery's
    /// state, due again in the outbox or out of it, its log entry, its change-log entry, the
    /// notification of the other instances and, for an ordered delivery that ends, the next
    /// of its queue released, committed together with its webhook's stats. Returns the stats
    /// as this attempt left them.
    async fn record_attempt(&self, record: AttemptRecord<'_>) -> Result<WebhookStats> {
        self.written.forget(record.delivery.id);
        self.attempts.record(record).await
    }

    /// Takes a delivery out of the outbox if it is still due at `due_ms` (a stale entry);
    /// a cancelled head of an ordering queue releases the next (`ordering::remove_stale`).
    async fn remove_outbox_entry(&self, entry: OutboxEntry) -> Result<()> {
        ordering::remove_stale(&self.bookkeeping, entry, self.owner.lease_from(now_ms())).await
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<OutboxEntry>> {
        claims::claim(&self.bookkeeping, claim, self.reclaim_before_ms).await
    }

    async fn renew_leases(&self, lease: Lease, delivery_ids: &[u64]) -> Result<()> {
        claims::renew(&self.bookkeeping, lease, delivery_ids).await
    }

    async fn release_leases(&self, owner: u64, delivery_ids: &[u64]) -> Result<()> {
        claims::release(&self.bookkeeping, owner, delivery_ids).await
    }

    /// A webhook's attempts, newest first, keyed like the sled store (`!seq`, so `after`
    /// continues with older entries).
    async fn list_responses(
        &self,
        webhook_id: u64,
        page: Page,
    ) -> Result<Vec<(u64, ResponseRecord)>> {
        let below = page.after.map_or(i64::MAX, |key| sql_id(!key));
        // An entry that left out the body it sent reads it from its delivery (migration
        // 0011), and from its event when the delivery does not copy it either (0010).
        let rows = sqlx::query(concat!(
            "SELECT r.seq, r.body::text, r.body_is_request,
                 CASE WHEN r.body_is_request THEN (
                     SELECT coalesce(",
            event_data_body!(),
            ", d.request -> 'request' ->> 'body')
                     FROM deliveries d WHERE d.id = (r.body ->> 'delivery_id')::bigint) END
             FROM responses r WHERE r.webhook_id = $1 AND r.seq < $2
             ORDER BY r.seq DESC OFFSET $3 LIMIT $4"
        ))
        .bind(sql_id(webhook_id))
        .bind(below)
        .bind(sql_count(page.offset))
        .bind(sql_count(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get(0).map_err(db)?;
                let body: String = r.try_get(1).map_err(db)?;
                let mut record: ResponseRecord = from_json(&body)?;
                if r.try_get(2).map_err(db)? {
                    record.request_data = r.try_get(3).map_err(db)?;
                }
                Ok((!(seq as u64), record))
            })
            .collect()
    }

    /// Number of logged attempts of a webhook.
    async fn count_responses(&self, webhook_id: u64) -> Result<usize> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM responses WHERE webhook_id = $1")
            .bind(sql_id(webhook_id))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n as usize)
    }

    /// Drops a webhook's log entries older than the newest `keep`.
    async fn trim_responses(&self, webhook_id: u64, newest_seq: u64, keep: u64) -> Result<()> {
        let Some(cutoff) = newest_seq.checked_sub(keep) else {
            return Ok(());
        };
        // Bounded below by the previous trim's cutoff: the index scan starts past the dead
        // entries earlier trims left (until a vacuum) instead of walking them every time.
        let (after, upto) = match self.trims.begin(webhook_id, cutoff) {
            TrimWindow::Nothing => return Ok(()),
            TrimWindow::All { upto } => (i64::MIN, sql_id(upto)),
            TrimWindow::Between { after, upto } => (sql_id(after), sql_id(upto)),
        };
        sqlx::query("DELETE FROM responses WHERE webhook_id = $1 AND seq > $2 AND seq <= $3")
            .bind(sql_id(webhook_id))
            .bind(after)
            .bind(upto)
            .execute(&self.bookkeeping)
            .await
            .map_err(|e| {
                self.trims.forget(webhook_id);
                db(e)
            })?;
        Ok(())
    }

    /// One bounded pass of retention, on one instance at a time (a transaction-scoped
    /// advisory lock; an instance that does not get it does nothing this time). Deletes up
    /// to `budget` events created before `events_before_ms` with no delivery left to attempt
    /// (with their deliveries), and up to `budget` idempotency keys used before `keys_before_ms`.
    async fn prune(
        &self,
        events_before_ms: i64,
        keys_before_ms: i64,
        budget: usize,
    ) -> Result<Pruned> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if !try_retention_lock(&mut tx).await? {
            return Ok(Pruned::default());
        }
        let events = prune_events(&mut tx, events_before_ms, budget).await?;
        let keys = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (account_id, key) IN (
                 SELECT account_id, key FROM idempotency_keys WHERE used_at_ms < $1 LIMIT $2)",
        )
        .bind(keys_before_ms)
        .bind(sql_count(budget))
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(Pruned {
            events,
            idempotency_keys: keys,
            more: events == budget as u64 || keys == budget as u64,
        })
    }

    /// The account's events matching `query`, newest first (keyset on the account index).
    async fn list_events(&self, query: &EventQuery<'_>) -> Result<Vec<Event>> {
        queries::list_events(&self.pool, query).await
    }

    /// The account's deliveries matching `query`, newest first.
    async fn list_deliveries(&self, query: &DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        queries::list_deliveries(&self.pool, query).await
    }

    /// Cancels a QUEUED or RETRYING delivery in one statement (out of the outbox with it);
    /// an ordered one under its queue's lock, releasing the next of its queue in the same
    /// transaction unless its attempt may be in flight (`ordering::cancel`).
    async fn cancel_delivery(&self, id: u64, at_ms: i64) -> Result<Cancelled> {
        self.written.forget(id);
        let ordered = self
            .get_delivery(id)
            .await?
            .filter(|d| d.ordering.is_some());
        let mut tx = self.pool.begin().await.map_err(db)?;
        if let Some(before) = &ordered {
            // The queue's lock before the delivery's row, as record_attempt takes them.
            ordering::lock_for_release(&mut tx, before).await?;
        }
        let cancelled = match &ordered {
            Some(_) => {
                let lease = self.owner.lease_from(now_ms());
                ordering::cancel(&mut tx, id, at_ms, lease).await?
            }
            None => queries::cancel_delivery(&mut *tx, id, at_ms, true).await?,
        };
        if let Some(cancelled) = &cancelled {
            changes::append_delivery(&mut tx, cancelled, at_ms).await?;
        }
        tx.commit().await.map_err(db)?;
        if let Some(cancelled) = cancelled {
            // Other instances' streams of the event hear of it.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(notify::CHANNEL)
                .bind(notify::payload(self.owner.id, &cancelled)?)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            return Ok(Cancelled::Now(cancelled));
        }
        // Not updated: missing, or already final (a final state never changes back).
        Ok(match self.get_delivery(id).await? {
            None => Cancelled::Missing,
            Some(d) => Cancelled::AlreadyFinal(d),
        })
    }

    async fn read_changes(
        &self,
        account_id: &str,
        after: ChangeCursor,
        limit: usize,
    ) -> Result<ChangePage> {
        changes::read(&self.pool, account_id, after, limit).await
    }

    async fn change_head(&self) -> Result<ChangeCursor> {
        changes::head(&self.pool).await
    }

    async fn prune_changes(&self, before_ms: i64, budget: usize) -> Result<(u64, bool)> {
        changes::prune(&self.pool, before_ms, budget).await
    }

    /// Nothing to do: every write was committed before its call returned (a write after it
    /// is still committed or refused by the database, never lost), and the connections end
    /// with the process.
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    /// The delivery changes of every instance, from this instance's listener.
    fn changes(&self) -> Option<Changes> {
        Some(self.listener.follow())
    }

    /// Another live instance took this instance's id (`instance`).
    async fn must_stop(&self) -> Error {
        self.identity.lost().await
    }

    /// One round trip on the probe's own connection.
    /// Probes on the pool of its own, so a busy main pool never fails it: a probe that gets
    /// no connection in time could not open one (the listener holds the pool's only other
    /// connection), so there it means unreachable. When the database answered, also samples
    /// the pools' pressure (pools full of calls waiting on a lost database are the outage,
    /// reported once as such, not back-pressure).
    async fn ping(&self) -> Result<()> {
        let probed = sqlx::query("SELECT 1").execute(&self.aux).await;
        match probed {
            Ok(_) => {
                self.pressure.sample(
                    (&self.pool, self.pool_size),
                    (&self.bookkeeping, bookkeeping::POOL_SIZE),
                );
                Ok(())
            }
            Err(sqlx::Error::PoolTimedOut) => Err(Error::Unavailable(format!(
                "the database is unreachable: no connection within {}",
                humantime::format_duration(PROBE_ACQUIRE_TIMEOUT)
            ))),
            Err(e) => Err(db(e)),
        }
    }
}

async fn prune_events(
    tx: &mut Transaction<'_, Postgres>,
    before_ms: i64,
    budget: usize,
) -> Result<u64> {
    let deleted = sqlx::query(
        "WITH doomed AS (
             SELECT id FROM events e WHERE created_at_ms < $1
                 AND NOT EXISTS (
                     SELECT 1 FROM deliveries d JOIN delivery_states s ON s.id = d.id
                     WHERE d.event_id = e.id AND s.queued)
             ORDER BY created_at_ms, id LIMIT $2),
         gone AS (DELETE FROM deliveries WHERE event_id IN (SELECT id FROM doomed) RETURNING id),
         states AS (DELETE FROM delivery_states WHERE id IN (SELECT id FROM gone))
         DELETE FROM events WHERE id IN (SELECT id FROM doomed)",
    )
    .bind(before_ms)
    .bind(sql_count(budget))
    .execute(&mut **tx)
    .await
    .map_err(db)?
    .rows_affected();
    Ok(deleted)
}

fn stats_of(row: &PgRow) -> Result<WebhookStats> {
    let count =
        |i: usize| -> Result<u32> { Ok(row.try_get::<i32, _>(i).map_err(db)?.max(0) as u32) };
    Ok(WebhookStats {
        last_success_ms: row.try_get(0).map_err(db)?,
        last_failure_ms: row.try_get(1).map_err(db)?,
        failing_since_ms: row.try_get(2).map_err(db)?,
        response_seq: row.try_get::<i64, _>(3).map_err(db)? as u64,
        breaker: BreakerState {
            consecutive_failures: count(4)?,
            open_until_ms: row.try_get(5).map_err(db)?,
            cooldown_level: count(6)?,
            opened_at_ms: row.try_get(7).map_err(db)?,
            changed_seq: row.try_get::<i64, _>(8).map_err(db)? as u64,
            changed_at_ms: row.try_get(9).map_err(db)?,
        },
    })
}

/// A delivery from its rows (`queries::DELIVERY_COLUMNS`): the delivery as created (its body
/// its event's data when stored as that), with the current state over it.
fn delivery_of(row: &PgRow) -> Result<Delivery> {
    let request: String = row.try_get(5).map_err(db)?;
    let mut delivery: Delivery = from_json(&request)?;
    if let Some(data) = row.try_get::<Option<String>, _>(7).map_err(db)?
        && let Some(request) = delivery.request.as_mut()
    {
        request.body = Some(data);
    }
    delivery.state = state_of(row.try_get(0).map_err(db)?)?;
    delivery.attempts = row.try_get::<i64, _>(1).map_err(db)? as u32;
    delivery.next_attempt_ms = row.try_get(2).map_err(db)?;
    delivery.last_status_code = row
        .try_get::<Option<i32>, _>(3)
        .map_err(db)?
        .map(|code| code as u16);
    delivery.last_error = row.try_get(4).map_err(db)?;
    delivery.updated_at_ms = row.try_get(6).map_err(db)?;
    Ok(delivery)
}

#[cfg(test)]
mod tests;
