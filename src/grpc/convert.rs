//! Conversions between protobuf messages and domain types: webhooks (with masking of
//! write-only fields and AIP-134 field masks), responses, delivery statuses, filters, and
//! `google.protobuf.Struct`/`Value` <-> JSON.

use std::collections::{BTreeMap, HashMap};

use prost_types::value::Kind as ValueKind;
use prost_types::{ListValue, Struct, Timestamp};
use serde_json::{Map, Number, Value};

use super::pb;
use crate::core::events::{EmitRequest, Emitted};
use crate::core::fields::webhook_fields;
use crate::core::webhooks::{ResponseView, WebhookPatch, WebhookView};
use crate::error::{Error, FieldViolation, Result};
use crate::ids::{self, Kind};
use crate::model::{
    ConditionOp, DeliveryState, DeliveryUpdate, FilterCondition, FilterGroup, FilterOperator,
    masked,
};
use crate::userinfo;

/// A proto field as the value of its patch field: whether it is populated (what counts as
/// given when no update mask names the fields) and its value.
trait FromPb<T> {
    fn populated(&self) -> bool;
    fn into_value(self, field: &str) -> Result<T>;
}

impl FromPb<String> for String {
    fn populated(&self) -> bool {
        !self.is_empty()
    }
    fn into_value(self, _: &str) -> Result<String> {
        Ok(self)
    }
}

impl FromPb<Option<String>> for Option<String> {
    fn populated(&self) -> bool {
        self.is_some()
    }
    fn into_value(self, _: &str) -> Result<Option<String>> {
        Ok(self)
    }
}

/// An `optional bool` named by a mask but unset is its create default, true.
impl FromPb<bool> for Option<bool> {
    fn populated(&self) -> bool {
        self.is_some()
    }
    fn into_value(self, _: &str) -> Result<bool> {
        Ok(self.unwrap_or(true))
    }
}

impl FromPb<Vec<String>> for Vec<String> {
    fn populated(&self) -> bool {
        !self.is_empty()
    }
    fn into_value(self, _: &str) -> Result<Vec<String>> {
        Ok(self)
    }
}

impl FromPb<u32> for i32 {
    fn populated(&self) -> bool {
        *self != 0
    }
    fn into_value(self, field: &str) -> Result<u32> {
        u32::try_from(self).map_err(|_| Error::invalid(field, "must not be negative"))
    }
}

impl FromPb<Option<FilterGroup>> for Option<pb::FilterGroup> {
    fn populated(&self) -> bool {
        self.is_some()
    }
    fn into_value(self, _: &str) -> Result<Option<FilterGroup>> {
        self.map(filter_group_from_pb).transpose()
    }
}

impl FromPb<BTreeMap<String, String>> for HashMap<String, String> {
    fn populated(&self) -> bool {
        !self.is_empty()
    }
    fn into_value(self, _: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.into_iter().collect())
    }
}

/// The update mask's field names and the conversion of a `Webhook`'s fields, from the
/// field table (`core::fields`).
macro_rules! proto_fields {
    ($($field:ident: $value:ty $(=> $($dialect:ident $(($alias:literal))?),+)?;)*) => {
        /// Fields of `Webhook` that an update mask may name.
        const UPDATABLE: &[&str] = &[$(stringify!($field),)* "trigger_type"];

        /// The patch of the table's fields that `wanted(field, populated)` picks.
        fn table_patch(w: pb::Webhook, wanted: &impl Fn(&str, bool) -> bool) -> Result<WebhookPatch> {
            let mut patch = WebhookPatch::default();
            $(
                if wanted(stringify!($field), FromPb::<$value>::populated(&w.$field)) {
                    patch.$field = Some(FromPb::<$value>::into_value(w.$field, stringify!($field))?);
                }
            )*
            Ok(patch)
        }
    };
}
webhook_fields!(proto_fields);

/// Output-only fields of `Webhook`.
const OUTPUT_ONLY: [&str; 6] = [
    "id",
    "created_at",
    "last_success",
    "last_failure",
    "disabled_reason",
    "signing_public_key",
];

/// Milliseconds since the epoch as a protobuf timestamp.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Earliest `Timestamp.seconds` protobuf allows (0001-01-01T00:00:00Z).
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;

/// Latest `Timestamp.seconds` protobuf allows (9999-12-31T23:59:59Z).
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A protobuf timestamp of request field `field` as milliseconds since the epoch;
/// INVALID_ARGUMENT outside protobuf's range (years 1 to 9999, nanos 0..1e9).
pub fn millis(ts: &Timestamp, field: &str) -> Result<i64, Error> {
    let in_range = (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds)
        && (0..1_000_000_000).contains(&ts.nanos);
    if !in_range {
        return Err(Error::invalid(
            field,
            "must be a valid timestamp between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z",
        ));
    }
    // Within range the product is far from i64's limits.
    Ok(ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000)
}

