//! Builds the HTTP request of one attempt from a delivery's rendered parts and the
//! webhook's current credentials: identity headers, Standard Webhooks signature,
//! Cloudflare's `cf-webhook-auth`, custom headers, OnCall's Authorization and basic auth
//! (also from credentials in the URL, which never reach the request line). Also produces the
//! masked copy of the headers that the response log shows (custom header values included:
//! the log is stored, and they are sealed at rest).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use super::client::OutgoingRequest;
use super::signing;
use super::tls::TlsSettings;
use crate::ids::{self, Kind};
use crate::model::{Delivery, RenderedRequest, SECRET_PLACEHOLDER, Webhook};
use crate::userinfo;

/// `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("webhookd/", env!("CARGO_PKG_VERSION"));

/// The request to send and the JSON of its headers with secrets masked.
pub struct PreparedRequest {
    /// What goes on the wire.
    pub outgoing: OutgoingRequest,
    /// JSON object of the headers, secrets shown as the placeholder.
    pub logged_headers: String,
}

/// Whether a header's value is a credential that the log must mask (its name contains one
/// of these words, in any case).
fn is_secret_header(name: &str) -> bool {
    [
        "authorization",
        "cf-webhook-auth",
        "cookie",
        "token",
        "secret",
        "api-key",
        "apikey",
    ]
    .iter()
    .any(|word| {
        name.as_bytes()
            .windows(word.len())
            .any(|part| part.eq_ignore_ascii_case(word.as_bytes()))
    })
}

