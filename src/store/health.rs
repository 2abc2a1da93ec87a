//! Whether the store answers, as the rest of the process acts on it: a monitor probes the
//! backend (`Store::ping`) every second, and on the store being lost or back it logs one
//! line and flips the state that the health endpoints report (grpc.health NOT_SERVING,
//! `/healthz` 503), that pauses delivery and that makes account requests fail at once with
//! UNAVAILABLE instead of each waiting for a connection. Anyone who meets an unavailable
//! store may ask for a probe right away (`suspect`); a busy one (`Error::Busy`: no
//! connection free in time) is back-pressure and asks for nothing. Only a probe that fails
//! to connect or query, or probes in a row that get no answer, say the store is lost. sled
//! is in the process and always answers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::error::{Error, Result};

/// Probe interval, whether the store is up or down.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A probe that takes longer than this found no answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probes in a row without an answer that say the store is lost (one probe failing with a
/// connection error says so at once). A busy store is not lost: its calls answer busy
/// (`Error::Busy`) and never flip this state.
const UNANSWERED_LOST: u32 = 2;

/// The store's reachability, shared by the transports, the core and the worker.
pub struct StoreHealth {
    serving: watch::Sender<bool>,
    probe: Notify,
}

impl Default for StoreHealth {
    /// Serving: the store has just been opened.
    fn default() -> StoreHealth {
        StoreHealth {
            serving: watch::Sender::new(true),
            probe: Notify::new(),
        }
    }
}

impl StoreHealth {
    /// Whether the store answered the last probe.
    pub fn is_serving(&self) -> bool {
        *self.serving.borrow()
    }

    /// UNAVAILABLE while the store is lost.
    pub fn check(&self) -> Result<()> {
        if self.is_serving() {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "the database is unreachable; webhookd serves again as soon as it is back".into(),
            ))
        }
    }

    /// Follows the state (true = serving).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// Returns once the store is serving.
    pub async fn until_serving(&self) {
        let mut serving = self.watch();
        // The sender lives as long as `self`: this cannot fail while we borrow it.
        let _ = serving.wait_for(|up| *up).await;
    }

    /// Asks for a probe now: a call just found the store unavailable.
    pub fn suspect(&self) {
        self.probe.notify_one();
    }

    /// Probes `store` until `shutdown`, logging each change once.
    pub async fn monitor(
        self: Arc<StoreHealth>,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) {
        let mut unanswered = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PROBE_EVERY) => {}
                _ = self.probe.notified() => {}
                _ = shutdown.cancelled() => return,
            }
            let probed = match tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await {
                Ok(answered) => {
                    unanswered = 0;
                    answered
                }
                // A slow answer may be a loaded database, not a lost one: lost only when
                // probes in a row get none.
                Err(_) if unanswered + 1 < UNANSWERED_LOST && self.is_serving() => {
                    unanswered += 1;
                    continue;
                }
                Err(_) => Err(Error::Unavailable(format!(
                    "the database did not answer {UNANSWERED_LOST} probes in a row within {} each",
                    humantime::format_duration(PROBE_TIMEOUT)
                ))),
            };
            let up = probed.is_ok();
            if up == self.is_serving() {
                continue;
            }
            match probed {
                Ok(()) => tracing::info!("the store is reachable again: serving, delivery resumes"),
                Err(e) => tracing::error!(
                    error = %e,
                    "the store is unreachable: health is NOT_SERVING, requests answer UNAVAILABLE and delivery pauses until it is back"
                ),
            }
            self.serving.send_replace(up);
        }
    }
}
