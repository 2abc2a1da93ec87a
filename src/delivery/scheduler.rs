//! The in-memory due queue of deliveries: (due time, delivery id) ordered by due time, fed
//! by emits after their commit, by the worker's retries, and from the outbox at start.
//! The outbox in the store is the durable copy; this is only the index the worker reads.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use tokio::sync::Notify;

/// A due-ordered queue with a wake-up for the worker.
#[derive(Default)]
pub struct Scheduler {
    queue: Mutex<BinaryHeap<Reverse<(i64, u64)>>>,
    wake: Notify,
}

/// What the worker should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Attempt this delivery, due at this time, now.
    Due(i64, u64),
    /// Nothing is due before this time.
    WaitUntil(i64),
    /// The queue is empty.
    Idle,
}

impl Scheduler {
    /// Queues a delivery for `due_ms` and wakes the worker.
    pub fn schedule(&self, due_ms: i64, delivery_id: u64) {
        self.lock().push(Reverse((due_ms, delivery_id)));
        self.wake.notify_one();
    }

    /// Queues many deliveries at once (start-up, emits) and wakes the worker.
    pub fn schedule_all(&self, entries: impl IntoIterator<Item = (i64, u64)>) {
        self.lock().extend(entries.into_iter().map(Reverse));
        self.wake.notify_one();
    }

    /// Takes the earliest delivery if it is due at `now_ms`.
    pub fn next(&self, now_ms: i64) -> Next {
        let mut queue = self.lock();
        match queue.peek() {
            Some(Reverse((due, _))) if *due <= now_ms => {
                let Reverse((due, id)) = queue.pop().expect("peeked");
                Next::Due(due, id)
            }
            Some(Reverse((due, _))) => Next::WaitUntil(*due),
            None => Next::Idle,
        }
    }

    /// Number of queued deliveries.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when something new was scheduled.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<(i64, u64)>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_due_delivery_comes_first_and_future_ones_wait() {
        let scheduler = Scheduler::default();
        scheduler.schedule(300, 3);
        scheduler.schedule_all([(100, 1), (200, 2)]);
        assert_eq!(scheduler.next(150), Next::Due(100, 1));
        assert_eq!(scheduler.next(150), Next::WaitUntil(200));
        assert_eq!(scheduler.next(1000), Next::Due(200, 2));
        assert_eq!(scheduler.len(), 1);
        assert_eq!(scheduler.next(1000), Next::Due(300, 3));
        assert_eq!(scheduler.next(1000), Next::Idle);
        assert!(scheduler.is_empty());
    }
}
