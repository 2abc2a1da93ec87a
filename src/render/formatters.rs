//! Destination formatters (Cloudflare's destination `type`s): the JSON body a chat or
//! monitoring service accepts for an event, and the destination inferred from a URL.
//! Pure functions over `serde_json`; depends only on `model`.

use serde_json::{Value, json};

use crate::model::DestinationType;

/// Inferred from the URL host: hooks.slack.com -> Slack, discord.com/discordapp.com with /api/webhooks -> Discord, chat.googleapis.com -> Gchat, open.feishu.cn / open.larksuite.com -> Feishu, *.datadoghq.com/.eu -> Datadog, api.opsgenie.com / api.eu.opsgenie.com -> Opsgenie, a host with port 8088 or path /services/collector -> Splunk, else Generic.
pub fn infer_destination(url: &str) -> DestinationType {
    let Ok(uri) = url.trim().parse::<hyper::Uri>() else {
        return DestinationType::Generic;
    };
    let Some(host) = uri.host() else {
        return DestinationType::Generic;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let path = uri.path();
    let within = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if host == "hooks.slack.com" {
        DestinationType::Slack
    } else if (within("discord.com") || within("discordapp.com"))
        && path.starts_with("/api/")
        && path.contains("/webhooks/")
    {
        DestinationType::Discord
    } else if host == "chat.googleapis.com" {
        DestinationType::Gchat
    } else if host == "open.feishu.cn" || host == "open.larksuite.com" {
        DestinationType::Feishu
    } else if within("datadoghq.com") || within("datadoghq.eu") {
        DestinationType::Datadog
    } else if host == "api.opsgenie.com" || host == "api.eu.opsgenie.com" {
        DestinationType::Opsgenie
    } else if uri.port_u16() == Some(8088) || path.starts_with("/services/collector") {
        DestinationType::Splunk
    } else {
        DestinationType::Generic
    }
}

/// Slack: a section block's text is at most 3000 characters.
const SLACK_SECTION_MAX: usize = 3000;
/// Discord: message content at most 2000 characters, embed title 256, description 4096.
const DISCORD_CONTENT_MAX: usize = 2000;
const DISCORD_TITLE_MAX: usize = 256;
const DISCORD_DESCRIPTION_MAX: usize = 4096;
/// Google Chat: a message's text is at most 4096 characters.
const GCHAT_TEXT_MAX: usize = 4096;
/// Feishu / Lark: keep text messages well under the 30 KB request limit.
const FEISHU_TEXT_MAX: usize = 4000;
/// Datadog Events API v1: title at most 100 characters, text at most 4000.
const DATADOG_TITLE_MAX: usize = 100;
const DATADOG_TEXT_MAX: usize = 4000;
/// Opsgenie Alert API: message 130, alias 512, description 15000, source 100 characters;
/// at most 20 tags of 50 characters.
const OPSGENIE_MESSAGE_MAX: usize = 130;
const OPSGENIE_ALIAS_MAX: usize = 512;
const OPSGENIE_DESCRIPTION_MAX: usize = 15000;
const OPSGENIE_TAG_MAX: usize = 50;
const OPSGENIE_TAGS_MAX: usize = 20;
/// Datadog tags are at most 200 characters.
const DATADOG_TAG_MAX: usize = 200;

/// The JSON body a destination accepts for an event. `event_type` is the trigger, `event` the OnCall event_data, `webhook_name` the webhook's name. Generic returns `event` unchanged. Slack: {"text", "blocks"} (section mrkdwn); Discord: {"content", "embeds":[{"title","description","color"}]}; Google Chat: {"text", "cardsV2"...} or {"text"}; Feishu: {"msg_type":"text","content":{"text":...}}; Datadog (Events API v1): {"title","text","alert_type","source_type_name":"webhookd","tags":[...]}; Opsgenie (Alert API): {"message" (<=130 chars),"alias","description","priority","source":"webhookd","tags"}; Splunk HEC: {"event": event, "sourcetype":"webhookd", "source": webhook_name, "time": <epoch secs f64>}.
///
/// Google Chat gets `{"text"}`. Every text is cut to the destination's documented limit.
pub fn format_body(
    destination: DestinationType,
    event_type: &str,
    event: &Value,
    webhook_name: &str,
) -> Value {
    let summary = Summary::of(event_type, event);
    match destination {
        DestinationType::Generic => event.clone(),
        DestinationType::Slack => slack(&summary),
        DestinationType::Discord => discord(&summary),
        DestinationType::Gchat => {
            json!({ "text": truncate(&summary.plain_text(), GCHAT_TEXT_MAX) })
        }
        DestinationType::Feishu => json!({
            "msg_type": "text",
            "content": { "text": truncate(&summary.plain_text(), FEISHU_TEXT_MAX) },
        }),
        DestinationType::Datadog => datadog(&summary, webhook_name),
        DestinationType::Opsgenie => opsgenie(&summary, webhook_name),
        DestinationType::Splunk => json!({
            "event": event,
            "sourcetype": "webhookd",
            "source": if webhook_name.is_empty() { "webhookd" } else { webhook_name },
            "time": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |elapsed| elapsed.as_secs_f64()),
        }),
    }
}

