//! The domain error returned by core, store and delivery. Transports convert it at the
//! edge (one `From<Error> for tonic::Status`, one error body per REST dialect); no
//! transport types here.

use std::time::Duration;

/// How long a caller told `Error::Busy` should wait before it retries (gRPC RetryInfo, REST
/// `Retry-After`).
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Field name as the API spells it (e.g. "url", "http_method").
    pub field: String,
    /// Human-readable reason.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> FieldViolation {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation of a field inside `parent` (e.g. `events[2]` + `data`).
    pub fn within(self, parent: &str) -> FieldViolation {
        FieldViolation {
            field: format!("{parent}.{}", self.field),
            description: self.description,
        }
    }
}

/// Everything that can go wrong in a use case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The resource does not exist for this account.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Resource kind, e.g. "webhook".
        kind: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// One or more fields are invalid.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials without the needed scope.
    #[error("{0}")]
    PermissionDenied(String),
    /// The resource conflicts with an existing one (e.g. a duplicate name).
    #[error("{0}")]
    Conflict(String),
    /// The resource is not in a state that allows the operation (e.g. cancelling a
    /// delivery that already succeeded).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was hit (e.g. body too large).
    #[error("{0}")]
    ResourceExhausted(String),
    /// Too much work is already waiting (e.g. the bytes of batch calls not yet decoded);
    /// nothing was done, and the same call may succeed after `BUSY_RETRY_AFTER`.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The store cannot be reached right now (e.g. its database is down); nothing was
    /// acknowledged, and the same call may succeed later. The text is safe to show.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The store is up but has no capacity free right now (e.g. every database connection
    /// stayed in use for the whole wait): back-pressure, not an outage. The store's health is
    /// not affected; the caller should retry after `BUSY_RETRY_AFTER` (an emit with its
    /// idempotency key, as its event may have been committed). The text is safe to show.
    #[error("busy: {0}")]
    Busy(String),
    /// A failure of the store or another internal part; the text is safe to show.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// An INVALID_ARGUMENT with a single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Error {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// A webhook that does not exist for the caller.
    pub fn webhook_not_found(id: &str) -> Error {
        Error::NotFound {
            kind: "webhook",
            id: id.to_string(),
        }
    }
}

/// Result of the domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;
