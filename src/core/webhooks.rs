//! Webhook use cases with OnCall's semantics: create with defaults, partial update (a
//! `WebhookPatch` names the fields to change; sending the secret placeholder keeps a
//! secret), validation that reports every bad field at once, tenant-scoped get/list/delete,
//! the per-webhook delivery log, and the worker's auto-disable (`WebhookOutcomes`). Each
//! field's own rules are in `fields` (the field table); the checks across fields are here.
//! Every write reads, checks and puts under its account's write lock (`locks`).

use std::collections::BTreeMap;

use futures::future::BoxFuture;

use super::operational::OPERATIONAL_EVENT_TYPES;
use super::{Caller, Page, Service};
use crate::delivery::signing;
use crate::delivery::tls::TlsSettings;
use crate::delivery::worker::WebhookOutcomes;
use crate::error::{Error, FieldViolation, Result};
use crate::ids::{self, Kind};
use crate::model::{
    BreakerTransition, Delivery, ResponseRecord, Scope, SigningSecret, Webhook, WebhookStats,
    now_ms,
};
use crate::render::formatters;
use crate::render::matcher;

/// OnCall's trigger types (`escalation step` is OnCall's newer name of `escalation`).
pub const ONCALL_TRIGGER_TYPES: [&str; 12] = [
    "escalation",
    "escalation step",
    "alert group created",
    "acknowledge",
    "resolve",
    "silence",
    "unsilence",
    "unresolve",
    "unacknowledge",
    "status change",
    "personal notification",
    "on-call changed",
];

/// Squadcast's trigger types.
pub const SQUADCAST_TRIGGER_TYPES: [&str; 4] = [
    "incident_triggered",
    "incident_reassigned",
    "incident_acknowledged",
    "incident_resolved",
];

/// Accepted HTTP methods (OnCall's five plus PATCH).
pub const HTTP_METHODS: [&str; 6] = ["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Longest webhook name (OnCall's limit).
pub const NAME_MAX_CHARS: usize = 100;

pub use super::fields::WebhookPatch;

/// A webhook with its delivery outcome times, as every read returns it.
#[derive(Debug, Clone)]
pub struct WebhookView {
    /// The stored webhook (secrets in clear: transports mask them).
    pub webhook: Webhook,
    /// last_success / last_failure.
    pub stats: WebhookStats,
    /// `whpk_<base64>` of the current ed25519 signing key (None without one).
    pub signing_public_key: Option<String>,
}

/// A new signing secret, shown once.
#[derive(Debug, Clone)]
pub struct RotatedSecret {
    /// `whsec_…` or `whsk_…`.
    pub secret: String,
    /// `whpk_…` for an ed25519 secret.
    pub public_key: Option<String>,
}

/// The public key of the webhook's current ed25519 signing secret.
fn current_public_key(webhook: &Webhook) -> Option<String> {
    webhook
        .signing_secrets
        .iter()
        .find(|s| s.expires_at_ms.is_none())
        .and_then(|s| signing::public_key(&s.secret))
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    /// Items of the page.
    pub items: Vec<T>,
    /// Items in all pages.
    pub total: usize,
}

/// A logged attempt with the JSON of its event (OnCall's `event_data`).
#[derive(Debug, Clone)]
pub struct ResponseView {
    /// Log key (cursor for the next page).
    pub key: u64,
    /// The attempt.
    pub record: ResponseRecord,
    /// JSON of the event data.
    pub event_data: String,
}

fn has_template_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Checks a URL that has no template syntax: http(s) with a host.
fn check_url(url: &str) -> std::result::Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "Enter a valid URL.".to_string())?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("Enter a valid URL: the scheme must be http or https.".into()),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err("Enter a valid URL: a host is required.".into()),
    }
}

impl Service {
    fn parse_webhook_id(id: &str) -> Result<u64> {
        ids::parse(Kind::Webhook, id).ok_or_else(|| Error::webhook_not_found(id))
    }

    /// The caller's webhook `id`; NOT_FOUND for unknown ids and other accounts' webhooks.
    pub(crate) async fn owned_webhook(&self, caller: &Caller, id: &str) -> Result<Webhook> {
        let n = Self::parse_webhook_id(id)?;
        match self.store.get_webhook(n).await? {
            Some(w) if w.account_id == caller.account_id => Ok(w),
            _ => Err(Error::webhook_not_found(id)),
        }
    }

