//! The in-memory due queue of deliveries and the per-endpoint fairness around it. Entries
//! are ordered by the time they may run (`not_before`); each keeps the due time the store
//! knows (`due_ms`), so the worker can tell stale entries. It holds only what this instance
//! leased: emits after their commit, the worker's retries, and what the claimer claims from
//! the store (the outbox is the durable copy).
//!
//! The window is bounded: a webhook holds at most `2 × window_per_webhook` entries and all
//! of them at most `2 × window`. An emit beyond the bounds is not held but handed back
//! (`take_overflow`) for its lease to be released, so the store keeps it until a claim takes
//! it; claims ask only for the room left (`room`), skipping webhooks that hold their share or
//! whose circuit is open. Memory does not grow with the backlog.
//!
//! Fairness: at most `per_webhook_limit` attempts of one webhook run at once (others are
//! parked for that webhook, not blocking anyone else), and a per-webhook circuit breaker
//! parks the deliveries of an endpoint that keeps failing: while it is open they wait, at its
//! reopening a single probe goes out, and only an answer to the probe releases the rest. A
//! dead endpoint thus costs one attempt per cooldown, not its whole backlog churning through
//! the queue at every reopening. The breaker's state is the store's (`BreakerState`, moved
//! by each recorded attempt of any instance): `follow` adopts what the attempt's record
//! returned, so an endpoint another instance found dead is parked here too after one
//! attempt, and each instance sends its own single probe per reopening.
//!
//! Rate limits: a webhook with a rate (told by `pace`) has a token bucket (`rate`). One of its
//! deliveries waits in the queue for the next token; the others are parked behind it, in
//! order, and each token taken releases the next. Waiting costs no attempt and holds up no
//! other webhook. A 429 answer (`EndpointHealth::Throttled`) slows the bucket down.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use tokio::sync::Notify;

use super::rate::{Bucket, RateLimit};
use crate::model::BreakerState;
use crate::store::Owner;

/// One queued delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Earliest time it may run (ms since the epoch).
    pub not_before_ms: i64,
    /// Its id.
    pub delivery_id: u64,
    /// Due time as stored (ms since the epoch).
    pub due_ms: i64,
    /// The webhook it belongs to.
    pub webhook_id: u64,
}

impl Entry {
    /// An entry that may run at its due time.
    pub fn due(due_ms: i64, delivery_id: u64, webhook_id: u64) -> Entry {
        Entry {
            not_before_ms: due_ms,
            delivery_id,
            due_ms,
            webhook_id,
        }
    }
}

/// What the worker should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Attempt this delivery now; report the end with `finish` (or the endpoint's answer
    /// with `answered`, then the end with `finish_answered`).
    Due(Entry),
    /// Nothing may run before this time.
    WaitUntil(i64),
    /// Nothing is queued that may run.
    Idle,
}

/// How an attempt ended, for the rate limit (the breaker follows the store's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointHealth {
    /// The endpoint answered (any status that is not a server failure).
    Answered,
    /// Timeout, connection error or 5xx: the endpoint is struggling.
    Failing,
    /// 429 Too Many Requests: struggling, and its rate limit (if any) is lowered for a while.
    Throttled,
    /// No request was sent (cancelled, template error, stale entry).
    Untouched,
}

/// Fairness settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attempts of one webhook in flight at once.
    pub per_webhook: usize,
    /// How long a 429 lowers a webhook's rate before it starts to recover.
    pub rate_cooldown: Duration,
    /// Entries of one webhook a claim tops up to (it holds at most twice this).
    pub window_per_webhook: usize,
    /// Entries in all claims top up to (at most twice this are held).
    pub window: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_webhook: 64,
            rate_cooldown: Duration::from_secs(10),
            window_per_webhook: 256,
            window: 10_000,
        }
    }
}

#[derive(Default)]
struct Endpoint {
    inflight: usize,
    parked: VecDeque<Entry>,
    /// Whether its stored breaker is open or half-open, as the last recorded attempt said.
    tripped: bool,
    /// End of the breaker's open period (when tripped).
    open_until_ms: i64,
    /// The reopening time a probe is queued for (0: none).
    probe_at_ms: i64,
}

impl Endpoint {
    fn is_idle(&self) -> bool {
        self.inflight == 0 && self.parked.is_empty() && !self.tripped
    }

    /// Attempts it may start now under the per-webhook concurrency limit.
    fn free_slots(&self, limits: &Limits) -> usize {
        limits.per_webhook.max(1).saturating_sub(self.inflight)
    }

    /// Adopts the stored state of its breaker.
    fn follow(&mut self, breaker: &BreakerState) {
        self.tripped = breaker.open_until_ms.is_some();
        self.open_until_ms = breaker.open_until_ms.unwrap_or(0);
    }

