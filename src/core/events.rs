//! Event emission and redelivery. Emit selects the account's matching webhooks, plans each
//! delivery, subscribes to status updates, writes event + deliveries + outbox entries, waits
//! for the group-committed flush, schedules the deliveries, and only then returns the status
//! stream (whose first messages are the QUEUED/SKIPPED states). `emit_accepted` does the same
//! without subscribing and returns the initial states only (REST's single emit answers with
//! them at once). A batch emit does that for many events with one flush.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::emit_budget::{self, EmitShare};
use super::{Caller, Page, Service};
use crate::delivery::hub::Subscription;
use crate::delivery::rate::RateLimit;
use crate::delivery::scheduler::Entry;
use crate::error::{Error, FieldViolation, Result};
use crate::ids::{self, Kind};
use crate::model::{
    Delivery, DeliveryState, DeliveryUpdate, Event, Ordering, RenderedRequest, Scope, Webhook,
    now_ms,
};
use crate::render::{Plan, Planned, matcher};
use crate::store::{IdempotencyKey, InsertOutcome, NewEvent};
use crate::telemetry::EmitTrace;

/// How long an idempotency key returns its first event.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Longest event type and idempotency key.
const MAX_KEY_CHARS: usize = 256;

/// An event to emit.
#[derive(Debug, Clone)]
pub struct EmitRequest {
    /// Trigger type.
    pub event_type: String,
    /// OnCall event_data (an object).
    pub data: Value,
    /// Caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The caller's W3C `traceparent` (gRPC metadata or REST header), continued by the
    /// emit and its deliveries.
    pub traceparent: Option<String>,
    /// Deliveries of one webhook with this key and target URL are attempted one at a time, in
    /// emit order (each waits until the previous one is final).
    pub ordering_key: Option<String>,
}

/// Most events an `emit_batch` call takes.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// The outcome of one event of a batch.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// The event's id (the first event's for an idempotent repeat).
    pub event_id: u64,
    /// The idempotency key named an earlier event; nothing new was queued.
    pub duplicate: bool,
    /// Initial state of each delivery (current states for a repeat).
    pub deliveries: Vec<DeliveryUpdate>,
}

/// The answer of a batch emit: each event's initial states, and the batch's share of the
/// emit budget, to be held until the answer is sent (it is counted in the share).
pub struct BatchEmitted {
    /// One per event, in request order.
    pub results: Vec<Emitted>,
    /// Dropped once the answer is sent.
    pub held: EmitShare,
}

/// An event matched and planned, ready to be written.
pub(super) struct Prepared {
    pub(super) event: Event,
    pub(super) deliveries: Vec<Delivery>,
    idempotency_key: Option<String>,
    /// The emit's span (matching, rendering and, for a single emit, the durable write); it
    /// ends when the emit call is done with the event.
    span: tracing::Span,
}

/// The delivery statuses of one event: the initial states, then every change until each
/// delivery is final, each final state once. Updates come from this instance's worker and
/// from other instances (read back from the store, possibly more than once, possibly after
/// a newer one): a state not newer than the last one sent for its delivery is skipped.
/// Dropping it does not affect delivery.
pub struct StatusStream {
    event_id: u64,
    pending: VecDeque<DeliveryUpdate>,
    open: HashSet<u64>,
    /// The last (attempt, state) sent for each open delivery.
    sent: HashMap<u64, (u32, DeliveryState)>,
    subscription: Subscription,
    delivery_ids: Vec<u64>,
}

