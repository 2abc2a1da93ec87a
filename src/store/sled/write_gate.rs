//! The embedded store's write gate: every write to the engine passes it, and the store's
//! close shuts it for good, so no write lands after the close has made everything durable
//! and recorded the journal (`clean_close`). A write that finds it shut fails with a clear
//! error instead of being lost. Shutting waits for the writes already past the gate.

use std::sync::{RwLock, RwLockReadGuard};

/// Open until `shut`.
#[derive(Default)]
pub struct WriteGate {
    shut: RwLock<bool>,
}

impl WriteGate {
    /// Lets one write through (the gate cannot shut until the guard is dropped), or fails
    /// once the gate is shut.
    pub fn pass(&self) -> fjall::Result<RwLockReadGuard<'_, bool>> {
        let shut = self.shut.read().unwrap_or_else(|e| e.into_inner());
        if *shut {
            return Err(fjall::Error::Io(std::io::Error::other(
                "the store is closed (webhookd is stopping); nothing was written",
            )));
        }
        Ok(shut)
    }

    /// Shuts the gate once the writes in progress are done; every later write fails.
    pub fn shut(&self) {
        *self.shut.write().unwrap_or_else(|e| e.into_inner()) = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shut_gate_fails_every_write() {
        let gate = WriteGate::default();
        drop(gate.pass().unwrap());
        gate.shut();
        let error = gate.pass().err().unwrap().to_string();
        assert!(error.contains("the store is closed"), "{error}");
    }
}
