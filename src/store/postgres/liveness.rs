//! Which pooled connections are tested before a call uses them. sqlx's default tests every
//! one with a round trip (`test_before_acquire`): a millisecond of each emit batch's commit
//! cycle at 8 producers on a 2-core machine, spent before the statement is even sent. A
//! connection in use moments ago is live as far as a test could tell; one that sat idle (the
//! database may have restarted meanwhile) is tested, and a broken one is closed and another
//! taken, so a call after an outage does not fail on a connection the outage broke. A
//! connection that breaks between its test and its use fails its call as UNAVAILABLE, as
//! during an outage, and is closed.

use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::Connection as _;
use sqlx::PgConnection;
use sqlx::pool::PoolConnectionMetadata;

/// A connection idle longer than this is tested before use.
pub const IDLE_BEFORE_TEST: Duration = Duration::from_secs(1);

/// The pools' `before_acquire`: whether the connection may be used (false: sqlx closes it
/// and takes or opens another).
pub fn usable(
    conn: &mut PgConnection,
    meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for < IDLE_BEFORE_TEST {
            return Ok(true);
        }
        Ok(conn.ping().await.is_ok())
    })
}
