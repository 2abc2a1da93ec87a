//! The bound on the memory of emits in progress. An emit reserves its estimated size (its
//! events, and a copy of each for every webhook it may match) from one fixed budget before it
//! plans its deliveries, and gives it back once they are durable and scheduled. An emit that
//! does not fit waits for earlier ones to finish (backpressure: it is slower, never refused);
//! one larger than the whole budget waits for all of it and so runs alone. Waiters are served
//! in arrival order, so many small emits cannot starve a large one. The same kind of budget,
//! a second one, bounds the batch calls held decoded before they plan (`intake`).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Bytes one permit of the budget stands for.
const UNIT_BYTES: usize = 1024;

/// The memory of one stored record beside its data (the event or delivery struct, ids,
/// URL, headers, its encoding for the store and its change-log entry).
const RECORD_BYTES: usize = 512;

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

    /// The units standing for `bytes`: at least one, at most all of them.
    fn units_of(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units)
    }
}

/// The memory an event with `data` holds while it is planned and written when it matches
/// `webhooks` webhooks: the event and one delivery per webhook, each with a copy of the data
/// (the request body) and the record's own overhead.
pub fn event_bytes(data: &Value, webhooks: usize) -> usize {
    (json_bytes(data) + RECORD_BYTES).saturating_mul(webhooks.saturating_add(1))
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
    fn the_estimate_grows_with_the_data_and_with_the_webhooks_it_may_reach() {
        let small = json!({"alert_group": {"id": "AG1"}});
        let large = json!({"alert_group": {"id": "AG1", "title": "x".repeat(10_000)}});
        let one = event_bytes(&small, 1);
        assert!(event_bytes(&large, 1) > one + 2 * 10_000);
        assert_eq!(event_bytes(&small, 10), one / 2 * 11);
    }
}
