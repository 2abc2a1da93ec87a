//! The delivery worker: takes deliveries the scheduler lets run, sends each attempt with the
//! pooled client (bounded concurrency overall; the scheduler bounds each webhook), classifies
//! the outcome, records it (log entry, state, outbox move, stats) in one store write,
//! schedules the retry, has the core disable webhooks that answer 410 Gone or have failed
//! continuously for the configured period, tells the core when the attempt opened or closed
//! the webhook's circuit breaker (kept in the store with the stats, so the transition is
//! seen by exactly one attempt of any instance), and publishes the update. A failing egress
//! proxy is logged as such and blamed on neither the breaker nor the run of failures.
//!
//! Every attempt holds its webhook's slot and a worker permit through a drop guard
//! (`Running`): however it ends (recorded, an error, a panic unwinding its task) both are
//! freed, and an attempt that was not recorded is queued again after a pause, never parked
//! until the next start. The slot bounds the requests in flight to the endpoint: it is freed
//! once the endpoint has answered (unless the webhook's breaker is tripped), while the
//! permit is held until the attempt is recorded, so the time records take in the store
//! does not slow a webhook's deliveries down. While the store is lost (`StoreHealth`) the
//! worker takes no delivery, and attempts that met the lost store are retried without a log
//! line each. The worker writes no webhooks: it reports outcomes to the core
//! (`WebhookOutcomes`), which serializes them with the users' changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::claimer::HORIZON;
use super::client::{AttemptError, AttemptResponse, HttpClient};
use super::hub::Hub;
use super::rate::RateLimit;
use super::request::prepare;
use super::retry::{self, Outcome};
use super::scheduler::{EndpointHealth, Entry, Next, Scheduler};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, status_class};
use crate::model::{
    BreakerPolicy, BreakerStep, BreakerTransition, Delivery, DeliveryState, DeliveryUpdate,
    ResponseRecord, Verdict, Webhook, WebhookStats, now_ms,
};
use crate::store::health::StoreHealth;
use crate::store::{AttemptRecord, OutboxEntry, Store};
use crate::telemetry::{self, TRACEPARENT};
use crate::userinfo;

/// The response log of a webhook is trimmed back to its limit every this many entries.
const TRIM_EVERY: u64 = 64;

/// Pause before an attempt that was not recorded (an error, a panic) runs again, when the
/// retry schedule is empty; otherwise its first delay.
const UNRECORDED_RETRY_AFTER: Duration = Duration::from_secs(5);

type AttemptResult = std::result::Result<AttemptResponse, AttemptError>;

/// What the worker reports to the core, which owns every webhook write: the worker never
/// writes a webhook itself, so its changes are serialized with the users' (see `core`).
pub trait WebhookOutcomes: Send + Sync + 'static {
    /// Disables a webhook (its endpoint answered 410 Gone, or it failed for the configured
    /// period), recording why as its `disabled_reason`; a deleted or already disabled webhook
    /// stays as it is.
    fn disable_webhook(&self, webhook_id: u64, reason: String) -> BoxFuture<'_, Result<()>>;

    /// Reports a delivery whose attempts ended FAILED (the core emits `delivery.exhausted`
    /// unless the delivery itself carried an operational event).
    fn delivery_exhausted(&self, delivery: Delivery) -> BoxFuture<'_, Result<()>>;

    /// Reports that an attempt of an ordinary delivery opened or closed a webhook's circuit
    /// breaker (the core emits `endpoint.breaker_opened` / `endpoint.breaker_closed`). Told
    /// once per transition, by the attempt whose record made it.
    fn breaker_changed(
        &self,
        webhook_id: u64,
        transition: BreakerTransition,
    ) -> BoxFuture<'_, Result<()>>;
}

/// Everything an attempt needs; shared by the worker's tasks.
pub struct Worker {
    /// Where deliveries and attempts are kept.
    pub store: Arc<dyn Store>,
    /// Whether the store answers (delivery pauses while it does not).
    pub health: Arc<StoreHealth>,
    /// The pooled HTTP client.
    pub client: HttpClient,
    /// Where each recorded state goes to the open status streams.
    pub hub: Arc<Hub>,
    /// What may run now.
    pub scheduler: Arc<Scheduler>,
    /// The core, told of webhooks to disable.
    pub outcomes: Arc<dyn WebhookOutcomes>,
    /// The process settings.
    pub config: Arc<Config>,
    /// The process metrics.
    pub metrics: Arc<Metrics>,
}

