//! The router offline: everything decided before the first AWS call
//! (authentication, route sets, body limits, strict input) for both ways
//! in, a local bearer token and an API Gateway event. The flows
//! that reach AWS are tested end to end in `tests/` against the emulator.

use super::auth::{Authenticator, DevTokenSpec, TokenVerifier, VerifierSettings, mint_dev_token};
use super::clock::Clock;
use super::settings::Settings;
use super::{AppState, RouteSet, StateOptions, router};
use crate::audit::{AuditLog, Capture};
use crate::config::Config;
use crate::domain::Timestamp;
use axum::body::Body;
use http::{Request, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const SECRET: &str = "router-test-development-secret";

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) state: AppState,
    /// Audit and metric lines.
    lines: Capture,
}

/// A state with a development secret and no AWS behind it.
pub(crate) fn local_state() -> Fixture {
    fixture(local())
}

/// A state over an offline SDK configuration: any AWS call would fail, so a
/// test that passes made none.
fn fixture(auth: Authenticator) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("all.cedar"),
        "permit (principal, action, resource);",
    )
    .unwrap();
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let (audit, lines) = AuditLog::capture();
    let state = AppState::build(
        &sdk,
        StateOptions {
            config: Config {
                policy_dir: dir.path().to_owned(),
                ..crate::aws::testing::local_config("tollgate")
            },
            routes: RouteSet::All,
            auth,
            settings: Settings::default(),
            clock: Clock::system(),
            audit,
        },
    )
    .unwrap();
    Fixture {
        _dir: dir,
        state,
        lines,
    }
}

fn local() -> Authenticator {
    Authenticator::Local(Arc::new(
        TokenVerifier::new(&VerifierSettings {
            dev_secret: Some(SecretString::from(SECRET)),
            ..VerifierSettings::default()
        })
        .unwrap(),
    ))
}

fn token() -> String {
    mint_dev_token(
        &SecretString::from(SECRET),
        &DevTokenSpec {
            sub: "alice".into(),
            groups: vec!["developers".into()],
            ttl_seconds: 600,
            ..DevTokenSpec::default()
        },
        Timestamp::now(),
    )
    .unwrap()
}

async fn send(
    state: &AppState,
    set: RouteSet,
    req: Request<Body>,
) -> (StatusCode, Value, http::HeaderMap) {
    let resp = router(state.clone(), set).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, headers)
}

