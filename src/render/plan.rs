//! Turns a matched webhook and an event into what to deliver: the skip decision (filters,
//! trigger_template) or one rendered request per target URL. Rendering follows OnCall: the
//! url and trigger_template see the event data as is; data and headers see it with string
//! values JSON-escaped so a JSON template stays valid; forward_all sends the whole event;
//! only POST/PUT/PATCH carry a body. A template error becomes that target's `RenderError`.

use std::cell::OnceCell;

use serde_json::Value;

use super::formatters::format_body;
use super::matcher;
use super::templates::{Templates, escape_strings, is_plain, is_truthy};
use crate::model::{DestinationType, RenderError, RenderedRequest, Webhook};

/// An event as the renderer sees it, with the derived forms computed once per event (not
/// once per webhook): the escaped context (on demand) and the JSON text.
pub struct EventView<'a> {
    event_type: &'a str,
    data: &'a Value,
    escaped: OnceCell<Value>,
    json: String,
}

impl<'a> EventView<'a> {
    /// A view of an event of `event_type` with OnCall event_data `data`, whose JSON text
    /// (`data.to_string()`) the caller already has.
    pub fn new(event_type: &'a str, data: &'a Value, json: String) -> EventView<'a> {
        EventView {
            event_type,
            data,
            escaped: OnceCell::new(),
            json,
        }
    }

    fn escaped(&self) -> &Value {
        self.escaped.get_or_init(|| escape_strings(self.data))
    }

    fn json(&self) -> &str {
        &self.json
    }
}

/// What an event means for one matched webhook.
#[derive(Debug)]
pub enum Plan {
    /// Filters or trigger_template said no.
    Skip(String),
    /// Deliver to every target.
    Deliver {
        /// The rendered trigger_template ("" without one).
        request_trigger: String,
        /// One entry per target URL.
        targets: Vec<Target>,
    },
}

/// One target of a delivery plan.
#[derive(Debug)]
pub struct Target {
    /// The rendered URL (the template itself when it failed).
    pub url: String,
    /// The request, or why it could not be rendered.
    pub request: Result<RenderedRequest, RenderError>,
}

fn carries_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

fn render_error(template: &str, message: String) -> RenderError {
    RenderError {
        template: template.to_string(),
        message,
    }
}

/// True when planning an event for `webhook` renders no template and runs no filter: its
/// url(s), trigger_template, headers and data are plain text or absent, so its plan is a few
/// copies of text and needs no render thread.
pub fn is_plain_webhook(webhook: &Webhook) -> bool {
    let engine = webhook.template_engine;
    let plain = |source: &Option<String>| source.as_deref().is_none_or(|s| is_plain(engine, s));
    webhook.filters.is_none()
        && plain(&webhook.trigger_template)
        && plain(&webhook.headers)
        && (webhook.forward_all || plain(&webhook.data))
        && webhook.targets().all(|url| is_plain(engine, url))
}

/// Plans the delivery of an event (`data` is the OnCall event_data) to `webhook`.
pub fn plan(templates: &Templates, webhook: &Webhook, event: &EventView<'_>) -> Plan {
    let data = event.data;
    if let Some(filters) = &webhook.filters
        && !matcher::filters_match(filters, data)
    {
        return Plan::Skip("the webhook's filters did not match the event".into());
    }
    let engine = webhook.template_engine;
    let limits = *templates.limits();
    let mut request_trigger = String::new();
    let mut trigger_error = None;
    if let Some(source) = &webhook.trigger_template {
        match templates.render(engine, source, data, limits.body_bytes) {
            Ok(rendered) if is_truthy(&rendered) => request_trigger = rendered,
            Ok(rendered) => {
                return Plan::Skip(format!(
                    "trigger_template rendered {:?}, not true",
                    rendered.trim()
                ));
            }
            Err(e) => trigger_error = Some(render_error("Trigger", e.message)),
        }
    }
    // A failed trigger fails every target; the other templates are not rendered then.
    let parts = match trigger_error {
        Some(e) => Err(e),
        None => render_headers(templates, webhook, event)
            .and_then(|headers| Ok((headers, render_body(templates, webhook, event)?))),
    };
    let targets = webhook
        .targets()
        .map(|url_template| {
            let request = parts.clone().and_then(|(headers, body)| {
                let url = templates
                    .render(engine, url_template, data, limits.url_bytes)
                    .map_err(|e| render_error("URL", e.message))?;
                Ok(RenderedRequest {
                    method: webhook.http_method.clone(),
                    url: url.trim().to_string(),
                    headers,
                    body,
                    traceparent: None,
                })
            });
            let url = match &request {
                Ok(r) => r.url.clone(),
                Err(_) => url_template.clone(),
            };
            Target { url, request }
        })
        .collect();
    Plan::Deliver {
        request_trigger,
        targets,
    }
}

