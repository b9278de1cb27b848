//! The web console: the static files of `web/`, embedded at build time
//! (`shared/build.rs`), served under `/ui` by the `requests` function and
//! `tollgate serve`.
//!
//! - `/ui/assets/<bundle>/<file>`: the files, cached for a year
//!   (`immutable`): `<bundle>` is a hash of every file, so any change moves
//!   every path. Gzip when the browser accepts it.
//! - Any other `/ui/...` path: the page shell (`web/index.html` with the
//!   asset paths and the sign-in settings filled in), `no-cache` with an
//!   `ETag`; the console's router draws the page. Unknown pages get the same
//!   shell with status 404.
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles
//! and images only from this origin, no inline script or style, Trusted
//! Types required (the console never assigns HTML strings), API and
//! sign-in calls only to this origin, the issuer and the configured extra
//! origins, no framing. The console holds no data of its own: everything
//! comes from the API with the signed-in user's ID token.

use super::AppState;
use crate::config::ConsoleSettings;
use crate::domain::RequestId;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// One embedded file of `web/`.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `web/`.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// The same bytes, gzip-compressed at build time.
    pub gzip: &'static [u8],
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

pub use embedded::{ASSETS, BUNDLE};

/// Where the assets are served: `/ui/assets/<bundle>`.
pub fn assets_base() -> String {
    format!("/ui/assets/{BUNDLE}")
}

/// The page shell's template; not served as an asset itself.
const SHELL: &str = "index.html";
/// A year: assets never change under a given bundle path.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// How the console signs people in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// No client id or issuer is configured: the console says so.
    NotConfigured,
    /// OpenID Connect authorization code with PKCE, as a public client.
    Oidc {
        /// The `iss` the ID token must carry.
        issuer: String,
        /// The public client id (the ID token's `aud`).
        client_id: String,
        /// The discovery document's URL (absolute, or a path on this origin).
        discovery: String,
    },
}

impl SignIn {
    /// From the settings: OpenID Connect when both the client id and the
    /// issuer are set.
    pub fn from_settings(settings: &ConsoleSettings) -> Self {
        match (&settings.issuer, &settings.client_id) {
            (Some(issuer), Some(client_id)) => Self::Oidc {
                discovery: format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                ),
                issuer: issuer.clone(),
                client_id: client_id.clone(),
            },
            _ => Self::NotConfigured,
        }
    }
}

/// The console as served: the rendered shell and the headers. Cheap to clone.
#[derive(Clone)]
pub struct WebConsole {
    inner: Arc<Inner>,
}

struct Inner {
    shell: String,
    shell_etag: HeaderValue,
    csp: HeaderValue,
}

impl std::fmt::Debug for WebConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConsole")
            .field("bundle", &BUNDLE)
            .finish_non_exhaustive()
    }
}

impl WebConsole {
    /// The console for `sign_in`, allowed to call `extra_origins` besides
    /// its own origin and the issuer's.
    pub fn new(sign_in: &SignIn, extra_origins: &[String]) -> Self {
        let mut connect = vec!["'self'".to_owned()];
        if let SignIn::Oidc { discovery, .. } = sign_in
            && let Ok(origin) = crate::config::web_origin("issuer", discovery)
        {
            connect.push(origin);
        }
        for o in extra_origins {
            if !connect.contains(o) {
                connect.push(o.clone());
            }
        }
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
             require-trusted-types-for 'script'; trusted-types 'none'",
            connect.join(" ")
        );
        let shell = render_shell(sign_in);
        let etag = format!(
            "\"{}\"",
            &hex::encode(Sha256::digest(shell.as_bytes()))[..32]
        );
        Self {
            inner: Arc::new(Inner {
                shell,
                shell_etag: HeaderValue::from_str(&etag)
                    .unwrap_or_else(|_| HeaderValue::from_static("\"shell\"")),
                csp: HeaderValue::from_str(&csp)
                    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
            }),
        }
    }

    /// The console as the settings describe it.
    pub fn from_settings(settings: &ConsoleSettings) -> Self {
        Self::new(&SignIn::from_settings(settings), &settings.connect_origins)
    }

    /// The Content-Security-Policy every response carries.
    pub fn csp(&self) -> &HeaderValue {
        &self.inner.csp
    }
}

