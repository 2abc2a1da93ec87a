//! Retention: finished events older than `--retention` are deleted with their deliveries,
//! idempotency keys once they no longer hold, and change log entries older than
//! `--change-retention` (the live tail's history). Runs in bounded passes so a large store is
//! pruned a slice at a time, never in one long stop.

use std::time::Duration;

use super::Service;
use super::events::IDEMPOTENCY_TTL_MS;
use crate::error::Result;
use crate::model::now_ms;
use crate::store::Pruned;

/// Records a pass looks at, of each kind.
const PASS_BUDGET: usize = 10_000;

/// Passes of one run at most (a million records of each kind); the next run goes on.
const RUN_PASSES: usize = 100;

impl Service {
    /// Runs retention passes until nothing is left to prune now (or `RUN_PASSES` ran);
    /// returns what was deleted.
    pub async fn prune_expired(&self) -> Result<Pruned> {
        let now = now_ms();
        let keep = self.config.retention.map_or(i64::MAX, |r| {
            i64::try_from(r.as_millis()).unwrap_or(i64::MAX)
        });
        let events_before = now.saturating_sub(keep);
        let keys_before = now - IDEMPOTENCY_TTL_MS;
        let mut total = Pruned::default();
        for _ in 0..RUN_PASSES {
            let pass = self
                .store
                .prune(events_before, keys_before, PASS_BUDGET)
                .await?;
            total.events += pass.events;
            total.idempotency_keys += pass.idempotency_keys;
            self.metrics.pruned_events.inc_by(pass.events);
            if !pass.more {
                break;
            }
            // Let deliveries and requests through between passes.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(keep) = self.config.change_retention {
            let before = now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
            let mut changes = 0;
            for _ in 0..RUN_PASSES {
                let (pruned, more) = self.store.prune_changes(before, PASS_BUDGET).await?;
                changes += pruned;
                if !more {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if changes > 0 {
                tracing::info!(changes, "retention deleted old change log entries");
            }
        }
        Ok(total)
    }
}
