//! WatchDeliveries' translations: the request onto `core::watch::WatchRequest` (states by
//! enum value, each unknown one a field violation) and each `Watched` message onto a
//! `DeliveryStatus` with its `cursor` (RESYNC: state DELIVERY_STATE_RESYNC, the reason in
//! `error`).

use futures::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert::status_to_pb;
use super::operator::state_from_pb;
use super::pb;
use super::status::to_status;
use crate::core::watch::{WatchRequest, Watched};
use crate::error::{Error, FieldViolation, Result};

/// The core's request from the gRPC one.
pub fn watch_request(r: pb::WatchDeliveriesRequest) -> Result<WatchRequest> {
    let mut states = Vec::with_capacity(r.states.len());
    let mut violations = Vec::new();
    for (i, value) in r.states.iter().enumerate() {
        let state = pb::DeliveryState::try_from(*value)
            .ok()
            .and_then(state_from_pb);
        match state {
            Some(state) => states.push(state),
            None => violations.push(FieldViolation::new(
                format!("states[{i}]"),
                format!(
                    "{value} is not a delivery state (QUEUED, RETRYING, SUCCEEDED, FAILED, SKIPPED)"
                ),
            )),
        }
    }
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    Ok(WatchRequest {
        webhook_id: Some(r.webhook_id),
        states,
        cursor: Some(r.cursor),
        cursor_field: "cursor",
    })
}

/// A live tail message as `DeliveryStatus`.
pub fn watched_to_pb(message: Watched) -> pb::DeliveryStatus {
    match message {
        Watched::Change { cursor, update } => pb::DeliveryStatus {
            cursor,
            ..status_to_pb(update)
        },
        Watched::Resync { cursor, reason } => pb::DeliveryStatus {
            state: pb::DeliveryState::Resync as i32,
            cursor,
            error: reason,
            ..pb::DeliveryStatus::default()
        },
    }
}

/// The response stream of a live tail's channel.
pub fn stream(
    receiver: tokio::sync::mpsc::Receiver<Result<Watched>>,
) -> impl futures::Stream<Item = std::result::Result<pb::DeliveryStatus, Status>> + Send {
    ReceiverStream::new(receiver).map(|message| message.map(watched_to_pb).map_err(to_status))
}
