//! Leases on outbox entries, the vocabulary of scheduling across instances: an instance
//! (`Owner`, a random id chosen at start, or kept in its data directory so a restarted
//! instance is the same owner) claims due entries in bounded batches (`Claim`),
//! each leased to it until a time; it renews the leases of what it holds while it lives and
//! releases what it lets go. An entry whose lease expired (its owner died) is claimable by
//! any instance. Entries an instance writes are born leased to it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// This instance as a holder of leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Random, chosen at start (`random`) or at the first start with a data directory
    /// (`kept_in`).
    pub id: u64,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

impl Owner {
    /// A new owner with a random id.
    pub fn random(lease: Duration) -> Owner {
        Owner {
            // Ids stay below 2^63 (they are bigint on PostgreSQL).
            id: rand::random::<u64>() >> 1,
            lease,
        }
    }

    /// The owner whose id is kept in the file at `path`, written with a new random id at
    /// the first start: a restarted process is the same owner.
    pub fn kept_in(path: &Path, lease: Duration) -> Result<Owner> {
        let unusable = |e: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "cannot use the instance id file {}: {e}",
                path.display()
            ))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let id: u64 = text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|id| *id < 1 << 63)
                    .ok_or_else(|| unusable(&"it must hold one id below 2^63"))?;
                Ok(Owner { id, lease })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let owner = Owner::random(lease);
                // Written aside and renamed: a crash never leaves half an id.
                let aside = path.with_extension("new");
                std::fs::File::create(&aside)
                    .and_then(|mut file| {
                        file.write_all(format!("{}\n", owner.id).as_bytes())?;
                        file.sync_all()
                    })
                    .and_then(|_| std::fs::rename(&aside, path))
                    .map_err(|e| unusable(&e))?;
                Ok(owner)
            }
            Err(e) => Err(unusable(&e)),
        }
    }

    /// A lease of this owner taken at `now_ms`.
    pub fn lease_from(&self, now_ms: i64) -> Lease {
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        Lease {
            owner: self.id,
            until_ms: now_ms.saturating_add(lease),
        }
    }
}

/// Who holds an entry, and until when (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The owner's id.
    pub owner: u64,
    /// Others may claim the entry after this time.
    pub until_ms: i64,
}

/// One bounded claim of due outbox entries.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The lease the claimed entries get.
    pub lease: Lease,
    /// The time leases are compared with (expired: `until_ms < now_ms`).
    pub now_ms: i64,
    /// Entries due at or before this time are claimable.
    pub due_before_ms: i64,
    /// At most this many entries of one webhook, its earliest due first.
    pub per_webhook: usize,
    /// At most this many entries in all.
    pub limit: usize,
    /// Webhooks not to claim for (saturated or tripped here).
    pub skip: &'a [u64],
}
