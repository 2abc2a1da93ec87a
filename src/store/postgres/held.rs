//! Connections a group-commit collector keeps from one batch to the next. sqlx tests every
//! connection given back to its pool with a round trip (a Sync and its answer) before another
//! call may take it: one per emit batch and one per attempt batch, about a thousand a second
//! at 8 producers, each a wake-up of the database's backend and ~5% of webhookd's CPU there.
//! A collector writing batch after batch keeps its connections instead, and gives one back
//! only when a call on it failed (the pool's test then closes it if it broke), when it sat
//! unused long enough that `liveness` would test it (the pool does), or when keeping it
//! would leave the pool none to lend (a pool of one or two connections stays usable).

use std::sync::Mutex;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Postgres};

use super::db;
use super::liveness::IDLE_BEFORE_TEST;
use crate::error::Result;

/// The kept connections of one collector, on one pool.
pub struct Held {
    pool: PgPool,
    /// At most as many as the collector's batches in flight; each with its last use.
    kept: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
}

impl Held {
    pub fn new(pool: PgPool) -> Held {
        Held {
            pool,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Runs one batch's `write` on a kept connection used moments ago, else on one from the
    /// pool, and keeps the connection if the write succeeded.
    pub async fn run<T>(
        &self,
        write: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let mut conn = match self.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(db)?,
        };
        let result = write(&mut conn).await;
        if result.is_ok() && self.pool_has_another() {
            self.lock().push((conn, Instant::now()));
        }
        result
    }

    /// Whether the pool can lend a connection besides the ones kept here (an idle one, or
    /// room to open one).
    fn pool_has_another(&self) -> bool {
        self.pool.num_idle() > 0 || self.pool.size() < self.pool.options().get_max_connections()
    }

    /// A kept connection that was used within `IDLE_BEFORE_TEST`; the others go back to
    /// the pool (which tests them before their next use).
    fn take(&self) -> Option<PoolConnection<Postgres>> {
        let mut kept = self.lock();
        kept.retain(|(_, used)| used.elapsed() < IDLE_BEFORE_TEST);
        kept.pop().map(|(conn, _)| conn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PoolConnection<Postgres>, Instant)>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}
