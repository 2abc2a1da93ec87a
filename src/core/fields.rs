//! The webhook field table: the one description of every field a client may set. It
//! defines `WebhookPatch` and how each field is set on a webhook; the gRPC conversion and
//! the REST dialects' parsers expand the same table (`webhook_fields!`), so a field is
//! described once.
//!
//! A row is `field: Value => dialects;`:
//! - `field` is the name in the proto `Webhook`, in update masks and in error details;
//! - `Value` is what a client gives; the patch holds `Option<Value>` (None = not given); for
//!   a nullable field (`Option<String>`) a given None clears it;
//! - the dialects are the REST APIs that carry the field: `oncall` (OnCall's webhooks and
//!   legacy actions, same name) and `cloudflare` (`cloudflare("type")` when its name differs).
//!
//! Each field has a setter in `set`, named after it, that changes the webhook or says why
//! the value is invalid. Fields are set in table order (errors come in that order); checks
//! across fields (templates against the engine, blank name or url) come after, in
//! `core::webhooks`. Adding a field: a row and its setter here, the model field, the proto
//! field, and its output in `grpc::convert::webhook_to_pb` (and in a dialect's output shape
//! when the dialect has it); a secret also gets sealed in `store::secrets`. Depends on the
//! model and on `delivery::{retry, signing}`.

use crate::error::FieldViolation;
use crate::model::Webhook;

/// Expands `$then! { rows }` with the table's rows (see the module header).
macro_rules! webhook_fields {
    ($then:ident) => {
        $then! {
            // First: the engine the other fields' templates are checked with.
            template_engine: String;
            name: String => oncall, cloudflare;
            is_webhook_enabled: bool => oncall;
            team: Option<String> => oncall;
            data: Option<String> => oncall;
            username: Option<String> => oncall;
            password: Option<String> => oncall;
            authorization_header: Option<String> => oncall;
            secret: Option<String> => cloudflare;
            trigger_template: Option<String> => oncall;
            headers: Option<String> => oncall;
            url: String => oncall, cloudflare;
            forward_all: bool => oncall;
            http_method: String => oncall;
            // OnCall's single `trigger_type` is the first of these (each transport maps it).
            trigger_types: Vec<String>;
            integration_filter: Vec<String> => oncall;
            schedule_filter: Vec<String> => oncall;
            description: String;
            urls: Vec<String>;
            filters: Option<crate::model::FilterGroup>;
            destination_type: String => cloudflare("type");
            signing_secret: Option<String>;
            retry_schedule: Vec<String>;
            max_attempts: u32;
            custom_headers: std::collections::BTreeMap<String, String>;
            client_certificate: Option<String>;
            client_key: Option<String>;
            ca_certificates: Vec<String>;
            rate_limit_per_second: u32;
            rate_limit_burst: u32;
        }
    };
}
pub(crate) use webhook_fields;

/// Defines `WebhookPatch` and its field-by-field application from the table.
macro_rules! define_patch {
    ($($field:ident: $value:ty $(=> $($dialect:ident $(($alias:literal))?),+)?;)*) => {
        /// Fields to set on create or change on update, one per row of the field table;
        /// `None` = not given. For nullable fields, `Some(None)` clears the value.
        #[derive(Debug, Clone, Default)]
        pub struct WebhookPatch {
            $(pub $field: Option<$value>,)*
        }

        impl WebhookPatch {
            /// Sets every given field in table order; one violation per invalid field.
            pub(crate) fn set_fields(self, webhook: &mut Webhook) -> Vec<FieldViolation> {
                let mut violations = Vec::new();
                $(
                    if let Some(value) = self.$field {
                        if let Err(e) = set::$field(webhook, value) {
                            violations.push(FieldViolation::new(stringify!($field), e));
                        }
                    }
                )*
                violations
            }
        }
    };
}
webhook_fields!(define_patch);

/// The setters, one per field: set the value or say why it is invalid.
mod set {
    use std::collections::BTreeMap;

    use crate::delivery::{retry, signing};
    use crate::model::{DestinationType, Engine, FilterGroup, SECRET_PLACEHOLDER, Webhook};
    use crate::userinfo;

    /// What a setter returns: Err(message) names what is wrong with the value.
    type Set = Result<(), String>;

