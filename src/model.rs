//! Domain types shared by every layer, with Grafana OnCall's field names as the canonical
//! ones. Plain data with serde derives (the store's encoding); no behaviour beyond small
//! helpers, no transport or storage types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod breaker;

pub use breaker::{
    Breaker, BreakerPolicy, BreakerState, BreakerStep, BreakerTransition, MAX_COOLDOWN_MS, Verdict,
};

/// The value shown instead of a write-only field that is set (OnCall's placeholder).
pub const SECRET_PLACEHOLDER: &str = "****************";

/// An outgoing webhook of one account. A field missing from a stored record (one written
/// before the field existed) takes its `Default`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Webhook {
    /// Store id (formatted with `ids::Kind::Webhook`).
    pub id: u64,
    /// Owning account.
    pub account_id: String,
    /// Display name, unique within the account.
    pub name: String,
    /// Whether the webhook fires.
    pub is_webhook_enabled: bool,
    /// OnCall team id, as given.
    pub team: Option<String>,
    /// Body template used when `forward_all` is false.
    pub data: Option<String>,
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password (write-only).
    pub password: Option<String>,
    /// Authorization header value (write-only).
    pub authorization_header: Option<String>,
    /// Fires only when this renders truthy.
    pub trigger_template: Option<String>,
    /// Template of a JSON object of headers.
    pub headers: Option<String>,
    /// Target URL template.
    pub url: String,
    /// Send the whole event data as body.
    pub forward_all: bool,
    /// HTTP method.
    pub http_method: String,
    /// Trigger types; OnCall's `trigger_type` is the first.
    pub trigger_types: Vec<String>,
    /// Integration ids the webhook is limited to (empty = all).
    pub integration_filter: Vec<String>,
    /// Schedule ids whose changes fire an `on-call changed` webhook (empty = all).
    #[serde(default)]
    pub schedule_filter: Vec<String>,
    /// Free text (Squadcast).
    pub description: String,
    /// Extra target URL templates besides `url`.
    pub urls: Vec<String>,
    /// Structured event filters.
    pub filters: Option<FilterGroup>,
    /// Destination formatter (Cloudflare's `type`).
    pub destination_type: DestinationType,
    /// Cloudflare secret, sent as `cf-webhook-auth` (write-only).
    pub secret: Option<String>,
    /// Standard Webhooks signing secrets, current first (write-only).
    pub signing_secrets: Vec<SigningSecret>,
    /// Per-webhook retry delays in milliseconds; None = the server's schedule.
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// Max attempts per delivery; 0 = schedule length + 1.
    pub max_attempts: u32,
    /// Template engine for every template of the webhook.
    pub template_engine: Engine,
    /// Headers sent as given.
    pub custom_headers: BTreeMap<String, String>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// Why the server disabled the webhook ("" when it did not).
    pub disabled_reason: String,
    /// mTLS client certificate chain, PEM (write-only).
    pub client_certificate: Option<String>,
    /// Private key of `client_certificate`, PEM (write-only).
    pub client_key: Option<String>,
    /// CA certificates (PEM) trusted besides the default roots.
    pub ca_certificates: Vec<String>,
    /// Attempts per second (per instance); 0 = unlimited.
    pub rate_limit_per_second: u32,
    /// Attempts that may go at once after a quiet period; 0 = the rate.
    pub rate_limit_burst: u32,
}

/// Template engine chosen per webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Jinja,
    Handlebars,
}

impl Engine {
    /// `""` or `"jinja"` -> Jinja, `"handlebars"` -> Handlebars, anything else -> None.
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "" | "jinja" => Some(Engine::Jinja),
            "handlebars" => Some(Engine::Handlebars),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Engine::Jinja => "jinja",
            Engine::Handlebars => "handlebars",
        }
    }
}

/// Where a webhook delivers, which decides the request body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    #[default]
    Generic,
    Slack,
    Discord,
    Gchat,
    Feishu,
    Datadog,
    Opsgenie,
    Splunk,
}

impl DestinationType {
    /// Every destination type, generic first.
    pub const ALL: [DestinationType; 8] = [
        DestinationType::Generic,
        DestinationType::Slack,
        DestinationType::Discord,
        DestinationType::Gchat,
        DestinationType::Feishu,
        DestinationType::Datadog,
        DestinationType::Opsgenie,
        DestinationType::Splunk,
    ];

    /// Case-insensitive; "" -> Generic; None for an unknown name.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Some(DestinationType::Generic);
        }
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            DestinationType::Generic => "generic",
            DestinationType::Slack => "slack",
            DestinationType::Discord => "discord",
            DestinationType::Gchat => "gchat",
            DestinationType::Feishu => "feishu",
            DestinationType::Datadog => "datadog",
            DestinationType::Opsgenie => "opsgenie",
            DestinationType::Splunk => "splunk",
        }
    }
}

