//! Which webhooks an event fires: trigger types (OnCall's "status change" covers the state
//! changes; "escalation step" is "escalation"), the integration filter, the schedule filter
//! of "on-call changed", and structured filters (Squadcast-style AND/OR groups of
//! conditions on dotted paths of the event data). Pure functions.

use regex::Regex;
use serde_json::Value;

use crate::model::{ConditionOp, FilterCondition, FilterGroup, FilterOperator, Webhook};

/// Event types that OnCall's "status change" webhooks also fire on.
const STATUS_CHANGES: [&str; 6] = [
    "acknowledge",
    "resolve",
    "silence",
    "unsilence",
    "unresolve",
    "unacknowledge",
];

/// OnCall's trigger type of schedule changes; `schedule_filter` narrows it.
pub const ON_CALL_CHANGED: &str = "on-call changed";

/// Older and newer OnCall names of one trigger type.
const SYNONYMS: [(&str, &str); 1] = [("escalation", "escalation step")];

/// The one name of a trigger type that has two (`escalation step` -> `escalation`).
fn canonical(trigger: &str) -> &str {
    SYNONYMS
        .iter()
        .find(|(_, newer)| *newer == trigger)
        .map_or(trigger, |(older, _)| older)
}

/// Whether `webhook` listens to `event_type` (no trigger types = every event).
pub fn trigger_matches(webhook: &Webhook, event_type: &str) -> bool {
    let event_type = canonical(event_type);
    webhook.trigger_types.is_empty()
        || webhook.trigger_types.iter().any(|t| {
            let t = canonical(t);
            t == event_type || (t == "status change" && STATUS_CHANGES.contains(&event_type))
        })
}

/// Whether an `on-call changed` event's schedule (`schedule.id`) passes the webhook's
/// schedule filter (empty = every schedule); other event types always pass.
pub fn schedule_matches(webhook: &Webhook, event_type: &str, data: &Value) -> bool {
    if event_type != ON_CALL_CHANGED || webhook.schedule_filter.is_empty() {
        return true;
    }
    lookup(data, "schedule.id")
        .and_then(Value::as_str)
        .is_some_and(|id| webhook.schedule_filter.iter().any(|f| f == id))
}

/// Whether the event's integration (integration.id or alert_group.integration_id) passes
/// the webhook's integration filter (empty = every integration).
pub fn integration_matches(webhook: &Webhook, data: &Value) -> bool {
    if webhook.integration_filter.is_empty() {
        return true;
    }
    let integration = lookup(data, "integration.id")
        .or_else(|| lookup(data, "alert_group.integration_id"))
        .and_then(Value::as_str);
    integration.is_some_and(|id| webhook.integration_filter.iter().any(|f| f == id))
}