/// A domain webhook as the API shows it (write-only fields masked).
pub fn webhook_to_pb(view: WebhookView) -> pb::Webhook {
    let WebhookView {
        webhook: w,
        stats,
        signing_public_key,
    } = view;
    let signing_secret = w
        .signing_secrets
        .iter()
        .any(|s| s.expires_at_ms.is_none())
        .then(|| crate::model::SECRET_PLACEHOLDER.to_string());
    pb::Webhook {
        id: ids::format(Kind::Webhook, w.id),
        trigger_type: w.trigger_type().to_string(),
        password: masked(&w.password),
        authorization_header: masked(&w.authorization_header),
        secret: masked(&w.secret),
        signing_secret,
        name: w.name,
        is_webhook_enabled: Some(w.is_webhook_enabled),
        team: w.team,
        data: w.data,
        username: w.username,
        trigger_template: w.trigger_template,
        headers: w.headers,
        url: userinfo::mask(&w.url),
        forward_all: Some(w.forward_all),
        http_method: w.http_method,
        integration_filter: w.integration_filter,
        schedule_filter: w.schedule_filter,
        description: w.description,
        trigger_types: w.trigger_types,
        urls: w.urls.iter().map(|u| userinfo::mask(u)).collect(),
        filters: w.filters.map(filter_group_to_pb),
        destination_type: w.destination_type.as_str().to_string(),
        retry_schedule: w
            .retry_schedule_ms
            .unwrap_or_default()
            .into_iter()
            .map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string())
            .collect(),
        template_engine: w.template_engine.as_str().to_string(),
        custom_headers: w.custom_headers.into_iter().collect(),
        created_at: Some(timestamp(w.created_at_ms)),
        last_success: stats.last_success_ms.map(timestamp),
        last_failure: stats.last_failure_ms.map(timestamp),
        disabled_reason: w.disabled_reason,
        max_attempts: w.max_attempts as i32,
        signing_public_key: signing_public_key.unwrap_or_default(),
        client_certificate: masked(&w.client_certificate),
        client_key: masked(&w.client_key),
        ca_certificates: w.ca_certificates,
        rate_limit_per_second: w.rate_limit_per_second as i32,
        rate_limit_burst: w.rate_limit_burst as i32,
    }
}

/// The patch a `Webhook` message asks for. `paths` None = every populated field (create, or
/// an update without mask); `*` = every updatable field.
pub fn webhook_patch(w: pb::Webhook, paths: Option<&[String]>) -> Result<WebhookPatch> {
    let mut violations = Vec::new();
    if let Some(paths) = paths {
        for path in paths {
            if OUTPUT_ONLY.contains(&path.as_str()) {
                violations.push(FieldViolation::new(
                    "update_mask",
                    format!("{path} is output only"),
                ));
            } else if path != "*" && !UPDATABLE.contains(&path.as_str()) {
                violations.push(FieldViolation::new(
                    "update_mask",
                    format!("unknown field {path:?}"),
                ));
            }
        }
    }
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let wanted = |field: &str, populated: bool| match paths {
        None => populated,
        Some(paths) => paths.iter().any(|p| p == "*" || p == field),
    };
    let trigger_types = if wanted("trigger_types", !w.trigger_types.is_empty())
        && !w.trigger_types.is_empty()
    {
        Some(w.trigger_types.clone())
    } else if wanted("trigger_type", !w.trigger_type.is_empty()) || wanted("trigger_types", false) {
        Some(if w.trigger_type.is_empty() {
            vec![]
        } else {
            vec![w.trigger_type.clone()]
        })
    } else {
        None
    };
    let mut patch = table_patch(w, &wanted)?;
    patch.trigger_types = trigger_types;
    // proto3 cannot tell an empty http_method from an unset one: it means the default.
    if let Some(method) = patch.http_method.as_mut().filter(|m| m.is_empty()) {
        *method = "POST".into();
    }
    Ok(patch)
}