/// What a write-only field shows: the placeholder when set, nothing otherwise.
pub fn masked(secret: &Option<String>) -> Option<String> {
    secret.as_ref().map(|_| SECRET_PLACEHOLDER.to_string())
}

impl Webhook {
    /// OnCall's single trigger type: the first one ("" when none).
    pub fn trigger_type(&self) -> &str {
        self.trigger_types.first().map(String::as_str).unwrap_or("")
    }

    /// Every target URL template: `url` then `urls`.
    pub fn targets(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.url).chain(self.urls.iter())
    }
}

/// A signing secret; a rotated-out one keeps signing until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// `whsec_<base64>`.
    pub secret: String,
    /// None for the current secret; the expiry of a rotated-out one (ms since the epoch).
    pub expires_at_ms: Option<i64>,
}

/// Delivery outcome times of a webhook, kept apart from the webhook so delivery never
/// rewrites configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookStats {
    /// Last 2xx, ms since the epoch.
    pub last_success_ms: Option<i64>,
    /// Last failed attempt, ms since the epoch.
    pub last_failure_ms: Option<i64>,
    /// Start of the current run of failed attempts (None after a success).
    #[serde(default)]
    pub failing_since_ms: Option<i64>,
    /// Attempts ever logged for the webhook: the sequence number of its newest log entry
    /// (drives trimming without scanning the log).
    #[serde(default)]
    pub response_seq: u64,
    /// The circuit breaker of its endpoint (see `BreakerState`).
    #[serde(default)]
    pub breaker: BreakerState,
}

impl WebhookStats {
    /// Counts a logged attempt made at `at_ms`: the next log sequence number, the outcome
    /// times, the run of failures (a failing egress proxy is not the endpoint's failure), and
    /// the breaker. Both backends apply it to the stats row their write holds.
    pub fn record(&mut self, at_ms: i64, succeeded: bool, step: BreakerStep) {
        self.response_seq += 1;
        if succeeded {
            self.last_success_ms = Some(at_ms);
            self.failing_since_ms = None;
        } else if step.verdict != Verdict::ProxyFailed {
            self.last_failure_ms = Some(at_ms);
            self.failing_since_ms.get_or_insert(at_ms);
        }
        self.breaker.step(step, at_ms, self.response_seq);
    }

    /// The breaker transition the attempt that wrote these stats made, if any.
    pub fn breaker_transition(&self) -> Option<BreakerTransition> {
        self.breaker.transition_at(self.response_seq)
    }
}

/// How a filter group combines its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FilterOperator {
    /// Every member holds.
    #[default]
    And,
    /// One member holds.
    Or,
}

/// Comparison of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConditionOp {
    /// Field equals value.
    Equals,
    /// Field absent or different.
    NotEquals,
    /// Substring or list element.
    Contains,
    /// Regular expression match.
    Regex,
    /// Field present and not null.
    Exists,
    /// Field equals one of a list.
    In,
}

/// A group of conditions (Squadcast-style filters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterGroup {
    /// AND or OR.
    pub operator: FilterOperator,
    /// Conditions.
    pub conditions: Vec<FilterCondition>,
    /// Nested groups.
    pub groups: Vec<FilterGroup>,
}

/// A condition on a dotted path of the event data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterCondition {
    /// Dotted path, e.g. `alert_group.state`.
    pub field: String,
    /// Comparison.
    pub op: ConditionOp,
    /// Operand.
    pub value: Value,
}

/// An accepted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Store id.
    pub id: u64,
    /// Owning account.
    pub account_id: String,
    /// Trigger type.
    pub event_type: String,
    /// OnCall event_data.
    pub data: Value,
    /// Acceptance time, ms since the epoch.
    pub created_at_ms: i64,
    /// Deliveries created for it, in webhook order.
    pub delivery_ids: Vec<u64>,
    /// webhookd's own report (`delivery.exhausted`, `webhook.disabled`, ...): its
    /// deliveries never produce operational events themselves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operational: bool,
}

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Queued,
    /// Waiting for a retry.
    Retrying,
    /// Got a 2xx (final).
    Succeeded,
    /// No more attempts (final).
    Failed,
    /// Filters or trigger_template said no (final).
    Skipped,
    /// An operator stopped it (final; a redelivery may send it again).
    Cancelled,
}