fn request(method: &str, uri: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn health_answers_without_a_token_or_aws() {
    let f = fixture(local());
    let (status, body, _) =
        send(&f.state, RouteSet::All, request("GET", "/health", None, "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let f = fixture(local());
    let (status, body, _) = send(&f.state, RouteSet::All, request("GET", "/admin", None, "")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body, _) = send(
        &f.state,
        RouteSet::All,
        request("PUT", "/requests", None, ""),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn each_function_mounts_only_its_own_routes() {
    let f = fixture(local());
    let id = "01J00000000000000000000000";
    let cases = [
        (
            RouteSet::Reviews,
            "GET",
            "/health".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Reviews,
            "POST",
            "/requests".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Reviews,
            "GET",
            "/ui/".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Requests,
            "GET",
            "/dev-oidc/.well-known/openid-configuration".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Requests,
            "POST",
            format!("/requests/{id}/approve"),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Requests,
            "POST",
            format!("/requests/{id}/credentials"),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Credentials,
            "POST",
            format!("/requests/{id}/revoke"),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Revocations,
            "POST",
            format!("/requests/{id}/credentials"),
            StatusCode::NOT_FOUND,
        ),
        (
            RouteSet::Requests,
            "GET",
            "/health".to_owned(),
            StatusCode::OK,
        ),
        (
            RouteSet::Reviews,
            "GET",
            format!("/requests/{id}/approve"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (set, method, path, want) in cases {
        let (status, _, _) = send(&f.state, set, request(method, &path, None, "")).await;
        assert_eq!(status, want, "{set:?} {method} {path}");
    }
}

#[tokio::test]
async fn local_mode_needs_a_valid_bearer_token() {
    let f = fixture(local());
    let (status, body, headers) = send(
        &f.state,
        RouteSet::All,
        request("GET", "/requests", None, ""),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, _, _) = send(
        &f.state,
        RouteSet::All,
        request("GET", "/requests", Some("x.y.z"), ""),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // With a valid token the request gets as far as reading the body.
    let t = token();
    let (status, body, _) = send(
        &f.state,
        RouteSet::All,
        request("POST", "/requests", Some(&t), "{oops"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
}

#[tokio::test]
async fn bodies_over_sixteen_kibibytes_are_413_whether_declared_or_read() {
    let f = fixture(local());
    let t = token();
    // No Content-Length here: the limit applies while reading.
    let big = "x".repeat(16 * 1024 + 1);
    let (status, body, _) = send(
        &f.state,
        RouteSet::All,
        request("POST", "/requests", Some(&t), &big),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    // A declared length over the limit is refused before reading anything.
    let req = Request::builder()
        .method("POST")
        .uri("/requests")
        .header("authorization", format!("Bearer {t}"))
        .header("content-length", "1000000")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, _) = send(&f.state, RouteSet::All, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

fn apigw_event(claims: Option<&str>, body: &str, authorization: Option<&str>) -> Request<Body> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/apigw-v2-jwt.json"
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["body"] = Value::String(body.to_owned());
    match claims {
        Some(c) => {
            event["requestContext"]["authorizer"]["jwt"]["claims"] =
                serde_json::from_str(c).unwrap()
        }
        None => {
            event["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    if let Some(a) = authorization {
        event["headers"]["authorization"] = Value::String(a.to_owned());
    }
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let (parts, body) = req.into_parts();
    Request::from_parts(parts, Body::from(body.to_vec()))
}

#[tokio::test]
async fn a_deployed_function_ignores_authorizer_claims_without_a_verified_token() {
    let verifier = super::auth::OidcVerifier::new(&VerifierSettings {
        issuer: Some("http://127.0.0.1:9".into()),
        audience: Some("tollgate".into()),
        ..VerifierSettings::default()
    })
    .unwrap();
    let f = fixture(Authenticator::Oidc(Arc::new(verifier)));
    let claims = r#"{"sub": "alice", "groups": "[sre]", "amr": "[mfa]"}"#;
    // Claims alone, as a direct invoke can forge them: 401.
    let (status, body, _) = send(
        &f.state,
        RouteSet::Requests,
        apigw_event(Some(claims), "[]", None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A development (HS256) token is refused before any key is fetched.
    let bearer = format!("Bearer {}", token());
    let (status, _, _) = send(
        &f.state,
        RouteSet::Requests,
        apigw_event(Some(claims), "[]", Some(&bearer)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The EMF values of `metric` written so far, as (operation, count).
fn metric_counts(lines: &Capture, metric: &str) -> Vec<(String, u64)> {
    lines
        .json()
        .iter()
        .filter_map(|l| {
            let count = l.get(metric)?.as_u64()?;
            Some((l["Operation"].as_str()?.to_owned(), count))
        })
        .collect()
}

#[tokio::test]
async fn an_answer_of_500_or_more_counts_a_server_error_for_its_route_and_a_refusal_does_not() {
    let f = fixture(local());
    let t = token();
    // Refused before any AWS call: an error, not a server error.
    let (status, _, _) = send(
        &f.state,
        RouteSet::All,
        request("GET", "/requests/not-an-id", Some(&t), ""),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(metric_counts(&f.lines, "ServerErrors").is_empty());
    assert_eq!(
        metric_counts(&f.lines, "Errors"),
        [("GET /requests/{id}".to_owned(), 1)]
    );

    // The store cannot be reached (the fixture's endpoint is closed): 503,
    // counted for the alarm under its route, never under the request's id.
    let id = crate::domain::RequestId::generate(Timestamp::now());
    let (status, body, _) = send(
        &f.state,
        RouteSet::All,
        request("GET", &format!("/requests/{id}"), Some(&t), ""),
    )
    .await;
    assert!(status.is_server_error(), "{status} {body}");
    assert_eq!(
        metric_counts(&f.lines, "ServerErrors"),
        [("GET /requests/{id}".to_owned(), 1)]
    );
}
