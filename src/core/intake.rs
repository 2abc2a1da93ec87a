//! The bound on the batch emit calls held decoded. A transport reads a batch call's body
//! first, as received (a few hundred KB for 1,000 events; reading it also keeps HTTP/2 flow
//! control moving for the other streams of the connection), then asks here for a grant sized
//! from the body's length, and only then decodes it; it holds the grant until the call's
//! answer is sent. So however many batch calls arrive at once, only those granted hold their
//! events decoded (several times their encoded size) and their answers; the others wait as
//! bytes, in arrival order (a call larger than the whole bound waits for all of it and runs
//! alone). The grants come from a budget of their own, the size of the emit budget, so a
//! granted call waiting for the emit budget (`emit_budget`) never holds up the calls ahead of
//! it there: the order is always grant, then emit budget.

use tokio::sync::OwnedSemaphorePermit;

use super::Service;

/// The memory a batch's events take decoded (and, once planned, its answer), per byte of
/// their encoding: a 1.3 KB OnCall event_data takes about 8 KB as a protobuf `Struct` or a
/// `serde_json::Value` (measured), and the call holds one of those at a time.
const DECODED_PER_ENCODED_BYTE: usize = 7;

/// A batch call's share of the decoding bound; dropping it gives the share back.
#[must_use = "the share is given back when the grant is dropped"]
pub struct BatchGrant {
    _share: OwnedSemaphorePermit,
}

impl Service {
    /// Waits until a batch call whose body is `encoded_bytes` long may be decoded, and
    /// grants it its share until the grant is dropped.
    pub async fn admit_batch(&self, encoded_bytes: usize) -> BatchGrant {
        BatchGrant {
            _share: self
                .intake
                .reserve_owned(encoded_bytes.saturating_mul(DECODED_PER_ENCODED_BYTE))
                .await,
        }
    }
}
