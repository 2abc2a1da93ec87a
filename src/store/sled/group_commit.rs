//! Group commit of the sled backend: concurrent writers ask for durability and share one
//! `Db::flush` (an fsync) made by a dedicated flusher thread (never `flush_async`, which
//! deadlocks under concurrency in sled 0.34.7). A flush starts only after the request was queued, so every
//! write made before `durable()` was called is on disk when it returns.
//!
//! Flushes start at most once per `GATHER` window: on this kind of machine an fsync costs a
//! few hundred microseconds of CPU whatever it carries, so gathering the requests that
//! arrive meanwhile trades under a millisecond of latency for far fewer of them.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Waiter = oneshot::Sender<Result<()>>;

/// Shortest time between the starts of two flushes.
const GATHER: Duration = Duration::from_micros(2000);

/// Handle to the flusher thread; it stops when every handle is gone.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Waiter>,
}

impl GroupCommit {
    /// Starts the flusher thread of `db`, which reports each flush's duration to
    /// `flush_seconds`.
    pub fn start(db: sled::Db, flush_seconds: Histogram) -> Result<GroupCommit> {
        let (requests, queue) = mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("webhookd-flush".into())
            .spawn(move || flush_loop(&db, &flush_seconds, &queue))
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

fn flush_loop(db: &sled::Db, flush_seconds: &Histogram, queue: &mpsc::Receiver<Waiter>) {
    let mut last_start: Option<Instant> = None;
    while let Ok(first) = queue.recv() {
        if let Some(wait) =
            last_start.and_then(|at| (at + GATHER).checked_duration_since(Instant::now()))
        {
            std::thread::sleep(wait);
        }
        let mut waiters = vec![first];
        waiters.extend(queue.try_iter());
        last_start = Some(Instant::now());
        let timer = flush_seconds.start_timer();
        let result = db
            .flush()
            .map(|_| ())
            .map_err(|e| Error::Internal(format!("store: {e}")));
        timer.observe_duration();
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}
