//! The one error type of the services: what went wrong, in the caller's terms. Each adapter
//! maps it once (the HTTP API to a status code and an error code, the command line to a
//! message); a refusal always says what to fix.

use serde_json::{json, Value};
use sightline_govern::GovernError;
use sightline_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is malformed or refused: the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The acting identity's role (or, for self-approval, its person) does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// What the request names does not exist; `what` is its kind (`profile`, `audience`, …).
    #[error("{message}")]
    NotFound { what: &'static str, message: String },
    /// A name is taken, or a record moved on since it was read.
    #[error("{0}")]
    Conflict(String),
    /// The record's current status does not allow the change.
    #[error("{0}")]
    Transition(String),
    /// Derived state has not taken in what the request needs yet: retry later.
    #[error("{0}")]
    NotCaughtUp(String),
    /// The store did not answer.
    #[error("the store did not answer: {0}")]
    Unavailable(StoreError),
    /// A fault of ours, not of the request.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An import's line for one entry: what was created, or that its name was taken (the
/// import goes on); any other failure stops it.
pub fn imported(name: &str, created: Result<Value>) -> Result<Value> {
    created.or_else(|e| match e {
        Error::Conflict(_) => Ok(json!({"name": name, "skipped": "the name is taken"})),
        other => Err(other),
    })
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    pub fn not_found(what: &'static str, message: impl Into<String>) -> Error {
        Error::NotFound {
            what,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::Conflict(message) => Error::Conflict(message),
            StoreError::NotFound(message) => Error::not_found("record", message),
            other => Error::Unavailable(other),
        }
    }
}

impl From<GovernError> for Error {
    fn from(e: GovernError) -> Error {
        match e {
            GovernError::Invalid(message) => Error::Invalid(message),
            GovernError::Forbidden(message) => Error::Forbidden(message),
            GovernError::Transition(message) => Error::Transition(message),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Internal(e.into())
    }
}

/// Code below the services speaks `anyhow`: a typed error it carries (ours, the store's,
/// the registry's) keeps its kind; anything else is a fault of ours.
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        let e = match e.downcast::<Error>() {
            Ok(typed) => return typed,
            Err(e) => e,
        };
        let e = match e.downcast::<StoreError>() {
            Ok(store) => return store.into(),
            Err(e) => e,
        };
        match e.downcast::<GovernError>() {
            Ok(governed) => governed.into(),
            Err(e) => Error::Internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_keep_their_kind_through_anyhow() {
        let wrapped = anyhow::Error::from(Error::invalid("write YYYY-MM-DD"));
        assert!(matches!(Error::from(wrapped), Error::Invalid(m) if m == "write YYYY-MM-DD"));
        let conflict = anyhow::Error::from(StoreError::Conflict("taken".into()));
        assert!(matches!(Error::from(conflict), Error::Conflict(_)));
        let refused = anyhow::Error::from(GovernError::Forbidden("no".into()));
        assert!(matches!(Error::from(refused), Error::Forbidden(_)));
        let other = anyhow::anyhow!("disk on fire");
        assert!(matches!(Error::from(other), Error::Internal(_)));
    }
}
