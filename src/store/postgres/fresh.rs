//! The deliveries this instance just wrote (emits): what an emit commits goes straight to this
//! instance's queue, and the attempt's read of the delivery (`Store::get_delivery`) takes it
//! from here instead of a database round trip. Each entry is used once (the first read takes
//! it; any later read goes to the database) and only while it is younger than
//! `cache::MAX_AGE`.
//!
//! It holds what the database holds: nothing changes a delivery between its emit and its
//! first attempt but a cancel, and a cancel drops the entry (on this instance at once, on the
//! others when its notification arrives; every (re)connection of the listener empties the
//! map, as it empties the other caches). A cancel on another instance racing that
//! notification is the race of a cancel with an attempt in flight: the attempt is recorded
//! and the delivery stays CANCELLED.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use super::cache::MAX_AGE;
use crate::model::Delivery;

/// Entries at most (the oldest go first).
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
struct Inner {
    deliveries: HashMap<u64, (Instant, Delivery)>,
    /// Ids in the order written, with the time (some already taken).
    order: VecDeque<(Instant, u64)>,
}

/// The deliveries just written, by id.
#[derive(Default)]
pub struct Written {
    inner: Mutex<Inner>,
}

impl Written {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `deliveries`, as just committed.
    pub fn put<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery>) {
        let now = Instant::now();
        let mut inner = self.lock();
        for d in deliveries {
            if inner.deliveries.insert(d.id, (now, d.clone())).is_none() {
                inner.order.push_back((now, d.id));
            }
        }
        // From the front: ids already taken, entries too old to be used, the oldest beyond
        // the bound (so the queue holds at most the ids written within `MAX_AGE`).
        while let Some(&(at, id)) = inner.order.front() {
            let unused = inner.deliveries.len() > MAX_ENTRIES || at.elapsed() >= MAX_AGE;
            if !unused && inner.deliveries.contains_key(&id) {
                break;
            }
            inner.order.pop_front();
            inner.deliveries.remove(&id);
        }
    }

    /// Takes delivery `id` if it was just written (and is still fresh).
    pub fn take(&self, id: u64) -> Option<Delivery> {
        let (at, delivery) = self.lock().deliveries.remove(&id)?;
        (at.elapsed() < MAX_AGE).then_some(delivery)
    }

    /// Delivery `id` changed: its entry is no longer what the database holds.
    pub fn forget(&self, id: u64) {
        self.lock().deliveries.remove(&id);
    }

    /// Forgets everything (changes may have been missed).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.deliveries.clear();
        inner.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: u64) -> Delivery {
        Delivery::queued(id, id, 1, "http://x/".into(), "acme".into(), 0)
    }

    #[test]
    fn a_written_delivery_is_read_once_unless_it_changed_and_the_oldest_go_first() {
        let written = Written::default();
        written.put(&[delivery(1), delivery(2), delivery(3)]);
        assert_eq!(written.take(1).map(|d| d.id), Some(1));
        assert_eq!(written.take(1), None);
        written.forget(2);
        assert_eq!(written.take(2), None);
        written.clear();
        assert_eq!(written.take(3), None);

        let many: Vec<Delivery> = (0..MAX_ENTRIES as u64 + 10).map(delivery).collect();
        written.put(&many);
        assert_eq!(written.take(0), None);
        assert_eq!(written.take(9), None);
        assert!(written.take(10).is_some());
        assert!(written.take(MAX_ENTRIES as u64 + 9).is_some());
        assert!(written.lock().order.len() <= MAX_ENTRIES);
    }
}