fn filter_group_to_pb(group: FilterGroup) -> pb::FilterGroup {
    pb::FilterGroup {
        operator: match group.operator {
            FilterOperator::And => pb::FilterOperator::And,
            FilterOperator::Or => pb::FilterOperator::Or,
        } as i32,
        conditions: group
            .conditions
            .into_iter()
            .map(|c| pb::FilterCondition {
                field: c.field,
                op: match c.op {
                    ConditionOp::Equals => pb::ConditionOp::Equals,
                    ConditionOp::NotEquals => pb::ConditionOp::NotEquals,
                    ConditionOp::Contains => pb::ConditionOp::Contains,
                    ConditionOp::Regex => pb::ConditionOp::Regex,
                    ConditionOp::Exists => pb::ConditionOp::Exists,
                    ConditionOp::In => pb::ConditionOp::In,
                } as i32,
                value: Some(json_to_value(c.value)),
            })
            .collect(),
        groups: group.groups.into_iter().map(filter_group_to_pb).collect(),
    }
}

fn filter_group_from_pb(group: pb::FilterGroup) -> Result<FilterGroup> {
    let operator = match pb::FilterOperator::try_from(group.operator) {
        Ok(pb::FilterOperator::Or) => FilterOperator::Or,
        Ok(_) => FilterOperator::And,
        Err(_) => return Err(Error::invalid("filters", "unknown operator; use AND or OR")),
    };
    let conditions = group
        .conditions
        .into_iter()
        .map(|c| {
            let op = match pb::ConditionOp::try_from(c.op) {
                Ok(pb::ConditionOp::Equals) => ConditionOp::Equals,
                Ok(pb::ConditionOp::NotEquals) => ConditionOp::NotEquals,
                Ok(pb::ConditionOp::Contains) => ConditionOp::Contains,
                Ok(pb::ConditionOp::Regex) => ConditionOp::Regex,
                Ok(pb::ConditionOp::Exists) => ConditionOp::Exists,
                Ok(pb::ConditionOp::In) => ConditionOp::In,
                _ => {
                    return Err(Error::invalid(
                        "filters",
                        format!("condition on {:?} needs an op: EQUALS, NOT_EQUALS, CONTAINS, REGEX, EXISTS or IN", c.field),
                    ));
                }
            };
            Ok(FilterCondition {
                field: c.field,
                op,
                value: c.value.map(value_to_json).unwrap_or(Value::Null),
            })
        })
        .collect::<Result<_>>()?;
    let groups = group
        .groups
        .into_iter()
        .map(filter_group_from_pb)
        .collect::<Result<_>>()?;
    Ok(FilterGroup {
        operator,
        conditions,
        groups,
    })
}

/// A logged attempt as `WebhookResponse`.
pub fn response_to_pb(view: ResponseView) -> pb::WebhookResponse {
    let r = view.record;
    pb::WebhookResponse {
        timestamp: Some(timestamp(r.timestamp_ms)),
        url: r.url,
        request_trigger: r.request_trigger,
        request_headers: r.request_headers,
        request_data: r.request_data,
        status_code: r.status_code.map(i32::from),
        content: r.content,
        event_data: view.event_data,
        attempt: r.attempt as i32,
        delivery_id: ids::format(Kind::Delivery, r.delivery_id),
        duration_ms: r.duration_ms as i64,
        error: r.error,
        event_id: ids::format(Kind::Event, r.event_id),
    }
}

/// A delivery state as its protobuf enum.
pub fn state_to_pb(state: DeliveryState) -> pb::DeliveryState {
    match state {
        DeliveryState::Queued => pb::DeliveryState::Queued,
        DeliveryState::Retrying => pb::DeliveryState::Retrying,
        DeliveryState::Succeeded => pb::DeliveryState::Succeeded,
        DeliveryState::Failed => pb::DeliveryState::Failed,
        DeliveryState::Skipped => pb::DeliveryState::Skipped,
        DeliveryState::Cancelled => pb::DeliveryState::Cancelled,
    }
}

/// A delivery update as `DeliveryStatus`.
pub fn status_to_pb(update: DeliveryUpdate) -> pb::DeliveryStatus {
    let state = state_to_pb(update.state);
    pb::DeliveryStatus {
        event_id: ids::format(Kind::Event, update.event_id),
        webhook_id: ids::format(Kind::Webhook, update.webhook_id),
        delivery_id: ids::format(Kind::Delivery, update.delivery_id),
        state: state as i32,
        attempt: update.attempt as i32,
        status_code: update.status_code.map(i32::from),
        error: update.error,
        next_attempt_at: update.next_attempt_ms.map(timestamp),
        url: userinfo::mask(&update.url),
        matched_deliveries: 0,
        cursor: String::new(),
    }
}

