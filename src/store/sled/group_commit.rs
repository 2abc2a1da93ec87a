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
//!
//! `close` (a graceful stop) runs the write-back once more, then the store's close (which
//! ends every write: `engine::Db::close`), and stops the thread: a `durable` after it fails.

use std::sync::mpsc;
use std::time::Duration;

use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Waiter = oneshot::Sender<Result<()>>;

/// What the flusher thread is asked for.
enum Request {
    /// Every write made before is durable.
    Durable(Waiter),
    /// The last write-back, then the store's close; the thread ends.
    Close(Waiter),
}

/// How long the store's close waits for fjall to write its memtables to tables.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// How often an idle flusher runs the write-back and flushes.
const WRITE_BACK_EVERY: Duration = Duration::from_millis(100);

/// Handle to the flusher thread; it stops when every handle is gone.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts the flusher thread of `db`, which runs `write_back` before each flush and
    /// reports each flush's duration to `flush_seconds`.
    pub fn start(
        db: super::engine::Db,
        flush_seconds: Histogram,
        write_back: impl FnMut() -> Result<()> + Send + 'static,
    ) -> Result<GroupCommit> {
        let closing = db.clone();
        GroupCommit::with_flush(
            Engine {
                flush: move || db.flush().map_err(store_error),
                close: move || match closing.close(CLOSE_BOUND) {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        tracing::warn!(bound = ?CLOSE_BOUND, "the store did not write its memory to tables in time; the next start replays its journal");
                        Ok(())
                    }
                    Err(e) => Err(store_error(e)),
                },
                write_back,
            },
            flush_seconds,
        )
    }

    /// Starts a flusher thread that makes writes durable with `engine.flush`.
    fn with_flush(
        engine: Engine<
            impl FnMut() -> Result<()> + Send + 'static,
            impl FnOnce() -> Result<()> + Send + 'static,
            impl FnMut() -> Result<()> + Send + 'static,
        >,
        flush_seconds: Histogram,
    ) -> Result<GroupCommit> {
        let (requests, queue) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("webhookd-flush".into())
            .spawn(move || flush_loop(engine, &flush_seconds, &queue))
            .map_err(|e| Error::Internal(format!("cannot start the flusher thread: {e}")))?;
        Ok(GroupCommit { requests })
    }

    /// Returns once every write made before this call is durable.
    pub async fn durable(&self) -> Result<()> {
        self.ask(Request::Durable).await
    }

    /// Makes every write durable and closes the store (see the header).
    pub async fn close(&self) -> Result<()> {
        self.ask(Request::Close).await
    }

    async fn ask(&self, request: impl FnOnce(Waiter) -> Request) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.requests.send(request(done)).map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }
}

fn closed() -> Error {
    Error::Internal("the store is closed (webhookd is stopping)".into())
}

fn store_error(e: super::engine::Error) -> Error {
    Error::Internal(format!("store: {e}"))
}

/// The store's calls the flusher thread makes.
struct Engine<F, C, W> {
    flush: F,
    close: C,
    write_back: W,
}

/// One flush for every request queued before it starts; requests queued while it runs go
/// to the next.
fn flush_loop(
    engine: Engine<
        impl FnMut() -> Result<()>,
        impl FnOnce() -> Result<()>,
        impl FnMut() -> Result<()>,
    >,
    flush_seconds: &Histogram,
    queue: &mpsc::Receiver<Request>,
) {
    let Engine {
        mut flush,
        close,
        mut write_back,
    } = engine;
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
        let (mut waiters, mut closing) = (Vec::new(), None);
        for request in std::iter::once(first).chain(queue.try_iter()) {
            match request {
                Request::Durable(waiter) => waiters.push(waiter),
                // Requests after a close fail (dropped with the queue).
                Request::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
        }
        if !waiters.is_empty() {
            let written = write_back();
            let timer = flush_seconds.start_timer();
            let result = written.and_then(|()| flush());
            timer.observe_duration();
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
        }
        if let Some(done) = closing {
            let closed = write_back().and_then(|()| close());
            // The thread's handles of the database go before the answer, so that once the
            // store's last handle is dropped its directory lock is free (a restart in the
            // same process opens it at once).
            drop((flush, write_back));
            let _ = done.send(closed);
            return;
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
            Engine {
                flush: move || {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = started_tx.send(n);
                    released
                        .lock()
                        .unwrap()
                        .recv()
                        .map_err(|_| Error::Internal("test over".into()))
                },
                close: || Ok(()),
                write_back: || Ok(()),
            },
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

    #[tokio::test]
    async fn after_a_close_no_write_is_made_durable() {
        let flushes = held_flushes();
        flushes.commit.close().await.unwrap();
        let error = flushes.commit.durable().await.unwrap_err().to_string();
        assert!(error.contains("the store is closed"), "{error}");
        assert!(flushes.started.try_recv().is_err(), "no flush");
    }
}