impl StatusStream {
    fn new(
        event_id: u64,
        initial: Vec<DeliveryUpdate>,
        subscription: Subscription,
    ) -> StatusStream {
        let delivery_ids = initial.iter().map(|u| u.delivery_id).collect();
        StatusStream {
            event_id,
            open: initial.iter().map(|u| u.delivery_id).collect(),
            sent: HashMap::new(),
            pending: initial.into(),
            subscription,
            delivery_ids,
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> u64 {
        self.event_id
    }

    /// Ids of the event's deliveries.
    pub fn delivery_ids(&self) -> &[u64] {
        &self.delivery_ids
    }

    /// The next status; None once every delivery is final.
    pub async fn next(&mut self) -> Option<DeliveryUpdate> {
        loop {
            let update = match self.pending.pop_front() {
                Some(update) => update,
                None if self.open.is_empty() => return None,
                None => self.subscription.recv().await?,
            };
            if !self.open.contains(&update.delivery_id) {
                continue; // a late duplicate of a delivery already final
            }
            let this = (update.attempt, update.state);
            if let Some(&(attempt, state)) = self.sent.get(&update.delivery_id)
                && (this.0 < attempt || this == (attempt, state))
            {
                continue; // seen already, or older than what was sent
            }
            if update.state.is_final() {
                self.open.remove(&update.delivery_id);
                self.sent.remove(&update.delivery_id);
            } else {
                self.sent.insert(update.delivery_id, this);
            }
            return Some(update);
        }
    }
}

/// The initial stream message of a delivery: QUEUED (attempt 0) or its final state.
fn initial_update(delivery: &Delivery) -> DeliveryUpdate {
    let mut update = DeliveryUpdate::of(delivery);
    if delivery.state == DeliveryState::Queued {
        update.attempt = 0;
    }
    update
}

impl Service {
    fn validate_emit(&self, request: &EmitRequest) -> Result<()> {
        let mut violations = Vec::new();
        if request.event_type.trim().is_empty() {
            violations.push(FieldViolation::new("event_type", "This field is required."));
        } else if request.event_type.chars().count() > MAX_KEY_CHARS {
            violations.push(FieldViolation::new(
                "event_type",
                format!("at most {MAX_KEY_CHARS} characters"),
            ));
        }
        if !request.data.is_object() {
            violations.push(FieldViolation::new(
                "data",
                "must be a JSON object (OnCall's event_data)",
            ));
        }
        for (field, key) in [
            ("idempotency_key", &request.idempotency_key),
            ("ordering_key", &request.ordering_key),
        ] {
            if key
                .as_ref()
                .is_some_and(|k| k.chars().count() > MAX_KEY_CHARS)
            {
                violations.push(FieldViolation::new(
                    field,
                    format!("at most {MAX_KEY_CHARS} characters"),
                ));
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        Ok(())
    }

    /// Emits an event; returns once it is durable, with its status stream.
    pub async fn emit(&self, caller: &Caller, request: EmitRequest) -> Result<StatusStream> {
        let (emitted, subscription) = self
            .emit_one(caller, request, |event_id| self.hub.subscribe(event_id))
            .await?;
        Ok(StatusStream::new(
            emitted.event_id,
            emitted.deliveries,
            subscription,
        ))
    }

    /// Emits an event; returns once it is durable, with its deliveries' initial states only
    /// (for a caller that answers at once and follows nothing: no status subscription).
    pub async fn emit_accepted(&self, caller: &Caller, request: EmitRequest) -> Result<Emitted> {
        let (emitted, ()) = self.emit_one(caller, request, |_| ()).await?;
        Ok(emitted)
    }

    /// Emits one event: `follow` is called with the id of the event whose states the answer
    /// holds before they are known (before the write; for an idempotent repeat, before the
    /// first event's states are read), so a subscription it makes misses no change.
    async fn emit_one<S>(
        &self,
        caller: &Caller,
        request: EmitRequest,
        follow: impl Fn(u64) -> S,
    ) -> Result<(Emitted, S)> {
        caller.require(Scope::Write)?;
        self.validate_emit(&request)?;
        let violations = self
            .schema_violations(&caller.account_id, &request.event_type, &request.data)
            .await?;
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let webhooks = self.account_webhooks(caller).await?;
        let _budget = (self.emit_budget)
            .reserve(emit_bytes(std::iter::once(&request), &webhooks))
            .await;
        // The account's webhooks are this emit's own: the matched ones are moved, not cloned.
        let prepared = self
            .prepare(caller, request, webhooks.into_iter().map(Cow::Owned))
            .await?;
        let following = follow(prepared.event.id);
        let outcomes = self
            .write(caller, std::slice::from_ref(&prepared))
            .instrument(prepared.span.clone())
            .await?;
        match outcomes[0] {
            InsertOutcome::Inserted => {
                self.accepted(std::iter::once(&prepared));
                let emitted = Emitted {
                    event_id: prepared.event.id,
                    duplicate: false,
                    deliveries: prepared.deliveries.iter().map(initial_update).collect(),
                };
                Ok((emitted, following))
            }
            InsertOutcome::Duplicate(first) => {
                drop(following);
                let following = follow(first);
                let emitted = Emitted {
                    event_id: first,
                    duplicate: true,
                    deliveries: self.current_updates(first).await?,
                };
                Ok((emitted, following))
            }
        }
    }

    /// Emits a batch of events with one flush; returns once all are durable, with each
    /// event's initial delivery states. Invalid events (also data that its type's schema
    /// refuses) fail the batch before anything is written.
    pub async fn emit_batch(
        &self,
        caller: &Caller,
        requests: Vec<EmitRequest>,
    ) -> Result<BatchEmitted> {
        caller.require(Scope::Write)?;
        if requests.is_empty() || requests.len() > MAX_BATCH_EVENTS {
            return Err(Error::invalid(
                "events",
                format!("between 1 and {MAX_BATCH_EVENTS} events"),
            ));
        }
        let mut violations = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let found = match self.validate_emit(request) {
                Err(Error::InvalidArgument(found)) => found,
                _ => {
                    self.schema_violations(&caller.account_id, &request.event_type, &request.data)
                        .await?
                }
            };
            violations.extend(found.into_iter().map(|v| v.within(&format!("events[{i}]"))));
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let webhooks = self.account_webhooks(caller).await?;
        let held = (self.emit_budget)
            .reserve_share(emit_bytes(requests.iter(), &webhooks))
            .await;
        let prepared =
            futures::future::try_join_all(requests.into_iter().enumerate().map(|(i, request)| {
                let webhooks = &webhooks;
                async move {
                    self.prepare(caller, request, webhooks.iter().map(Cow::Borrowed))
                        .await
                        .map_err(|e| match e {
                            Error::ResourceExhausted(why) => {
                                Error::ResourceExhausted(format!("events[{i}]: {why}"))
                            }
                            other => other,
                        })
                }
            }))
            .await?;
        let outcomes = self.write(caller, &prepared).await?;
        self.accepted(
            prepared
                .iter()
                .zip(&outcomes)
                .filter(|(_, outcome)| **outcome == InsertOutcome::Inserted)
                .map(|(p, _)| p),
        );
        // Each event's plan (its rendered requests) is freed as its answer is made.
        let mut emitted = Vec::with_capacity(prepared.len());
        for (p, outcome) in prepared.into_iter().zip(outcomes) {
            emitted.push(match outcome {
                InsertOutcome::Inserted => Emitted {
                    event_id: p.event.id,
                    duplicate: false,
                    deliveries: p.deliveries.iter().map(initial_update).collect(),
                },
                InsertOutcome::Duplicate(first) => Emitted {
                    event_id: first,
                    duplicate: true,
                    deliveries: self.current_updates(first).await?,
                },
            });
        }
        Ok(BatchEmitted {
            results: emitted,
            held,
        })
    }

    /// Every webhook of the caller's account (the candidates an event is matched against).
    async fn account_webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>> {
        self.store
            .list_webhooks(&caller.account_id, Page::ALL.stored())
            .await
    }

    /// Stamps a validated event, checks its size, matches it against `webhooks` (each taken
    /// as it is given: borrowed ones are cloned only when they match) and plans its
    /// deliveries (the templates render on the render pool).
    pub(super) async fn prepare<'w>(
        &self,
        caller: &Caller,
        request: EmitRequest,
        webhooks: impl Iterator<Item = Cow<'w, Webhook>>,
    ) -> Result<Prepared> {
        let trace = EmitTrace::start(&request.event_type, request.traceparent.as_deref());
        let now = now_ms();
        let mut data = request.data;
        stamp_event(&mut data, &request.event_type, now);
        // Serialized once: for the size limit here and as the forward_all body below (straight
        // into a buffer: `Value`'s `Display` writes each token through a formatter).
        let json = serde_json::to_string(&data).expect("a JSON value serializes");
        if json.len() > self.config.max_event_bytes {
            return Err(Error::ResourceExhausted(format!(
                "event data is {} bytes; the limit is {} bytes",
                json.len(),
                self.config.max_event_bytes
            )));
        }
        let matched = webhooks
            .filter(|w| matches(w, &request.event_type, &data))
            .map(Cow::into_owned)
            .collect::<Vec<_>>();
        // The scheduler knows each webhook's rate limit before its deliveries are queued.
        for webhook in &matched {
            self.scheduler.pace(webhook.id, RateLimit::of(webhook), now);
        }
        let event_id = self.store.next_id().await?;
        // The span fields are formatted only when spans are on (an exporter or RUST_LOG).
        if !trace.span.is_disabled() {
            trace
                .span
                .record("event_id", ids::format(Kind::Event, event_id).as_str());
        }
        let render = tracing::debug_span!(
            parent: &trace.span,
            "render",
            event_id = ids::format(Kind::Event, event_id).as_str(),
            webhook_ids = comma_ids(Kind::Webhook, matched.iter().map(|w| w.id)).as_str(),
        );
        let Planned {
            data,
            webhooks: matched,
            plans,
        } = self
            .templates
            .plan(
                &caller.account_id,
                request.event_type.clone(),
                data,
                json,
                matched,
            )
            .instrument(render)
            .await
            .ok_or_else(|| Error::Internal("rendering the event's templates failed".into()))?;
        let mut deliveries = Vec::new();
        for (webhook, plan) in matched.iter().zip(plans) {
            let new_delivery = |id: u64, url: String| Delivery {
                ordering: request
                    .ordering_key
                    .as_deref()
                    .map(|key| Ordering::new(key, &url)),
                ..Delivery::queued(
                    id,
                    event_id,
                    webhook.id,
                    url,
                    caller.account_id.clone(),
                    now,
                )
            };
            match plan {
                Plan::Skip(reason) => {
                    let id = self.store.next_id().await?;
                    let mut delivery = new_delivery(id, webhook.url.clone());
                    delivery.state = DeliveryState::Skipped;
                    delivery.last_error = reason;
                    deliveries.push(delivery);
                }
                Plan::Deliver {
                    request_trigger,
                    targets,
                } => {
                    // Identical targets of one webhook (its `url` repeated in `urls`, or two
                    // templates rendering alike) are one delivery: same request, same receiver.
                    let mut seen = HashSet::new();
                    for target in targets.into_iter().filter(|t| seen.insert(t.url.clone())) {
                        let id = self.store.next_id().await?;
                        let mut delivery = new_delivery(id, target.url);
                        delivery.request_trigger = request_trigger.clone();
                        match target.request {
                            Ok(r) => {
                                delivery.request = Some(RenderedRequest {
                                    traceparent: Some(trace.traceparent.clone()),
                                    ..r
                                })
                            }
                            Err(e) => delivery.render_error = Some(e),
                        }
                        deliveries.push(delivery);
                    }
                }
            }
        }
        let event = Event {
            id: event_id,
            account_id: caller.account_id.clone(),
            event_type: request.event_type,
            data,
            created_at_ms: now,
            delivery_ids: deliveries.iter().map(|d| d.id).collect(),
            operational: false,
        };
        if !trace.span.is_disabled() {
            let delivery_ids = comma_ids(Kind::Delivery, event.delivery_ids.iter().copied());
            trace.span.record("delivery_ids", delivery_ids.as_str());
        }
        Ok(Prepared {
            event,
            deliveries,
            idempotency_key: request.idempotency_key.filter(|k| !k.is_empty()),
            span: trace.span,
        })
    }

    /// Writes prepared events durably, each unless its idempotency key is taken.
    pub(super) async fn write(
        &self,
        caller: &Caller,
        prepared: &[Prepared],
    ) -> Result<Vec<InsertOutcome>> {
        let events: Vec<NewEvent<'_>> = prepared
            .iter()
            .map(|p| NewEvent {
                event: &p.event,
                deliveries: &p.deliveries,
                idempotency: p.idempotency_key.as_deref().map(|key| IdempotencyKey {
                    account_id: &caller.account_id,
                    key,
                    ttl_ms: IDEMPOTENCY_TTL_MS,
                }),
            })
            .collect();
        self.store.insert_events(&events).await
    }

    /// Counts durable new events and hands their deliveries to the scheduler.
    pub(super) fn accepted<'p>(&self, events: impl Iterator<Item = &'p Prepared> + Clone) {
        self.metrics
            .events_accepted
            .inc_by(events.clone().count() as u64);
        let deliveries = events.flat_map(|p| &p.deliveries);
        let skipped = deliveries
            .clone()
            .filter(|d| d.state == DeliveryState::Skipped)
            .count();
        self.metrics.deliveries_skipped.inc_by(skipped as u64);
        self.scheduler.schedule_all(
            deliveries
                .filter(|d| !d.state.is_final())
                .map(|d| Entry::due(d.next_attempt_ms, d.id, d.webhook_id)),
        );
        // Their QUEUED and SKIPPED entries are in the change log now.
        self.hub.wake();
    }

    /// The current state of each delivery of an event, as initial stream messages.
    async fn current_updates(&self, event_id: u64) -> Result<Vec<DeliveryUpdate>> {
        let event = self
            .store
            .get_event(event_id)
            .await?
            .ok_or_else(|| Error::Internal("idempotency key names a missing event".into()))?;
        let mut updates = Vec::new();
        for id in &event.delivery_ids {
            if let Some(delivery) = self.store.get_delivery(*id).await? {
                updates.push(initial_update(&delivery));
            }
        }
        Ok(updates)
    }

    /// Queues a fresh attempt of a delivery; returns the new delivery's id.
    pub async fn redeliver(&self, caller: &Caller, delivery_id: &str) -> Result<u64> {
        caller.require(Scope::Write)?;
        let not_found = || Error::NotFound {
            kind: "delivery",
            id: delivery_id.to_string(),
        };
        let n = ids::parse(Kind::Delivery, delivery_id).ok_or_else(not_found)?;
        let original = self.store.get_delivery(n).await?.ok_or_else(not_found)?;
        let webhook = self
            .store
            .get_webhook(original.webhook_id)
            .await?
            .filter(|w| w.account_id == caller.account_id)
            .ok_or_else(not_found)?;
        self.scheduler
            .pace(webhook.id, RateLimit::of(&webhook), now_ms());
        let copy = self.fresh_copy(&original).await?;
        self.store
            .insert_deliveries(std::slice::from_ref(&copy))
            .await?;
        self.hub.wake();
        self.scheduler
            .schedule(Entry::due(copy.next_attempt_ms, copy.id, copy.webhook_id));
        Ok(copy.id)
    }

    /// Queues a fresh attempt of every failed delivery of a webhook whose last attempt was
    /// at or after `since_ms`; returns the new deliveries' ids.
    pub async fn redeliver_failed(
        &self,
        caller: &Caller,
        webhook_id: &str,
        since_ms: i64,
    ) -> Result<Vec<u64>> {
        caller.require(Scope::Write)?;
        let webhook = self.owned_webhook(caller, webhook_id).await?;
        let mut seen = HashSet::new();
        let mut queued = Vec::new();
        let log = self
            .store
            .list_responses(webhook.id, Page::ALL.stored())
            .await?;
        for (_, record) in log {
            if record.timestamp_ms < since_ms {
                break;
            }
            if !seen.insert(record.delivery_id) {
                continue;
            }
            if let Some(delivery) = self.store.get_delivery(record.delivery_id).await?
                && delivery.state == DeliveryState::Failed
            {
                queued.push(self.fresh_copy(&delivery).await?);
            }
        }
        self.store.insert_deliveries(&queued).await?;
        self.hub.wake();
        self.scheduler
            .pace(webhook.id, RateLimit::of(&webhook), now_ms());
        self.scheduler.schedule_all(
            queued
                .iter()
                .map(|d| Entry::due(d.next_attempt_ms, d.id, d.webhook_id)),
        );
        Ok(queued.into_iter().map(|d| d.id).collect())
    }

    /// After an ordered delivery ended outside the worker (a cancel): queues the next of its
    /// ordering key, which the store released with it, leased to this instance.
    pub(crate) async fn schedule_next_in_order(&self, ended: &Delivery) -> Result<()> {
        let Some(ordering) = &ended.ordering else {
            return Ok(());
        };
        let head = self
            .store
            .ordering_head(ended.webhook_id, &ordering.queue)
            .await?;
        // Still its own head: its cancel waits for the attempt that may be in flight, and
        // whoever lets go of it releases the next.
        let released = head.filter(|h| h.entry.delivery_id != ended.id);
        if let Some(next) = released.filter(|h| h.is_held_by(self.scheduler.owner().id)) {
            let entry = next.entry;
            self.scheduler.schedule(Entry::due(
                entry.due_ms,
                entry.delivery_id,
                entry.webhook_id,
            ));
        }
        Ok(())
    }

    /// A new QUEUED delivery with the same request as `original`, to be written.
    async fn fresh_copy(&self, original: &Delivery) -> Result<Delivery> {
        if original.state == DeliveryState::Skipped {
            return Err(Error::invalid(
                "delivery_id",
                "the delivery was skipped by the webhook's filters; there is nothing to send",
            ));
        }
        let now = now_ms();
        Ok(Delivery {
            id: self.store.next_id().await?,
            state: DeliveryState::Queued,
            attempts: 0,
            next_attempt_ms: now,
            created_at_ms: now,
            updated_at_ms: now,
            last_status_code: None,
            last_error: String::new(),
            ..original.clone()
        })
    }
}

/// API ids, comma-separated, for a span field.
fn comma_ids(kind: Kind, ids: impl Iterator<Item = u64>) -> String {
    ids.map(|id| ids::format(kind, id))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sets `event.type` (and `event.time` when absent), as OnCall's event_data carries them.
/// Whether `webhook` delivers an event of `event_type` with `data`.
fn matches(webhook: &Webhook, event_type: &str, data: &Value) -> bool {
    webhook.is_webhook_enabled
        && matcher::trigger_matches(webhook, event_type)
        && matcher::integration_matches(webhook, data)
        && matcher::schedule_matches(webhook, event_type, data)
}

/// The share of the emit budget `requests` hold while they are planned and written (see
/// `emit_budget`).
fn emit_bytes<'r>(requests: impl Iterator<Item = &'r EmitRequest>, webhooks: &[Webhook]) -> usize {
    requests
        .map(|r| {
            let matched = webhooks
                .iter()
                .filter(|w| matches(w, &r.event_type, &r.data))
                .count();
            emit_budget::event_bytes(&r.data, matched)
        })
        .fold(0, usize::saturating_add)
}

fn stamp_event(data: &mut Value, event_type: &str, now_ms: i64) {
    let Value::Object(map) = data else { return };
    let event = map
        .entry("event")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(event) = event {
        event
            .entry("type")
            .or_insert_with(|| Value::String(event_type.to_string()));
        event.entry("time").or_insert_with(|| {
            let time =
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms.max(0) as u64);
            Value::String(humantime::format_rfc3339_micros(time).to_string())
        });
    }
}
