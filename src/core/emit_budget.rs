//! The bound on the memory of emits in progress. An emit reserves its estimated size (its
//! events, and a copy of each for every webhook it may match) from one fixed budget before it
//! plans its deliveries, and gives it back once they are durable and scheduled. An emit that
//! does not fit waits for earlier ones to finish (backpressure: it is slower, never refused);
//! one larger than the whole budget waits for all of it and so runs alone. Waiters are served
//! in arrival order, so many small emits cannot starve a large one. The same kind of budget,
//! a second one, bounds the batch calls held decoded before they plan (`intake`), and a
//! third the bytes of batch calls still arriving or waiting to be decoded (refused, not
//! waited for, when full: `try_grow`).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Bytes one permit of the budget stands for.
const UNIT_BYTES: usize = 1024;

/// What an event holds beside its data while it is planned, written and answered: its
/// structs and ids, its store records and the answer's entry (measured: see `event_bytes`).
const EVENT_BYTES: usize = 4608;

/// What each byte of an event's data costs it: the data as a `serde_json::Value` (2-3x its
/// JSON text for OnCall's small objects), its serialized form and the stored body.
const EVENT_BYTES_PER_DATA_BYTE: usize = 3;

/// What a delivery holds beside its request body: the struct, its URL and headers, its store
/// records (the encoding, the outbox and change-log entries) and its answer's entry (its ids
/// and state as a DeliveryStatus or JSON).
const DELIVERY_BYTES: usize = 3072;

/// A batch emit's share of the budget, held from its plan until its answer is sent (the
/// transport keeps it with the answer's body); clones share it, and it is given back when
/// the last one is dropped.
#[derive(Clone)]
pub struct EmitShare {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// The memory an emit may hold while it is planned and written; shared by every transport.
pub struct EmitBudget {
    permits: Arc<Semaphore>,
    units: u32,
}

impl EmitBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> EmitBudget {
        let units = u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .max(1);
        EmitBudget {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// The budget's size.
    pub fn bytes(&self) -> usize {
        self.units as usize * UNIT_BYTES
    }

    /// The bytes of the budget held now.
    pub fn in_use(&self) -> usize {
        (self.units as usize).saturating_sub(self.permits.available_permits()) * UNIT_BYTES
    }

    /// Waits until `bytes` of the budget are free (all of it when `bytes` is more) and holds
    /// them until the returned permit is dropped.
    pub async fn reserve(&self, bytes: usize) -> SemaphorePermit<'_> {
        self.permits
            .acquire_many(self.units_of(bytes))
            .await
            .expect("the emit budget is never closed")
    }

    /// `reserve` for a holder that outlives the borrow of the budget (a call's answer).
    pub async fn reserve_owned(&self, bytes: usize) -> OwnedSemaphorePermit {
        Arc::clone(&self.permits)
            .acquire_many_owned(self.units_of(bytes))
            .await
            .expect("the emit budget is never closed")
    }