    /// Queues `entry` as the probe for the current opening of the circuit.
    fn probe_with(&mut self, entry: Entry, queue: &mut BinaryHeap<Reverse<Entry>>) {
        self.probe_at_ms = self.open_until_ms;
        queue.push(Reverse(Entry {
            not_before_ms: self.open_until_ms,
            ..entry
        }));
    }
}

/// A rate-limited webhook's bucket and the delivery waiting for its next token.
struct Pace {
    bucket: Bucket,
    /// (due, delivery) of the entry queued for the next token; the webhook's other
    /// deliveries are parked meanwhile.
    waiter: Option<(i64, u64)>,
}

#[derive(Default)]
struct State {
    queue: BinaryHeap<Reverse<Entry>>,
    endpoints: HashMap<u64, Endpoint>,
    /// (due, delivery) of the attempts running: a second copy of one (the outbox loaded at
    /// start while emits schedule the same delivery) is dropped, not attempted twice.
    running: HashSet<(i64, u64)>,
    deferred: u64,
    /// The rate-limited webhooks.
    paces: HashMap<u64, Pace>,
    /// Entries held per webhook (queued, parked or running) and in all.
    held: HashMap<u64, usize>,
    total: usize,
    /// Deliveries not taken for lack of room, whose leases are to be released.
    overflow: Vec<u64>,
}

impl State {
    fn hold(&mut self, webhook_id: u64) {
        *self.held.entry(webhook_id).or_default() += 1;
        self.total += 1;
    }

    fn let_go(&mut self, webhook_id: u64) {
        if let std::collections::hash_map::Entry::Occupied(mut held) = self.held.entry(webhook_id) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
        self.total = self.total.saturating_sub(1);
    }

    fn held_by(&self, webhook_id: u64) -> usize {
        self.held.get(&webhook_id).copied().unwrap_or(0)
    }
}

/// What a claim may take: how many entries, and for which webhooks not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Entries to claim at most.
    pub limit: usize,
    /// Webhooks to claim nothing for: they hold their share, or their circuit is open.
    pub skip: Vec<u64>,
}

/// Queue depth and oldest due time of one webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Deliveries waiting (queued or parked).
    pub depth: usize,
    /// Earliest due time among them.
    pub oldest_due_ms: Option<i64>,
}

/// Rate limiting of one webhook, for metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStats {
    /// Deliveries waiting for a token (the one queued for it and those parked behind it).
    pub waiting: usize,
    /// Attempts per second allowed now (lowered after a 429).
    pub effective_per_second: f64,
}

/// The due queue with fairness bookkeeping, a wake-up for the worker and one for the
/// claimer.
pub struct Scheduler {
    state: Mutex<State>,
    limits: Limits,
    owner: Owner,
    wake: Notify,
    claimer: Notify,
    /// Whether any webhook has a rate (`State::paces` is not empty); set under the lock, read
    /// without it so that unlimited webhooks are paced for free.
    pacing: AtomicBool,
}

impl Scheduler {
    /// An empty scheduler with these limits, holding what `owner` leased.
    pub fn new(limits: Limits, owner: Owner) -> Scheduler {
        Scheduler {
            state: Mutex::default(),
            limits,
            owner,
            wake: Notify::new(),
            claimer: Notify::new(),
            pacing: AtomicBool::new(false),
        }
    }

    /// The limits it was made with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The instance whose leased entries it holds.
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Queues a delivery this instance holds already (a retry, an attempt to repeat) and
    /// wakes the worker.
    pub fn schedule(&self, entry: Entry) {
        let mut state = self.lock();
        state.hold(entry.webhook_id);
        state.queue.push(Reverse(entry));
        drop(state);
        self.wake.notify_one();
    }

    /// Queues newly leased deliveries (emits, claims) as far as the window has room, and
    /// wakes the worker; the others are handed back by `take_overflow`.
    pub fn schedule_all(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut state = self.lock();
        let per_webhook = 2 * self.limits.window_per_webhook.max(1);
        let total = 2 * self.limits.window.max(1);
        let mut overflowed = false;
        for entry in entries {
            if state.total >= total || state.held_by(entry.webhook_id) >= per_webhook {
                state.overflow.push(entry.delivery_id);
                overflowed = true;
                continue;
            }
            state.hold(entry.webhook_id);
            state.queue.push(Reverse(entry));
        }
        drop(state);
        self.wake.notify_one();
        if overflowed {
            self.claimer.notify_one();
        }
    }

    /// The deliveries `schedule_all` had no room for since the last call.
    pub fn take_overflow(&self) -> Vec<u64> {
        std::mem::take(&mut self.lock().overflow)
    }

