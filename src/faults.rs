//! Fault injection for the integration tests, compiled only with the `fault-injection`
//! feature (which the test build enables through a dev-dependency on this crate; release
//! and ordinary builds do not have it). A test arms faults on its server's `Config`; the
//! delivery worker consumes one before each attempt, so the recovery paths (an attempt that
//! errs, an attempt task that panics) run in the real server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// Faults armed for the next delivery attempts; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    errors: Arc<AtomicU32>,
    panics: Arc<AtomicU32>,
}

impl Faults {
    /// The next `n` attempts fail with an internal error before anything is recorded.
    pub fn fail_next_attempts(&self, n: u32) {
        self.errors.store(n, Ordering::SeqCst);
    }

    /// The next `n` attempt tasks panic before anything is recorded.
    pub fn panic_next_attempts(&self, n: u32) {
        self.panics.store(n, Ordering::SeqCst);
    }

    /// Called by the worker before an attempt: consumes one armed fault, if any.
    pub(crate) fn before_attempt(&self) -> Result<()> {
        let take = |armed: &AtomicU32| {
            armed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if take(&self.panics) {
            panic!("injected fault: the delivery attempt task panics");
        }
        if take(&self.errors) {
            return Err(Error::Internal("injected fault: the attempt fails".into()));
        }
        Ok(())
    }
}