    async fn view(&self, webhook: Webhook) -> Result<WebhookView> {
        let stats = self.store.webhook_stats(webhook.id).await?;
        Ok(WebhookView {
            signing_public_key: current_public_key(&webhook),
            webhook,
            stats,
        })
    }

    /// Creates a webhook; name and url are required.
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        patch: WebhookPatch,
    ) -> Result<WebhookView> {
        caller.require(Scope::Write)?;
        let mut missing = Vec::new();
        if patch.name.is_none() {
            missing.push(FieldViolation::new("name", "This field is required."));
        }
        if patch.url.is_none() {
            missing.push(FieldViolation::new("url", "This field is required."));
        }
        // OnCall's defaults for what a create does not give.
        let mut patch = patch;
        patch.is_webhook_enabled.get_or_insert(true);
        patch.forward_all.get_or_insert(true);
        patch.http_method.get_or_insert_with(|| "POST".into());
        let mut webhook = Webhook {
            account_id: caller.account_id.clone(),
            created_at_ms: now_ms(),
            ..Webhook::default()
        };
        let infer_destination = patch.destination_type.as_deref().unwrap_or("").is_empty();
        // Every problem at once: missing fields first, then the others (one per field).
        let mut violations = missing;
        for v in self.apply(&mut webhook, patch) {
            if !violations.iter().any(|a| a.field == v.field) {
                violations.push(v);
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if infer_destination {
            webhook.destination_type = formatters::infer_destination(&webhook.url);
        }
        let writing = self.writes.lock(&caller.account_id).await;
        self.check_unique_name(&webhook).await?;
        webhook.id = self.store.next_id().await?;
        self.store.put_webhook(&webhook).await?;
        drop(writing);
        self.view(webhook).await
    }

    /// A webhook of the caller's account.
    pub async fn get_webhook(&self, caller: &Caller, id: &str) -> Result<WebhookView> {
        caller.require(Scope::Read)?;
        self.view(self.owned_webhook(caller, id).await?).await
    }

    /// A page of the caller's webhooks in creation order; `name` filters exactly.
    pub async fn list_webhooks(
        &self,
        caller: &Caller,
        page: Page,
        name: Option<&str>,
    ) -> Result<Listing<WebhookView>> {
        caller.require(Scope::Read)?;
        if let Some(name) = name {
            let all = self
                .store
                .list_webhooks(&caller.account_id, Page::ALL.stored())
                .await?;
            let matching: Vec<Webhook> = all.into_iter().filter(|w| w.name == name).collect();
            let total = matching.len();
            let mut items = Vec::new();
            for webhook in matching.into_iter().skip(page.offset).take(page.limit) {
                items.push(self.view(webhook).await?);
            }
            return Ok(Listing { items, total });
        }
        let total = self.store.count_webhooks(&caller.account_id).await?;
        let mut items = Vec::new();
        let page = page.stored();
        for webhook in self.store.list_webhooks(&caller.account_id, page).await? {
            items.push(self.view(webhook).await?);
        }
        Ok(Listing { items, total })
    }

    /// Changes the fields of `patch`; the others keep their values.
    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: &str,
        patch: WebhookPatch,
    ) -> Result<WebhookView> {
        caller.require(Scope::Write)?;
        let writing = self.writes.lock(&caller.account_id).await;
        let mut webhook = self.owned_webhook(caller, id).await?;
        let enabling = patch.is_webhook_enabled == Some(true);
        let violations = self.apply(&mut webhook, patch);
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if enabling {
            webhook.disabled_reason.clear();
        }
        self.check_unique_name(&webhook).await?;
        self.store.put_webhook(&webhook).await?;
        drop(writing);
        self.view(webhook).await
    }

    /// Deletes a webhook and its log.
    pub async fn delete_webhook(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require(Scope::Write)?;
        let writing = self.writes.lock(&caller.account_id).await;
        let webhook = self.owned_webhook(caller, id).await?;
        self.store.delete_webhook(webhook.id).await?;
        drop(writing);
        Ok(())
    }

    /// A page of a webhook's delivery log, newest first.
    pub async fn list_responses(
        &self,
        caller: &Caller,
        webhook_id: &str,
        page: Page,
    ) -> Result<Listing<ResponseView>> {
        caller.require(Scope::Read)?;
        let webhook = self.owned_webhook(caller, webhook_id).await?;
        let total = self.store.count_responses(webhook.id).await?;
        let mut events: BTreeMap<u64, String> = BTreeMap::new();
        let mut items = Vec::new();
        let page = page.stored();
        for (key, record) in self.store.list_responses(webhook.id, page).await? {
            let event_data = match events.get(&record.event_id) {
                Some(json) => json.clone(),
                None => {
                    let json = self
                        .store
                        .get_event(record.event_id)
                        .await?
                        .map(|e| e.data.to_string())
                        .unwrap_or_else(|| "{}".into());
                    events.insert(record.event_id, json.clone());
                    json
                }
            };
            items.push(ResponseView {
                key,
                record,
                event_data,
            });
        }
        Ok(Listing { items, total })
    }

    /// Generates a new signing secret of the current one's kind (`v1` when there is none);
    /// the previous one keeps signing for 24 h.
    pub async fn rotate_signing_secret(&self, caller: &Caller, id: &str) -> Result<RotatedSecret> {
        caller.require(Scope::Write)?;
        let writing = self.writes.lock(&caller.account_id).await;
        let mut webhook = self.owned_webhook(caller, id).await?;
        let current = webhook
            .signing_secrets
            .iter()
            .find(|s| s.expires_at_ms.is_none())
            .map(|s| s.secret.as_str());
        let secret = signing::generate_like(current);
        let now = now_ms();
        let expires = now + 24 * 3600 * 1000;
        webhook
            .signing_secrets
            .retain(|s| s.expires_at_ms.is_none_or(|at| at > now));
        for old in webhook.signing_secrets.iter_mut() {
            if old.expires_at_ms.is_none() {
                old.expires_at_ms = Some(expires);
            }
        }
        webhook.signing_secrets.insert(
            0,
            SigningSecret {
                secret: secret.clone(),
                expires_at_ms: None,
            },
        );
        self.store.put_webhook(&webhook).await?;
        drop(writing);
        Ok(RotatedSecret {
            public_key: signing::public_key(&secret),
            secret,
        })
    }

    /// Disables a webhook on the worker's report, under its account's write lock.
    async fn disable_webhook(&self, webhook_id: u64, reason: String) -> Result<()> {
        let Some(account_id) = self
            .store
            .get_webhook(webhook_id)
            .await?
            .map(|w| w.account_id)
        else {
            return Ok(());
        };
        let _writing = self.writes.lock(&account_id).await;
        // Read again under the lock: a user's update or delete may have come first.
        match self.store.get_webhook(webhook_id).await? {
            Some(mut webhook) if webhook.is_webhook_enabled => {
                webhook.is_webhook_enabled = false;
                webhook.disabled_reason = reason;
                self.store.put_webhook(&webhook).await?;
                drop(_writing);
                self.webhook_disabled(&webhook).await
            }
            _ => Ok(()),
        }
    }

    async fn check_unique_name(&self, webhook: &Webhook) -> Result<()> {
        let all = self
            .store
            .list_webhooks(&webhook.account_id, Page::ALL.stored())
            .await?;
        if all
            .iter()
            .any(|w| w.name == webhook.name && w.id != webhook.id)
        {
            return Err(Error::Conflict(format!(
                "a webhook named {:?} already exists in this account",
                webhook.name
            )));
        }
        Ok(())
    }

    /// Applies a patch and validates the result, returning every invalid field; when there
    /// are any, `webhook` may be half-changed and must be discarded.
    fn apply(&self, webhook: &mut Webhook, patch: WebhookPatch) -> Vec<FieldViolation> {
        let mut violations = patch.set_fields(webhook);
        let mut bad = |field: &str, description: String| {
            violations.push(FieldViolation::new(field, description))
        };
        check_name(webhook, &mut bad);
        self.check_targets(webhook, &mut bad);
        check_method(webhook, &mut bad);
        check_triggers(webhook, &mut bad);
        self.check_templates(webhook, &mut bad);
        if let Some(group) = &webhook.filters
            && let Err(e) = matcher::validate_filters(group)
        {
            bad("filters", e);
        }
        check_tls(webhook, &mut bad);
        violations
    }

    /// `url` is required; it and every `urls` entry is an http(s) URL or a valid template.
    fn check_targets(&self, webhook: &Webhook, bad: &mut impl FnMut(&str, String)) {
        if webhook.url.is_empty() {
            bad("url", "This field may not be blank.".into());
        }
        for (field, url) in
            std::iter::once(("url", &webhook.url)).chain(webhook.urls.iter().map(|u| ("urls", u)))
        {
            if url.is_empty() && field == "url" {
                continue;
            }
            if has_template_syntax(url) {
                if let Err(e) = self.templates.check(webhook.template_engine, url) {
                    bad(field, e);
                }
            } else if let Err(e) = check_url(url) {
                bad(field, e);
            }
        }
    }

    /// The templates compile with the webhook's engine.
    fn check_templates(&self, webhook: &Webhook, bad: &mut impl FnMut(&str, String)) {
        for (field, template) in [
            ("data", &webhook.data),
            ("headers", &webhook.headers),
            ("trigger_template", &webhook.trigger_template),
        ] {
            if let Some(source) = template
                && let Err(e) = self.templates.check(webhook.template_engine, source)
            {
                bad(field, e);
            }
        }
    }
}