/// One attempt in flight and its hold on a worker permit and its webhook's slot. Dropping it
/// (when the attempt's task ends, or unwinds from a panic) frees both; unless the attempt was
/// recorded, its delivery is queued again after a pause.
struct Running {
    worker: Arc<Worker>,
    entry: Entry,
    /// What the recorded attempt said about the endpoint; None until it is recorded.
    recorded: Option<EndpointHealth>,
    /// The attempt failed because the store is unavailable or busy (the health monitor and
    /// the store's pressure report say that once; the attempt says nothing of its own).
    store_lost: bool,
    /// Whether its webhook's slot was freed when the endpoint answered (`Scheduler::answered`).
    slot_freed: bool,
    _permit: OwnedSemaphorePermit,
}

impl Running {
    fn start(worker: Arc<Worker>, entry: Entry, permit: OwnedSemaphorePermit) -> Running {
        worker.metrics.inflight.inc();
        Running {
            worker,
            entry,
            recorded: None,
            store_lost: false,
            slot_freed: false,
            _permit: permit,
        }
    }

    async fn run(mut self) {
        let worker = Arc::clone(&self.worker);
        match worker.attempt(self.entry, &mut self.slot_freed).await {
            Ok(health) => self.recorded = Some(health),
            Err(e @ Error::Unavailable(_)) => {
                self.store_lost = true;
                worker.health.suspect();
                tracing::debug!(delivery_id = self.entry.delivery_id, error = %e, "delivery attempt not recorded: the store is unavailable")
            }
            // Back-pressure, not an outage: no probe; the store's pressure report says it
            // once per period.
            Err(e @ Error::Busy(_)) => {
                self.store_lost = true;
                tracing::debug!(delivery_id = self.entry.delivery_id, error = %e, "delivery attempt not recorded: the store is busy")
            }
            Err(e) => {
                tracing::error!(delivery_id = self.entry.delivery_id, error = %e, "delivery attempt failed before it was recorded")
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let worker = &self.worker;
        let now = now_ms();
        if self.slot_freed {
            worker.scheduler.finish_answered(self.entry);
        } else {
            let health = self.recorded.unwrap_or(EndpointHealth::Untouched);
            worker.scheduler.finish(self.entry, health, now);
        }
        if self.recorded.is_none() {
            let pause = worker.unrecorded_retry_after();
            if !self.store_lost {
                tracing::warn!(
                    delivery_id = self.entry.delivery_id,
                    retry_in = %humantime::format_duration(pause),
                    "delivery attempt not recorded; it is retried"
                );
            }
            worker.scheduler.schedule(Entry {
                not_before_ms: now.saturating_add(millis(pause)),
                ..self.entry
            });
        }
        worker.metrics.inflight.dec();
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What the circuit breaker learns from an attempt: whatever `retry::classify` would retry
/// (timeouts, connection errors, 5xx, 408, 429) means the endpoint is struggling, and a 429
/// also slows its rate limit down; any other answer means it is up; a request that never
/// left (refused target, invalid request, a failing egress proxy) says nothing about it.
fn health(sent: &AttemptResult, classified: &Outcome) -> EndpointHealth {
    match (sent, classified) {
        (Err(AttemptError::Proxy(_)), _) => EndpointHealth::Untouched,
        (Ok(r), Outcome::Retry(_)) if r.status == 429 => EndpointHealth::Throttled,
        (_, Outcome::Retry(_)) => EndpointHealth::Failing,
        (Ok(_), _) => EndpointHealth::Answered,
        (Err(_), _) => EndpointHealth::Untouched,
    }
}

/// What the stored breaker and the run of failures make of an attempt: as its health says,
/// except that a failing egress proxy is recorded as such (it is nobody's failure).
fn verdict(sent: &AttemptResult, health: EndpointHealth) -> Verdict {
    match (sent, health) {
        (Err(AttemptError::Proxy(_)), _) => Verdict::ProxyFailed,
        (_, EndpointHealth::Answered) => Verdict::Answered,
        (_, EndpointHealth::Failing | EndpointHealth::Throttled) => Verdict::Failing,
        (_, EndpointHealth::Untouched) => Verdict::Unknown,
    }
}

impl Worker {
    fn unrecorded_retry_after(&self) -> Duration {
        self.config
            .retry_schedule
            .first()
            .copied()
            .unwrap_or(UNRECORDED_RETRY_AFTER)
    }

    /// Runs until `shutdown`, then waits (bounded) for in-flight attempts to be recorded.
    /// Unfinished deliveries stay in the outbox and resume at the next start.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let limit = self.config.delivery_concurrency.max(1);
        let permits = Arc::new(Semaphore::new(limit));
        loop {
            // Delivery pauses while the store is lost: its attempts could not be recorded.
            if !self.health.is_serving() {
                tokio::select! {
                    _ = self.health.until_serving() => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            // Take a permit first, so a delivery leaves the queue only when it can run.
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
                _ = shutdown.cancelled() => break,
            };
            match self.scheduler.next(now_ms()) {
                Next::Due(entry) => {
                    tokio::spawn(Running::start(Arc::clone(&self), entry, permit).run());
                }
                Next::WaitUntil(at_ms) => {
                    drop(permit);
                    let wait = Duration::from_millis((at_ms - now_ms()).clamp(1, 60_000) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.scheduler.woken() => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
                Next::Idle => {
                    drop(permit);
                    tokio::select! {
                        _ = self.scheduler.woken() => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }
        let drain = permits.acquire_many(limit as u32);
        let _ =
            tokio::time::timeout(self.config.request_timeout + Duration::from_secs(1), drain).await;
    }

    /// Makes one attempt of a queued delivery and records it; returns what it says about the
    /// endpoint. An error means nothing was recorded. `slot_freed` says whether the webhook's
    /// slot was freed at the endpoint's answer.
    async fn attempt(&self, entry: Entry, slot_freed: &mut bool) -> Result<EndpointHealth> {
        #[cfg(feature = "fault-injection")]
        self.config.faults.before_attempt()?;
        let Some(mut delivery) = self.store.get_delivery(entry.delivery_id).await? else {
            return Ok(EndpointHealth::Untouched);
        };
        if delivery.state.is_final() || delivery.next_attempt_ms != entry.due_ms {
            // A stale entry (handled, rescheduled, or cancelled before this attempt); drop
            // its durable copy if there is one. A cancelled head of an ordering key lets the
            // next one go now (its cancel waited for this).
            self.store
                .remove_outbox_entry(OutboxEntry {
                    due_ms: entry.due_ms,
                    delivery_id: entry.delivery_id,
                    webhook_id: entry.webhook_id,
                })
                .await?;
            self.schedule_next_in_order(&delivery).await;
            return Ok(EndpointHealth::Untouched);
        }
        if !self.has_its_turn(&delivery).await? {
            // Queued behind an unfinished delivery of its ordering key: the one before it
            // schedules it when it ends (it has no outbox entry meanwhile).
            return Ok(EndpointHealth::Untouched);
        }
        let webhook = match self.store.get_webhook(delivery.webhook_id).await? {
            Some(w) if w.is_webhook_enabled => {
                // Its current limit (it may have changed, here or on another instance).
                self.scheduler.pace(w.id, RateLimit::of(&w), now_ms());
                w
            }
            Some(_) => {
                return self
                    .cancel(&mut delivery, entry.due_ms, "webhook is disabled")
                    .await;
            }
            None => {
                self.scheduler.pace(delivery.webhook_id, None, now_ms());
                return self
                    .cancel(&mut delivery, entry.due_ms, "webhook was deleted")
                    .await;
            }
        };
        let started = Instant::now();
        let timestamp_ms = now_ms();
        let attempt = delivery.attempts + 1;
        let mut response = ResponseRecord {
            timestamp_ms,
            url: userinfo::mask(&delivery.url),
            request_trigger: delivery.request_trigger.clone(),
            request_headers: None,
            request_data: None,
            status_code: None,
            content: None,
            event_id: delivery.event_id,
            attempt,
            delivery_id: delivery.id,
            duration_ms: 0,
            error: String::new(),
        };
        let mut endpoint = EndpointHealth::Untouched;
        let mut said = Verdict::Unknown;
        let mut gone = false;
        let outcome = match (&delivery.request, &delivery.render_error) {
            (_, Some(render_error)) => {
                response.request_data = Some(render_error.describe());
                Outcome::GiveUp(render_error.describe())
            }
            (Some(rendered), None) => {
                let mut prepared = prepare(&webhook, &delivery, rendered, timestamp_ms / 1000);
                response.request_headers = Some(prepared.logged_headers);
                response.request_data = rendered.body.clone();
                let (span, traceparent) = telemetry::attempt(
                    rendered.traceparent.as_deref(),
                    delivery.event_id,
                    webhook.id,
                    delivery.id,
                    attempt,
                );
                let headers = &mut prepared.outgoing.headers;
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case(TRACEPARENT));
                headers.push((TRACEPARENT.into(), traceparent));
                let sent = self
                    .client
                    .send(prepared.outgoing)
                    .instrument(span.clone())
                    .await;
                match &sent {
                    Ok(r) => {
                        response.status_code = Some(r.status);
                        response.content = Some(r.body.clone());
                        gone = retry::disables_webhook(r.status);
                    }
                    Err(e) => response.error = e.to_string(),
                }
                let classified = retry::classify(&sent);
                if let Ok(r) = &sent {
                    span.record("status_code", r.status);
                }
                span.record(
                    "outcome",
                    match &classified {
                        Outcome::Success => "success",
                        Outcome::Retry(_) => "retry",
                        Outcome::GiveUp(_) => "give up",
                    },
                );
                endpoint = health(&sent, &classified);
                *slot_freed = self.scheduler.answered(entry, endpoint, now_ms());
                said = verdict(&sent, endpoint);
                self.schedule_retry(classified, &webhook, &mut delivery, attempt, &sent)
            }
            (None, None) => Outcome::GiveUp("nothing to send".into()),
        };
        let elapsed = started.elapsed();
        response.duration_ms = elapsed.as_millis() as u64;
        if let Outcome::Retry(reason) | Outcome::GiveUp(reason) = &outcome
            && response.error.is_empty()
        {
            response.error = reason.clone();
        }
        delivery.attempts = attempt;
        delivery.last_status_code = response.status_code;
        let (state, label) = match &outcome {
            Outcome::Success => (DeliveryState::Succeeded, "succeeded"),
            Outcome::Retry(_) => (DeliveryState::Retrying, "retrying"),
            Outcome::GiveUp(_) => (DeliveryState::Failed, "failed"),
        };
        delivery.state = state;
        delivery.updated_at_ms = now_ms();
        delivery.last_error = match outcome {
            Outcome::Success => String::new(),
            Outcome::Retry(reason) | Outcome::GiveUp(reason) => reason,
        };
        // A retry due soon stays leased here and queued; a later one goes back to the store,
        // for any instance to claim when it is due.
        let now = now_ms();
        let keep = delivery.state == DeliveryState::Retrying
            && delivery.next_attempt_ms <= now.saturating_add(millis(HORIZON));
        let stats = self
            .store
            .record_attempt(AttemptRecord {
                delivery: &delivery,
                previous_due_ms: entry.due_ms,
                response: Some(&response),
                succeeded: state == DeliveryState::Succeeded,
                breaker: BreakerStep {
                    verdict: said,
                    policy: BreakerPolicy::new(
                        self.config.breaker_threshold,
                        self.config.breaker_cooldown,
                    ),
                },
                lease: keep.then(|| self.scheduler.owner().lease_from(now)),
            })
            .await?;
        // The breaker as every instance sees it now, before the retry is queued.
        self.scheduler.follow(webhook.id, &stats.breaker);
        // Cancelled while the attempt was in flight: the store kept it CANCELLED whatever
        // the attempt said (the attempt is logged), so there is no retry and no final
        // failure to report; the next of its ordering key goes now. (A success is not read
        // back, to spare every delivery a read: its cancel has reported CANCELLED already,
        // and streams take one final state per delivery.)
        if state != DeliveryState::Succeeded && self.cancelled_meanwhile(&mut delivery).await {
            self.hub.publish(DeliveryUpdate::of(&delivery));
            self.report_breaker(&delivery, &stats).await;
            self.schedule_next_in_order(&delivery).await;
            return Ok(endpoint);
        }
        // Recorded: nothing below fails the attempt, and its retry is queued first.
        if keep {
            self.scheduler.schedule(Entry::due(
                delivery.next_attempt_ms,
                delivery.id,
                webhook.id,
            ));
        }
        self.schedule_next_in_order(&delivery).await;
        self.metrics
            .attempts
            .with_label_values(&[label, status_class(response.status_code)])
            .inc();
        self.metrics
            .attempt_seconds
            .with_label_values(&[label])
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            event_id = delivery.event_id, webhook_id = webhook.id, delivery_id = delivery.id, attempt,
            state = ?delivery.state, status = ?response.status_code, "delivery attempt"
        );
        self.after_recording(&webhook, &stats, gone, timestamp_ms)
            .await;
        self.report_breaker(&delivery, &stats).await;
        self.hub.publish(DeliveryUpdate::of(&delivery));
        if delivery.state == DeliveryState::Failed
            && !delivery.operational
            && let Err(e) = self.outcomes.delivery_exhausted(delivery.clone()).await
        {
            tracing::error!(delivery_id = delivery.id, error = %e, "cannot report the exhausted delivery");
        }
        Ok(endpoint)
    }

    /// Tells the core when the recorded attempt opened or closed the webhook's breaker,
    /// unless the delivery carried an operational event (those never produce operational
    /// events: nothing loops). A failure to tell is logged; the attempt stands.
    async fn report_breaker(&self, delivery: &Delivery, stats: &WebhookStats) {
        let Some(transition) = stats.breaker_transition() else {
            return;
        };
        if delivery.operational {
            return;
        }
        match &transition {
            BreakerTransition::Opened { open_until_ms, .. } => tracing::warn!(
                webhook_id = delivery.webhook_id,
                open_until_ms,
                "circuit breaker opened"
            ),
            BreakerTransition::Closed { .. } => {
                tracing::info!(webhook_id = delivery.webhook_id, "circuit breaker closed")
            }
        }
        if let Err(e) = self
            .outcomes
            .breaker_changed(delivery.webhook_id, transition)
            .await
        {
            tracing::error!(webhook_id = delivery.webhook_id, error = %e, "cannot report the breaker's transition");
        }
    }

    /// The housekeeping of a recorded attempt: trims the response log, and has the core
    /// disable a webhook whose endpoint is gone or that failed for the configured period.
    /// Its failures are logged; the attempt stands.
    async fn after_recording(
        &self,
        webhook: &Webhook,
        stats: &WebhookStats,
        gone: bool,
        timestamp_ms: i64,
    ) {
        // Trim the log once per TRIM_EVERY entries past the limit (each number is seen once).
        let keep = u64::try_from(self.config.response_history).unwrap_or(u64::MAX);
        if stats.response_seq > keep
            && stats.response_seq.is_multiple_of(TRIM_EVERY)
            && let Err(e) = self
                .store
                .trim_responses(webhook.id, stats.response_seq, keep)
                .await
        {
            tracing::warn!(webhook_id = webhook.id, error = %e, "cannot trim the response log");
        }
        let failing_for = stats.failing_since_ms.map(|since| {
            Duration::from_millis(u64::try_from(timestamp_ms.saturating_sub(since)).unwrap_or(0))
        });
        let reason = if gone {
            "the endpoint answered 410 Gone".to_string()
        } else {
            match failing_for {
                Some(failing_for) if failing_for >= self.config.auto_disable_after => format!(
                    "deliveries failed continuously for {}",
                    humantime::format_duration(Duration::from_secs(failing_for.as_secs()))
                ),
                _ => return,
            }
        };
        if !webhook.is_webhook_enabled {
            return;
        }
        match self
            .outcomes
            .disable_webhook(webhook.id, reason.clone())
            .await
        {
            Ok(()) => tracing::warn!(webhook_id = webhook.id, reason, "webhook disabled"),
            Err(e) => {
                tracing::error!(webhook_id = webhook.id, error = %e, "cannot disable the webhook")
            }
        }
    }

    /// Turns a Retry into GiveUp when the schedule is exhausted, else sets the next due time.
    fn schedule_retry(
        &self,
        outcome: Outcome,
        webhook: &Webhook,
        delivery: &mut Delivery,
        attempt: u32,
        result: &AttemptResult,
    ) -> Outcome {
        let Outcome::Retry(reason) = outcome else {
            return outcome;
        };
        let schedule: Vec<Duration> = match &webhook.retry_schedule_ms {
            Some(ms) => ms.iter().map(|&m| Duration::from_millis(m)).collect(),
            None => self.config.retry_schedule.clone(),
        };
        let retry_after = result.as_ref().ok().and_then(|r| r.retry_after);
        match retry::next_delay(
            &schedule,
            attempt + 1,
            webhook.max_attempts,
            self.config.retry_jitter,
            retry_after,
        ) {
            Some(delay) => {
                delivery.next_attempt_ms = now_ms().saturating_add(millis(delay));
                Outcome::Retry(reason)
            }
            None => Outcome::GiveUp(format!("{reason}; giving up after {attempt} attempts")),
        }
    }

    /// Whether the delivery was cancelled while its attempt was in flight (then `delivery`
    /// becomes what the store kept). A failed read counts as not cancelled: the stale retry
    /// entry is dropped by its attempt.
    async fn cancelled_meanwhile(&self, delivery: &mut Delivery) -> bool {
        match self.store.get_delivery(delivery.id).await {
            Ok(Some(stored)) if stored.state == DeliveryState::Cancelled => {
                *delivery = stored;
                true
            }
            _ => false,
        }
    }

    /// Ends a delivery whose webhook is gone or disabled, without logging an attempt.
    async fn cancel(
        &self,
        delivery: &mut Delivery,
        due_ms: i64,
        reason: &str,
    ) -> Result<EndpointHealth> {
        delivery.state = DeliveryState::Failed;
        delivery.updated_at_ms = now_ms();
        delivery.last_error = reason.to_string();
        self.store
            .record_attempt(AttemptRecord {
                delivery,
                previous_due_ms: due_ms,
                response: None,
                succeeded: false,
                breaker: BreakerStep::default(),
                lease: None,
            })
            .await?;
        self.schedule_next_in_order(delivery).await;
        self.hub.publish(DeliveryUpdate::of(delivery));
        Ok(EndpointHealth::Untouched)
    }

    /// Whether a delivery may be attempted now: it has no ordering key, or it heads its
    /// queue (every earlier delivery of its webhook, key and URL is final) and this instance
    /// holds its lease (the write that released it may have handed it to another instance,
    /// while an earlier copy of it waited here since its emit).
    async fn has_its_turn(&self, delivery: &Delivery) -> Result<bool> {
        let Some(ordering) = &delivery.ordering else {
            return Ok(true);
        };
        let head = self
            .store
            .ordering_head(delivery.webhook_id, &ordering.queue)
            .await?;
        Ok(head.is_some_and(|head| {
            head.entry.delivery_id == delivery.id && head.is_held_by(self.scheduler.owner().id)
        }))
    }

    /// After an ordered delivery ended (its store write released the next of its queue, with
    /// an outbox entry leased to this instance): queues that next one here. If this read
    /// fails, any instance claims it once the lease ends.
    async fn schedule_next_in_order(&self, delivery: &Delivery) {
        let Some(ordering) = delivery
            .ordering
            .as_ref()
            .filter(|_| delivery.state.is_final())
        else {
            return;
        };
        match self
            .store
            .ordering_head(delivery.webhook_id, &ordering.queue)
            .await
        {
            Ok(Some(next))
                if next.entry.delivery_id != delivery.id
                    && next.is_held_by(self.scheduler.owner().id) =>
            {
                let entry = next.entry;
                self.scheduler.schedule(Entry::due(
                    entry.due_ms,
                    entry.delivery_id,
                    entry.webhook_id,
                ))
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                delivery_id = delivery.id, error = %e,
                "cannot read the next delivery of an ordering key; it is claimed once its lease ends"
            ),
        }
    }
}