/// How an event reads to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Firing,
    Acknowledged,
    Resolved,
    Info,
}

impl Severity {
    /// From the trigger name, else from the alert group's state.
    fn of(event_type: &str, state: Option<&str>) -> Severity {
        let kind = event_type.to_ascii_lowercase();
        if kind.contains("unresolve") || kind.contains("unacknowledge") {
            Severity::Firing
        } else if kind.contains("resolve") {
            Severity::Resolved
        } else if kind.contains("acknowledge") {
            Severity::Acknowledged
        } else if kind.contains("firing") || kind.contains("created") || kind.contains("escalation")
        {
            Severity::Firing
        } else {
            match state {
                Some("firing") => Severity::Firing,
                Some("acknowledged") => Severity::Acknowledged,
                Some("resolved") => Severity::Resolved,
                _ => Severity::Info,
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            Severity::Firing => "Firing",
            Severity::Acknowledged => "Acknowledged",
            Severity::Resolved => "Resolved",
            Severity::Info => "Info",
        }
    }
}

/// The parts of an OnCall event every formatter uses.
struct Summary {
    event_type: String,
    title: String,
    severity: Severity,
    link: Option<String>,
    /// ("Integration", "Grafana Alerting") style facts, in display order.
    details: Vec<(&'static str, String)>,
    alert_group_id: Option<String>,
    integration: Option<String>,
}

impl Summary {
    fn of(event_type: &str, event: &Value) -> Summary {
        let text = |pointer: &str| {
            event
                .pointer(pointer)
                .and_then(|value| match value {
                    Value::String(text) => Some(text.trim().to_owned()),
                    Value::Number(number) => Some(number.to_string()),
                    _ => None,
                })
                .filter(|text| !text.is_empty())
        };
        let event_type = text("/event/type")
            .filter(|_| event_type.trim().is_empty())
            .unwrap_or_else(|| event_type.trim().to_owned());
        let title = text("/alert_group/title")
            .or_else(|| Some(event_type.clone()).filter(|kind| !kind.is_empty()))
            .unwrap_or_else(|| "webhookd event".to_owned());
        let state = text("/alert_group/state");
        let integration = text("/integration/name");
        let mut details = vec![("Event", event_type.clone())];
        let facts = [
            ("Integration", integration.clone()),
            ("State", state.clone()),
            ("Alerts", text("/alert_group/alerts_count")),
            ("User", text("/user/username")),
        ];
        details.extend(
            facts
                .into_iter()
                .filter_map(|(name, value)| value.map(|value| (name, value))),
        );
        Summary {
            severity: Severity::of(&event_type, state.as_deref()),
            event_type,
            title,
            link: text("/alert_group/permalinks/web"),
            details,
            alert_group_id: text("/alert_group/id").or_else(|| text("/alert_group_id")),
            integration,
        }
    }

    /// "[Firing] Instance down"
    fn headline(&self) -> String {
        format!("[{}] {}", self.severity.label(), self.title)
    }

    /// The details as "Name: value" lines.
    fn detail_lines(&self) -> String {
        self.details
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Headline, details and link as plain text.
    fn plain_text(&self) -> String {
        let mut text = format!("{}\n{}", self.headline(), self.detail_lines());
        if let Some(link) = &self.link {
            text.push_str(&format!("\n{link}"));
        }
        text
    }

    /// Key/value tags for monitoring destinations.
    fn tag_pairs(&self, webhook_name: &str) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("source", "webhookd".to_owned()),
            ("event_type", self.event_type.clone()),
            ("status", self.severity.label().to_ascii_lowercase()),
        ];
        if !webhook_name.is_empty() {
            pairs.push(("webhook", webhook_name.to_owned()));
        }
        if let Some(integration) = &self.integration {
            pairs.push(("integration", integration.clone()));
        }
        pairs
    }
}

fn slack(summary: &Summary) -> Value {
    let mut section = format!("*{}*", slack_escape(&summary.headline()));
    for (name, value) in &summary.details {
        section.push_str(&format!("\n*{name}:* {}", slack_escape(value)));
    }
    if let Some(link) = &summary.link {
        section.push_str(&format!("\n<{}|Open alert group>", slack_escape(link)));
    }
    json!({
        "text": summary.headline(),
        "blocks": [{
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&section, SLACK_SECTION_MAX) },
        }],
    })
}

