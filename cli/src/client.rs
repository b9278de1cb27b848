//! The broker's HTTP API as the CLI calls it: one `reqwest` client with
//! connect and request timeouts, the bearer token in a sensitive header,
//! and every failure turned into a [`CliError`] with the right exit code.

use crate::error::{CliError, Exit};
use crate::model::IssuedCredentials;
use reqwest::{Method, Url, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;
use tollgate::domain::RequestId;

/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest page the broker serves.
pub const MAX_PAGE_LIMIT: u32 = 100;
/// The code of a failure to reach the broker at all (no HTTP answer):
/// refused or failed connection, timeout, a name that does not resolve.
pub const UNREACHABLE: &str = "broker_unreachable";
/// Largest response body read.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A client for one broker and one caller.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: header::HeaderValue,
}

/// What `GET /requests` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's own requests.
    Mine,
    /// Requests the caller may review.
    Reviewable,
    /// Active grants the caller may revoke.
    Revocable,
    /// Break-glass grants awaiting a review the caller may record.
    Unreviewed,
}

impl Scope {
    /// The query value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mine => "mine",
            Self::Reviewable => "reviewable",
            Self::Revocable => "revocable",
            Self::Unreviewed => "unreviewed",
        }
    }
}

impl Client {
    /// A client for the broker at `base`, authenticating with `token`.
    pub fn new(base: Url, token: &SecretString) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("tollgate-cli/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                CliError::generic("http_client", format!("cannot set up HTTP client: {e}"))
            })?;
        let mut auth = header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| {
                CliError::new(
                    Exit::Unauthenticated,
                    "invalid_token",
                    "the token contains characters a header cannot carry",
                )
            })?;
        // INVARIANT: the token never appears in a Debug print of the request.
        auth.set_sensitive(true);
        Ok(Self { http, base, auth })
    }

    /// The broker's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, CliError> {
        let url = self.url(segments, query);
        let mut req = self
            .http
            .request(method, url)
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        let mut resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(&e))? {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(CliError::generic(
                    "response_too_large",
                    format!("the broker's response exceeded {MAX_BODY_BYTES} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            return Err(CliError::from_response(status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|_| {
            CliError::generic(
                "unexpected_response",
                format!("the broker answered HTTP {status} with a body that is not JSON"),
            )
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> CliError {
        let at = self.base.origin().ascii_serialization();
        let message = if e.is_timeout() {
            format!(
                "the broker at {at} did not answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            )
        } else if e.is_connect() {
            format!("cannot connect to the broker at {at}")
        } else {
            format!("the request to the broker at {at} failed")
        };
        let mut cause = String::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        let message = if cause.is_empty() {
            message
        } else {
            format!("{message}: {}", crate::output::clean(&cause))
        };
        CliError::new(Exit::Unavailable, UNREACHABLE, message)
    }

    /// `POST /requests`.
    pub async fn create(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, CliError> {
        self.send(
            Method::POST,
            &["requests"],
            &[],
            Some(body),
            idempotency_key,
        )
        .await
    }

    /// `POST /requests?dry_run=true`.
    pub async fn dry_run(&self, body: &Value) -> Result<Value, CliError> {
        self.send(
            Method::POST,
            &["requests"],
            &[("dry_run", "true")],
            Some(body),
            None,
        )
        .await
    }

    /// `GET /requests/{id}`: the request with its events.
    pub async fn get(&self, id: RequestId) -> Result<Value, CliError> {
        let id = id.to_string();
        self.send(Method::GET, &["requests", &id], &[], None, None)
            .await
    }

    /// One page of `GET /requests`, at most `limit` (1-100) items.
    pub async fn list_page(
        &self,
        scope: Scope,
        status: Option<&str>,
        limit: u32,
        next_token: Option<&str>,
    ) -> Result<Value, CliError> {
        let limit = limit.clamp(1, MAX_PAGE_LIMIT).to_string();
        let mut query = vec![("scope", scope.as_str()), ("limit", limit.as_str())];
        if let Some(s) = status {
            query.push(("status", s));
        }
        if let Some(t) = next_token {
            query.push(("next_token", t));
        }
        self.send(Method::GET, &["requests"], &query, None, None)
            .await
    }

    /// `POST /requests/{id}/<action>` for approve, deny, cancel and revoke.
    pub async fn act(&self, id: RequestId, action: &str, body: &Value) -> Result<Value, CliError> {
        let id = id.to_string();
        self.send(
            Method::POST,
            &["requests", &id, action],
            &[],
            Some(body),
            None,
        )
        .await
    }

    /// One page of `GET /roles` (the largest the broker serves): the roles
    /// the caller may request, optionally in one account and of one name.
    pub async fn roles_page(
        &self,
        account: Option<&str>,
        name: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Value, CliError> {
        let limit = MAX_PAGE_LIMIT.to_string();
        let mut query = vec![("limit", limit.as_str())];
        query.extend(account.map(|a| ("account", a)));
        query.extend(name.map(|n| ("name", n)));
        query.extend(next_token.map(|t| ("next_token", t)));
        self.send(Method::GET, &["roles"], &query, None, None).await
    }

    /// `POST /roles/check`.
    pub async fn check_roles(&self, body: &Value) -> Result<Value, CliError> {
        self.send(Method::POST, &["roles", "check"], &[], Some(body), None)
            .await
    }

    /// `POST /requests/{id}/credentials`.
    pub async fn credentials(&self, id: RequestId) -> Result<IssuedCredentials, CliError> {
        let id = id.to_string();
        let body = self
            .send(
                Method::POST,
                &["requests", &id, "credentials"],
                &[],
                Some(&serde_json::json!({})),
                None,
            )
            .await?;
        IssuedCredentials::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(Url::parse(base).unwrap(), &SecretString::from("t")).unwrap()
    }

    #[test]
    fn paths_join_onto_a_base_with_or_without_a_stage_prefix() {
        let c = client("https://x.example.com/prod");
        assert_eq!(
            c.url(&["requests", "01ABC"], &[]).as_str(),
            "https://x.example.com/prod/requests/01ABC"
        );
        let c = client("http://127.0.0.1:8080/");
        assert_eq!(
            c.url(
                &["requests"],
                &[("scope", "mine"), ("next_token", "a+b/c=")]
            )
            .as_str(),
            "http://127.0.0.1:8080/requests?scope=mine&next_token=a%2Bb%2Fc%3D"
        );
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_unavailable_and_names_the_origin() {
        // Bind then drop a listener so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = client(&format!("http://127.0.0.1:{port}"));
        let err = c
            .get(RequestId::generate(tollgate::domain::Timestamp::now()))
            .await
            .unwrap_err();
        assert_eq!(err.exit, Exit::Unavailable);
        assert_eq!(err.code, "broker_unreachable");
        assert!(
            err.message.contains(&format!("http://127.0.0.1:{port}")),
            "{}",
            err.message
        );
    }
}
