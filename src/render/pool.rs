//! The render pool: a fixed number of threads, off the async runtime, that run renders.
//! A render waits (asynchronously) for a place in a bounded queue, so a burst of renders
//! never blocks a runtime worker and never grows memory without bound. The threads have a
//! stack large enough for the deepest nesting a budget allows; a panicking job fails that
//! job only. The threads end when the pool is dropped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Stack of each render thread: handlebars spends tens of KiB of stack per nesting level.
const STACK_BYTES: usize = 32 * 1024 * 1024;
/// Jobs waiting per thread before callers wait for a place.
const QUEUE_PER_THREAD: usize = 16;

/// A pool of render threads; cheap to share behind an Arc.
pub struct Pool {
    jobs: mpsc::Sender<Job>,
    places: Arc<Semaphore>,
}

impl Pool {
    /// Starts `threads` render threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("webhookd-render-{i}"))
                .stack_size(STACK_BYTES)
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(mpsc::RecvError) => return,
                        }
                    }
                })?;
        }
        Ok(Pool {
            jobs,
            places: Arc::new(Semaphore::new(threads * QUEUE_PER_THREAD)),
        })
    }

    /// Runs `job` on a render thread and returns its result; None if it panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let place = Arc::clone(&self.places).acquire_owned().await.ok()?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(job));
            drop(place);
            if let Ok(value) = outcome {
                let _ = done.send(value);
            }
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_pool_threads_and_a_panic_fails_only_its_job() {
        let pool = Pool::start(2).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("webhookd-render-"));
        assert_eq!(pool.run(|| -> u8 { panic!("a bad job") }).await, None);
        let results = futures::future::join_all((0..100).map(|i| pool.run(move || i * 2))).await;
        assert_eq!(results, (0..100).map(|i| Some(i * 2)).collect::<Vec<_>>());
    }

    #[test]
    fn the_threads_hold_a_deep_recursion() {
        fn depth(n: u64) -> u64 {
            let frame = [n; 512];
            if n == 0 {
                0
            } else {
                std::hint::black_box(frame)[0] + depth(n - 1) - n + 1
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let pool = Pool::start(1).unwrap();
        // Several MiB of stack: more than a runtime worker's 2 MiB.
        let levels = runtime.block_on(pool.run(|| depth(1500)));
        assert_eq!(levels, Some(1500));
    }
}