/// The name is required and at most `NAME_MAX_CHARS` long.
fn check_name(webhook: &Webhook, bad: &mut impl FnMut(&str, String)) {
    if webhook.name.is_empty() {
        bad("name", "This field may not be blank.".into());
    } else if webhook.name.chars().count() > NAME_MAX_CHARS {
        bad(
            "name",
            format!("Ensure this field has no more than {NAME_MAX_CHARS} characters."),
        );
    }
}

/// Client certificate, key and CAs parse, and the key fits the certificate.
fn check_tls(webhook: &Webhook, bad: &mut impl FnMut(&str, String)) {
    let settings = TlsSettings::of(webhook);
    if !settings.is_custom() {
        return;
    }
    if let Err(problems) = settings.client_config() {
        for problem in problems {
            bad(problem.field, problem.message);
        }
    }
}

fn check_method(webhook: &Webhook, bad: &mut impl FnMut(&str, String)) {
    if !HTTP_METHODS.contains(&webhook.http_method.as_str()) {
        bad(
            "http_method",
            format!(
                "\"{}\" is not a valid choice. Must be one of {HTTP_METHODS:?}.",
                webhook.http_method
            ),
        );
    }
}

/// Every trigger type is one of OnCall's or Squadcast's.
fn check_triggers(webhook: &Webhook, bad: &mut impl FnMut(&str, String)) {
    for trigger in &webhook.trigger_types {
        if !ONCALL_TRIGGER_TYPES.contains(&trigger.as_str())
            && !SQUADCAST_TRIGGER_TYPES.contains(&trigger.as_str())
            && !OPERATIONAL_EVENT_TYPES.contains(&trigger.as_str())
        {
            bad(
                "trigger_type",
                format!(
                    "\"{trigger}\" is not a valid trigger type. Must be one of {ONCALL_TRIGGER_TYPES:?}, {SQUADCAST_TRIGGER_TYPES:?} or {OPERATIONAL_EVENT_TYPES:?}."
                ),
            );
        }
    }
}

impl WebhookOutcomes for Service {
    fn disable_webhook(&self, webhook_id: u64, reason: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(Service::disable_webhook(self, webhook_id, reason))
    }

    fn delivery_exhausted(&self, delivery: Delivery) -> BoxFuture<'_, Result<()>> {
        Box::pin(Service::delivery_exhausted(self, delivery))
    }

    fn breaker_changed(
        &self,
        webhook_id: u64,
        transition: BreakerTransition,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(Service::breaker_changed(self, webhook_id, transition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_http_or_https_and_a_host() {
        assert!(check_url("https://example.com/x").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("example.com").is_err());
        assert!(check_url("not a url").is_err());
    }
}
