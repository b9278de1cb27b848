//! The one error type callers see. Each variant is what the caller can do
//! about it; [`crate::api`] maps it to a status, a stable code and a plain
//! message, and sends details only to tracing.

use crate::domain::{Refusal, ValidationError};

/// Anything the broker refuses or fails at, as the caller sees it.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Bad input: 400. `code` is stable snake_case (`invalid_input`, ...).
    #[error("{message}")]
    InvalidInput {
        /// Stable error code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// One field of the input is invalid: 400 `invalid_input`, naming the
    /// field (as the API names it) so a form can point at it.
    #[error("{message}")]
    InvalidField {
        /// The field, e.g. `duration_seconds`.
        field: &'static str,
        /// For people.
        message: String,
    },
    /// No or bad token: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// Policy or a hard rule says no: 403.
    #[error("{message}")]
    Denied {
        /// Stable error code (`policy_denied`, `self_review`, ...).
        code: &'static str,
        /// For people.
        message: String,
        /// The decision explanation, when a policy decided.
        explanation: Option<serde_json::Value>,
    },
    /// Unknown, or not visible to the caller: 404.
    #[error("{0}")]
    NotFound(String),
    /// The state moved on, a digest did not match, a key was reused: 409.
    #[error("{message}")]
    Conflict {
        /// Stable error code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Body over the limit: 413.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Too many requests: 429.
    #[error("too many requests; retry later")]
    Throttled,
    /// A per-user cap was reached: 429 with `Retry-After`.
    #[error("{message}")]
    Limited {
        /// Stable error code (`too_many_open_requests`, `create_rate_exceeded`).
        code: &'static str,
        /// For people.
        message: String,
        /// Seconds after which retrying may succeed.
        retry_after_seconds: u64,
    },
    /// AWS could not be reached or kept failing: 503.
    #[error("{message}")]
    Unavailable {
        /// For people.
        message: String,
        /// What failed, for the logs only.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The change is recorded but a step that enforces it outside the table
    /// is not done yet (a revocation's deny statement): 503, retry to finish.
    /// `code` is stable snake_case (`revocation_incomplete`).
    #[error("{message}")]
    Incomplete {
        /// Stable error code.
        code: &'static str,
        /// For people: what holds already and what does not yet.
        message: String,
        /// What failed, for the logs only.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A bug or corrupt data: 500, with nothing of it in the body.
    #[error("internal error")]
    Internal {
        /// For the logs only.
        detail: String,
    },
}

impl BrokerError {
    /// A 400 with the generic `invalid_input` code.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            code: "invalid_input",
            message: message.into(),
        }
    }

    /// A 503 carrying its cause for the logs.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            message: "AWS is unavailable; retry shortly".into(),
            source: Some(Box::new(source)),
        }
    }

    /// The stable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { code, .. }
            | Self::Denied { code, .. }
            | Self::Conflict { code, .. }
            | Self::Limited { code, .. }
            | Self::Incomplete { code, .. } => code,
            Self::InvalidField { .. } => "invalid_input",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Throttled => "throttled",
            Self::Unavailable { .. } => "aws_unavailable",
            Self::Internal { .. } => "internal",
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidInput { .. } | Self::InvalidField { .. } => 400,
            Self::Unauthenticated(_) => 401,
            Self::Denied { .. } => 403,
            Self::NotFound(_) => 404,
            Self::Conflict { .. } => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::Throttled | Self::Limited { .. } => 429,
            Self::Unavailable { .. } | Self::Incomplete { .. } => 503,
            Self::Internal { .. } => 500,
        }
    }
}

impl From<ValidationError> for BrokerError {
    fn from(e: ValidationError) -> Self {
        Self::InvalidField {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<Refusal> for BrokerError {
    fn from(r: Refusal) -> Self {
        let message = r.to_string();
        let code = r.code();
        match r {
            Refusal::SelfReview | Refusal::NotPermitted | Refusal::NotRequester => Self::Denied {
                code,
                message,
                explanation: None,
            },
            Refusal::NotPending(_)
            | Refusal::NotActive(_)
            | Refusal::AlreadyApproved
            | Refusal::DigestMismatch
            | Refusal::NotDue => Self::Conflict { code, message },
        }
    }
}
