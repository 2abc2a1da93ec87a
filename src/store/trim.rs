//! Where each webhook's response log was last trimmed, so that a trim deletes only what the
//! previous one did not cover. Both backends keep deleted entries for a while (the embedded
//! engine's tombstones until a compaction, PostgreSQL's dead index entries until a vacuum):
//! a trim that scanned from the log's oldest end would walk every earlier trim's leftovers,
//! a cost growing with the webhook's age. The memory is per process; after a restart (or on
//! a webhook this process has not trimmed yet) the first trim covers the whole log once.

use std::collections::HashMap;
use std::sync::Mutex;

/// The sequence numbers one trim deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimWindow {
    /// Nothing: an earlier trim covered this cutoff already.
    Nothing,
    /// Every entry at or below `upto` (the first trim of the webhook in this process).
    All { upto: u64 },
    /// The entries above `after` (the previous cutoff) and at or below `upto`.
    Between { after: u64, upto: u64 },
}

/// The cutoff of the latest trim begun per webhook.
#[derive(Debug, Default)]
pub struct TrimCursors(Mutex<HashMap<u64, u64>>);

impl TrimCursors {
    /// Begins a trim of `webhook_id`'s entries at or below `cutoff`, and says which ones are
    /// left to delete. A trim that fails must call `forget`, so the next one starts over.
    pub fn begin(&self, webhook_id: u64, cutoff: u64) -> TrimWindow {
        let mut cursors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match cursors.get(&webhook_id).copied() {
            None => {
                cursors.insert(webhook_id, cutoff);
                TrimWindow::All { upto: cutoff }
            }
            Some(after) if after >= cutoff => TrimWindow::Nothing,
            Some(after) => {
                cursors.insert(webhook_id, cutoff);
                TrimWindow::Between {
                    after,
                    upto: cutoff,
                }
            }
        }
    }

    /// The next trim of `webhook_id` covers its whole log: its last trim failed part way,
    /// or the webhook is gone.
    pub fn forget(&self, webhook_id: u64) {
        let mut cursors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cursors.remove(&webhook_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_trimmed_whole_once_then_by_windows() {
        let cursors = TrimCursors::default();
        assert_eq!(cursors.begin(7, 64), TrimWindow::All { upto: 64 });
        assert_eq!(
            cursors.begin(7, 128),
            TrimWindow::Between {
                after: 64,
                upto: 128
            }
        );
        // A smaller cutoff (a larger history) has nothing left to delete.
        assert_eq!(cursors.begin(7, 100), TrimWindow::Nothing);
        assert_eq!(cursors.begin(7, 128), TrimWindow::Nothing);
        // Another webhook has its own cursor.
        assert_eq!(cursors.begin(8, 10), TrimWindow::All { upto: 10 });
    }

    #[test]
    fn a_failed_or_forgotten_trim_starts_over() {
        let cursors = TrimCursors::default();
        cursors.begin(7, 64);
        cursors.forget(7);
        assert_eq!(cursors.begin(7, 128), TrimWindow::All { upto: 128 });
    }
}