/// Slack mrkdwn control characters (<https://api.slack.com/reference/surfaces/formatting>).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn discord(summary: &Summary) -> Value {
    let color = match summary.severity {
        Severity::Firing => 0xD6_3232,
        Severity::Acknowledged => 0xF2_A900,
        Severity::Resolved => 0x2E_B67D,
        Severity::Info => 0x43_9FE0,
    };
    let mut embed = json!({
        "title": truncate(&summary.headline(), DISCORD_TITLE_MAX),
        "description": truncate(&summary.detail_lines(), DISCORD_DESCRIPTION_MAX),
        "color": color,
    });
    if let Some(link) = &summary.link {
        embed["url"] = json!(link);
    }
    json!({
        "content": truncate(&summary.headline(), DISCORD_CONTENT_MAX),
        "embeds": [embed],
    })
}

fn datadog(summary: &Summary, webhook_name: &str) -> Value {
    let alert_type = match summary.severity {
        Severity::Firing => "error",
        Severity::Acknowledged => "warning",
        Severity::Resolved => "success",
        Severity::Info => "info",
    };
    let mut text = summary.detail_lines();
    if let Some(link) = &summary.link {
        text.push_str(&format!("\n{link}"));
    }
    let tags: Vec<String> = summary
        .tag_pairs(webhook_name)
        .iter()
        .map(|(key, value)| truncate(&datadog_tag(&format!("{key}:{value}")), DATADOG_TAG_MAX))
        .collect();
    let mut body = json!({
        "title": truncate(&summary.headline(), DATADOG_TITLE_MAX),
        "text": truncate(&text, DATADOG_TEXT_MAX),
        "alert_type": alert_type,
        "source_type_name": "webhookd",
        "tags": tags,
    });
    if let Some(id) = &summary.alert_group_id {
        body["aggregation_key"] = json!(truncate(id, DATADOG_TAG_MAX));
    }
    body
}

