//! The delivery engine's own connections: claims, lease renewals and releases, attempt
//! records (with their webhook stats, breaker counters and log trims) and the removal of
//! stale outbox rows commit on a pool of their own whose sessions run with
//! `synchronous_commit = off`: their COMMIT returns once it is in PostgreSQL's WAL buffers,
//! without waiting for the WAL flush (the WAL writer flushes within `wal_writer_delay`,
//! 200 ms by default, and any synchronous commit flushes everything before it).
//!
//! Why that is safe: none of these writes acknowledges anything to a client. If PostgreSQL
//! itself crashes, the last ~200 ms of them are lost and the database is as it was before:
//! a delivery whose attempt record is lost is still pending and is attempted again (a
//! duplicate, which at-least-once delivery allows), a lost lease is claimed again; no event
//! is lost, since emits commit synchronously on the main pool (as do CRUD, cancels,
//! redeliveries and rotations), and a synchronous commit is never lost behind an asynchronous
//! one (the WAL is flushed in order). A `kill -9` of webhookd loses nothing: PostgreSQL has
//! the commit.
//!
//! Its sessions also plan each statement once (`plan_cache_mode = force_generic_plan`):
//! every one of them finds its rows through an index, by key or array of keys (the claim:
//! by webhook and due time; a write that joins its batch to a table names the keys in an
//! array as well, so that the plan made once never scans the table), so a plan made for the
//! values at hand is no better, and
//! PostgreSQL's own choice re-planned a third to a half of the attempt batches' write
//! statements (~0.4 ms each, while the batch holds its webhooks' stats rows). Nor do they
//! scan a table (`enable_seqscan = off`): a plan made once while a table held a page or two
//! (a fresh start) read `delivery_states` whole for each of its keys from then on, and as
//! the table grew with every delivery retained, each attempt batch cost milliseconds more
//! (a scan stays possible where no index serves, at a cost the planner avoids). The main
//! pool keeps the defaults: the operator listings' optional filters plan better for the
//! values given.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// Connections of the bookkeeping pool: the attempt batches committing at once, the claim
/// loop and the occasional trim or stale-row removal.
pub const POOL_SIZE: u32 = 6;

/// Connections it keeps open from the start (an attempt batch and the claim loop), so
/// recording an attempt needs no new connection while the database refuses them.
const WARM: u32 = 2;

/// The bookkeeping pool, its first connections opened with `options`; its calls wait at most
/// `acquire_timeout` for a connection.
pub async fn pool(
    options: &PgConnectOptions,
    acquire_timeout: Duration,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .min_connections(WARM)
        .acquire_timeout(acquire_timeout)
        // A wait that ends in time is no complaint; one that does not fails its call, and a
        // lost database is the health monitor's to report, once.
        .acquire_slow_threshold(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(super::liveness::usable)
        .connect_with(
            options
                .clone()
                .application_name("webhookd-bookkeeping")
                .options([
                    ("synchronous_commit", "off"),
                    ("plan_cache_mode", "force_generic_plan"),
                    ("enable_seqscan", "off"),
                ]),
        )
        .await
}
