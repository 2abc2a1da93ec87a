//! Per-instance read caches of the PostgreSQL backend, for the reads of the hot paths: a
//! webhook by id (every delivery attempt), an account's webhooks (every emit matches against
//! them) and a token by hash (every call authenticates). They hold what the database holds
//! (webhook secrets sealed: the sealing layer above opens them at each read).
//!
//! Invalidation: every write of a webhook or token sends `pg_notify(notify::SETTINGS, ...)`
//! in its own transaction, and every instance's listener drops what it names (a webhook: its
//! entry and every list holding it; a token: all tokens); the writing instance drops them
//! itself as soon as its write commits. Each (re)connection of the listener empties the
//! caches, since notifications sent while it was away are lost.
//!
//! How stale an entry may be: normally the notification's latency (milliseconds); whatever
//! happens to the listener's connection, never older than `MAX_AGE` (then it is read again).
//! So a webhook disabled or deleted on any instance stops being delivered and matched, and a
//! deleted token stops being accepted, everywhere within `MAX_AGE`.
//!
//! A read that raced a change does not fill the cache: every invalidation moves a generation
//! counter on, and a read fills only if the generation it started under is still current.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{ApiToken, Webhook};

/// The longest an entry is used (the bound on staleness when notifications are lost).
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Entries of one kind at most; a full map is emptied (the working set is read again).
const MAX_ENTRIES: usize = 10_000;

struct Cached<T> {
    at: Instant,
    value: T,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    webhooks: HashMap<u64, Cached<Option<Webhook>>>,
    lists: HashMap<String, Cached<Vec<Webhook>>>,
    tokens: HashMap<[u8; 32], Cached<Option<ApiToken>>>,
}

/// The caches of one store.
#[derive(Default)]
pub struct Caches {
    inner: Mutex<Inner>,
}

/// A generation read before a database read, to fill the cache with its result.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

fn fresh<T: Clone>(entry: Option<&Cached<T>>) -> Option<T> {
    entry
        .filter(|e| e.at.elapsed() < MAX_AGE)
        .map(|e| e.value.clone())
}

fn fill<K: std::hash::Hash + Eq, T>(map: &mut HashMap<K, Cached<T>>, key: K, value: T) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(
        key,
        Cached {
            at: Instant::now(),
            value,
        },
    );
}

impl Caches {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take before reading the database for a fill.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// The webhook `id` (None: it does not exist), if cached and fresh.
    pub fn webhook(&self, id: u64) -> Option<Option<Webhook>> {
        fresh(self.lock().webhooks.get(&id))
    }

    pub fn fill_webhook(&self, ticket: Ticket, id: u64, webhook: Option<Webhook>) {
        let mut inner = self.lock();
        if inner.generation == ticket.0 {
            fill(&mut inner.webhooks, id, webhook);
        }
    }

    /// Every webhook of `account_id`, in id order, if cached and fresh.
    pub fn list(&self, account_id: &str) -> Option<Vec<Webhook>> {
        fresh(self.lock().lists.get(account_id))
    }

    pub fn fill_list(&self, ticket: Ticket, account_id: &str, webhooks: Vec<Webhook>) {
        let mut inner = self.lock();
        if inner.generation == ticket.0 {
            fill(&mut inner.lists, account_id.to_string(), webhooks);
        }
    }

    /// The token of `hash` (None: no such token), if cached and fresh.
    pub fn token(&self, hash: &[u8; 32]) -> Option<Option<ApiToken>> {
        fresh(self.lock().tokens.get(hash))
    }

    pub fn fill_token(&self, ticket: Ticket, hash: [u8; 32], token: Option<ApiToken>) {
        let mut inner = self.lock();
        if inner.generation == ticket.0 {
            fill(&mut inner.tokens, hash, token);
        }
    }

    /// Webhook `id` of `account_id` changed (written or deleted).
    pub fn webhook_changed(&self, id: u64, account_id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.webhooks.remove(&id);
        inner.lists.remove(account_id);
        inner
            .lists
            .retain(|_, list| list.value.iter().all(|w| w.id != id));
    }

    /// A token was written or deleted.
    pub fn tokens_changed(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.tokens.clear();
    }

    /// Changes may have been missed: nothing cached is used again.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.webhooks.clear();
        inner.lists.clear();
        inner.tokens.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: u64) -> Webhook {
        Webhook {
            id,
            account_id: "acme".into(),
            ..Webhook::default()
        }
    }

    #[test]
    fn a_change_drops_the_webhook_and_every_list_holding_it() {
        let caches = Caches::default();
        let t = caches.ticket();
        caches.fill_webhook(t, 1, Some(hook(1)));
        caches.fill_webhook(t, 2, Some(hook(2)));
        caches.fill_list(t, "acme", vec![hook(1), hook(2)]);
        caches.fill_list(t, "other", vec![hook(1)]);
        caches.fill_list(t, "third", vec![hook(3)]);
        assert_eq!(caches.webhook(1).unwrap().unwrap().id, 1);
        caches.webhook_changed(1, "acme");
        assert!(caches.webhook(1).is_none());
        assert!(caches.webhook(2).is_some());
        assert!(caches.list("acme").is_none());
        assert!(caches.list("other").is_none());
        assert_eq!(caches.list("third").unwrap().len(), 1);
    }

    #[test]
    fn a_read_that_raced_a_change_does_not_fill() {
        let caches = Caches::default();
        let before = caches.ticket();
        caches.webhook_changed(1, "acme");
        caches.fill_webhook(before, 1, Some(hook(1)));
        caches.fill_list(before, "acme", vec![hook(1)]);
        assert!(caches.webhook(1).is_none());
        assert!(caches.list("acme").is_none());
        let after = caches.ticket();
        caches.fill_webhook(after, 1, None);
        assert_eq!(caches.webhook(1), Some(None));
    }

    #[test]
    fn token_changes_and_lost_notifications_empty_what_they_touch() {
        let caches = Caches::default();
        let t = caches.ticket();
        caches.fill_token(t, [1; 32], None);
        caches.fill_webhook(t, 1, Some(hook(1)));
        caches.tokens_changed();
        assert!(caches.token(&[1; 32]).is_none());
        assert!(caches.webhook(1).is_some());
        caches.clear();
        assert!(caches.webhook(1).is_none());
    }
}
