//! The bounds on batch emit calls before they plan. A transport reads a batch call's body
//! first, as received (reading it also keeps HTTP/2 flow control moving for the other streams
//! of the connection), counting its bytes as they arrive against a bound of their own
//! (`Arrival::read`): when the calls waiting as bytes would hold more than that, the call is
//! refused at once (`Error::Overloaded`: gRPC RESOURCE_EXHAUSTED with RetryInfo, REST 429 with
//! Retry-After) instead of the clients' streams growing memory without end. A call read whole
//! then asks for a grant sized from its length (`admit_batch`), gives its bytes' share back
//! once granted, and only then is decoded; it holds the grant until its answer is sent. So
//! however many batch calls arrive at once, only those granted hold their events decoded
//! (many times their encoded size); the others wait as bytes, in arrival order (a call larger
//! than the whole bound waits for all of it and runs alone). Each bound is the size of the
//! emit budget (`--emit-memory-mib`; the bytes waiting at least `MIN_BATCH_WAITING_BYTES`),
//! so the batch calls hold at most about three times it: bytes waiting, calls decoded, emits
//! planned (`emit_budget`, which a granted call waits for in turn, so it never holds up the
//! calls ahead of it there).

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::Service;
use super::emit_budget::EmitBudget;
use crate::error::{Error, Result};

/// The memory a batch call takes decoded, per byte of its encoding, besides those bytes
/// (measured with a counting allocator: OnCall events of ~330 bytes decode to 10.8x their
/// protobuf encoding as prost `Struct`s and 15.4x their JSON as `serde_json::Value`s, ~3 KB
/// each; events of 1.3 KB to 3x and 4x; converted to `EmitRequest`s one by one).
const DECODED_PER_ENCODED_BYTE: usize = 16;

/// A batch call's bytes as they arrive, counted against the bound on bytes waiting; dropping
/// it gives their share back.
pub struct Arrival {
    bound: Arc<EmitBudget>,
    share: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Arrival {
    /// Counts `more` bytes read; refused when the calls waiting as bytes cannot hold them.
    pub fn read(&mut self, more: usize) -> Result<()> {
        self.bytes = self.bytes.saturating_add(more);
        if self.bound.try_grow(&mut self.share, self.bytes) {
            return Ok(());
        }
        Err(Error::Overloaded(format!(
            "too many batch bytes are waiting to be decoded (at most {} MiB); retry later",
            self.bound.bytes() >> 20
        )))
    }
}

/// A batch call's share of the decoding bound; dropping it gives the share back.
#[must_use = "the share is given back when the grant is dropped"]
pub struct BatchGrant {
    _share: OwnedSemaphorePermit,
}

impl Service {
    /// The bytes in use of each emit memory bound: batch bytes waiting, batch calls decoded,
    /// emits planned.
    pub fn emit_memory_in_use(&self) -> [(&'static str, usize); 3] {
        [
            ("waiting", self.arriving.in_use()),
            ("decoded", self.intake.in_use()),
            ("planned", self.emit_budget.in_use()),
        ]
    }

    /// A batch call starting to arrive (nothing counted yet).
    pub fn batch_arrival(&self) -> Arrival {
        Arrival {
            bound: Arc::clone(&self.arriving),
            share: None,
            bytes: 0,
        }
    }

    /// Waits until a batch call read whole (`arrival`) may be decoded, grants it its share
    /// until the grant is dropped, and gives its bytes' share of the waiting bound back.
    pub async fn admit_batch(&self, arrival: Arrival) -> BatchGrant {
        let bytes = arrival.bytes;
        let share = self
            .intake
            .reserve_owned(bytes.saturating_mul(DECODED_PER_ENCODED_BYTE + 1))
            .await;
        drop(arrival);
        BatchGrant { _share: share }
    }
}
