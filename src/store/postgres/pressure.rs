//! Pool pressure, reported once per period: a call that finds no free connection of a pool
//! within its wait answers busy (`Error::Busy`, back-pressure: retry), not "unreachable",
//! and says nothing in the log itself. Instead the health probe (every second, when the
//! database answered it) samples the pools, and while one of them has every connection in
//! use this logs one warning per
//! `PERIOD` naming the pool and how often it was found full since the last line, so an
//! operator learns that the pool (or the database) is too small without a line per request.
//! A full pool never touches the store's health.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

/// At most one warning per pool this often.
const PERIOD: Duration = Duration::from_secs(60);

/// What the probes saw of one pool since its last warning.
#[derive(Debug, Default)]
struct Seen {
    /// When the last warning went out.
    logged_at: Option<Instant>,
    /// Probes that found the pool full since then.
    full: u64,
}

/// The pressure on the store's pools, as the probes saw it.
#[derive(Debug, Default)]
pub struct Pressure {
    /// The main pool's and the bookkeeping pool's.
    seen: Mutex<[Seen; 2]>,
}

impl Pressure {
    /// Samples the main pool (`pool`, at most `max` connections) and the delivery engine's
    /// (`bookkeeping`, at most `bookkeeping_max`), warning about a full one once per period.
    pub fn sample(&self, pool: (&PgPool, u32), bookkeeping: (&PgPool, u32)) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let pools = [("main", pool), ("delivery bookkeeping", bookkeeping)];
        for (seen, (name, (pool, max))) in seen.iter_mut().zip(pools) {
            if !is_full(pool, max) {
                continue;
            }
            seen.full += 1;
            let now = Instant::now();
            if seen.logged_at.is_some_and(|at| now < at + PERIOD) {
                continue;
            }
            tracing::warn!(
                pool = name,
                connections = max,
                full_probes = seen.full,
                "every connection of the {name} database pool is in use: calls that wait \
                 longer than the acquire timeout answer busy (retry) and the store stays \
                 serving; if this lasts, raise --store-pool-size (and the database's \
                 max_connections) or add capacity (logged at most once a minute)"
            );
            *seen = Seen {
                logged_at: Some(now),
                full: 0,
            };
        }
    }
}

/// Whether every connection `pool` may open is open and taken.
fn is_full(pool: &PgPool, max: u32) -> bool {
    pool.size() >= max && pool.num_idle() == 0
}