    /// What the next claim may take at `now_ms`.
    pub fn room(&self, now_ms: i64) -> Room {
        let state = self.lock();
        let share = self.limits.window_per_webhook.max(1);
        let mut skip: Vec<u64> = state
            .held
            .iter()
            .filter(|(_, held)| **held >= share)
            .map(|(id, _)| *id)
            .collect();
        skip.extend(
            state
                .endpoints
                .iter()
                .filter(|(id, e)| {
                    e.tripped
                        && (e.open_until_ms > now_ms || e.inflight > 0)
                        && state.held_by(**id) < share
                })
                .map(|(id, _)| *id),
        );
        skip.sort_unstable();
        Room {
            limit: self.limits.window.saturating_sub(state.total),
            skip,
        }
    }

    /// The deliveries it holds (queued, parked or running): their leases are to be renewed.
    pub fn held_ids(&self) -> Vec<u64> {
        let state = self.lock();
        let parked = state.endpoints.values().flat_map(|e| e.parked.iter());
        let mut ids: Vec<u64> = state
            .queue
            .iter()
            .map(|Reverse(e)| e)
            .chain(parked)
            .map(|e| e.delivery_id)
            .chain(state.running.iter().map(|(_, id)| *id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Resolves when the claimer has something to do: overflow to release, or the window
    /// fell to half its size.
    pub async fn claimer_woken(&self) {
        self.claimer.notified().await
    }

    /// Sets a webhook's rate limit (None: unlimited). Called wherever a webhook is at hand
    /// before its deliveries are queued (emit, redelivery, start) and at each attempt, so a
    /// change, made here or by another instance, applies from then on.
    pub fn pace(&self, webhook_id: u64, limit: Option<RateLimit>, now_ms: i64) {
        // No webhook has a rate: an unlimited one has nothing to forget (it is set under the
        // lock below, before any entry of a limited webhook is queued).
        if limit.is_none() && !self.pacing.load(AtomicOrdering::Acquire) {
            return;
        }
        let mut state = self.lock();
        let state = &mut *state;
        self.paced(state, webhook_id, limit, now_ms);
        self.pacing
            .store(!state.paces.is_empty(), AtomicOrdering::Release);
    }

    fn paced(&self, state: &mut State, webhook_id: u64, limit: Option<RateLimit>, now_ms: i64) {
        match limit {
            None => {
                if state.paces.remove(&webhook_id).is_some() {
                    // Whatever was parked behind a waiter runs as the concurrency allows.
                    if let Some(endpoint) = state.endpoints.get_mut(&webhook_id) {
                        let free = endpoint.free_slots(&self.limits);
                        if release(endpoint, &mut state.queue, free, now_ms) {
                            self.wake.notify_one();
                        }
                    }
                }
            }
            Some(limit) => match state.paces.get_mut(&webhook_id) {
                Some(pace) if pace.bucket.limit() == limit => {}
                Some(pace) => pace.bucket.reconfigure(limit, now_ms),
                None => {
                    let cooldown =
                        i64::try_from(self.limits.rate_cooldown.as_millis()).unwrap_or(i64::MAX);
                    let bucket = Bucket::new(limit, cooldown, now_ms);
                    state.paces.insert(
                        webhook_id,
                        Pace {
                            bucket,
                            waiter: None,
                        },
                    );
                }
            },
        }
    }

    /// Takes the next delivery that may run at `now_ms`: entries of a webhook at its limit are
    /// parked, entries of a webhook whose circuit is open are deferred to its reopening, and
    /// entries of a webhook out of tokens wait for the next one.
    pub fn next(&self, now_ms: i64) -> Next {
        let mut state = self.lock();
        let state = &mut *state;
        loop {
            let Some(Reverse(entry)) = state.queue.peek().copied() else {
                return Next::Idle;
            };
            if entry.not_before_ms > now_ms {
                return Next::WaitUntil(entry.not_before_ms);
            }
            state.queue.pop();
            let key = (entry.due_ms, entry.delivery_id);
            let mut pace = state.paces.get_mut(&entry.webhook_id);
            // The entry waiting for a token is out of the queue: whatever becomes of it, the
            // next one is chosen below (or by `finish`).
            let was_waiting = match pace.as_mut() {
                Some(pace) if pace.waiter == Some(key) => {
                    pace.waiter = None;
                    true
                }
                _ => false,
            };
            let endpoint = state.endpoints.entry(entry.webhook_id).or_default();
            if state.running.contains(&key) {
                if was_waiting {
                    release(endpoint, &mut state.queue, 1, now_ms);
                }
                state.let_go(entry.webhook_id);
                continue;
            }
            // Open, or half-open with its probe out: the delivery waits.
            if endpoint.tripped && (endpoint.open_until_ms > now_ms || endpoint.inflight > 0) {
                state.deferred += 1;
                if endpoint.open_until_ms > now_ms && endpoint.probe_at_ms != endpoint.open_until_ms
                {
                    endpoint.probe_with(entry, &mut state.queue);
                } else {
                    endpoint.parked.push_back(entry);
                }
                continue;
            }
            if endpoint.free_slots(&self.limits) == 0 {
                endpoint.parked.push_back(entry);
                continue;
            }
            if let Some(pace) = pace {
                if pace.waiter.is_some() {
                    // Another delivery of the webhook waits for the next token first.
                    endpoint.parked.push_back(entry);
                    continue;
                }
                if let Err(ready_ms) = pace.bucket.take(now_ms) {
                    pace.waiter = Some(key);
                    state.queue.push(Reverse(Entry {
                        not_before_ms: ready_ms,
                        ..entry
                    }));
                    continue;
                }
                // Took a token: the next parked delivery is queued to wait for the following.
                if let Some(next) = endpoint.parked.pop_front() {
                    pace.waiter = Some((next.due_ms, next.delivery_id));
                    state.queue.push(Reverse(Entry {
                        not_before_ms: now_ms,
                        ..next
                    }));
                }
            }
            endpoint.inflight += 1;
            state.running.insert((entry.due_ms, entry.delivery_id));
            return Next::Due(entry);
        }
    }

    /// Adopts a webhook's breaker as the store returned it after an attempt was recorded
    /// (before that attempt's retry is scheduled, so the retry waits if it opened).
    pub fn follow(&self, webhook_id: u64, breaker: &BreakerState) {
        let mut state = self.lock();
        match state.endpoints.get_mut(&webhook_id) {
            Some(endpoint) => endpoint.follow(breaker),
            None if breaker.open_until_ms.is_some() => {
                let mut endpoint = Endpoint::default();
                endpoint.follow(breaker);
                state.endpoints.insert(webhook_id, endpoint);
            }
            None => {}
        }
    }

    /// Reports that an attempt started by `next` has its endpoint's answer (or its error),
    /// before the attempt is recorded: frees the webhook's slot at once (resuming a parked
    /// delivery), so the webhook's next request does not wait for this one's record; then
    /// the attempt ends with `finish_answered`. Not while the webhook's breaker is tripped:
    /// its slot goes with the record (`finish`), which says whether the circuit closed.
    /// Returns whether the slot was freed.
    pub fn answered(&self, entry: Entry, health: EndpointHealth, now_ms: i64) -> bool {
        let mut state = self.lock();
        let tripped = state
            .endpoints
            .get(&entry.webhook_id)
            .is_none_or(|endpoint| endpoint.tripped);
        if !tripped {
            self.free_slot(&mut state, entry.webhook_id, health, now_ms);
        }
        !tripped
    }

    /// Reports the end of an attempt started by `next`: frees the webhook's slot (resuming a
    /// parked delivery, or queuing the probe while its breaker is tripped), and the entry.
    pub fn finish(&self, entry: Entry, health: EndpointHealth, now_ms: i64) {
        let mut state = self.lock();
        self.let_go(&mut state, entry);
        self.free_slot(&mut state, entry.webhook_id, health, now_ms);
    }

    /// Reports the end of an attempt whose slot `answered` freed: frees the entry.
    pub fn finish_answered(&self, entry: Entry) {
        let mut state = self.lock();
        self.let_go(&mut state, entry);
    }

    /// Lets go of a finished attempt's entry. Wakes the claimer when the window runs down to
    /// half, and when the webhook's entries fall below its share (claims pass over it until
    /// then, so a busy webhook's backlog in the store is claimed as fast as it is attempted,
    /// not once per claimer poll).
    fn let_go(&self, state: &mut State, entry: Entry) {
        state.running.remove(&(entry.due_ms, entry.delivery_id));
        let webhook_id = entry.webhook_id;
        state.let_go(webhook_id);
        if state.total + 1 == self.limits.window.max(1).div_ceil(2)
            || state.held_by(webhook_id) + 1 == self.limits.window_per_webhook.max(1)
        {
            self.claimer.notify_one();
        }
    }

    /// Frees one of a webhook's slots after an attempt with `health`.
    fn free_slot(&self, state: &mut State, webhook_id: u64, health: EndpointHealth, now_ms: i64) {
        let mut pace = state.paces.get_mut(&webhook_id);
        let Some(endpoint) = state.endpoints.get_mut(&webhook_id) else {
            return;
        };
        endpoint.inflight = endpoint.inflight.saturating_sub(1);
        if health == EndpointHealth::Throttled
            && let Some(pace) = pace.as_mut()
        {
            pace.bucket.throttled(now_ms);
        }
        if endpoint.tripped {
            // Still failing: the parked deliveries wait; one probes at the reopening.
            if endpoint.probe_at_ms != endpoint.open_until_ms
                && let Some(parked) = endpoint.parked.pop_front()
            {
                endpoint.probe_with(parked, &mut state.queue);
                self.wake.notify_one();
            }
            return;
        }
        // A delivery waiting for a token releases the rest as tokens come; otherwise release
        // as many parked deliveries as the webhook has free slots.
        if pace.is_some_and(|p| p.waiter.is_some()) {
            return;
        }
        let free = endpoint.free_slots(&self.limits);
        if release(endpoint, &mut state.queue, free, now_ms) {
            self.wake.notify_one();
        } else if endpoint.is_idle() {
            state.endpoints.remove(&webhook_id);
        }
    }

    /// Deliveries deferred by open circuits so far.
    pub fn deferred(&self) -> u64 {
        self.lock().deferred
    }

    /// Rate limiting of each rate-limited webhook at `now_ms`.
    pub fn rates(&self, now_ms: i64) -> HashMap<u64, RateStats> {
        let state = self.lock();
        state
            .paces
            .iter()
            .map(|(webhook_id, pace)| {
                let parked = state
                    .endpoints
                    .get(webhook_id)
                    .map_or(0, |e| e.parked.len());
                let waiting = if pace.waiter.is_some() { 1 + parked } else { 0 };
                let stats = RateStats {
                    waiting,
                    effective_per_second: pace.bucket.effective_per_second(now_ms),
                };
                (*webhook_id, stats)
            })
            .collect()
    }

    /// Waiting deliveries in all, and per webhook (queued and parked).
    pub fn stats(&self) -> (QueueStats, HashMap<u64, QueueStats>) {
        let state = self.lock();
        let mut total = QueueStats::default();
        let mut per_webhook: HashMap<u64, QueueStats> = HashMap::new();
        let parked = state.endpoints.values().flat_map(|e| e.parked.iter());
        for entry in state.queue.iter().map(|Reverse(e)| e).chain(parked) {
            for stats in [&mut total, per_webhook.entry(entry.webhook_id).or_default()] {
                stats.depth += 1;
                stats.oldest_due_ms = Some(
                    stats
                        .oldest_due_ms
                        .map_or(entry.due_ms, |o| o.min(entry.due_ms)),
                );
            }
        }
        (total, per_webhook)
    }

    /// Resolves when something new may run.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Queues up to `count` of an endpoint's parked deliveries to run from `now_ms`; whether
/// any was.
fn release(
    endpoint: &mut Endpoint,
    queue: &mut BinaryHeap<Reverse<Entry>>,
    count: usize,
    now_ms: i64,
) -> bool {
    let mut released = false;
    for _ in 0..count {
        let Some(parked) = endpoint.parked.pop_front() else {
            break;
        };
        queue.push(Reverse(Entry {
            not_before_ms: parked.not_before_ms.min(now_ms),
            ..parked
        }));
        released = true;
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BreakerPolicy, BreakerStep, Verdict, WebhookStats};

    /// The breaker settings of these tests: open after 2 failures for 100 ms, doubling up to
    /// 250 ms.
    const POLICY: BreakerPolicy = BreakerPolicy {
        threshold: 2,
        cooldown_ms: 100,
        max_cooldown_ms: 250,
    };

    /// Records an attempt's outcome in `stored` (what the store does) and finishes it with
    /// the breaker state the record returns.
    fn finish(
        scheduler: &Scheduler,
        stored: &mut WebhookStats,
        entry: Entry,
        health: EndpointHealth,
        now_ms: i64,
    ) {
        let verdict = match health {
            EndpointHealth::Answered => Verdict::Answered,
            EndpointHealth::Failing | EndpointHealth::Throttled => Verdict::Failing,
            EndpointHealth::Untouched => Verdict::Unknown,
        };
        let step = BreakerStep {
            verdict,
            policy: POLICY,
        };
        stored.record(now_ms, health == EndpointHealth::Answered, step);
        scheduler.follow(entry.webhook_id, &stored.breaker);
        scheduler.finish(entry, health, now_ms);
    }

    /// Two failed attempts at 0 open webhook 7's circuit until 100 (`POLICY`).
    fn open_the_circuit(scheduler: &Scheduler, stored: &mut WebhookStats) {
        for id in 1..=2 {
            scheduler.schedule(Entry::due(0, id, 7));
            let Next::Due(entry) = scheduler.next(0) else {
                panic!("not due")
            };
            finish(scheduler, stored, entry, EndpointHealth::Failing, 0);
        }
    }

    fn scheduler(limits: Limits) -> Scheduler {
        Scheduler::new(limits, Owner::random(Duration::from_secs(30)))
    }

    fn limits(per_webhook: usize) -> Limits {
        Limits {
            per_webhook,
            rate_cooldown: Duration::from_millis(1000),
            window_per_webhook: 8,
            window: 100,
        }
    }

    #[test]
    fn the_earliest_due_delivery_comes_first_and_future_ones_wait() {
        let scheduler = scheduler(limits(10));
        scheduler.schedule(Entry::due(300, 3, 1));
        scheduler.schedule_all([Entry::due(100, 1, 1), Entry::due(200, 2, 1)]);
        assert_eq!(scheduler.next(150), Next::Due(Entry::due(100, 1, 1)));
        assert_eq!(scheduler.next(150), Next::WaitUntil(200));
        assert_eq!(scheduler.next(1000), Next::Due(Entry::due(200, 2, 1)));
        assert_eq!(scheduler.stats().0.depth, 1);
        assert_eq!(scheduler.next(1000), Next::Due(Entry::due(300, 3, 1)));
        assert_eq!(scheduler.next(1000), Next::Idle);
    }

    #[test]
    fn a_busy_webhook_is_parked_without_blocking_the_others() {
        let scheduler = scheduler(limits(1));
        scheduler.schedule_all([
            Entry::due(1, 1, 7),
            Entry::due(2, 2, 7),
            Entry::due(3, 3, 8),
        ]);
        assert_eq!(scheduler.next(10), Next::Due(Entry::due(1, 1, 7)));
        // Webhook 7 is at its limit: delivery 2 is parked and webhook 8 goes first.
        assert_eq!(scheduler.next(10), Next::Due(Entry::due(3, 3, 8)));
        assert_eq!(scheduler.next(10), Next::Idle);
        let (_, per_webhook) = scheduler.stats();
        assert_eq!(
            per_webhook[&7],
            QueueStats {
                depth: 1,
                oldest_due_ms: Some(2)
            }
        );
        scheduler.finish(Entry::due(1, 1, 7), EndpointHealth::Answered, 10);
        assert_eq!(scheduler.next(10), Next::Due(Entry::due(2, 2, 7)));
    }

    #[test]
    fn an_answered_attempt_frees_its_slot_before_its_record_and_its_entry_after() {
        let scheduler = scheduler(limits(1));
        scheduler.schedule_all([Entry::due(1, 1, 7), Entry::due(2, 2, 7)]);
        let Next::Due(first) = scheduler.next(10) else {
            panic!("not due")
        };
        assert_eq!(scheduler.next(10), Next::Idle);
        // The endpoint answered: the next delivery goes while the first is being recorded.
        assert!(scheduler.answered(first, EndpointHealth::Answered, 10));
        assert_eq!(scheduler.next(10), Next::Due(Entry::due(2, 2, 7)));
        // Until its record ends the first is still held: a second copy of it is dropped.
        scheduler.schedule(first);
        assert_eq!(scheduler.next(10), Next::Idle);
        assert_eq!(scheduler.stats().0.depth, 0);
        scheduler.finish_answered(first);
        scheduler.finish(Entry::due(2, 2, 7), EndpointHealth::Answered, 10);
        scheduler.schedule(Entry::due(20, 1, 7));
        assert_eq!(scheduler.next(20), Next::Due(Entry::due(20, 1, 7)));
    }

    #[test]
    fn a_tripped_webhooks_slot_waits_for_the_record() {
        let mut stored = WebhookStats::default();
        let scheduler = scheduler(limits(4));
        open_the_circuit(&scheduler, &mut stored);
        // Open until 100; at the reopening the probe goes, and its answer alone frees nothing:
        // whether the circuit closed is for its record to say.
        scheduler.schedule_all((10..13).map(|id| Entry::due(10, id, 7)));
        let Next::Due(probe) = scheduler.next(100) else {
            panic!("no probe")
        };
        assert!(!scheduler.answered(probe, EndpointHealth::Answered, 100));
        assert_eq!(scheduler.next(100), Next::Idle);
        finish(
            &scheduler,
            &mut stored,
            probe,
            EndpointHealth::Answered,
            100,
        );
        assert!(matches!(scheduler.next(100), Next::Due(_)));
    }

    #[test]
    fn a_second_copy_of_a_running_delivery_is_dropped() {
        let scheduler = scheduler(limits(10));
        scheduler.schedule_all([Entry::due(1, 1, 7), Entry::due(1, 1, 7)]);
        let Next::Due(running) = scheduler.next(10) else {
            panic!("not due")
        };
        assert_eq!(scheduler.next(10), Next::Idle);
        scheduler.finish(running, EndpointHealth::Answered, 10);
        // A retry of the same delivery (another due time) runs.
        scheduler.schedule(Entry::due(20, 1, 7));
        assert_eq!(scheduler.next(20), Next::Due(Entry::due(20, 1, 7)));
    }

    #[test]
    fn a_failing_endpoint_is_backed_off_and_recovers_after_an_answer() {
        let mut stored = WebhookStats::default();
        let scheduler = scheduler(limits(10));
        open_the_circuit(&scheduler, &mut stored);
        // Open for 100 ms: a due delivery is deferred, not attempted.
        scheduler.schedule(Entry::due(0, 3, 7));
        assert_eq!(scheduler.next(50), Next::WaitUntil(100));
        assert_eq!(scheduler.deferred(), 1);
        let Next::Due(probe) = scheduler.next(100) else {
            panic!("no probe")
        };
        assert_eq!((probe.delivery_id, probe.due_ms), (3, 0));
        // Another failure doubles the open period (capped at 250 ms).
        finish(&scheduler, &mut stored, probe, EndpointHealth::Failing, 100);
        scheduler.schedule(Entry::due(100, 4, 7));
        assert_eq!(scheduler.next(100), Next::WaitUntil(300));
        let Next::Due(probe) = scheduler.next(300) else {
            panic!("no probe")
        };
        finish(
            &scheduler,
            &mut stored,
            probe,
            EndpointHealth::Answered,
            300,
        );
        scheduler.schedule(Entry::due(300, 5, 7));
        assert_eq!(scheduler.next(300), Next::Due(Entry::due(300, 5, 7)));
    }

    #[test]
    fn a_breaker_another_instance_opened_parks_the_backlog_here_after_one_attempt() {
        let scheduler = scheduler(limits(4));
        // The other instance's failures have opened the stored breaker until 500.
        let mut stored = WebhookStats::default();
        for _ in 0..2 {
            let step = BreakerStep {
                verdict: Verdict::Failing,
                policy: POLICY,
            };
            stored.record(400, false, step);
        }
        scheduler.schedule_all((1..=5).map(|id| Entry::due(0, id, 7)));
        let Next::Due(first) = scheduler.next(410) else {
            panic!("not due")
        };
        // Its record returns the stored state: the rest wait for the reopening, one probes.
        finish(&scheduler, &mut stored, first, EndpointHealth::Failing, 410);
        assert_eq!(scheduler.next(410), Next::WaitUntil(500));
        assert_eq!(scheduler.room(410).skip, [7]);
        let Next::Due(probe) = scheduler.next(500) else {
            panic!("no probe")
        };
        assert_eq!(scheduler.next(500), Next::Idle);
        finish(
            &scheduler,
            &mut stored,
            probe,
            EndpointHealth::Answered,
            500,
        );
        assert!(matches!(scheduler.next(500), Next::Due(_)));
    }

    #[test]
    fn an_open_circuit_parks_its_backlog_and_sends_one_probe_at_the_reopening() {
        let mut stored = WebhookStats::default();
        let scheduler = scheduler(limits(4));
        open_the_circuit(&scheduler, &mut stored);
        // Open until 100: a backlog arrives and waits; other webhooks are not held up.
        scheduler.schedule_all((10..20).map(|id| Entry::due(10, id, 7)));
        scheduler.schedule(Entry::due(10, 99, 8));
        assert_eq!(scheduler.next(10), Next::Due(Entry::due(10, 99, 8)));
        assert_eq!(scheduler.next(10), Next::WaitUntil(100));
        assert_eq!(scheduler.stats().1[&7].depth, 10);
        // At the reopening exactly one probe goes out; the rest stay parked meanwhile.
        let Next::Due(probe) = scheduler.next(100) else {
            panic!("no probe")
        };
        assert_eq!(scheduler.next(100), Next::Idle);
        // A failed probe re-opens the circuit (200 ms) and queues the next probe, only one.
        finish(&scheduler, &mut stored, probe, EndpointHealth::Failing, 100);
        assert_eq!(scheduler.next(150), Next::WaitUntil(300));
        let Next::Due(probe) = scheduler.next(300) else {
            panic!("no probe")
        };
        assert_eq!(scheduler.next(300), Next::Idle);
        // An answer closes the circuit and releases the backlog up to the per-webhook limit.
        finish(
            &scheduler,
            &mut stored,
            probe,
            EndpointHealth::Answered,
            300,
        );
        let mut released = 0;
        while let Next::Due(_) = scheduler.next(300) {
            released += 1;
        }
        assert_eq!(released, 4);
        assert_eq!(scheduler.stats().1[&7].depth, 4);
    }

    #[test]
    fn deliveries_beyond_the_rate_wait_in_order_without_holding_up_other_webhooks() {
        let scheduler = scheduler(limits(10));
        // Webhook 7: 10/s with a burst of 2, so a token every 100 ms.
        scheduler.pace(7, RateLimit::new(10, 2), 0);
        scheduler.schedule_all((1..=5).map(|id| Entry::due(0, id, 7)));
        scheduler.schedule(Entry::due(0, 99, 8));
        let ids = |scheduler: &Scheduler, now| {
            std::iter::from_fn(|| match scheduler.next(now) {
                Next::Due(entry) => Some(entry.delivery_id),
                _ => None,
            })
            .collect::<Vec<_>>()
        };
        assert_eq!(ids(&scheduler, 0), [1, 2, 99]);
        assert_eq!(scheduler.next(0), Next::WaitUntil(100));
        assert_eq!(scheduler.rates(0)[&7].waiting, 3);
        // Finished attempts release nothing early: the tokens do, one each.
        scheduler.finish(Entry::due(0, 1, 7), EndpointHealth::Answered, 50);
        assert_eq!(scheduler.next(50), Next::WaitUntil(100));
        assert_eq!(ids(&scheduler, 100), [3]);
        assert_eq!(scheduler.next(100), Next::WaitUntil(200));
        assert_eq!(ids(&scheduler, 250), [4]);
        assert_eq!(ids(&scheduler, 300), [5]);
        assert_eq!(scheduler.next(300), Next::Idle);
        assert_eq!(scheduler.rates(300)[&7].waiting, 0);
    }

    #[test]
    fn a_429_lowers_the_rate_and_removing_the_limit_releases_the_waiting() {
        let scheduler = scheduler(limits(10));
        scheduler.pace(7, RateLimit::new(10, 1), 0);
        scheduler.schedule_all((1..=3).map(|id| Entry::due(0, id, 7)));
        let Next::Due(first) = scheduler.next(0) else {
            panic!("not due")
        };
        scheduler.finish(first, EndpointHealth::Throttled, 10);
        assert_eq!(scheduler.rates(10)[&7].effective_per_second, 5.0);
        // Half the rate: the next token is 200 ms after the 429.
        assert_eq!(scheduler.next(10), Next::WaitUntil(210));
        scheduler.pace(7, None, 20);
        assert!(scheduler.rates(20).is_empty());
        let mut released = 0;
        while let Next::Due(_) = scheduler.next(210) {
            released += 1;
        }
        assert_eq!(released, 2);
    }

    #[tokio::test]
    async fn a_webhook_below_its_share_again_wakes_the_claimer() {
        let scheduler = scheduler(Limits {
            window_per_webhook: 2,
            window: 100,
            ..limits(4)
        });
        let woken = || async {
            tokio::time::timeout(Duration::from_millis(20), scheduler.claimer_woken())
                .await
                .is_ok()
        };
        // Webhook 7 holds twice its share: claims pass over it.
        scheduler.schedule_all((1..=4).map(|id| Entry::due(0, id, 7)));
        woken().await;
        assert_eq!(scheduler.room(0).skip, vec![7]);
        // Its attempts end; at its share it is still passed over, below it the claimer is
        // woken to top it up (its backlog waits in the store).
        for held in [3, 2, 1] {
            let Next::Due(entry) = scheduler.next(0) else {
                panic!("not due")
            };
            scheduler.finish(entry, EndpointHealth::Answered, 0);
            assert_eq!(woken().await, held == 1, "woken at {held} held");
        }
        assert!(scheduler.room(0).skip.is_empty());
    }

    #[test]
    fn the_window_holds_a_bounded_share_per_webhook_and_hands_the_rest_back() {
        let scheduler = scheduler(Limits {
            window_per_webhook: 2,
            window: 5,
            ..limits(1)
        });
        // A webhook holds at most 4 (twice its share); all of them at most 10.
        scheduler.schedule_all((1..=6).map(|id| Entry::due(0, id, 7)));
        assert_eq!(scheduler.take_overflow(), [5, 6]);
        assert_eq!(scheduler.held_ids(), [1, 2, 3, 4]);
        // Holding its share, webhook 7 is skipped by claims; 1 more fits in all.
        assert_eq!(
            scheduler.room(0),
            Room {
                limit: 1,
                skip: vec![7]
            }
        );
        scheduler.schedule_all((10..=20).map(|id| Entry::due(0, id, 100 + id)));
        assert_eq!(scheduler.take_overflow(), [16, 17, 18, 19, 20]);
        assert_eq!(scheduler.room(0).limit, 0);
        // An attempt that ends lets its entry go; its retry is held again.
        let Next::Due(running) = scheduler.next(0) else {
            panic!("not due")
        };
        scheduler.finish(running, EndpointHealth::Answered, 0);
        assert_eq!(scheduler.held_ids().len(), 9);
        scheduler.schedule(Entry::due(50, running.delivery_id, running.webhook_id));
        assert_eq!(scheduler.held_ids().len(), 10);
    }
}