/// The first message of an EmitEvent stream: the event is durable and made `deliveries`
/// deliveries.
pub fn accepted_to_pb(event_id: u64, deliveries: usize) -> pb::DeliveryStatus {
    pb::DeliveryStatus {
        event_id: ids::format(Kind::Event, event_id),
        state: pb::DeliveryState::Accepted as i32,
        matched_deliveries: i32::try_from(deliveries).unwrap_or(i32::MAX),
        ..pb::DeliveryStatus::default()
    }
}

/// An `EmitEventRequest` as the core's request (a missing `data` is an empty object).
pub fn emit_request(r: pb::EmitEventRequest) -> EmitRequest {
    EmitRequest {
        event_type: r.event_type,
        data: r.data.map(struct_to_json).unwrap_or_else(empty_object),
        idempotency_key: Some(r.idempotency_key).filter(|k| !k.is_empty()),
        traceparent: None,
        ordering_key: Some(r.ordering_key).filter(|k| !k.is_empty()),
    }
}

/// One event's outcome of a batch emit as `EmittedEvent`.
pub fn emitted_to_pb(emitted: Emitted) -> pb::EmittedEvent {
    pb::EmittedEvent {
        event_id: ids::format(Kind::Event, emitted.event_id),
        duplicate: emitted.duplicate,
        deliveries: emitted.deliveries.into_iter().map(status_to_pb).collect(),
    }
}

/// A protobuf Struct as a JSON object.
pub fn struct_to_json(s: Struct) -> Value {
    Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: prost_types::Value) -> Value {
    match v.kind {
        None | Some(ValueKind::NullValue(_)) => Value::Null,
        Some(ValueKind::BoolValue(b)) => Value::Bool(b),
        Some(ValueKind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::Number(Number::from(n as i64))
            } else {
                Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Some(ValueKind::StringValue(s)) => Value::String(s),
        Some(ValueKind::ListValue(l)) => {
            Value::Array(l.values.into_iter().map(value_to_json).collect())
        }
        Some(ValueKind::StructValue(s)) => struct_to_json(s),
    }
}

/// A JSON object as a protobuf Struct (a non-object becomes an empty Struct).
pub fn json_to_struct(v: Value) -> Struct {
    match json_to_value(v).kind {
        Some(ValueKind::StructValue(s)) => s,
        _ => Struct::default(),
    }
}

fn json_to_value(v: Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => ValueKind::NullValue(0),
        Value::Bool(b) => ValueKind::BoolValue(b),
        Value::Number(n) => ValueKind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => ValueKind::StringValue(s),
        Value::Array(items) => ValueKind::ListValue(ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => ValueKind::StructValue(Struct {
            fields: map
                .into_iter()
                .map(|(k, v)| (k, json_to_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// An empty JSON object (events without data).
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_round_trip_through_json_keeping_integers() {
        let json = serde_json::json!({"a": 1, "b": [true, null, "x"], "c": {"d": 1.5}});
        let Value::Object(_) = &json else {
            unreachable!()
        };
        let prost_types::Value {
            kind: Some(ValueKind::StructValue(s)),
        } = json_to_value(json.clone())
        else {
            panic!("not a struct")
        };
        assert_eq!(struct_to_json(s), json);
    }

    #[test]
    fn masks_name_fields_and_reject_unknown_or_output_only_ones() {
        let webhook = pb::Webhook {
            name: "n".into(),
            url: "http://x".into(),
            ..Default::default()
        };
        let patch = webhook_patch(webhook.clone(), Some(&["name".to_string()])).unwrap();
        assert_eq!(patch.name.as_deref(), Some("n"));
        assert!(patch.url.is_none());
        assert!(webhook_patch(webhook.clone(), Some(&["nope".to_string()])).is_err());
        assert!(webhook_patch(webhook, Some(&["id".to_string()])).is_err());
    }

    #[test]
    fn timestamps_convert_both_ways() {
        for ms in [0, 1, 1_700_000_000_123, -1] {
            assert_eq!(millis(&timestamp(ms), "t"), Ok(ms));
        }
    }

    #[test]
    fn timestamps_outside_protobufs_range_are_invalid_arguments() {
        let at = |seconds, nanos| millis(&Timestamp { seconds, nanos }, "since");
        assert!(at(MAX_TIMESTAMP_SECONDS, 999_999_999).is_ok());
        assert!(at(MIN_TIMESTAMP_SECONDS, 0).is_ok());
        for (seconds, nanos) in [
            (i64::MAX, 0),
            (i64::MIN, 0),
            (MAX_TIMESTAMP_SECONDS + 1, 0),
            (0, -1),
            (0, 1_000_000_000),
        ] {
            assert!(
                matches!(at(seconds, nanos), Err(Error::InvalidArgument(v)) if v[0].field == "since")
            );
        }
    }
}