/// Datadog tag charset: lowercase letters, digits and `_-:./`; anything else becomes `_`.
fn datadog_tag(tag: &str) -> String {
    tag.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-:./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn opsgenie(summary: &Summary, webhook_name: &str) -> Value {
    let priority = match summary.severity {
        Severity::Firing => "P3",
        Severity::Acknowledged => "P4",
        Severity::Resolved | Severity::Info => "P5",
    };
    let mut description = summary.detail_lines();
    if let Some(link) = &summary.link {
        description.push_str(&format!("\n{link}"));
    }
    let tags: Vec<String> = summary
        .tag_pairs(webhook_name)
        .iter()
        .take(OPSGENIE_TAGS_MAX)
        .map(|(key, value)| truncate(&format!("{key}:{value}"), OPSGENIE_TAG_MAX))
        .collect();
    let mut body = json!({
        "message": truncate(&summary.headline(), OPSGENIE_MESSAGE_MAX),
        "description": truncate(&description, OPSGENIE_DESCRIPTION_MAX),
        "priority": priority,
        "source": "webhookd",
        "tags": tags,
    });
    if let Some(id) = &summary.alert_group_id {
        body["alias"] = json!(truncate(&format!("webhookd-{id}"), OPSGENIE_ALIAS_MAX));
    }
    body
}

/// At most `max` characters; a cut text ends with "…".
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OnCall `event_data` as in the outgoing-webhooks reference.
    fn oncall_event(kind: &str, title: &str) -> Value {
        json!({
            "event": { "type": kind, "time": "2023-08-18T16:38:21.442981+00:00" },
            "user": { "id": "UK49JJNPZMFLJ", "username": "oncall", "email": "admin@localhost" },
            "alert_group": {
                "id": "IZQERPWKWCGH1",
                "alerts_count": 1,
                "state": "acknowledged",
                "title": title,
                "permalinks": {
                    "slack": null,
                    "telegram": null,
                    "web": "http://localhost:3000/a/grafana-oncall-app/alert-groups/IZQERPWKWCGH1"
                }
            },
            "alert_group_id": "IZQERPWKWCGH1",
            "integration": { "id": "CRV8A5MXC751A", "type": "alertmanager", "name": "One - Alertmanager", "team": null }
        })
    }

    fn str_at<'a>(body: &'a Value, pointer: &str) -> &'a str {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{pointer} missing in {body}"))
    }

    const WEB: &str = "http://localhost:3000/a/grafana-oncall-app/alert-groups/IZQERPWKWCGH1";

    #[test]
    fn infers_destination_from_url() {
        use DestinationType::*;
        let cases = [
            ("https://hooks.slack.com/services/T000/B000/XXXX", Slack),
            ("https://discord.com/api/webhooks/123/abc", Discord),
            ("https://discordapp.com/api/webhooks/123/abc", Discord),
            ("https://ptb.discord.com/api/v10/webhooks/123/abc", Discord),
            ("https://discord.com/channels/123", Generic),
            (
                "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t",
                Gchat,
            ),
            ("https://open.feishu.cn/open-apis/bot/v2/hook/abc", Feishu),
            (
                "https://open.larksuite.com/open-apis/bot/v2/hook/abc",
                Feishu,
            ),
            ("https://api.datadoghq.com/api/v1/events?api_key=k", Datadog),
            ("https://api.us5.datadoghq.com/api/v1/events", Datadog),
            ("https://api.datadoghq.eu/api/v1/events", Datadog),
            ("https://api.opsgenie.com/v2/alerts", Opsgenie),
            ("https://api.eu.opsgenie.com/v2/alerts", Opsgenie),
            (
                "https://splunk.example.com:8088/services/collector/event",
                Splunk,
            ),
            (
                "https://http-inputs-acme.splunkcloud.com/services/collector",
                Splunk,
            ),
            ("http://10.0.0.5:8088/whatever", Splunk),
            ("https://example.com/hook", Generic),
            ("https://hooks.slack.com.evil.example/services/x", Generic),
            ("https://notdatadoghq.com/api", Generic),
            ("not a url", Generic),
            ("", Generic),
        ];
        for (url, expected) in cases {
            assert_eq!(infer_destination(url), expected, "{url}");
        }
    }

    #[test]
    fn generic_is_the_event_unchanged() {
        let event = oncall_event("acknowledge", "[firing:2] InstanceDown");
        assert_eq!(
            format_body(DestinationType::Generic, "acknowledge", &event, "hook"),
            event
        );
    }

    #[test]
    fn slack_has_fallback_text_and_a_mrkdwn_section() {
        let event = oncall_event("acknowledge", "CPU > 90% & <disk>");
        let body = format_body(DestinationType::Slack, "acknowledge", &event, "hook");
        assert_eq!(str_at(&body, "/text"), "[Acknowledged] CPU > 90% & <disk>");
        assert_eq!(str_at(&body, "/blocks/0/type"), "section");
        assert_eq!(str_at(&body, "/blocks/0/text/type"), "mrkdwn");
        let section = str_at(&body, "/blocks/0/text/text");
        assert!(
            section.contains("CPU &gt; 90% &amp; &lt;disk&gt;"),
            "{section}"
        );
        assert!(
            section.contains(&format!("<{WEB}|Open alert group>")),
            "{section}"
        );
        assert!(
            section.contains("*Integration:* One - Alertmanager"),
            "{section}"
        );
        let long = oncall_event("alert group created", &"x".repeat(10_000));
        let body = format_body(DestinationType::Slack, "", &long, "hook");
        assert!(str_at(&body, "/blocks/0/text/text").chars().count() <= SLACK_SECTION_MAX);
    }

    #[test]
    fn discord_content_and_embed_within_limits() {
        let event = oncall_event("resolve", &"y".repeat(5_000));
        let body = format_body(DestinationType::Discord, "resolve", &event, "hook");
        let content = str_at(&body, "/content");
        assert!(!content.is_empty() && content.chars().count() <= DISCORD_CONTENT_MAX);
        assert!(content.starts_with("[Resolved] "));
        assert!(str_at(&body, "/embeds/0/title").chars().count() <= DISCORD_TITLE_MAX);
        assert!(str_at(&body, "/embeds/0/description").contains("Event: resolve"));
        assert_eq!(body["embeds"][0]["color"], json!(0x2E_B67D));
        assert_eq!(str_at(&body, "/embeds/0/url"), WEB);
        assert_eq!(body["embeds"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn gchat_and_feishu_are_text_messages() {
        let event = oncall_event("acknowledge", "InstanceDown");
        let gchat = format_body(DestinationType::Gchat, "acknowledge", &event, "hook");
        let text = str_at(&gchat, "/text");
        assert!(text.starts_with("[Acknowledged] InstanceDown\n"), "{text}");
        assert!(text.ends_with(WEB));
        assert_eq!(gchat.as_object().unwrap().len(), 1);
        let feishu = format_body(DestinationType::Feishu, "acknowledge", &event, "hook");
        assert_eq!(str_at(&feishu, "/msg_type"), "text");
        assert_eq!(str_at(&feishu, "/content/text"), text);
    }

    #[test]
    fn datadog_event_has_required_fields_within_limits() {
        let event = oncall_event("alert group created", &"z".repeat(300));
        let body = format_body(
            DestinationType::Datadog,
            "alert group created",
            &event,
            "My Hook",
        );
        let title = str_at(&body, "/title");
        assert!(title.starts_with("[Firing] ") && title.chars().count() <= DATADOG_TITLE_MAX);
        assert!(title.ends_with('…'));
        assert!(!str_at(&body, "/text").is_empty());
        assert_eq!(str_at(&body, "/alert_type"), "error");
        assert_eq!(str_at(&body, "/source_type_name"), "webhookd");
        assert_eq!(str_at(&body, "/aggregation_key"), "IZQERPWKWCGH1");
        let tags: Vec<&str> = body["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(tags.contains(&"event_type:alert_group_created"), "{tags:?}");
        assert!(tags.contains(&"webhook:my_hook"), "{tags:?}");
        assert!(tags.contains(&"integration:one_-_alertmanager"), "{tags:?}");
    }

    #[test]
    fn opsgenie_alert_has_required_fields_within_limits() {
        let event = oncall_event("alert group created", &"m".repeat(500));
        let body = format_body(
            DestinationType::Opsgenie,
            "alert group created",
            &event,
            "hook",
        );
        let message = str_at(&body, "/message");
        assert!(!message.is_empty() && message.chars().count() <= OPSGENIE_MESSAGE_MAX);
        assert_eq!(str_at(&body, "/alias"), "webhookd-IZQERPWKWCGH1");
        assert_eq!(str_at(&body, "/priority"), "P3");
        assert_eq!(str_at(&body, "/source"), "webhookd");
        assert!(str_at(&body, "/description").contains(WEB));
        let tags = body["tags"].as_array().unwrap();
        assert!(tags.len() <= OPSGENIE_TAGS_MAX);
        assert!(
            tags.iter()
                .all(|tag| tag.as_str().unwrap().chars().count() <= OPSGENIE_TAG_MAX)
        );
    }

    #[test]
    fn splunk_wraps_the_event_for_hec() {
        let event = oncall_event("resolve", "InstanceDown");
        let body = format_body(DestinationType::Splunk, "resolve", &event, "prod hook");
        assert_eq!(body["event"], event);
        assert_eq!(str_at(&body, "/sourcetype"), "webhookd");
        assert_eq!(str_at(&body, "/source"), "prod hook");
        let time = body["time"].as_f64().unwrap();
        assert!(time > 1.6e9, "{time}");
        let unnamed = format_body(DestinationType::Splunk, "resolve", &event, "");
        assert_eq!(str_at(&unnamed, "/source"), "webhookd");
    }

    #[test]
    fn title_falls_back_to_the_event_type() {
        let bare = json!({ "event": { "type": "escalation" } });
        let body = format_body(DestinationType::Gchat, "", &bare, "hook");
        assert!(str_at(&body, "/text").starts_with("[Firing] escalation\n"));
        let body = format_body(DestinationType::Gchat, "status change", &json!({}), "hook");
        assert!(str_at(&body, "/text").starts_with("[Info] status change\n"));
        let body = format_body(DestinationType::Slack, "", &json!(null), "hook");
        assert_eq!(str_at(&body, "/text"), "[Info] webhookd event");
    }

    #[test]
    fn severity_follows_the_trigger_then_the_state() {
        let cases = [
            ("alert group created", None, Severity::Firing),
            ("escalation", None, Severity::Firing),
            ("acknowledge", None, Severity::Acknowledged),
            ("unacknowledge", None, Severity::Firing),
            ("resolve", None, Severity::Resolved),
            ("unresolve", None, Severity::Firing),
            ("status change", Some("resolved"), Severity::Resolved),
            ("silence", Some("weird"), Severity::Info),
        ];
        for (kind, state, expected) in cases {
            assert_eq!(Severity::of(kind, state), expected, "{kind}");
        }
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo", 4), "hél…");
        assert_eq!(truncate("", 3), "");
    }
}
