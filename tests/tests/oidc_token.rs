//! `scripts/oidc-token`, the `token_command` DEPLOY.md's Okta and Entra ID
//! recipes use, against a local OpenID provider that speaks the device
//! authorization grant and refresh tokens as those providers do: the first
//! run signs in through the device flow, later runs print the cached token
//! without a request, an expiring token is refreshed without a prompt, a
//! refresh token the provider no longer accepts leads back to the device
//! flow, and the cache is private to the user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step is a failed test"
)]

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tollgate::aws::testing::repo_root;

#[derive(Default)]
struct Provider {
    base: String,
    /// Requests by kind: discovery, device, poll, refresh.
    calls: BTreeMap<&'static str, u32>,
    /// Device-flow polls answered `authorization_pending` so far.
    pending: u32,
    /// The refresh token the provider accepts now.
    refresh_token: Option<String>,
    issued: u32,
}

type Shared = Arc<Mutex<Provider>>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT-shaped token whose payload carries `exp` (the script reads no more).
fn jwt(n: u32, kind: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        b64.encode(br#"{"alg":"RS256"}"#),
        b64.encode(json!({"exp": now() + 3600, "n": n, "kind": kind}).to_string())
    )
}

fn form(body: &str) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn discovery(State(p): State<Shared>) -> Response {
    let mut p = p.lock().unwrap();
    *p.calls.entry("discovery").or_default() += 1;
    let base = p.base.clone();
    json_response(
        StatusCode::OK,
        json!({
            "issuer": base,
            "token_endpoint": format!("{base}/token"),
            "device_authorization_endpoint": format!("{base}/device"),
        }),
    )
}

async fn device(State(p): State<Shared>, body: String) -> Response {
    let mut p = p.lock().unwrap();
    *p.calls.entry("device").or_default() += 1;
    let f = form(&body);
    assert_eq!(f["client_id"], "tollgate-cli");
    assert!(f["scope"].contains("offline_access"), "{f:?}");
    p.pending = 0;
    let base = p.base.clone();
    json_response(
        StatusCode::OK,
        json!({
            "device_code": "device-code-1",
            "user_code": "WDJB-MJHT",
            "verification_uri": format!("{base}/activate"),
            "interval": 1,
            "expires_in": 30,
        }),
    )
}

async fn token(State(p): State<Shared>, body: String) -> Response {
    let mut p = p.lock().unwrap();
    let f = form(&body);
    let issue = |p: &mut Provider| {
        p.issued += 1;
        let refresh = format!("refresh-{}", p.issued);
        p.refresh_token = Some(refresh.clone());
        json_response(
            StatusCode::OK,
            json!({
                "id_token": jwt(p.issued, "id"),
                "access_token": jwt(p.issued, "access"),
                "refresh_token": refresh,
                "token_type": "Bearer",
                "expires_in": 3600,
            }),
        )
    };
    match f["grant_type"].as_str() {
        "urn:ietf:params:oauth:grant-type:device_code" => {
            *p.calls.entry("poll").or_default() += 1;
            assert_eq!(f["device_code"], "device-code-1");
            // The user signs in after the first poll.
            if p.pending == 0 {
                p.pending += 1;
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "authorization_pending"}),
                );
            }
            issue(&mut p)
        }
        "refresh_token" => {
            *p.calls.entry("refresh").or_default() += 1;
            if p.refresh_token.as_deref() == Some(f["refresh_token"].as_str()) {
                issue(&mut p)
            } else {
                json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
            }
        }
        other => panic!("unexpected grant {other}"),
    }
}

async fn start() -> Shared {
    let shared: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    shared.lock().unwrap().base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/device", post(device))
        .route("/token", post(token))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    shared
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn oidc_token(p: &Shared, cache: &Path, extra: &[&str]) -> Run {
    let issuer = p.lock().unwrap().base.clone();
    let out = tokio::process::Command::new("python3")
        .arg(repo_root().join("scripts/oidc-token"))
        .args(["--issuer", &issuer, "--client-id", "tollgate-cli"])
        .args(extra)
        .env("XDG_CACHE_HOME", cache)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn calls(p: &Shared) -> BTreeMap<&'static str, u32> {
    p.lock().unwrap().calls.clone()
}

fn claims(token: &str) -> Value {
    let payload = token.trim().split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_command_signs_in_once_then_serves_the_cache_and_refreshes_without_a_prompt() {
    let p = start().await;
    let cache = tempfile::tempdir().unwrap();

    // First run: the device flow, the link and code on stderr only.
    let first = oidc_token(&p, cache.path(), &[]).await;
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(first.stdout.lines().count(), 1);
    assert_eq!(claims(&first.stdout)["kind"], "id");
    assert!(first.stderr.contains("WDJB-MJHT"), "{}", first.stderr);
    assert!(first.stderr.contains("/activate"), "{}", first.stderr);
    assert!(!first.stderr.contains(first.stdout.trim()));
    assert_eq!(
        calls(&p),
        BTreeMap::from([("discovery", 1), ("device", 1), ("poll", 2)])
    );
    let dir = cache.path().join("tollgate");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Second run: the cached token, no request at all.
    let second = oidc_token(&p, cache.path(), &[]).await;
    assert!(second.ok, "{}", second.stderr);
    assert_eq!(second.stdout, first.stdout);
    assert!(second.stderr.is_empty(), "{}", second.stderr);
    assert_eq!(calls(&p)["poll"], 2);
    assert_eq!(calls(&p)["discovery"], 1);

    // A token that would expire too soon: refreshed, no prompt.
    let refreshed = oidc_token(&p, cache.path(), &["--min-valid", "7200"]).await;
    assert!(refreshed.ok, "{}", refreshed.stderr);
    assert_ne!(refreshed.stdout, first.stdout);
    assert!(refreshed.stderr.is_empty(), "{}", refreshed.stderr);
    assert_eq!(calls(&p)["refresh"], 1);
    assert_eq!(calls(&p)["device"], 1);

    // The provider no longer accepts the refresh token (revoked session):
    // back to the device flow.
    p.lock().unwrap().refresh_token = None;
    let again = oidc_token(&p, cache.path(), &["--min-valid", "7200"]).await;
    assert!(again.ok, "{}", again.stderr);
    assert!(again.stderr.contains("WDJB-MJHT"));
    assert_eq!(calls(&p)["refresh"], 2);
    assert_eq!(calls(&p)["device"], 2);

    // Access tokens are cached apart from ID tokens.
    let access = oidc_token(&p, cache.path(), &["--token", "access"]).await;
    assert!(access.ok, "{}", access.stderr);
    assert_eq!(claims(&access.stdout)["kind"], "access");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);

    // --forget drops the cache for those settings.
    let forget = oidc_token(&p, cache.path(), &["--forget"]).await;
    assert!(forget.ok && forget.stdout.is_empty());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_command_refuses_a_plain_http_issuer() {
    let cache = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("python3")
        .arg(repo_root().join("scripts/oidc-token"))
        .args([
            "--issuer",
            "http://idp.example.com/oauth2/default",
            "--client-id",
            "x",
        ])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be https"));
    assert!(out.stdout.is_empty());
}
