//! The event-type catalog in PostgreSQL: table `event_types` (migration 0004), keyed by
//! account and name (`COLLATE "C"`: byte order, as sled lists them). A create is one
//! `INSERT … ON CONFLICT DO NOTHING`, so two instances creating one name cannot both win.

use async_trait::async_trait;

use super::{PostgresStore, db, from_json, sql_count, to_json};
use crate::error::Result;
use crate::model::EventType;
use crate::store::EventTypeStore;

#[async_trait]
impl EventTypeStore for PostgresStore {
    async fn insert_event_type(&self, event_type: &EventType) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO event_types (account_id, name, body) VALUES ($1, $2, $3::json)
             ON CONFLICT (account_id, name) DO NOTHING",
        )
        .bind(&event_type.account_id)
        .bind(&event_type.name)
        .bind(to_json(event_type)?)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(inserted > 0)
    }

    async fn replace_event_type(&self, event_type: &EventType) -> Result<bool> {
        let replaced = sqlx::query(
            "UPDATE event_types SET body = $3::json WHERE account_id = $1 AND name = $2",
        )
        .bind(&event_type.account_id)
        .bind(&event_type.name)
        .bind(to_json(event_type)?)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(replaced > 0)
    }

    async fn get_event_type(&self, account_id: &str, name: &str) -> Result<Option<EventType>> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body::text FROM event_types WHERE account_id = $1 AND name = $2",
        )
        .bind(account_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        body.as_deref().map(from_json).transpose()
    }

    async fn list_event_types(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventType>> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body::text FROM event_types
             WHERE account_id = $1 AND ($2::text IS NULL OR name > $2)
             ORDER BY name LIMIT $3",
        )
        .bind(account_id)
        .bind(after)
        .bind(sql_count(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        bodies.iter().map(|b| from_json(b)).collect()
    }

    async fn count_event_types(&self, account_id: &str) -> Result<usize> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM event_types WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n as usize)
    }

    async fn delete_event_type(&self, account_id: &str, name: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM event_types WHERE account_id = $1 AND name = $2")
            .bind(account_id)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(deleted > 0)
    }
}
