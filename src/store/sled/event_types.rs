//! The event-type catalog in the embedded store: one tree, `account ++ 0 ++ name -> EventType`, so an
//! account's types list in name order with a prefix scan. A create claims its name with one
//! compare-and-swap (two creates of one name: one wins, the other is told it exists); each
//! write is a single key, durable through the group commit.

use async_trait::async_trait;

use super::codec::{account_key, decode, encode};
use super::{SledStore, internal};
use crate::error::Result;
use crate::model::EventType;
use crate::store::EventTypeStore;

fn key(event_type: &EventType) -> Vec<u8> {
    account_key(&event_type.account_id, event_type.name.as_bytes())
}

#[async_trait]
impl EventTypeStore for SledStore {
    async fn insert_event_type(&self, event_type: &EventType) -> Result<bool> {
        let value = encode(event_type)?;
        let swapped = self
            .trees
            .event_types
            .compare_and_swap(key(event_type), None::<&[u8]>, Some(value))
            .map_err(internal)?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.commit.durable().await?;
        Ok(true)
    }

    async fn replace_event_type(&self, event_type: &EventType) -> Result<bool> {
        let tree = &self.trees.event_types;
        let key = key(event_type);
        let mut current = tree.get(&key).map_err(internal)?;
        let value = encode(event_type)?;
        // Replace only what exists: a delete in between wins over this write.
        loop {
            let Some(existing) = current else {
                return Ok(false);
            };
            match tree
                .compare_and_swap(&key, Some(existing), Some(value.as_slice()))
                .map_err(internal)?
            {
                Ok(()) => break,
                Err(changed) => current = changed.current,
            }
        }
        self.commit.durable().await?;
        Ok(true)
    }

    async fn get_event_type(&self, account_id: &str, name: &str) -> Result<Option<EventType>> {
        self.trees
            .event_types
            .get(account_key(account_id, name.as_bytes()))
            .map_err(internal)?
            .map(|v| decode(&v))
            .transpose()
    }

    async fn list_event_types(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventType>> {
        let prefix = account_key(account_id, &[]);
        let start = match after {
            // The smallest key after `after`'s: the same bytes and a zero.
            Some(after) => {
                let mut start = account_key(account_id, after.as_bytes());
                start.push(0);
                start
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.trees.event_types.range(start..) {
            let (key, value) = item.map_err(internal)?;
            if !key.starts_with(&prefix) || out.len() == limit {
                break;
            }
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    async fn count_event_types(&self, account_id: &str) -> Result<usize> {
        Ok(self
            .trees
            .event_types
            .scan_prefix(account_key(account_id, &[]))
            .count())
    }

    async fn delete_event_type(&self, account_id: &str, name: &str) -> Result<bool> {
        let existed = self
            .trees
            .event_types
            .take(account_key(account_id, name.as_bytes()))
            .map_err(internal)?
            .is_some();
        self.commit.durable().await?;
        Ok(existed)
    }
}
