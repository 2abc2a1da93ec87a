//! Group commit of the embedded store: concurrent writers ask for durability and share one
//! `Db::flush` (an fsync of the journal) made by a dedicated flusher thread. A flush starts
//! only after the request was queued, so every write made before `durable()` was called is on
//! disk when it returns.
//!
//! No gathering window: the thread flushes as soon as a request is queued, and a request
//! queued while a flush runs waits for the next one, which starts the moment the running one
//! ends and serves everything that arrived meanwhile. Idle, one write costs one immediate
//! flush; under load the batches grow with the flush time.
//!
//! Before each flush the thread runs the store's write-back (the webhook stats kept in memory,
//! see `stats`), so what it writes is durable with the flush that follows. Every
//! `WRITE_BACK_EVERY` while no request comes it runs the write-back and flushes too, so writes
//! nobody waits for (attempts) are durable within that period; the last handle going runs
//! both once more.

use std::sync::mpsc;
use std::time::Duration;

use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Waiter = oneshot::Sender<Result<()>>;

/// How often an idle flusher runs the write-back and flushes.
const WRITE_BACK_EVERY: Duration = Duration::from_millis(100);

/// Handle to the flusher thread; it stops when every handle is gone.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Waiter>,
}

impl GroupCommit {
    /// Starts the flusher thread of `db`, which runs `write_back` before each flush and
    /// reports each flush's duration to `flush_seconds`.
    pub fn start(
        db: super::engine::Db,
        flush_seconds: Histogram,
        write_back: impl FnMut() -> Result<()> + Send + 'static,
    ) -> Result<GroupCommit> {
        GroupCommit::with_flush(
            move || {
                db.flush()
                    .map_err(|e| Error::Internal(format!("store: {e}")))
            },
            write_back,
            flush_seconds,
        )
    }

    /// Starts a flusher thread that makes writes durable with `flush`.
    fn with_flush(
        flush: impl FnMut() -> Result<()> + Send + 'static,
        write_back: impl FnMut() -> Result<()> + Send + 'static,
        flush_seconds: Histogram,
    ) -> Result<GroupCommit> {
        let (requests, queue) = mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("webhookd-flush".into())
            .spawn(move || flush_loop(flush, write_back, &flush_seconds, &queue))
            .map_err(|e| Error::Internal(format!("cannot start the flusher thread: {e}")))?;
        Ok(GroupCommit { requests })
    }

    /// Returns once every write made before this call is durable.
    pub async fn durable(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.requests
            .send(done)
            .map_err(|_| Error::Internal("the store is shutting down".into()))?;
        wait.await
            .map_err(|_| Error::Internal("the store is shutting down".into()))?
    }
}

/// One flush for every request queued before it starts; requests queued while it runs go
/// to the next.
fn flush_loop(
    mut flush: impl FnMut() -> Result<()>,
    mut write_back: impl FnMut() -> Result<()>,
    flush_seconds: &Histogram,
    queue: &mpsc::Receiver<Waiter>,
) {
    loop {
        let first = match queue.recv_timeout(WRITE_BACK_EVERY) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = write_back().and_then(|()| flush()) {
                    tracing::error!(error = %e, "cannot write back the store's memory");
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The store is closing: what is in memory goes to disk with a last flush.
                if let Err(e) = write_back().and_then(|()| flush()) {
                    tracing::error!(error = %e, "cannot write back the store's memory");
                }
                return;
            }
        };
        let mut waiters = vec![first];
        waiters.extend(queue.try_iter());
        let written = write_back();
        let timer = flush_seconds.start_timer();
        let result = written.and_then(|()| flush());
        timer.observe_duration();
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// A flush the test holds: each reports its start, then waits until the test lets it end.
    struct HeldFlushes {
        started: mpsc::Receiver<u32>,
        release: mpsc::Sender<()>,
        commit: GroupCommit,
    }

    fn held_flushes() -> HeldFlushes {
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let count = AtomicU32::new(0);
        let histogram = Histogram::with_opts(prometheus::HistogramOpts::new("f", "f")).unwrap();
        let commit = GroupCommit::with_flush(
            move || {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = started_tx.send(n);
                released
                    .lock()
                    .unwrap()
                    .recv()
                    .map_err(|_| Error::Internal("test over".into()))
            },
            || Ok(()),
            histogram,
        )
        .unwrap();
        HeldFlushes {
            started,
            release,
            commit,
        }
    }

    impl HeldFlushes {
        fn next_flush_starts(&self) -> u32 {
            self.started
                .recv_timeout(Duration::from_secs(10))
                .expect("a flush starts")
        }
    }

    #[tokio::test]
    async fn an_idle_write_is_flushed_at_once_by_one_flush() {
        let flushes = held_flushes();
        let mut write = Box::pin(flushes.commit.durable());
        assert!(futures::poll!(&mut write).is_pending());
        assert_eq!(flushes.next_flush_starts(), 1);
        flushes.release.send(()).unwrap();
        write.await.unwrap();
        assert!(flushes.started.try_recv().is_err(), "no second flush");
    }

    #[tokio::test]
    async fn a_write_made_while_a_flush_runs_waits_for_the_next_flush() {
        let flushes = held_flushes();
        let mut early = Box::pin(flushes.commit.durable());
        assert!(futures::poll!(&mut early).is_pending());
        assert_eq!(flushes.next_flush_starts(), 1);

        // Two writers ask while flush 1 runs: it does not cover them.
        let mut late = Box::pin(flushes.commit.durable());
        let mut later = Box::pin(flushes.commit.durable());
        assert!(futures::poll!(&mut late).is_pending());
        assert!(futures::poll!(&mut later).is_pending());
        flushes.release.send(()).unwrap();
        early.await.unwrap();

        // The next flush starts at once and serves both of them.
        assert_eq!(flushes.next_flush_starts(), 2);
        assert!(futures::poll!(&mut late).is_pending());
        assert!(futures::poll!(&mut later).is_pending());
        flushes.release.send(()).unwrap();
        late.await.unwrap();
        later.await.unwrap();
        assert!(flushes.started.try_recv().is_err(), "one flush for both");
    }

    #[tokio::test]
    async fn a_failed_flush_fails_every_write_it_covered() {
        let flushes = held_flushes();
        let mut write = Box::pin(flushes.commit.durable());
        assert!(futures::poll!(&mut write).is_pending());
        assert_eq!(flushes.next_flush_starts(), 1);
        drop(flushes.release);
        assert!(write.await.is_err());
    }
}
