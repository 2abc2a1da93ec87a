//! The delivery worker: takes due deliveries from the scheduler, sends each attempt with
//! the pooled client (bounded concurrency), classifies the outcome, records it (log entry,
//! state, outbox move) in one store write, publishes the update, and schedules the retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::HttpClient;
use super::hub::Hub;
use super::request::prepare;
use super::retry::{self, Outcome};
use super::scheduler::{Next, Scheduler};
use crate::config::Config;
use crate::error::Result;
use crate::model::{Delivery, DeliveryState, DeliveryUpdate, ResponseRecord, Webhook, now_ms};
use crate::store::{AttemptRecord, Store};

/// Everything an attempt needs; shared by the worker's tasks.
pub struct Worker {
    store: Arc<dyn Store>,
    client: HttpClient,
    hub: Arc<Hub>,
    scheduler: Arc<Scheduler>,
    config: Arc<Config>,
}

impl Worker {
    /// A worker over the shared parts.
    pub fn new(
        store: Arc<dyn Store>,
        client: HttpClient,
        hub: Arc<Hub>,
        scheduler: Arc<Scheduler>,
        config: Arc<Config>,
    ) -> Worker {
        Worker {
            store,
            client,
            hub,
            scheduler,
            config,
        }
    }

    /// Runs until `shutdown`, then waits (bounded) for in-flight attempts to be recorded.
    /// Unfinished deliveries stay in the outbox and resume at the next start.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let limit = self.config.delivery_concurrency.max(1);
        let permits = Arc::new(Semaphore::new(limit));
        loop {
            let next = self.scheduler.next(now_ms());
            match next {
                Next::Due(due_ms, delivery_id) => {
                    let permit = tokio::select! {
                        permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
                        _ = shutdown.cancelled() => break,
                    };
                    let worker = Arc::clone(&self);
                    tokio::spawn(async move {
                        if let Err(e) = worker.attempt(due_ms, delivery_id).await {
                            tracing::error!(delivery_id, error = %e, "delivery attempt not recorded; it will be retried at the next start");
                        }
                        drop(permit);
                    });
                }
                Next::WaitUntil(due_ms) => {
                    let wait = Duration::from_millis((due_ms - now_ms()).clamp(1, 60_000) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.scheduler.woken() => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
                Next::Idle => {
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

    /// Makes one attempt of a delivery that was due at `due_ms`.
    async fn attempt(&self, due_ms: i64, delivery_id: u64) -> Result<()> {
        let Some(mut delivery) = self.store.get_delivery(delivery_id)? else {
            return Ok(());
        };
        if delivery.state.is_final() || delivery.next_attempt_ms != due_ms {
            return Ok(()); // a stale queue entry (already handled or rescheduled)
        }
        let webhook = self.store.get_webhook(delivery.webhook_id)?;
        let event = self.store.get_event(delivery.event_id)?;
        let (webhook, event) = match (webhook, event) {
            (Some(w), Some(e)) if w.is_webhook_enabled => (w, e),
            (Some(_), _) => return self.cancel(&mut delivery, due_ms, "webhook is disabled"),
            (None, _) => return self.cancel(&mut delivery, due_ms, "webhook was deleted"),
        };
        let started = Instant::now();
        let timestamp_ms = now_ms();
        let attempt = delivery.attempts + 1;
        let mut response = ResponseRecord {
            timestamp_ms,
            url: delivery.url.clone(),
            request_trigger: delivery.request_trigger.clone(),
            request_headers: None,
            request_data: None,
            status_code: None,
            content: None,
            event_id: event.id,
            attempt,
            delivery_id: delivery.id,
            duration_ms: 0,
            error: String::new(),
        };
        let outcome = match (&delivery.request, &delivery.render_error) {
            (_, Some(render_error)) => {
                response.request_data = Some(render_error.describe());
                Outcome::GiveUp(render_error.describe())
            }
            (Some(rendered), None) => {
                let prepared = prepare(&webhook, &delivery, rendered, timestamp_ms / 1000);
                response.request_headers = Some(prepared.logged_headers);
                response.request_data = rendered.body.clone();
                let result = self.client.send(prepared.outgoing).await;
                let outcome = retry::classify(&result);
                match &result {
                    Ok(r) => {
                        response.status_code = Some(r.status);
                        response.content = Some(r.body.clone());
                    }
                    Err(e) => response.error = e.to_string(),
                }
                if let Ok(r) = &result {
                    if retry::disables_webhook(r.status) {
                        self.disable(&webhook, "the endpoint answered 410 Gone")?;
                    }
                }
                self.finish_outcome(outcome, &webhook, &mut delivery, attempt, &result)
            }
            (None, None) => Outcome::GiveUp("nothing to send".into()),
        };
        response.duration_ms = started.elapsed().as_millis() as u64;
        if let Outcome::Retry(reason) | Outcome::GiveUp(reason) = &outcome {
            if response.error.is_empty() {
                response.error = reason.clone();
            }
        }
        delivery.attempts = attempt;
        delivery.last_status_code = response.status_code;
        match &outcome {
            Outcome::Success => {
                delivery.state = DeliveryState::Succeeded;
                delivery.last_error.clear();
            }
            Outcome::Retry(reason) => {
                delivery.state = DeliveryState::Retrying;
                delivery.last_error = reason.clone();
            }
            Outcome::GiveUp(reason) => {
                delivery.state = DeliveryState::Failed;
                delivery.last_error = reason.clone();
            }
        }
        self.store.record_attempt(AttemptRecord {
            delivery: &delivery,
            previous_due_ms: due_ms,
            response: Some(&response),
            succeeded: outcome == Outcome::Success,
        })?;
        if attempt % 64 == 1 || delivery.id % 64 == 0 {
            self.store
                .trim_responses(webhook.id, self.config.response_history)?;
        }
        tracing::debug!(
            event_id = event.id, webhook_id = webhook.id, delivery_id = delivery.id, attempt,
            state = ?delivery.state, status = ?response.status_code, "delivery attempt"
        );
        if delivery.state == DeliveryState::Retrying {
            self.scheduler
                .schedule(delivery.next_attempt_ms, delivery.id);
        }
        self.hub.publish(DeliveryUpdate::of(&delivery));
        Ok(())
    }

    /// Turns a Retry outcome into GiveUp when the schedule is exhausted and sets the next due time.
    fn finish_outcome(
        &self,
        outcome: Outcome,
        webhook: &Webhook,
        delivery: &mut Delivery,
        attempt: u32,
        result: &std::result::Result<super::client::AttemptResponse, super::client::AttemptError>,
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
                delivery.next_attempt_ms = now_ms() + delay.as_millis() as i64;
                Outcome::Retry(reason)
            }
            None => Outcome::GiveUp(format!("{reason}; giving up after {attempt} attempts")),
        }
    }

    /// Ends a delivery whose webhook is gone or disabled, without logging an attempt.
    fn cancel(&self, delivery: &mut Delivery, due_ms: i64, reason: &str) -> Result<()> {
        delivery.state = DeliveryState::Failed;
        delivery.last_error = reason.to_string();
        self.store.record_attempt(AttemptRecord {
            delivery,
            previous_due_ms: due_ms,
            response: None,
            succeeded: false,
        })?;
        self.hub.publish(DeliveryUpdate::of(delivery));
        Ok(())
    }

    /// Disables a webhook on the endpoint's request (410 Gone).
    fn disable(&self, webhook: &Webhook, reason: &str) -> Result<()> {
        if let Some(mut current) = self.store.get_webhook(webhook.id)? {
            current.is_webhook_enabled = false;
            current.disabled_reason = reason.to_string();
            self.store.put_webhook(&current)?;
            tracing::warn!(webhook_id = webhook.id, reason, "webhook disabled");
        }
        Ok(())
    }
}

/// Loads the outbox into the scheduler at start: every unfinished delivery resumes.
pub fn resume(store: &dyn Store, scheduler: &Scheduler) -> Result<usize> {
    let pending = store.outbox()?;
    let count = pending.len();
    scheduler.schedule_all(pending);
    Ok(count)
}