    /// Empty strings of nullable template fields are stored as null (OnCall).
    fn blank_to_none(value: Option<String>) -> Option<String> {
        value.filter(|v| !v.trim().is_empty())
    }

    /// A write-only field: the placeholder keeps the stored value.
    pub(super) fn secret_field(current: &mut Option<String>, given: Option<String>) {
        if given.as_deref() != Some(SECRET_PLACEHOLDER) {
            *current = blank_to_none(given);
        }
    }

    pub fn template_engine(w: &mut Webhook, v: String) -> Set {
        w.template_engine = Engine::parse(&v)
            .ok_or_else(|| format!("\"{v}\" is not a valid choice; use jinja or handlebars."))?;
        Ok(())
    }

    pub fn name(w: &mut Webhook, v: String) -> Set {
        w.name = v.trim().to_string();
        Ok(())
    }

    pub fn is_webhook_enabled(w: &mut Webhook, v: bool) -> Set {
        w.is_webhook_enabled = v;
        Ok(())
    }

    pub fn team(w: &mut Webhook, v: Option<String>) -> Set {
        w.team = v;
        Ok(())
    }

    pub fn data(w: &mut Webhook, v: Option<String>) -> Set {
        w.data = blank_to_none(v);
        Ok(())
    }

    pub fn username(w: &mut Webhook, v: Option<String>) -> Set {
        w.username = blank_to_none(v);
        Ok(())
    }

    pub fn password(w: &mut Webhook, v: Option<String>) -> Set {
        secret_field(&mut w.password, v);
        Ok(())
    }

    pub fn authorization_header(w: &mut Webhook, v: Option<String>) -> Set {
        secret_field(&mut w.authorization_header, v);
        Ok(())
    }

    pub fn secret(w: &mut Webhook, v: Option<String>) -> Set {
        secret_field(&mut w.secret, v);
        Ok(())
    }

    pub fn trigger_template(w: &mut Webhook, v: Option<String>) -> Set {
        w.trigger_template = blank_to_none(v);
        Ok(())
    }

    pub fn headers(w: &mut Webhook, v: Option<String>) -> Set {
        w.headers = blank_to_none(v);
        Ok(())
    }

    /// A masked URL (`user:****@host`) keeps the stored credentials.
    pub fn url(w: &mut Webhook, v: String) -> Set {
        w.url = userinfo::unmask(v.trim().to_string(), [&w.url]);
        Ok(())
    }

    pub fn forward_all(w: &mut Webhook, v: bool) -> Set {
        w.forward_all = v;
        Ok(())
    }

    pub fn http_method(w: &mut Webhook, v: String) -> Set {
        w.http_method = v;
        Ok(())
    }

    pub fn trigger_types(w: &mut Webhook, v: Vec<String>) -> Set {
        w.trigger_types = v;
        Ok(())
    }

    pub fn integration_filter(w: &mut Webhook, v: Vec<String>) -> Set {
        w.integration_filter = v;
        Ok(())
    }

    pub fn schedule_filter(w: &mut Webhook, v: Vec<String>) -> Set {
        w.schedule_filter = v;
        Ok(())
    }

    pub fn description(w: &mut Webhook, v: String) -> Set {
        w.description = v;
        Ok(())
    }

    /// Masked URLs keep the stored credentials of the URL they came from.
    pub fn urls(w: &mut Webhook, v: Vec<String>) -> Set {
        let stored = std::mem::take(&mut w.urls);
        w.urls = v
            .into_iter()
            .map(|given| userinfo::unmask(given.trim().to_string(), &stored))
            .collect();
        Ok(())
    }

    pub fn filters(w: &mut Webhook, v: Option<FilterGroup>) -> Set {
        w.filters = v;
        Ok(())
    }

    pub fn destination_type(w: &mut Webhook, v: String) -> Set {
        w.destination_type = DestinationType::parse(&v).ok_or_else(|| {
            format!(
                "\"{v}\" is not a valid choice; use one of generic, slack, discord, gchat, feishu, datadog, opsgenie, splunk."
            )
        })?;
        Ok(())
    }

