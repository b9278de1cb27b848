//! The broker's response bodies as the CLI reads them: requests (the
//! domain's `AccessRequest`), their audit events, list pages and minted
//! credentials.

use crate::error::CliError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tollgate::domain::{AccessRequest, Event, Timestamp};

fn unexpected(what: &str, detail: impl std::fmt::Display) -> CliError {
    CliError::generic(
        "unexpected_response",
        format!("the broker sent {what} this CLI cannot read: {detail}"),
    )
    .with_hint("the CLI and the broker may be different versions")
}

/// The request object inside a response: the body itself, or its `request` member.
fn request_value(body: &Value) -> &Value {
    body.get("request")
        .filter(|v| v.is_object())
        .unwrap_or(body)
}

/// Reads a request from a response body.
pub fn parse_request(body: &Value) -> Result<AccessRequest, CliError> {
    AccessRequest::deserialize(request_value(body)).map_err(|e| unexpected("a request", e))
}

/// Reads the audit events that `GET /requests/{id}` returns with a request.
pub fn parse_events(body: &Value) -> Result<Vec<Event>, CliError> {
    let events = body
        .get("events")
        .or_else(|| request_value(body).get("events"))
        .ok_or_else(|| unexpected("a request", "it has no `events`"))?;
    Vec::<Event>::deserialize(events).map_err(|e| unexpected("audit events", e))
}

/// One page of `GET /requests`.
#[derive(Debug)]
pub struct ListPage {
    /// The requests on this page, as the broker sent them.
    pub items: Vec<Value>,
    /// The opaque token for the next page, if there is one.
    pub next_token: Option<String>,
}

/// Reads a list page: `{"items": [...], "next_token": "..."}` (or `requests`).
pub fn parse_page(body: &Value) -> Result<ListPage, CliError> {
    let items = ["items", "requests"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_array))
        .or_else(|| body.as_array())
        .ok_or_else(|| unexpected("a list", "it has no `items`"))?
        .clone();
    let next_token = body
        .get("next_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok(ListPage { items, next_token })
}

/// STS credentials minted for an active grant. No `Debug`, no `Serialize`:
/// the secret parts leave only through [`IssuedCredentials::to_json`].
#[derive(Deserialize)]
pub struct IssuedCredentials {
    /// `ASIA...`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: SecretString,
    /// The session token.
    pub session_token: SecretString,
    /// When STS says they expire.
    pub expiration: Timestamp,
}

impl IssuedCredentials {
    /// Reads the body of `POST /requests/{id}/credentials`.
    pub fn parse(body: &Value) -> Result<Self, CliError> {
        let creds = body
            .get("credentials")
            .filter(|v| v.is_object())
            .unwrap_or(body);
        Self::deserialize(creds).map_err(|e| unexpected("credentials", e))
    }

    /// The broker's JSON shape, secrets included: only for output or the cache.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key.expose_secret(),
            "session_token": self.session_token.expose_secret(),
            "expiration": self.expiration,
        })
    }
}

impl std::fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_never_debug_print_their_secrets() {
        let body = serde_json::json!({
            "access_key_id": "ASIAEXAMPLE",
            "secret_access_key": "very-secret",
            "session_token": "token-secret",
            "expiration": "2026-11-22T10:00:00Z",
        });
        let c = IssuedCredentials::parse(&body).unwrap();
        assert_eq!(
            c.expiration,
            Timestamp::parse_rfc3339("2026-11-22T10:00:00Z").unwrap()
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("very-secret") && !debug.contains("token-secret"));
        assert_eq!(c.to_json(), body);
    }

    #[test]
    fn list_pages_read_items_and_the_next_token() {
        let page =
            parse_page(&serde_json::json!({"items": [{"id": 1}], "next_token": "abc"})).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next_token.as_deref(), Some("abc"));
        let page = parse_page(&serde_json::json!({"items": [], "next_token": null})).unwrap();
        assert!(page.next_token.is_none());
        let err = parse_page(&serde_json::json!({"nope": 1})).unwrap_err();
        assert_eq!(err.code, "unexpected_response");
    }
}
