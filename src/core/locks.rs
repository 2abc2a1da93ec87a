//! Per-account write serialization. Every change of an account's webhooks (create, update,
//! delete, rotation, and the worker's auto-disable reported through core) reads, checks and
//! writes under its account's lock, so a uniqueness check and the write after it are one
//! step, and no writer puts back a stale copy over another's change. Locks are async
//! (held across store calls) and exist only while someone holds or waits for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The write locks of all accounts.
#[derive(Default)]
pub struct AccountLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl AccountLocks {
    /// Waits for and holds the write lock of `account_id` until the guard is dropped.
    pub async fn lock(&self, account_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(account_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    locks.insert(account_id.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    #[tokio::test]
    async fn one_writer_per_account_and_no_lock_outlives_its_holders() {
        let locks = AccountLocks::default();
        let held = locks.lock("acme").await;
        // Another account is not held up.
        drop(locks.lock("globex").await);
        assert!(
            locks.lock("acme").now_or_never().is_none(),
            "a second writer of acme got the lock"
        );
        drop(held);
        drop(locks.lock("acme").await);
        // Only the last lock's entry is left (purged at the next call), held by no one.
        let map = locks.locks.lock().unwrap();
        assert!(map.len() <= 1 && map.values().all(|l| l.strong_count() == 0));
    }
}