    /// The placeholder keeps the secrets, a generate keyword makes a new one, a key replaces
    /// every secret (rotated-out ones too), blank or null removes them.
    pub fn signing_secret(w: &mut Webhook, v: Option<String>) -> Set {
        match v {
            Some(v) if v == SECRET_PLACEHOLDER => {}
            Some(v) if !v.trim().is_empty() => {
                let secret = signing::given_or_generated(&v)?;
                w.signing_secrets = vec![crate::model::SigningSecret {
                    secret,
                    expires_at_ms: None,
                }];
            }
            _ => w.signing_secrets.clear(),
        }
        Ok(())
    }

    /// Empty = the server's schedule.
    pub fn retry_schedule(w: &mut Webhook, v: Vec<String>) -> Set {
        w.retry_schedule_ms = if v.is_empty() {
            None
        } else {
            let delays = retry::parse_schedule(&v.join(","))?;
            // Within u64: parse_schedule bounds each delay to a week.
            Some(
                delays
                    .iter()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    .collect(),
            )
        };
        Ok(())
    }

    pub fn max_attempts(w: &mut Webhook, v: u32) -> Set {
        w.max_attempts = v;
        if v > 100 {
            return Err("Ensure this value is less than or equal to 100.".into());
        }
        Ok(())
    }

    pub fn custom_headers(w: &mut Webhook, v: BTreeMap<String, String>) -> Set {
        let invalid = v.iter().find(|(name, value)| {
            hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || hyper::header::HeaderValue::from_str(value).is_err()
        });
        if let Some((name, _)) = invalid {
            return Err(format!("{name:?} is not a valid HTTP header"));
        }
        w.custom_headers = v;
        Ok(())
    }

    pub fn client_certificate(w: &mut Webhook, v: Option<String>) -> Set {
        secret_field(&mut w.client_certificate, v);
        Ok(())
    }

    pub fn client_key(w: &mut Webhook, v: Option<String>) -> Set {
        secret_field(&mut w.client_key, v);
        Ok(())
    }

    /// Blank entries are dropped; the PEM is checked with the other TLS settings.
    pub fn ca_certificates(w: &mut Webhook, v: Vec<String>) -> Set {
        w.ca_certificates = v.into_iter().filter(|pem| !pem.trim().is_empty()).collect();
        Ok(())
    }

    /// 0 = unlimited.
    pub fn rate_limit_per_second(w: &mut Webhook, v: u32) -> Set {
        w.rate_limit_per_second = at_most_max_rate(v)?;
        Ok(())
    }

    /// 0 = the rate; ignored while the rate is 0.
    pub fn rate_limit_burst(w: &mut Webhook, v: u32) -> Set {
        w.rate_limit_burst = at_most_max_rate(v)?;
        Ok(())
    }

    fn at_most_max_rate(v: u32) -> Result<u32, String> {
        if v > MAX_RATE {
            return Err(format!(
                "Ensure this value is less than or equal to {MAX_RATE}."
            ));
        }
        Ok(v)
    }

    /// The largest rate and burst accepted: far beyond what one endpoint takes, small enough
    /// that a typo (an extra few digits) is refused rather than meaning "unlimited".
    const MAX_RATE: u32 = 10_000;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SECRET_PLACEHOLDER;

    #[test]
    fn the_placeholder_keeps_a_secret_and_null_clears_it() {
        let mut secret = Some("s3cret".to_string());
        set::secret_field(&mut secret, Some(SECRET_PLACEHOLDER.into()));
        assert_eq!(secret.as_deref(), Some("s3cret"));
        set::secret_field(&mut secret, None);
        assert_eq!(secret, None);
    }

    #[test]
    fn fields_are_set_in_table_order_and_each_bad_one_is_reported() {
        let mut webhook = Webhook::default();
        let patch = WebhookPatch {
            name: Some("  hook ".into()),
            template_engine: Some("mustache".into()),
            max_attempts: Some(101),
            rate_limit_burst: Some(10_001),
            destination_type: Some("pager".into()),
            ..WebhookPatch::default()
        };
        let fields: Vec<String> = patch
            .set_fields(&mut webhook)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "template_engine",
                "destination_type",
                "max_attempts",
                "rate_limit_burst"
            ]
        );
        assert_eq!(webhook.name, "hook");
    }
}
