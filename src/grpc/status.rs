//! The one conversion of domain errors into gRPC statuses (AIP-193): INVALID_ARGUMENT with
//! a BadRequest violation per field, NOT_FOUND with ResourceInfo, auth errors with
//! ErrorInfo{reason, domain: "webhookd"}, a busy store UNAVAILABLE with RetryInfo (when to
//! retry) and ErrorInfo{reason: "STORE_BUSY"}, which an unreachable store lacks, and an
//! overloaded server's RESOURCE_EXHAUSTED with RetryInfo and ErrorInfo{reason: "OVERLOADED"}.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{BUSY_RETRY_AFTER, Error};

/// Domain of ErrorInfo details.
const DOMAIN: &str = "webhookd";

/// Converts a domain error into a gRPC status.
pub fn to_status(error: Error) -> Status {
    let message = error.to_string();
    match error {
        Error::InvalidArgument(violations) => {
            let mut details = ErrorDetails::new();
            for v in violations {
                details.add_bad_request_violation(v.field, v.description);
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        Error::NotFound { kind, id } => {
            let details = ErrorDetails::with_resource_info(kind, id, "", "not found");
            Status::with_error_details(Code::NotFound, message, details)
        }
        Error::Unauthenticated(_) => {
            let details = ErrorDetails::with_error_info("UNAUTHENTICATED", DOMAIN, []);
            Status::with_error_details(Code::Unauthenticated, message, details)
        }
        Error::PermissionDenied(_) => {
            let details = ErrorDetails::with_error_info("MISSING_SCOPE", DOMAIN, []);
            Status::with_error_details(Code::PermissionDenied, message, details)
        }
        Error::Conflict(_) => Status::already_exists(message),
        Error::FailedPrecondition(_) => Status::failed_precondition(message),
        Error::ResourceExhausted(_) => Status::resource_exhausted(message),
        Error::Overloaded(_) => {
            let mut details = ErrorDetails::with_error_info("OVERLOADED", DOMAIN, []);
            details.set_retry_info(Some(BUSY_RETRY_AFTER));
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        Error::Unavailable(_) => Status::unavailable(message),
        Error::Busy(_) => {
            let mut details = ErrorDetails::with_retry_info(Some(BUSY_RETRY_AFTER));
            details.set_error_info("STORE_BUSY", DOMAIN, []);
            Status::with_error_details(Code::Unavailable, message, details)
        }
        Error::Internal(_) => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_travel_as_bad_request_details() {
        let status = to_status(Error::invalid("url", "This field is required."));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "url");
    }
}
