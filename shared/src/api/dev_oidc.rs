//! A development OpenID Connect provider, so the web console signs in on a
//! laptop without an outside identity provider. `tollgate serve` mounts it
//! only when it runs with a development secret (`TOLLGATE_DEV_SECRET`);
//! without one it does not exist (`/dev-oidc/...` is a 404 like any
//! unknown route), and the Lambda functions never mount it.
//!
//! - `GET /dev-oidc/.well-known/openid-configuration`: discovery.
//! - `GET /dev-oidc/authorize`: a page to pick one of the example users of
//!   `scripts/local-broker`; `POST` the choice to get a one-time code
//!   (60 s) sent back to the console's `/ui/callback`.
//! - `POST /dev-oidc/token`: the authorization code grant with PKCE (S256
//!   only, verified): an ID token signed with the development secret
//!   (HS256), exactly what `tollgate dev token` mints, so the broker's
//!   verifier accepts it.
//! - `GET /dev-oidc/logout`: back to the console's signed-out page.
//!
//! It has no session: every sign-in shows the picker. Redirects go only to
//! `/ui/callback` and `/ui/signed-out` on a loopback host.

use super::auth::{DevTokenSpec, mint_dev_token};
use super::web::{assets_base, escape_html, secure};
use crate::domain::Timestamp;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the provider is mounted; its discovery document is under it.
pub const PREFIX: &str = "/dev-oidc";
/// The console's discovery URL for this provider (a path on the broker).
pub const DISCOVERY_PATH: &str = "/dev-oidc/.well-known/openid-configuration";
/// How long a code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Codes outstanding at once, at most.
const MAX_CODES: usize = 1000;
/// ID token lifetime.
const TOKEN_SECONDS: i64 = 3600;

/// One of the example users (the same as `scripts/local-broker` prints).
#[derive(Debug, Clone, Copy)]
pub struct ExampleUser {
    /// Subject.
    pub sub: &'static str,
    /// What they are, for the picker.
    pub about: &'static str,
    /// Groups.
    pub groups: &'static [&'static str],
    /// Further claims.
    pub claims: &'static [(&'static str, &'static str)],
    /// Whether they signed in with MFA.
    pub mfa: bool,
}

/// The example users of `scripts/local-broker` (kept equal by a test).
pub const EXAMPLE_USERS: &[ExampleUser] = &[
    ExampleUser {
        sub: "alice",
        about: "developer, on call",
        groups: &["developers", "oncall"],
        claims: &[("department", "platform")],
        mfa: false,
    },
    ExampleUser {
        sub: "bob",
        about: "SRE, signed in with MFA",
        groups: &["sre"],
        claims: &[],
        mfa: true,
    },
    ExampleUser {
        sub: "carol",
        about: "SRE, signed in with MFA",
        groups: &["sre"],
        claims: &[],
        mfa: true,
    },
    ExampleUser {
        sub: "dana",
        about: "data engineer",
        groups: &["data-engineers"],
        claims: &[("department", "data")],
        mfa: true,
    },
];

/// The provider: the secret its tokens are signed with, the issuer and
/// client id the broker expects, and the codes handed out. Cheap to clone.
#[derive(Clone)]
pub struct DevProvider {
    inner: Arc<Inner>,
}

struct Inner {
    secret: SecretString,
    issuer: String,
    client_id: String,
    codes: Mutex<HashMap<String, Code>>,
}

struct Code {
    user: &'static ExampleUser,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    issued: Instant,
}