/// The `/ui` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(redirect_to_root))
        .route("/ui/", get(ui))
        .route("/ui/{*path}", get(ui))
}

async fn redirect_to_root() -> Response {
    let mut r = StatusCode::PERMANENT_REDIRECT.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
    r
}

async fn ui(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let web = &state.web;
    let path = uri.path().strip_prefix("/ui/").unwrap_or("");
    let mut response = match path.strip_prefix("assets/") {
        Some(rest) => asset(rest, &headers),
        None => shell(web, path, &headers),
    };
    secure(response.headers_mut(), web.csp());
    response
}

fn asset(rest: &str, headers: &HeaderMap) -> Response {
    let found = rest
        .split_once('/')
        .filter(|(bundle, _)| *bundle == BUNDLE)
        .and_then(|(_, file)| ASSETS.iter().find(|a| a.path == file && a.path != SHELL));
    let Some(asset) = found else {
        return plain(
            StatusCode::NOT_FOUND,
            "no such file in this version of the console",
        );
    };
    let gzip = accepts_gzip(headers);
    let body = if gzip { asset.gzip } else { asset.body };
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

fn shell(web: &WebConsole, path: &str, headers: &HeaderMap) -> Response {
    let status = if is_page(path) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let etag = &web.inner.shell_etag;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut r = if fresh && status == StatusCode::OK {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (status, web.inner.shell.clone()).into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, etag.clone());
    r
}

/// The console's pages (see `web/app.js`).
fn is_page(path: &str) -> bool {
    match path.trim_end_matches('/') {
        "" | "inbox" | "requests" | "requests/new" | "callback" | "signed-out" => true,
        other => other
            .strip_prefix("requests/")
            .is_some_and(|id| RequestId::parse(id).is_ok()),
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0" || p == "q=0.0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// The headers every console (and development sign-in) response carries.
pub(crate) fn secure(h: &mut HeaderMap, csp: &HeaderValue) {
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = (status, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Escapes text for an HTML attribute or element.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `web/index.html` with `{{assets}}` (the asset base), `{{preload}}`
/// (modulepreload links for every module, so the browser fetches them at
/// once instead of one import at a time) and `{{sign_in}}` (meta tags the
/// console reads its settings from) filled in.
fn render_shell(sign_in: &SignIn) -> String {
    let template = ASSETS
        .iter()
        .find(|a| a.path == SHELL)
        .map(|a| String::from_utf8_lossy(a.body).into_owned())
        .unwrap_or_default();
    let base = assets_base();
    let preload: String = ASSETS
        .iter()
        .filter(|a| a.path.ends_with(".js") && a.path != "app.js")
        .map(|a| format!("<link rel=\"modulepreload\" href=\"{base}/{}\">\n", a.path))
        .collect();
    let meta = |name: &str, value: &str| {
        format!(
            "<meta name=\"tollgate-{name}\" content=\"{}\">\n",
            escape_html(value)
        )
    };
    let sign_in = match sign_in {
        SignIn::NotConfigured => meta("sign-in", "none"),
        SignIn::Oidc {
            issuer,
            client_id,
            discovery,
        } => [
            meta("sign-in", "oidc"),
            meta("issuer", issuer),
            meta("client-id", client_id),
            meta("discovery", discovery),
        ]
        .concat(),
    };
    template
        .replace("{{preload}}\n", &preload)
        .replace("{{sign_in}}\n", &sign_in)
        .replace("{{assets}}", &base)
}

#[cfg(test)]
mod tests;
