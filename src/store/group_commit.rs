//! Group commit: concurrent writers ask for durability and share one `flush` (an fsync in
//! a blocking thread). A flush starts only after the request was queued, so every write
//! made before `durable()` was called is on disk when it returns.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Store;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

type Waiter = oneshot::Sender<Result<()>>;

/// Handle to the flusher task.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<Waiter>,
}

impl GroupCommit {
    /// Starts the flusher task for `store`.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> GroupCommit {
        let (requests, mut queue) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut waiters = vec![first];
                while let Ok(more) = queue.try_recv() {
                    waiters.push(more);
                }
                let store = Arc::clone(&store);
                let timer = metrics.flush_seconds.start_timer();
                let result = tokio::task::spawn_blocking(move || store.flush())
                    .await
                    .unwrap_or_else(|e| Err(Error::Internal(format!("flush task: {e}"))));
                timer.observe_duration();
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        GroupCommit { requests }
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