impl std::fmt::Debug for DevProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevProvider")
            .field("issuer", &self.inner.issuer)
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl DevProvider {
    /// A provider signing with `secret`, as `issuer`, for `client_id` (the
    /// audience the broker's verifier expects).
    pub fn new(secret: SecretString, issuer: String, client_id: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                secret,
                issuer,
                client_id,
                codes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The issuer its tokens carry.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The client id (audience) its tokens carry.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Its routes, to merge into the local server's router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/dev-oidc/.well-known/openid-configuration", get(discovery))
            .route("/dev-oidc/authorize", get(authorize_page).post(authorize))
            .route("/dev-oidc/token", post(token))
            .route("/dev-oidc/logout", get(logout))
            .with_state(self.clone())
    }

    fn codes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Code>> {
        self.inner
            .codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `http://<host>` from the `Host` header when it names a loopback host,
/// else `None` (the provider then answers with paths only).
fn origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    matches!(name, "127.0.0.1" | "localhost" | "[::1]").then(|| format!("http://{host}"))
}

async fn discovery(State(p): State<DevProvider>, headers: HeaderMap) -> Response {
    let base = format!("{}{PREFIX}", origin(&headers).unwrap_or_default());
    let doc = json!({
        "issuer": p.inner.issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "end_session_endpoint": format!("{base}/logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": ["sub", "groups", "amr", "department", "nonce"],
    });
    let mut r = Json(doc).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The parameters of an authorization request (query of `GET`, form of `POST`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthorizeParams {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    nonce: Option<String>,
    code_challenge: String,
    code_challenge_method: String,
    /// Only in the `POST` of the picker.
    user: Option<String>,
}

/// Why an authorization request cannot go on. `Redirect` errors are sent
/// back to the client as OAuth errors; the others are shown here, since
/// the redirect target itself is not trusted.
enum AuthorizeError {
    Page(&'static str),
    Redirect(&'static str, &'static str),
}

/// A loopback `http(s)` URL whose path is `path`.
fn loopback_url(raw: &str, path: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(raw) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        && url.path() == path
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
}

fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl DevProvider {
    fn check(&self, p: &AuthorizeParams) -> Result<(), AuthorizeError> {
        if p.client_id != self.inner.client_id {
            return Err(AuthorizeError::Page("unknown client_id"));
        }
        if !loopback_url(&p.redirect_uri, "/ui/callback") {
            return Err(AuthorizeError::Page(
                "redirect_uri must be the console's /ui/callback on a loopback address",
            ));
        }
        if p.response_type != "code" {
            return Err(AuthorizeError::Redirect(
                "unsupported_response_type",
                "only the authorization code flow is supported",
            ));
        }
        if !p.scope.split(' ').any(|s| s == "openid") {
            return Err(AuthorizeError::Redirect(
                "invalid_scope",
                "the openid scope is required",
            ));
        }
        if p.state.is_empty() || p.state.len() > 512 {
            return Err(AuthorizeError::Redirect(
                "invalid_request",
                "state is required (at most 512 characters)",
            ));
        }
        if p.nonce.as_ref().is_some_and(|n| n.len() > 512) {
            return Err(AuthorizeError::Redirect(
                "invalid_request",
                "nonce is at most 512 characters",
            ));
        }
        // INVARIANT: PKCE is required, and only S256: a `plain` challenge
        // would let whoever sees the authorization request redeem the code.
        if p.code_challenge_method != "S256" || !is_pkce_value(&p.code_challenge) {
            return Err(AuthorizeError::Redirect(
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
        Ok(())
    }
}

fn error_redirect(p: &AuthorizeParams, error: &str, description: &str) -> Response {
    let mut url = match reqwest::Url::parse(&p.redirect_uri) {
        Ok(u) => u,
        Err(_) => return page(StatusCode::BAD_REQUEST, "invalid redirect_uri", None),
    };
    url.query_pairs_mut()
        .append_pair("error", error)
        .append_pair("error_description", description)
        .append_pair("state", &p.state);
    see_other(url.as_str())
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn authorize_page(
    State(p): State<DevProvider>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    match p.check(&params) {
        Err(AuthorizeError::Page(why)) => page(StatusCode::BAD_REQUEST, why, None),
        Err(AuthorizeError::Redirect(error, why)) => error_redirect(&params, error, why),
        Ok(()) => page(StatusCode::OK, "", Some(&params)),
    }
}

async fn authorize(State(p): State<DevProvider>, Form(params): Form<AuthorizeParams>) -> Response {
    match p.check(&params) {
        Err(AuthorizeError::Page(why)) => return page(StatusCode::BAD_REQUEST, why, None),
        Err(AuthorizeError::Redirect(error, why)) => return error_redirect(&params, error, why),
        Ok(()) => {}
    }
    let Some(user) = EXAMPLE_USERS
        .iter()
        .find(|u| Some(u.sub) == params.user.as_deref())
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "pick one of the example users",
            Some(&params),
        );
    };
    let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    {
        let mut codes = p.codes();
        codes.retain(|_, c| c.issued.elapsed() < CODE_LIFETIME);
        if codes.len() >= MAX_CODES {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many sign-ins at once; try again in a minute",
                None,
            );
        }
        codes.insert(
            code.clone(),
            Code {
                user,
                client_id: params.client_id.clone(),
                redirect_uri: params.redirect_uri.clone(),
                challenge: params.code_challenge.clone(),
                nonce: params.nonce.clone(),
                issued: Instant::now(),
            },
        );
    }
    let Ok(mut url) = reqwest::Url::parse(&params.redirect_uri) else {
        return page(StatusCode::BAD_REQUEST, "invalid redirect_uri", None);
    };
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &params.state);
    see_other(url.as_str())
}

/// The token request: `application/x-www-form-urlencoded`, as RFC 6749 says.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenParams {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    code_verifier: String,
}

fn token_error(error: &'static str, description: &'static str) -> Response {
    let mut r = (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn token(State(p): State<DevProvider>, Form(t): Form<TokenParams>) -> Response {
    if t.grant_type != "authorization_code" {
        return token_error(
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }
    // A code is redeemed at most once, whatever the outcome.
    let Some(code) = p.codes().remove(&t.code) else {
        return token_error("invalid_grant", "unknown or used code");
    };
    if code.issued.elapsed() >= CODE_LIFETIME {
        return token_error("invalid_grant", "the code has expired");
    }
    if t.client_id != code.client_id || t.redirect_uri != code.redirect_uri {
        return token_error(
            "invalid_grant",
            "client_id or redirect_uri differ from the authorization request",
        );
    }
    // INVARIANT: only who made the authorization request (and so knows
    // the verifier) can redeem its code.
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(t.code_verifier.as_bytes()));
    if !is_pkce_value(&t.code_verifier) || computed != code.challenge {
        return token_error(
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        );
    }
    let mut claims: BTreeMap<String, String> = code
        .user
        .claims
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(nonce) = code.nonce {
        claims.insert("nonce".into(), nonce);
    }
    let spec = DevTokenSpec {
        sub: code.user.sub.to_owned(),
        groups: code.user.groups.iter().map(|g| (*g).to_owned()).collect(),
        claims,
        mfa: code.user.mfa,
        ttl_seconds: TOKEN_SECONDS,
        issuer: Some(p.inner.issuer.clone()),
        audience: Some(p.inner.client_id.clone()),
    };
    match mint_dev_token(&p.inner.secret, &spec, Timestamp::now()) {
        Ok(id_token) => {
            let mut r = Json(json!({
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "scope": "openid",
            }))
            .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "development sign-in could not mint a token");
            token_error("server_error", "the token could not be signed")
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LogoutParams {
    post_logout_redirect_uri: String,
}

async fn logout(Query(q): Query<LogoutParams>) -> Response {
    if loopback_url(&q.post_logout_redirect_uri, "/ui/signed-out") {
        see_other(&q.post_logout_redirect_uri)
    } else {
        page(
            StatusCode::OK,
            "You are signed out of the development sign-in.",
            None,
        )
    }
}

/// The picker (with `params`) or a message page.
fn page(status: StatusCode, message: &str, params: Option<&AuthorizeParams>) -> Response {
    let css = format!("{}/console.css", assets_base());
    let mut body = String::new();
    let mut form_origin = String::new();
    match params {
        Some(p) => {
            if let Ok(u) = reqwest::Url::parse(&p.redirect_uri) {
                form_origin = format!(" {}", u.origin().ascii_serialization());
            }
            body.push_str("<h1>Development sign-in</h1>\n<p>This page exists because the broker runs with a development secret. Pick who you are; the token is signed with that secret, like <code>tollgate dev token</code>.</p>\n");
            if !message.is_empty() {
                body.push_str(&format!(
                    "<div class=\"error-summary\" role=\"alert\"><p>{}</p></div>\n",
                    escape_html(message)
                ));
            }
            body.push_str("<form method=\"post\" action=\"/dev-oidc/authorize\">\n");
            let hidden = [
                ("response_type", p.response_type.as_str()),
                ("client_id", &p.client_id),
                ("redirect_uri", &p.redirect_uri),
                ("scope", &p.scope),
                ("state", &p.state),
                ("nonce", p.nonce.as_deref().unwrap_or("")),
                ("code_challenge", &p.code_challenge),
                ("code_challenge_method", &p.code_challenge_method),
            ];
            for (name, value) in hidden {
                if name == "nonce" && value.is_empty() {
                    continue;
                }
                body.push_str(&format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                    escape_html(value)
                ));
            }
            body.push_str("<ul class=\"users\">\n");
            for u in EXAMPLE_USERS {
                let groups = u.groups.join(", ");
                body.push_str(&format!(
                    "<li><button type=\"submit\" class=\"button\" name=\"user\" value=\"{sub}\">Sign in as {sub}</button> <span>{about}; groups: {groups}</span></li>\n",
                    sub = escape_html(u.sub),
                    about = escape_html(u.about),
                    groups = escape_html(&groups),
                ));
            }
            body.push_str("</ul>\n</form>\n");
        }
        None => {
            let title = if status.is_success() {
                "Development sign-in"
            } else {
                "Development sign-in: this request cannot be used"
            };
            body.push_str(&format!(
                "<h1>{title}</h1>\n<p>{}</p>\n<p><a href=\"/ui/\">Go to the console</a></p>\n",
                escape_html(message)
            ));
        }
    }
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Development sign-in - Tollgate</title>\n<link rel=\"stylesheet\" href=\"{css}\">\n</head>\n<body>\n<main id=\"main\" class=\"page\">\n{body}</main>\n</body>\n</html>\n"
    );
    let csp = format!(
        "default-src 'none'; style-src 'self'; form-action 'self'{form_origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(
        h,
        &HeaderValue::from_str(&csp)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
    );
    r
}

#[cfg(test)]
mod tests;