/// Assembles the attempt's request at `now_secs`.
pub fn prepare(
    webhook: &Webhook,
    delivery: &Delivery,
    rendered: &RenderedRequest,
    now_secs: i64,
) -> PreparedRequest {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(rendered.headers.len() + 8);
    let delivery_id = ids::format(Kind::Delivery, delivery.id);
    headers.push(("User-Agent".into(), USER_AGENT.into()));
    if let Some(body) = &rendered.body {
        let is_json = serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok();
        let content_type = if is_json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        headers.push(("Content-Type".into(), content_type.into()));
    }
    headers.push(("webhook-id".into(), delivery_id.clone()));
    headers.push(("webhook-timestamp".into(), now_secs.to_string()));
    headers.push((
        "X-Webhookd-Event-Id".into(),
        ids::format(Kind::Event, delivery.event_id),
    ));
    headers.push((
        "X-Webhookd-Webhook-Id".into(),
        ids::format(Kind::Webhook, webhook.id),
    ));
    let body = rendered.body.as_deref().unwrap_or_default();
    let signatures: Vec<String> = webhook
        .signing_secrets
        .iter()
        .filter(|s| s.expires_at_ms.is_none_or(|at| at > now_secs * 1000))
        .filter_map(|s| signing::sign(&s.secret, &delivery_id, now_secs, body.as_bytes()).ok())
        .collect();
    if !signatures.is_empty() {
        headers.push(("webhook-signature".into(), signatures.join(" ")));
    }
    if let Some(secret) = &webhook.secret {
        headers.push(("cf-webhook-auth".into(), secret.clone()));
    }
    // The `headers` template's first, then the custom headers (a name already set wins).
    let given = rendered.headers.iter().map(|(n, v)| (n, v));
    for (name, value) in given.chain(&webhook.custom_headers) {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            headers.push((name.clone(), value.clone()));
        }
    }
    // Credentials in the URL never go on the request line; they are basic auth unless the
    // webhook sets its own authorization.
    let (url, url_credentials) = userinfo::split(&rendered.url);
    let basic = |user: &str, password: &str| {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    };
    let authorization = match (
        &webhook.authorization_header,
        &webhook.username,
        &webhook.password,
    ) {
        (Some(authorization), _, _) => Some(authorization.clone()),
        (None, Some(user), Some(password)) => Some(basic(user, password)),
        _ => url_credentials
            .filter(|_| {
                !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            })
            .map(|(user, password)| basic(&user, &password)),
    };
    if let Some(authorization) = authorization {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        headers.push(("Authorization".into(), authorization));
    }
    // By name, as a JSON object's keys are kept.
    let logged: BTreeMap<&str, &str> = headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_secret_header(name) || webhook.custom_headers.contains_key(name) {
                SECRET_PLACEHOLDER
            } else {
                value
            };
            (name.as_str(), shown)
        })
        .collect();
    let logged_headers =
        serde_json::to_string(&logged).expect("a map of strings serializes to JSON");
    PreparedRequest {
        outgoing: OutgoingRequest {
            method: rendered.method.clone(),
            url,
            headers,
            body: rendered.body.clone().map(Bytes::from),
            tls: TlsSettings::of(webhook),
        },
        logged_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SigningSecret;

    fn webhook() -> Webhook {
        serde_json::from_value(serde_json::json!({
            "id": 1, "account_id": "acme", "name": "n", "is_webhook_enabled": true, "team": null,
            "data": null, "username": "bob", "password": "hunter2", "authorization_header": null,
            "trigger_template": null, "headers": null, "url": "http://x", "forward_all": true,
            "http_method": "POST", "trigger_types": [], "integration_filter": [], "description": "",
            "urls": [], "filters": null, "destination_type": "generic", "secret": "cf-secret",
            "signing_secrets": [], "retry_schedule_ms": null, "max_attempts": 0,
            "template_engine": "jinja", "custom_headers": {"X-Custom": "cust0m", "X-Team": "ops"},
            "created_at_ms": 0, "disabled_reason": ""
        }))
        .unwrap()
    }

    fn delivery() -> Delivery {
        Delivery::queued(5, 4, 1, "http://x".into(), String::new(), 0)
    }

    fn rendered() -> RenderedRequest {
        RenderedRequest {
            method: "POST".into(),
            url: "http://x".into(),
            headers: vec![
                ("X-Api-Key".into(), "k3y".into()),
                ("X-Team".into(), "sre".into()),
            ],
            body: Some(r#"{"a":1}"#.into()),
            traceparent: None,
        }
    }

    fn header<'a>(request: &'a PreparedRequest, name: &str) -> Option<&'a str> {
        let headers = &request.outgoing.headers;
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn credentials_go_on_the_wire_but_never_into_the_log() {
        let prepared = prepare(&webhook(), &delivery(), &rendered(), 1_700_000_000);
        assert_eq!(
            header(&prepared, "authorization"),
            Some("Basic Ym9iOmh1bnRlcjI=")
        );
        assert_eq!(header(&prepared, "cf-webhook-auth"), Some("cf-secret"));
        assert_eq!(header(&prepared, "content-type"), Some("application/json"));
        assert_eq!(header(&prepared, "webhook-id"), Some("D0000000000005"));
        assert_eq!(
            header(&prepared, "x-team"),
            Some("sre"),
            "the template wins"
        );
        assert_eq!(header(&prepared, "x-custom"), Some("cust0m"));
        for secret in ["hunter2", "Ym9iOmh1bnRlcjI=", "cf-secret", "k3y", "cust0m"] {
            assert!(!prepared.logged_headers.contains(secret), "{secret} leaked");
        }
        assert!(
            prepared
                .logged_headers
                .contains("\"X-Webhookd-Webhook-Id\":\"W")
        );
    }

    #[test]
    fn current_and_unexpired_rotated_secrets_both_sign() {
        let mut hook = webhook();
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_string();
        hook.signing_secrets = vec![
            SigningSecret {
                secret: secret.clone(),
                expires_at_ms: None,
            },
            SigningSecret {
                secret: secret.clone(),
                expires_at_ms: Some(2_000_000_000_000),
            },
            SigningSecret {
                secret,
                expires_at_ms: Some(1_000),
            },
        ];
        let prepared = prepare(&hook, &delivery(), &rendered(), 1_700_000_000);
        let signatures = header(&prepared, "webhook-signature").unwrap();
        assert_eq!(signatures.split(' ').count(), 2);
        assert!(signatures.starts_with("v1,"));
    }
}
