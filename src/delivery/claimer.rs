//! The claim loop: keeps the scheduler's bounded window filled with due deliveries leased
//! from the store, and keeps this instance's leases alive.
//!
//! - Claims (`Store::claim`) at start, whenever the window ran low after a full claim, and
//!   on a poll interval, which sees other instances' expired leases and retries released to
//!   the store. Entries due within `HORIZON` are claimed; the horizon is twice the poll, so
//!   every entry is claimed before it is due.
//! - Renews the leases of every delivery the scheduler holds, every third of the lease.
//! - Releases the leases of emitted deliveries the window had no room for.
//! - While the store is unavailable it logs once, keeps polling at its interval (no busy
//!   loop) and logs again when claims work again. An unreachable or busy store is logged at
//!   info (the store's health check and pressure report already warn about it); other
//!   failures warn.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::rate::RateLimit;
use super::scheduler::{Entry, Scheduler};
use crate::error::{Error, Result};
use crate::model::now_ms;
use crate::store::{Claim, Owner, Store};

/// How often the store is asked for due entries when nothing else asks.
pub const POLL: Duration = Duration::from_secs(1);

/// Entries due this far ahead are claimed (and retries due within it stay leased).
pub const HORIZON: Duration = Duration::from_secs(2);

/// Entries one claim statement takes at most.
const BATCH: usize = 1000;

/// Deliveries one renewal or release statement names at most.
const CHUNK: usize = 5000;

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimed {
    /// A full batch: there may be more right away.
    More,
    /// The window is full: claim again once it drains.
    WindowFull,
    /// Everything claimable was taken.
    Done,
}

/// The claim loop of one instance.
pub struct Claimer {
    store: Arc<dyn Store>,
    scheduler: Arc<Scheduler>,
    owner: Owner,
}

impl Claimer {
    /// A claim loop for the scheduler's owner.
    pub fn new(store: Arc<dyn Store>, scheduler: Arc<Scheduler>) -> Claimer {
        Claimer {
            owner: scheduler.owner(),
            store,
            scheduler,
        }
    }

    /// Runs until `shutdown`. `first` gets the outcome of the first claim (how many
    /// deliveries it took), so start-up can say it is serving.
    pub async fn run(
        self,
        first: tokio::sync::oneshot::Sender<Result<usize>>,
        shutdown: CancellationToken,
    ) {
        let renew_every = self.owner.lease / 3;
        let mut renew_at = Instant::now() + renew_every;
        let mut first = Some(first);
        let mut paused = false;
        let mut claimed = Claimed::Done;
        loop {
            self.release_overflow().await;
            if Instant::now() >= renew_at {
                renew_at = Instant::now() + renew_every;
                if let Err(e) = self.renew().await {
                    log_failure(&e, "cannot renew the leases of held deliveries");
                }
            }
            let outcome = self.claim().await;
            match &outcome {
                Ok((taken, more)) => {
                    if paused {
                        paused = false;
                        tracing::info!(claimed = taken, "claiming due deliveries again");
                    }
                    claimed = *more;
                }
                Err(e) if !paused => {
                    paused = true;
                    log_failure(
                        e,
                        "cannot claim due deliveries; claiming is paused until the store answers",
                    );
                }
                Err(_) => {}
            }
            if let Some(first) = first.take() {
                let _ = first.send(outcome.map(|(taken, _)| taken));
            }
            if claimed == Claimed::More && !paused {
                continue;
            }
            let wake_at = (Instant::now() + POLL).min(renew_at);
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.scheduler.claimer_woken() => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// One claim for the room the window has; paces the webhooks it sees first.
    async fn claim(&self) -> Result<(usize, Claimed)> {
        let now = now_ms();
        let room = self.scheduler.room(now);
        if room.limit == 0 {
            return Ok((0, Claimed::WindowFull));
        }
        let limit = room.limit.min(BATCH);
        let entries = self
            .store
            .claim(Claim {
                lease: self.owner.lease_from(now),
                now_ms: now,
                due_before_ms: now.saturating_add(HORIZON.as_millis() as i64),
                per_webhook: self.scheduler.limits().window_per_webhook.max(1),
                limit,
                skip: &room.skip,
            })
            .await?;
        let webhooks: BTreeSet<u64> = entries.iter().map(|e| e.webhook_id).collect();
        for id in webhooks {
            if let Some(webhook) = self.store.get_webhook(id).await? {
                self.scheduler.pace(id, RateLimit::of(&webhook), now_ms());
            }
        }
        let taken = entries.len();
        self.scheduler.schedule_all(
            entries
                .into_iter()
                .map(|e| Entry::due(e.due_ms, e.delivery_id, e.webhook_id)),
        );
        let more = if taken == limit && limit == BATCH {
            Claimed::More
        } else if taken == limit {
            Claimed::WindowFull
        } else {
            Claimed::Done
        };
        Ok((taken, more))
    }

    /// Renews the leases of everything held.
    async fn renew(&self) -> Result<()> {
        let lease = self.owner.lease_from(now_ms());
        for chunk in self.scheduler.held_ids().chunks(CHUNK) {
            self.store.renew_leases(lease, chunk).await?;
        }
        Ok(())
    }

    /// Releases what the window had no room for (on failure the leases simply expire).
    async fn release_overflow(&self) {
        let overflow = self.scheduler.take_overflow();
        for chunk in overflow.chunks(CHUNK) {
            if let Err(e) = self.store.release_leases(self.owner.id, chunk).await {
                log_failure(&e, "cannot release leases; they expire instead");
            }
        }
    }

    /// Releases the leases of everything held (at shutdown, once the worker stopped), so
    /// other instances take the deliveries at once.
    pub async fn release_all(store: &dyn Store, scheduler: &Scheduler) -> Result<()> {
        let mut ids = scheduler.held_ids();
        ids.extend(scheduler.take_overflow());
        for chunk in ids.chunks(CHUNK) {
            store.release_leases(scheduler.owner().id, chunk).await?;
        }
        Ok(())
    }
}

/// Logs a failed store call: at info when the store is unreachable or busy (its health
/// check and its pressure report warn about those once), else as a warning.
fn log_failure(error: &Error, what: &str) {
    match error {
        Error::Unavailable(_) | Error::Busy(_) => tracing::info!(error = %error, "{what}"),
        _ => tracing::warn!(error = %error, "{what}"),
    }
}