/// The value at a dotted path (`a.b.0.c`; numeric segments index arrays).
pub fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(data, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// Whether the filter group holds for the event data.
pub fn filters_match(group: &FilterGroup, data: &Value) -> bool {
    let mut results = group
        .conditions
        .iter()
        .map(|c| condition_holds(c, data))
        .chain(group.groups.iter().map(|g| filters_match(g, data)));
    match group.operator {
        FilterOperator::And => results.all(|r| r),
        FilterOperator::Or => {
            let mut any = false;
            let mut empty = true;
            for r in results {
                empty = false;
                any |= r;
            }
            empty || any
        }
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Equality that lets "3" equal 3 and "true" equal true (filters are often typed as text).
fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || as_text(a) == as_text(b)
}

fn condition_holds(condition: &FilterCondition, data: &Value) -> bool {
    let field = lookup(data, &condition.field).filter(|v| !v.is_null());
    match condition.op {
        ConditionOp::Exists => field.is_some(),
        ConditionOp::Equals => field.is_some_and(|f| loosely_equal(f, &condition.value)),
        ConditionOp::NotEquals => !field.is_some_and(|f| loosely_equal(f, &condition.value)),
        ConditionOp::Contains => field.is_some_and(|f| match f {
            Value::Array(items) => items.iter().any(|i| loosely_equal(i, &condition.value)),
            other => as_text(other).contains(&as_text(&condition.value)),
        }),
        ConditionOp::Regex => field.is_some_and(|f| {
            Regex::new(&as_text(&condition.value)).is_ok_and(|re| re.is_match(&as_text(f)))
        }),
        ConditionOp::In => field.is_some_and(|f| match &condition.value {
            Value::Array(options) => options.iter().any(|o| loosely_equal(f, o)),
            _ => false,
        }),
    }
}

/// Checks a filter group at create/update: fields named, regexes compile, IN has a list.
pub fn validate_filters(group: &FilterGroup) -> Result<(), String> {
    for condition in &group.conditions {
        if condition.field.trim().is_empty() {
            return Err("every condition needs a field (a dotted path into the event data)".into());
        }
        match condition.op {
            ConditionOp::Regex => {
                Regex::new(&as_text(&condition.value))
                    .map_err(|e| format!("condition on {}: invalid regex: {e}", condition.field))?;
            }
            ConditionOp::In if !condition.value.is_array() => {
                return Err(format!(
                    "condition on {}: IN needs a list value",
                    condition.field
                ));
            }
            _ => {}
        }
    }
    group.groups.iter().try_for_each(validate_filters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(field: &str, op: ConditionOp, value: Value) -> FilterCondition {
        FilterCondition {
            field: field.into(),
            op,
            value,
        }
    }

    fn event() -> Value {
        json!({
            "alert_group": {"state": "firing", "title": "Disk full on db-1", "labels": ["db", "prod"]},
            "alert_payload": {"severity": 3},
            "integration": {"id": "CRV8A5MXC751A"}
        })
    }

    #[test]
    fn each_condition_operator_reads_dotted_paths() {
        let data = event();
        let holds = |c: FilterCondition| condition_holds(&c, &data);
        assert!(holds(condition(
            "alert_group.state",
            ConditionOp::Equals,
            json!("firing")
        )));
        assert!(holds(condition(
            "alert_payload.severity",
            ConditionOp::Equals,
            json!("3")
        )));
        assert!(holds(condition(
            "alert_group.state",
            ConditionOp::NotEquals,
            json!("resolved")
        )));
        assert!(holds(condition(
            "missing.path",
            ConditionOp::NotEquals,
            json!("x")
        )));
        assert!(holds(condition(
            "alert_group.title",
            ConditionOp::Contains,
            json!("Disk")
        )));
        assert!(holds(condition(
            "alert_group.labels",
            ConditionOp::Contains,
            json!("prod")
        )));
        assert!(holds(condition(
            "alert_group.title",
            ConditionOp::Regex,
            json!("^Disk .* db-\\d$")
        )));
        assert!(holds(condition(
            "alert_group.labels.0",
            ConditionOp::Exists,
            Value::Null
        )));
        assert!(!holds(condition(
            "alert_group.nothing",
            ConditionOp::Exists,
            Value::Null
        )));
        assert!(holds(condition(
            "alert_group.state",
            ConditionOp::In,
            json!(["firing", "ack"])
        )));
        assert!(!holds(condition(
            "alert_group.state",
            ConditionOp::In,
            json!("firing")
        )));
    }

    #[test]
    fn groups_combine_with_and_or_and_nest() {
        let data = event();
        let yes = condition("alert_group.state", ConditionOp::Equals, json!("firing"));
        let no = condition("alert_group.state", ConditionOp::Equals, json!("resolved"));
        let and = FilterGroup {
            operator: FilterOperator::And,
            conditions: vec![yes.clone(), no.clone()],
            groups: vec![],
        };
        let or = FilterGroup {
            operator: FilterOperator::Or,
            conditions: vec![no.clone()],
            groups: vec![FilterGroup {
                conditions: vec![yes],
                ..Default::default()
            }],
        };
        assert!(!filters_match(&and, &data));
        assert!(filters_match(&or, &data));
        assert!(filters_match(&FilterGroup::default(), &data));
    }

    #[test]
    fn invalid_filters_are_reported() {
        let bad_regex = FilterGroup {
            conditions: vec![condition("a", ConditionOp::Regex, json!("("))],
            ..Default::default()
        };
        assert!(
            validate_filters(&bad_regex)
                .unwrap_err()
                .contains("invalid regex")
        );
        let bad_in = FilterGroup {
            conditions: vec![condition("a", ConditionOp::In, json!("x"))],
            ..Default::default()
        };
        assert!(validate_filters(&bad_in).is_err());
        let nested = FilterGroup {
            groups: vec![FilterGroup {
                conditions: vec![condition(" ", ConditionOp::Exists, Value::Null)],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(validate_filters(&nested).is_err());
    }
}
