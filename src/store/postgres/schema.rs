//! The schema: versioned migrations embedded from `migrations/` (sqlx's migrator, which
//! records them in `_sqlx_migrations` and serialises concurrent starts with an advisory
//! lock), applied at start. A database migrated by a newer webhookd is refused.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::error::{Error, Result};

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Applies the migrations the database lacks; refuses a database whose schema is newer
/// than this binary.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .or_else(|e| match &e {
            // No migrations table yet: a new database.
            sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => Ok(None),
            _ => Err(e),
        })
        .map_err(|e| Error::Internal(format!("reading the schema version: {e}")))?;
    if let Some(applied) = applied.filter(|v| *v > known) {
        return Err(Error::Internal(format!(
            "the database schema is at version {applied}, newer than this webhookd knows \
             (up to {known}); run a webhookd at least as new as the one that migrated it"
        )));
    }
    MIGRATIONS
        .run(pool)
        .await
        .map_err(|e| Error::Internal(format!("migrating the schema: {e}")))
}
