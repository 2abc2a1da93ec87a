//! This instance's hold on its lease owner id in the shared database. The id is kept in the
//! data directory (`Owner::kept_in`), so a restarted instance is the owner it was: it takes
//! back the leases its predecessor left (`reclaim_before`) at once instead of waiting for
//! them to expire. A session advisory lock on the id, held by one connection of its own for
//! the life of the store, keeps two live instances from sharing an id: the second is refused
//! at start with a clear error (two instances given one data directory, or a copied one).
//!
//! A holding session that is lost (the database restarted, the session was ended) is
//! replaced and the lock taken again. If another instance took the id in between, the two
//! would share leases, so this one must stop: `Identity::lost` resolves with the error that
//! the process stops with (said once, by the server), and the keeper stops trying.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::db;
use crate::error::{Error, Result};
use crate::store::Owner;

/// How long a start waits for a killed predecessor's session (and its lock) to end.
const PREDECESSOR_GRACE: Duration = Duration::from_secs(5);

/// How often the holding connection is checked (and, once lost, taken again).
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The lock's key: the id in the two-int form, a key space apart from the other advisory
/// locks (all single bigint keys).
fn key(id: u64) -> (i32, i32) {
    ((id >> 32) as i32, id as u32 as i32)
}

async fn try_lock(conn: &mut PgConnection, id: u64) -> Result<bool> {
    let (high, low) = key(id);
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(high)
        .bind(low)
        .fetch_one(conn)
        .await
        .map_err(db)
}

/// The id's lock as long as it lives; dropping it ends the session that holds it.
pub struct Identity {
    id: u64,
    lost: CancellationToken,
    _holding: DropGuard,
}

impl Identity {
    /// Takes the lock of `owner`'s id, waiting a little for a killed predecessor's session
    /// to end; refuses when another live instance holds it.
    pub async fn take(options: &PgConnectOptions, owner: Owner) -> Result<Identity> {
        let deadline = Instant::now() + PREDECESSOR_GRACE;
        let mut conn = PgConnection::connect_with(options).await.map_err(db)?;
        while !try_lock(&mut conn, owner.id).await? {
            if Instant::now() >= deadline {
                return Err(Error::Internal(format!(
                    "another live webhookd instance uses instance id {} on this database: \
                     each instance needs a data directory of its own (the id is kept in it)",
                    owner.id
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
        tokio::spawn(hold(
            options.clone(),
            owner,
            conn,
            stop.clone(),
            lost.clone(),
        ));
        Ok(Identity {
            id: owner.id,
            lost,
            _holding: stop.drop_guard(),
        })
    }

    /// Resolves once another live instance has taken this instance's id (while its holding
    /// session was lost): the error to stop with.
    pub async fn lost(&self) -> Error {
        self.lost.cancelled().await;
        Error::Internal(format!(
            "another live webhookd instance took this instance's id {} on this database \
             while its session was lost: stopping, as the two would share leases (each \
             instance needs a data directory of its own; the id is kept in it)",
            self.id
        ))
    }
}

/// Keeps the session holding the lock: checked every `CHECK_EVERY`, and once lost (the
/// database restarted) replaced at once and the lock taken again. If another instance took
/// the id meanwhile, it cancels `lost` and stops.
async fn hold(
    options: PgConnectOptions,
    owner: Owner,
    conn: PgConnection,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let mut held = Some(conn);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        if let Some(conn) = held.as_mut() {
            if conn.ping().await.is_ok() {
                continue;
            }
            held = None;
        }
        // The database being lost is the health monitor's to report; here only the lock.
        let Ok(mut conn) = PgConnection::connect_with(&options).await else {
            continue;
        };
        match try_lock(&mut conn, owner.id).await {
            Ok(true) => held = Some(conn),
            Ok(false) => {
                lost.cancel();
                let _ = conn.close().await;
                return;
            }
            Err(_) => {}
        }
    }
    if let Some(conn) = held {
        let _ = conn.close().await;
    }
}
