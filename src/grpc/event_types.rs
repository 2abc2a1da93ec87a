//! The event-type catalog RPCs of `WebhookService` (CreateEventType ... DeleteEventType) and
//! their conversions: `json_schema` travels as a `google.protobuf.Struct`; UpdateEventType
//! follows AIP-134 (mask omitted = populated fields, `*` = both fields, unknown path refused).

use tonic::Status;

use super::convert::{json_to_struct, struct_to_json, timestamp};
use super::pb;
use super::status::to_status;
use crate::core::event_types::{EventTypePatch, NewEventType};
use crate::core::{Caller, Service};
use crate::error::Error;
use crate::model::EventType;

/// Paths UpdateEventType accepts in its mask.
const UPDATABLE: &[&str] = &["description", "json_schema"];

/// An event type as the API shows it.
pub fn event_type_to_pb(event_type: EventType) -> pb::EventType {
    pb::EventType {
        name: event_type.name,
        description: event_type.description,
        json_schema: event_type.json_schema.map(json_to_struct),
        created_at: Some(timestamp(event_type.created_at_ms)),
        updated_at: Some(timestamp(event_type.updated_at_ms)),
    }
}

fn required(field: &str) -> Status {
    to_status(Error::invalid(field, "This field is required."))
}

/// CreateEventType.
pub async fn create(
    service: &Service,
    caller: &Caller,
    request: pb::CreateEventTypeRequest,
) -> Result<pb::EventType, Status> {
    let event_type = request.event_type.ok_or_else(|| required("event_type"))?;
    let new = NewEventType {
        name: event_type.name,
        description: event_type.description,
        json_schema: event_type.json_schema.map(struct_to_json),
    };
    let created = service
        .create_event_type(caller, new)
        .await
        .map_err(to_status)?;
    Ok(event_type_to_pb(created))
}

/// ListEventTypes.
pub async fn list(
    service: &Service,
    caller: &Caller,
    request: &pb::ListEventTypesRequest,
) -> Result<pb::ListEventTypesResponse, Status> {
    let page = service
        .list_event_types(caller, request.page_size.into(), &request.page_token)
        .await
        .map_err(to_status)?;
    Ok(pb::ListEventTypesResponse {
        event_types: page.event_types.into_iter().map(event_type_to_pb).collect(),
        next_page_token: page.next_page_token,
    })
}

/// UpdateEventType.
pub async fn update(
    service: &Service,
    caller: &Caller,
    request: pb::UpdateEventTypeRequest,
) -> Result<pb::EventType, Status> {
    let event_type = request.event_type.ok_or_else(|| required("event_type"))?;
    let paths = request
        .update_mask
        .map(|m| m.paths)
        .filter(|p| !p.is_empty());
    let patch = patch(event_type.description, event_type.json_schema, paths)?;
    let updated = service
        .update_event_type(caller, &event_type.name, patch)
        .await
        .map_err(to_status)?;
    Ok(event_type_to_pb(updated))
}

/// The fields an update mask selects (no mask: the populated ones).
fn patch(
    description: String,
    json_schema: Option<prost_types::Struct>,
    paths: Option<Vec<String>>,
) -> Result<EventTypePatch, Status> {
    let json_schema = json_schema.map(struct_to_json);
    let Some(paths) = paths else {
        return Ok(EventTypePatch {
            description: Some(description).filter(|d| !d.is_empty()),
            json_schema: json_schema.map(Some),
        });
    };
    let mut patch = EventTypePatch::default();
    for path in paths {
        match path.as_str() {
            "*" => {
                patch.description = Some(description.clone());
                patch.json_schema = Some(json_schema.clone());
            }
            "description" => patch.description = Some(description.clone()),
            "json_schema" => patch.json_schema = Some(json_schema.clone()),
            other => {
                return Err(to_status(Error::invalid(
                    "update_mask",
                    format!(
                        "unknown field {other:?}; updatable: {}, or \"*\"",
                        UPDATABLE.join(", ")
                    ),
                )));
            }
        }
    }
    Ok(patch)
}
