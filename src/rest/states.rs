//! Delivery states as every REST route names them: the short name (`QUEUED`, `FAILED`, ...;
//! the SSE stream's `RESYNC` too) in bodies, and the same name in any case (`failed`) in a
//! `state=` filter, repeated or comma-separated for OR. The gRPC side uses the proto enum
//! (`DELIVERY_STATE_FAILED`). Depends on `model` only.

use crate::error::FieldViolation;
use crate::model::DeliveryState;

/// The states of a route's `state=` values, or one violation per unknown name.
pub fn parse<'v>(
    values: impl IntoIterator<Item = &'v str>,
) -> Result<Vec<DeliveryState>, Vec<FieldViolation>> {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in values.into_iter().flat_map(|v| v.split(',')) {
        match DeliveryState::parse(name) {
            Some(state) => states.push(state),
            None => unknown.push(FieldViolation::new(
                "state",
                format!(
                    "\"{name}\" is not a valid choice. Must be one of queued, retrying, \
                     succeeded, failed, skipped, cancelled."
                ),
            )),
        }
    }
    if unknown.is_empty() {
        Ok(states)
    } else {
        Err(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_in_any_case_and_comma_lists_parse_and_nothing_else_does() {
        assert_eq!(
            parse(["failed", "FAILED,Retrying", " Failed "]),
            Ok(vec![
                DeliveryState::Failed,
                DeliveryState::Failed,
                DeliveryState::Retrying,
                DeliveryState::Failed,
            ])
        );
        for text in ["", "accepted", "resync", "DELIVERY_STATE_FAILED", "fail"] {
            let refused = parse([text]).unwrap_err();
            assert_eq!(refused.len(), 1, "{text}");
            assert_eq!(refused[0].field, "state");
        }
    }
}