impl DeliveryState {
    /// Whether no further change will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryState::Succeeded
                | DeliveryState::Failed
                | DeliveryState::Skipped
                | DeliveryState::Cancelled
        )
    }

    /// Every state, in the API's order.
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Queued,
        DeliveryState::Retrying,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Skipped,
        DeliveryState::Cancelled,
    ];

    /// The state's API name, e.g. "RETRYING".
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "QUEUED",
            DeliveryState::Retrying => "RETRYING",
            DeliveryState::Succeeded => "SUCCEEDED",
            DeliveryState::Failed => "FAILED",
            DeliveryState::Skipped => "SKIPPED",
            DeliveryState::Cancelled => "CANCELLED",
        }
    }

    /// A state by its API name, case-insensitive (`failed` or `FAILED`).
    pub fn parse(name: &str) -> Option<DeliveryState> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// The rendered parts of a request (auth, signing and custom headers are added at send time
/// from the webhook's current settings, so its secrets are not copied into deliveries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedRequest {
    /// HTTP method.
    pub method: String,
    /// Target URL.
    pub url: String,
    /// Headers from the `headers` template.
    pub headers: Vec<(String, String)>,
    /// Body, if the method carries one.
    pub body: Option<String>,
    /// W3C `traceparent` of the emit: each attempt's request continues this trace (with a
    /// span id of its own). Absent in deliveries stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A template that failed to render for a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderError {
    /// Which template failed, as OnCall labels it: "URL", "Headers", "Data", "Trigger".
    pub template: String,
    /// The error text.
    pub message: String,
}

impl RenderError {
    /// OnCall's wording, e.g. "Data - Template Warning: Object of type Undefined is not JSON serializable".
    pub fn describe(&self) -> String {
        format!("{} - Template Warning: {}", self.template, self.message)
    }
}

/// One event to one target of one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Store id.
    pub id: u64,
    /// Event delivered.
    pub event_id: u64,
    /// Webhook delivering it.
    pub webhook_id: u64,
    /// Target URL (rendered, or the template when rendering failed).
    pub url: String,
    /// Current state.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (ms since the epoch), for QUEUED/RETRYING.
    pub next_attempt_ms: i64,
    /// Rendered trigger_template ("" without one).
    pub request_trigger: String,
    /// The request to send; None when rendering failed or the delivery was skipped.
    pub request: Option<RenderedRequest>,
    /// Why rendering failed (recorded as the first attempt, OnCall style).
    pub render_error: Option<RenderError>,
    /// Status of the last attempt.
    pub last_status_code: Option<u16>,
    /// Error of the last attempt or the skip reason.
    pub last_error: String,
    /// Owning account (the event's; absent in deliveries stored before it was kept).
    #[serde(default)]
    pub account_id: String,
    /// Creation time, ms since the epoch (the event's, or the redelivery's).
    #[serde(default)]
    pub created_at_ms: i64,
    /// Time of the last change of state, ms since the epoch.
    #[serde(default)]
    pub updated_at_ms: i64,
    /// It delivers an operational event (see `Event::operational`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operational: bool,
    /// The emit's ordering key: deliveries of one webhook with the same key and target URL
    /// are attempted one at a time, in emit order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<Ordering>,
}

impl Delivery {
    /// A delivery of `event_id` by `webhook_id` to `url`, QUEUED and due at `now_ms`: nothing
    /// rendered, attempted or ordered yet.
    pub fn queued(
        id: u64,
        event_id: u64,
        webhook_id: u64,
        url: String,
        account_id: String,
        now_ms: i64,
    ) -> Delivery {
        Delivery {
            id,
            event_id,
            webhook_id,
            url,
            state: DeliveryState::Queued,
            attempts: 0,
            next_attempt_ms: now_ms,
            request_trigger: String::new(),
            request: None,
            render_error: None,
            last_status_code: None,
            last_error: String::new(),
            account_id,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            operational: false,
            ordering: None,
        }
    }
}

/// The ordering key of a delivery and the queue it waits in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordering {
    /// The caller's key.
    pub key: String,
    /// The queue within the webhook: hex SHA-256 (first 16 bytes) of the target URL with its
    /// credentials masked, a zero byte and the key. Computed in clear before the sealing
    /// layer seals URL credentials, so every backend sees the same queue for one target.
    pub queue: String,
}

impl Ordering {
    /// The ordering of a delivery to `url` under `key`.
    pub fn new(key: &str, url: &str) -> Ordering {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(crate::userinfo::mask(url).as_bytes());
        hash.update([0]);
        hash.update(key.as_bytes());
        let queue = hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ordering {
            key: key.to_string(),
            queue,
        }
    }
}

/// One recorded attempt (OnCall's `responses` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// Attempt time, ms since the epoch.
    pub timestamp_ms: i64,
    /// Target URL.
    pub url: String,
    /// Rendered trigger_template.
    pub request_trigger: String,
    /// JSON object of the sent headers, secrets masked; None when nothing was sent.
    pub request_headers: Option<String>,
    /// Sent body, or the template error.
    pub request_data: Option<String>,
    /// HTTP status received.
    pub status_code: Option<u16>,
    /// Response body (truncated).
    pub content: Option<String>,
    /// Event delivered.
    pub event_id: u64,
    /// Attempt number from 1.
    pub attempt: u32,
    /// Delivery the attempt belongs to.
    pub delivery_id: u64,
    /// Attempt duration.
    pub duration_ms: u64,
    /// Failure reason ("" on success).
    pub error: String,
}