    /// Grows `share` to stand for `bytes` (at most all of the budget) without waiting;
    /// false, leaving it as it was, when the budget has not that much free.
    pub fn try_grow(&self, share: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> bool {
        let held = share.as_ref().map_or(0, |p| p.num_permits());
        let wanted = self.units_of(bytes) as usize;
        if wanted <= held {
            return true;
        }
        let Ok(more) = Arc::clone(&self.permits).try_acquire_many_owned((wanted - held) as u32)
        else {
            return false;
        };
        match share {
            Some(share) => share.merge(more),
            None => *share = Some(more),
        }
        true
    }

    /// `reserve_owned` as a share that travels with a batch's answer.
    pub async fn reserve_share(&self, bytes: usize) -> EmitShare {
        EmitShare {
            _permit: Arc::new(self.reserve_owned(bytes).await),
        }
    }

    /// The units standing for `bytes`: at least one, at most all of them.
    fn units_of(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units)
    }
}

/// The memory an event with `data` holds from its plan to its answer when it matches
/// `webhooks` webhooks: the event with its data, and one delivery per webhook with its
/// request body (about the data's size: forward_all sends the data; a template's output is
/// capped by its render budget, usually smaller). Measured with a counting allocator through
/// the gRPC and REST batch calls, from decode to answer: 1,000 events of ~330 bytes held
/// 7.5 MB with 1 webhook and 30 MB with 10 (2.6 KB per delivery, 5 KB per event); 1,000
/// events of ~1.3 KB held 10 and 34 MB. The sum of these constants is at or above each.
pub fn event_bytes(data: &Value, webhooks: usize) -> usize {
    let data = json_bytes(data);
    let event = EVENT_BYTES + data.saturating_mul(EVENT_BYTES_PER_DATA_BYTE);
    let delivery = DELIVERY_BYTES + data.saturating_mul(2);
    event.saturating_add(delivery.saturating_mul(webhooks))
}

/// About the size of `value` as JSON (strings and keys counted without escapes), without
/// serializing it.
fn json_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(|v| json_bytes(v) + 1).sum::<usize>() + 2,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 4 + json_bytes(v))
                .sum::<usize>()
                + 2
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use serde_json::json;

    use super::*;

    /// Whether `future` is ready at its first poll.
    fn ready_now<F: Future>(future: F) -> Option<F::Output> {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    #[test]
    fn an_emit_that_does_not_fit_waits_until_an_earlier_one_gives_its_share_back() {
        let budget = EmitBudget::new(10 * UNIT_BYTES);
        let first = ready_now(budget.reserve(6 * UNIT_BYTES)).expect("the budget is free");
        assert!(
            ready_now(budget.reserve(6 * UNIT_BYTES)).is_none(),
            "6 of 10 units are held"
        );
        let small = ready_now(budget.reserve(4 * UNIT_BYTES)).expect("4 units are free");
        drop(first);
        drop(small);
        assert!(ready_now(budget.reserve(6 * UNIT_BYTES)).is_some());
    }

    #[test]
    fn an_emit_larger_than_the_budget_runs_alone_instead_of_never() {
        let budget = EmitBudget::new(10 * UNIT_BYTES);
        let huge = ready_now(budget.reserve(1000 * UNIT_BYTES)).expect("waits for all of it");
        assert!(
            ready_now(budget.reserve(1)).is_none(),
            "it holds everything"
        );
        drop(huge);
        assert!(ready_now(budget.reserve(1)).is_some());
    }

    #[test]
    fn an_owned_share_is_held_until_it_is_dropped() {
        let budget = EmitBudget::new(10 * UNIT_BYTES);
        let owned = ready_now(budget.reserve_owned(8 * UNIT_BYTES)).expect("the budget is free");
        assert!(ready_now(budget.reserve(4 * UNIT_BYTES)).is_none());
        drop(owned);
        assert!(ready_now(budget.reserve(4 * UNIT_BYTES)).is_some());
    }

    #[test]
    fn a_share_grows_while_there_is_room_and_is_refused_without_waiting_when_there_is_none() {
        let budget = EmitBudget::new(10 * UNIT_BYTES);
        let mut share = None;
        assert!(budget.try_grow(&mut share, 3 * UNIT_BYTES));
        assert!(budget.try_grow(&mut share, 8 * UNIT_BYTES));
        let other = ready_now(budget.reserve(2 * UNIT_BYTES)).expect("2 units are free");
        assert!(
            !budget.try_grow(&mut share, 9 * UNIT_BYTES),
            "only 8 + 2 units exist"
        );
        assert_eq!(share.as_ref().map(|s| s.num_permits()), Some(8));
        drop(other);
        assert!(
            budget.try_grow(&mut share, 1000 * UNIT_BYTES),
            "all of it, then no more"
        );
        assert!(ready_now(budget.reserve(1)).is_none());
    }

    #[test]
    fn the_estimate_grows_with_the_data_and_with_the_webhooks_it_may_reach() {
        let small = json!({"alert_group": {"id": "AG1"}});
        let large = json!({"alert_group": {"id": "AG1", "title": "x".repeat(10_000)}});
        let one = event_bytes(&small, 1);
        assert!(event_bytes(&large, 1) > one + 2 * 10_000);
        assert!(event_bytes(&small, 10) > one + 9 * DELIVERY_BYTES);
        // A 1,000-event batch of OnCall-sized events to 10 webhooks is tens of MB, as measured.
        assert!(1000 * event_bytes(&small, 10) > 28_000_000);
    }
}