fn render_headers(
    templates: &Templates,
    webhook: &Webhook,
    event: &EventView<'_>,
) -> Result<Vec<(String, String)>, RenderError> {
    let mut headers = Vec::new();
    if let Some(source) = &webhook.headers {
        let rendered = templates
            .render(
                webhook.template_engine,
                source,
                event.escaped(),
                templates.limits().headers_bytes,
            )
            .map_err(|e| render_error("Headers", e.message))?;
        let object: serde_json::Map<String, Value> = serde_json::from_str(&rendered)
            .map_err(|_| render_error("Headers", "headers must render to a JSON object".into()))?;
        for (name, value) in object {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            headers.push((name, value));
        }
    }
    Ok(headers)
}

fn render_body(
    templates: &Templates,
    webhook: &Webhook,
    event: &EventView<'_>,
) -> Result<Option<String>, RenderError> {
    if !carries_body(&webhook.http_method) {
        return Ok(None);
    }
    if !webhook.forward_all
        && let Some(source) = &webhook.data
    {
        let rendered = templates
            .render(
                webhook.template_engine,
                source,
                event.escaped(),
                templates.limits().body_bytes,
            )
            .map_err(|e| render_error("Data", e.message))?;
        return Ok(Some(rendered));
    }
    if webhook.destination_type != DestinationType::Generic {
        let body = format_body(
            webhook.destination_type,
            event.event_type,
            event.data,
            &webhook.name,
        );
        return Ok(Some(body.to_string()));
    }
    Ok(webhook.forward_all.then(|| event.json().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Engine, FilterGroup};

    fn forward_all() -> Webhook {
        Webhook {
            url: "https://example.com/hook".into(),
            http_method: "POST".into(),
            forward_all: true,
            ..Webhook::default()
        }
    }

    #[test]
    fn only_a_webhook_without_templates_or_filters_is_plain() {
        let plain = forward_all();
        assert!(is_plain_webhook(&plain));
        let cases: Vec<(&str, Webhook)> = vec![
            (
                "templated url",
                Webhook {
                    url: "https://example.com/{{ alert_group.id }}".into(),
                    ..forward_all()
                },
            ),
            (
                "templated extra url",
                Webhook {
                    urls: vec!["https://example.com/{% if true %}x{% endif %}".into()],
                    ..forward_all()
                },
            ),
            (
                "trigger template",
                Webhook {
                    trigger_template: Some("{{ true }}".into()),
                    ..forward_all()
                },
            ),
            (
                "headers template",
                Webhook {
                    headers: Some(r#"{"x": "{{ event.type }}"}"#.into()),
                    ..forward_all()
                },
            ),
            (
                "data template",
                Webhook {
                    forward_all: false,
                    data: Some("{{ event | tojson }}".into()),
                    ..forward_all()
                },
            ),
            (
                "handlebars url",
                Webhook {
                    template_engine: Engine::Handlebars,
                    url: "https://example.com/{{id}}".into(),
                    ..forward_all()
                },
            ),
            (
                "filters",
                Webhook {
                    filters: Some(FilterGroup::default()),
                    ..forward_all()
                },
            ),
        ];
        for (what, webhook) in cases {
            assert!(!is_plain_webhook(&webhook), "{what}");
        }
        // Text that only looks like another engine's syntax is plain for its own.
        let jinja_looking = Webhook {
            template_engine: Engine::Handlebars,
            url: "https://example.com/{% raw %}".into(),
            headers: Some(r#"{"a": "b"}"#.into()),
            forward_all: false,
            data: Some(r#"{"text": "plain"}"#.into()),
            ..forward_all()
        };
        assert!(is_plain_webhook(&jinja_looking));
    }
}
