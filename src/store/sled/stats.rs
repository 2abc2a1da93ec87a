//! Webhook stats on sled: kept in memory, written back in the background. Every attempt
//! updates its webhook's stats (outcome times, the response log's sequence number, the
//! breaker); a write per attempt, with a JSON round trip, cost more than the rest of the
//! attempt's record. Here an attempt changes the in-memory copy and marks it dirty; the
//! flusher thread writes the dirty ones before each group-commit flush and when idle
//! (`persist`), so they reach the disk with the next flush, at most one write per webhook
//! per flush.
//!
//! A crash loses the updates made since the last write-back: outcome times and the breaker
//! go back by at most that long. The log's sequence number never goes back: log entries are
//! written at once, keyed by it, so loading a webhook's stats takes the newest entry's
//! number when it is ahead (`load`), and no later entry overwrites an older one.
//! One process uses the directory, so the memory copy is the truth while it runs.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

#[cfg(test)]
use super::engine;
use super::engine::Tree;

use super::codec::{be, decode, encode, split2};
use super::internal;
use crate::error::Result;
use crate::model::WebhookStats;

/// The stats tree (id -> WebhookStats), its memory copy and what is still to be written.
pub struct Stats {
    tree: Tree,
    /// webhook id ++ !seq -> ResponseRecord (read for the newest sequence number).
    responses: Tree,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    by_webhook: HashMap<u64, WebhookStats>,
    dirty: HashSet<u64>,
}

impl Stats {
    pub fn new(tree: Tree, responses: Tree) -> Stats {
        Stats {
            tree,
            responses,
            memory: Mutex::default(),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored stats of a webhook, with the sequence number of its newest log entry.
    fn load(&self, webhook_id: u64) -> Result<WebhookStats> {
        let mut stats: WebhookStats = match self.tree.get(be(webhook_id)).map_err(internal)? {
            Some(value) => decode(&value)?,
            None => WebhookStats::default(),
        };
        // Keys are webhook ++ !seq: the first one holds the newest number.
        if let Some(newest) = self.responses.scan_prefix(be(webhook_id)).keys().next() {
            let newest = !split2(&newest.map_err(internal)?)?.1;
            stats.response_seq = stats.response_seq.max(newest);
        }
        Ok(stats)
    }

    fn entry<'m>(&self, memory: &'m mut Memory, webhook_id: u64) -> Result<&'m mut WebhookStats> {
        Ok(match memory.by_webhook.entry(webhook_id) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(unknown) => {
                unknown.insert(self.load(webhook_id)?)
            }
        })
    }

    /// A webhook's stats.
    pub fn get(&self, webhook_id: u64) -> Result<WebhookStats> {
        let mut memory = self.memory();
        self.entry(&mut memory, webhook_id).cloned()
    }

    /// Changes a webhook's stats with `change` (written back later); returns them after it.
    pub fn update(
        &self,
        webhook_id: u64,
        change: impl FnOnce(&mut WebhookStats),
    ) -> Result<WebhookStats> {
        let mut memory = self.memory();
        let stats = self.entry(&mut memory, webhook_id)?;
        change(stats);
        let updated = stats.clone();
        memory.dirty.insert(webhook_id);
        Ok(updated)
    }

    /// Forgets a deleted webhook's stats, in memory and stored.
    pub fn remove(&self, webhook_id: u64) -> Result<()> {
        let mut memory = self.memory();
        memory.by_webhook.remove(&webhook_id);
        memory.dirty.remove(&webhook_id);
        self.tree.remove(be(webhook_id)).map_err(internal)?;
        Ok(())
    }

    /// Writes the stats changed since the last call (the next flush makes them durable).
    pub fn persist(&self) -> Result<()> {
        let mut memory = self.memory();
        let dirty: Vec<u64> = memory.dirty.drain().collect();
        for webhook_id in dirty {
            if let Some(stats) = memory.by_webhook.get(&webhook_id) {
                self.tree
                    .insert(be(webhook_id), encode(stats)?)
                    .map_err(internal)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BreakerPolicy, BreakerStep, Verdict};
    use std::time::Duration;

    fn step() -> BreakerStep {
        BreakerStep {
            verdict: Verdict::Unknown,
            policy: BreakerPolicy::new(5, Duration::from_secs(30)),
        }
    }

    fn stats_of(db: &engine::Db) -> Stats {
        Stats::new(
            db.open_tree("webhook_stats").unwrap(),
            db.open_tree("responses").unwrap(),
        )
    }

    #[test]
    fn stats_are_stored_only_when_persisted() {
        let db = engine::Db::temporary();
        let stats = stats_of(&db);
        let after = stats.update(7, |s| s.record(1_000, true, step())).unwrap();
        assert_eq!(after.response_seq, 1);
        assert_eq!(stats.get(7).unwrap(), after);
        assert!(stats_of(&db).get(7).unwrap() == WebhookStats::default());
        stats.persist().unwrap();
        assert_eq!(stats_of(&db).get(7).unwrap(), after);
    }

    #[test]
    fn a_log_entry_ahead_of_the_stored_stats_sets_the_sequence_number() {
        let db = engine::Db::temporary();
        let stats = stats_of(&db);
        stats.update(7, |s| s.record(1_000, true, step())).unwrap();
        stats.persist().unwrap();
        // Entries 2 and 3 were logged, and a crash lost the stats that counted them.
        let responses = db.open_tree("responses").unwrap();
        for seq in [2u64, 3] {
            responses
                .insert(super::super::codec::be2(7, !seq), [])
                .unwrap();
        }
        let reloaded = stats_of(&db);
        assert_eq!(reloaded.get(7).unwrap().response_seq, 3);
        let next = reloaded
            .update(7, |s| s.record(2_000, true, step()))
            .unwrap();
        assert_eq!(next.response_seq, 4);
    }

    #[test]
    fn removed_stats_are_not_written_back() {
        let db = engine::Db::temporary();
        let stats = stats_of(&db);
        stats.update(7, |s| s.record(1_000, false, step())).unwrap();
        stats.remove(7).unwrap();
        stats.persist().unwrap();
        assert!(db.open_tree("webhook_stats").unwrap().is_empty().unwrap());
        assert_eq!(stats.get(7).unwrap(), WebhookStats::default());
    }
}
