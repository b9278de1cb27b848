//! The one place that turns a [`BrokerError`] into an HTTP response: a
//! status, a stable `code` and a message for people. Details (SDK errors,
//! internal causes) go to tracing and never into a body.

use crate::BrokerError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A [`BrokerError`] on its way out of a handler.
#[derive(Debug)]
pub struct ApiError(pub BrokerError);

impl<E: Into<BrokerError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

/// Handlers return this.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The JSON body for this error: `{"error": {"code", "message"}}`, plus
    /// `field` when one input field is at fault and the policy explanation
    /// on a `policy_denied` refusal.
    pub fn body(&self) -> serde_json::Value {
        let e = &self.0;
        let message = match e {
            // The Display of these is already generic; the detail is logged.
            BrokerError::Internal { .. } => "internal error".to_owned(),
            other => other.to_string(),
        };
        let mut error = json!({ "code": e.code(), "message": message });
        if let BrokerError::InvalidField { field, .. } = e {
            error["field"] = json!(field);
        }
        if let BrokerError::Denied {
            explanation: Some(explanation),
            ..
        } = e
        {
            error["explanation"] = explanation.clone();
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        log(&self.0);
        let body = self.body().to_string();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self.0, BrokerError::Unauthenticated(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = match &self.0 {
            BrokerError::Throttled
            | BrokerError::Unavailable { .. }
            | BrokerError::Incomplete { .. } => Some(2),
            BrokerError::Limited {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Logs an error at a level matching whose fault it is. Messages are
/// already free of secrets and control characters (see `domain::quote`).
fn log(e: &BrokerError) {
    match e {
        BrokerError::Internal { detail } => {
            tracing::error!(code = e.code(), detail = %detail, "request failed");
        }
        BrokerError::Unavailable { source, .. } => {
            let cause = source.as_ref().map(|s| error_chain(s.as_ref()));
            tracing::warn!(
                code = e.code(),
                cause = cause.as_deref().unwrap_or(""),
                "aws unavailable"
            );
        }
        BrokerError::Incomplete { source, .. } => {
            let cause = source.as_ref().map(|s| error_chain(s.as_ref()));
            tracing::warn!(
                code = e.code(),
                cause = cause.as_deref().unwrap_or(""),
                "recorded but not yet enforced"
            );
        }
        other => tracing::info!(
            code = other.code(),
            status = other.status(),
            "request refused"
        ),
    }
}

/// An error and its sources, joined, for a log line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Refusal;

    fn status_and_body(e: BrokerError) -> (u16, serde_json::Value) {
        let api = ApiError(e);
        (api.0.status(), api.body())
    }

    #[test]
    fn every_error_has_a_stable_code_and_the_documented_status() {
        let cases: Vec<(BrokerError, u16, &str)> = vec![
            (BrokerError::invalid("bad"), 400, "invalid_input"),
            (
                BrokerError::Unauthenticated("no token".into()),
                401,
                "unauthenticated",
            ),
            (Refusal::SelfReview.into(), 403, "self_review"),
            (
                BrokerError::NotFound("no such request".into()),
                404,
                "not_found",
            ),
            (Refusal::DigestMismatch.into(), 409, "digest_mismatch"),
            (
                BrokerError::PayloadTooLarge { limit: 16384 },
                413,
                "payload_too_large",
            ),
            (BrokerError::Throttled, 429, "throttled"),
            (
                BrokerError::Limited {
                    code: "create_rate_exceeded",
                    message: "you made 10 requests this minute".into(),
                    retry_after_seconds: 17,
                },
                429,
                "create_rate_exceeded",
            ),
            (
                BrokerError::unavailable(std::io::Error::other("dns")),
                503,
                "aws_unavailable",
            ),
            (
                BrokerError::Incomplete {
                    code: "revocation_incomplete",
                    message: "the deny statement is not written yet".into(),
                    source: Some(Box::new(std::io::Error::other("iam"))),
                },
                503,
                "revocation_incomplete",
            ),
        ];
        for (e, status, code) in cases {
            let (s, body) = status_and_body(e);
            assert_eq!(s, status, "{code}");
            assert_eq!(body["error"]["code"], code);
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }

    #[test]
    fn internal_details_and_sdk_causes_never_reach_the_body() {
        let (s, body) = status_and_body(BrokerError::Internal {
            detail: "table tollgate-secret-name missing".into(),
        });
        assert_eq!(s, 500);
        assert!(!body.to_string().contains("tollgate-secret-name"));
        let (_, body) = status_and_body(BrokerError::unavailable(std::io::Error::other(
            "dispatch failure: connection refused 10.0.0.7:443",
        )));
        assert!(!body.to_string().contains("10.0.0.7"));
    }

    #[test]
    fn a_policy_denial_carries_its_explanation() {
        let (s, body) = status_and_body(BrokerError::Denied {
            code: "policy_denied",
            message: "no policy permits `request`".into(),
            explanation: Some(json!({"allowed": false, "permitted_by": []})),
        });
        assert_eq!(s, 403);
        assert_eq!(body["error"]["explanation"]["allowed"], false);
    }
}