impl ResponseRecord {
    /// The record without the body it sent, when that body is `delivery`'s rendered body (a
    /// store then keeps it once, with the delivery, and reads it back from there); None when
    /// it sent something else (a template error text) or nothing.
    pub fn without_the_body_of(&self, delivery: &Delivery) -> Option<ResponseRecord> {
        let body = delivery.request.as_ref().and_then(|r| r.body.as_ref());
        (body.is_some() && self.request_data.as_ref() == body).then(|| ResponseRecord {
            request_data: None,
            ..self.clone()
        })
    }
}

/// A scope of an account token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// get/list/list responses.
    #[serde(rename = "webhooks:read")]
    Read,
    /// create/update/delete/emit.
    #[serde(rename = "webhooks:write")]
    Write,
}

impl Scope {
    /// Parses `webhooks:read` / `webhooks:write`.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "webhooks:read" => Some(Scope::Read),
            "webhooks:write" => Some(Scope::Write),
            _ => None,
        }
    }

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "webhooks:read",
            Scope::Write => "webhooks:write",
        }
    }
}

/// An account token as stored (the token itself is only kept as a hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Store id.
    pub id: u64,
    /// Account the token acts for.
    pub account_id: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
}

/// A change of a delivery, published to status streams.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    /// Event.
    pub event_id: u64,
    /// Webhook.
    pub webhook_id: u64,
    /// Delivery.
    pub delivery_id: u64,
    /// Target URL.
    pub url: String,
    /// New state.
    pub state: DeliveryState,
    /// Attempt reported (0 for QUEUED/SKIPPED).
    pub attempt: u32,
    /// HTTP status of the attempt.
    pub status_code: Option<u16>,
    /// Failure or skip reason.
    pub error: String,
    /// Next attempt time for RETRYING.
    pub next_attempt_ms: Option<i64>,
}

impl DeliveryUpdate {
    /// The update describing a delivery's current state.
    pub fn of(delivery: &Delivery) -> DeliveryUpdate {
        DeliveryUpdate {
            event_id: delivery.event_id,
            webhook_id: delivery.webhook_id,
            delivery_id: delivery.id,
            url: delivery.url.clone(),
            state: delivery.state,
            attempt: delivery.attempts,
            status_code: delivery.last_status_code,
            error: delivery.last_error.clone(),
            next_attempt_ms: (delivery.state == DeliveryState::Retrying)
                .then_some(delivery.next_attempt_ms),
        }
    }
}

/// A declared event type of an account's catalog: its name (what emits give as
/// `event_type`), a description, and an optional JSON Schema the data of its emits must meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventType {
    /// Owning account.
    pub account_id: String,
    /// Unique within the account; the trigger type emits name.
    pub name: String,
    /// Free text for people.
    pub description: String,
    /// JSON Schema of the event data; None = any data.
    pub json_schema: Option<serde_json::Value>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// Last change, ms since the epoch.
    pub updated_at_ms: i64,
    /// A new unique number at every write (compiled schemas are cached by it).
    pub revision: u64,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn engine_names_round_trip() {
        assert_eq!(Engine::parse(""), Some(Engine::Jinja));
        assert_eq!(Engine::parse("jinja"), Some(Engine::Jinja));
        assert_eq!(Engine::parse("handlebars"), Some(Engine::Handlebars));
        assert_eq!(Engine::parse("mustache"), None);
        for engine in [Engine::Jinja, Engine::Handlebars] {
            assert_eq!(Engine::parse(engine.as_str()), Some(engine));
            let json = serde_json::to_string(&engine).unwrap();
            assert_eq!(json, format!("\"{}\"", engine.as_str()));
            assert_eq!(serde_json::from_str::<Engine>(&json).unwrap(), engine);
        }
        assert_eq!(Engine::default(), Engine::Jinja);
    }

    #[test]
    fn parses_and_names_every_type() {
        for kind in DestinationType::ALL {
            assert_eq!(DestinationType::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                json!(kind.as_str()),
                "serde name of {kind:?}"
            );
            let back: DestinationType = serde_json::from_value(json!(kind.as_str())).unwrap();
            assert_eq!(back, kind);
        }
        assert_eq!(DestinationType::parse(""), Some(DestinationType::Generic));
        assert_eq!(
            DestinationType::parse(" Slack "),
            Some(DestinationType::Slack)
        );
        assert_eq!(DestinationType::parse("teams"), None);
        assert_eq!(DestinationType::default(), DestinationType::Generic);
    }
}
