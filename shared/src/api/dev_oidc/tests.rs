use super::*;
use crate::api::auth::{TokenVerifier, VerifierSettings};
use axum::body::{Body, to_bytes};
use http::Request;
use serde_json::Value;
use tower::ServiceExt;

const SECRET: &str = "dev-oidc-test-secret-0123456789";
const CALLBACK: &str = "http://127.0.0.1:8080/ui/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123";

fn provider() -> DevProvider {
    DevProvider::new(
        SecretString::from(SECRET),
        "tollgate-local".into(),
        "tollgate".into(),
    )
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut u = reqwest::Url::parse("http://form/").unwrap();
    u.query_pairs_mut().extend_pairs(pairs);
    u.query().unwrap_or_default().to_owned()
}

fn authorize_form(user: &str, method: &str, redirect: &str) -> String {
    encode(&[
        ("response_type", "code"),
        ("client_id", "tollgate"),
        ("redirect_uri", redirect),
        ("scope", "openid profile"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", &challenge(VERIFIER)),
        ("code_challenge_method", method),
        ("user", user),
    ])
}

async fn send(p: &DevProvider, method: &str, uri: &str, form: Option<String>) -> Response {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8080");
    if form.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    p.router()
        .oneshot(req.body(Body::from(form.unwrap_or_default())).unwrap())
        .await
        .unwrap()
}

async fn body(r: Response) -> String {
    String::from_utf8(to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
}

/// The code from a redirect to the callback.
fn code_of(r: &Response) -> String {
    let location = r.headers()[header::LOCATION].to_str().unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    assert!(location.starts_with(CALLBACK), "{location}");
    let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st4te");
    q["code"].clone()
}

fn token_form(code: &str, verifier: &str) -> String {
    encode(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("client_id", "tollgate"),
        ("code_verifier", verifier),
    ])
}

#[tokio::test]
async fn a_code_flow_with_pkce_yields_a_token_the_broker_accepts() {
    let p = provider();
    let r = send(
        &p,
        "GET",
        "/dev-oidc/.well-known/openid-configuration",
        None,
    )
    .await;
    let doc: Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(doc["issuer"], "tollgate-local");
    assert_eq!(
        doc["token_endpoint"],
        "http://127.0.0.1:8080/dev-oidc/token"
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));

    let q = authorize_form("bob", "S256", CALLBACK);
    let r = send(&p, "GET", &format!("/dev-oidc/authorize?{q}"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:8080"),
        "{csp}"
    );
    let page = body(r).await;
    for u in EXAMPLE_USERS {
        assert!(page.contains(&format!("value=\"{}\"", u.sub)), "{}", u.sub);
    }

    let r = send(&p, "POST", "/dev-oidc/authorize", Some(q)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let code = code_of(&r);
    let r = send(
        &p,
        "POST",
        "/dev-oidc/token",
        Some(token_form(&code, VERIFIER)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let t: Value = serde_json::from_str(&body(r).await).unwrap();
    let verifier = TokenVerifier::new(&VerifierSettings {
        dev_secret: Some(SecretString::from(SECRET)),
        ..VerifierSettings::default()
    })
    .unwrap();
    let claims = verifier.verify(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["groups"], json!(["sre"]));
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["aud"], "tollgate");
    assert!(claims["amr"].as_array().unwrap().contains(&json!("mfa")));

    // A code is good once.
    let r = send(
        &p,
        "POST",
        "/dev-oidc/token",
        Some(token_form(&code, VERIFIER)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_wrong_verifier_gets_nothing_and_burns_the_code() {
    let p = provider();
    let r = send(
        &p,
        "POST",
        "/dev-oidc/authorize",
        Some(authorize_form("alice", "S256", CALLBACK)),
    )
    .await;
    let code = code_of(&r);
    let other = "another-verifier-of-at-least-forty-three-chars-xyz";
    let r = send(
        &p,
        "POST",
        "/dev-oidc/token",
        Some(token_form(&code, other)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(e["error"], "invalid_grant");
    let r = send(
        &p,
        "POST",
        "/dev-oidc/token",
        Some(token_form(&code, VERIFIER)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the code was burnt");
}

#[tokio::test]
async fn plain_pkce_foreign_redirects_and_unknown_users_are_refused() {
    let p = provider();
    // `plain` goes back to the client as an OAuth error, with no code.
    let r = send(
        &p,
        "POST",
        "/dev-oidc/authorize",
        Some(authorize_form("alice", "plain", CALLBACK)),
    )
    .await;
    let location = r.headers()[header::LOCATION].to_str().unwrap();
    assert!(location.contains("error=invalid_request"), "{location}");
    assert!(!location.contains("code="), "{location}");
    // A redirect anywhere but a loopback callback is never followed.
    for redirect in [
        "https://evil.example.com/ui/callback",
        "http://127.0.0.1:8080/elsewhere",
        "http://127.0.0.1:8080/ui/callback?x=1",
    ] {
        let r = send(
            &p,
            "POST",
            "/dev-oidc/authorize",
            Some(authorize_form("alice", "S256", redirect)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{redirect}");
        assert!(r.headers().get(header::LOCATION).is_none(), "{redirect}");
    }
    let r = send(
        &p,
        "POST",
        "/dev-oidc/authorize",
        Some(authorize_form("mallory", "S256", CALLBACK)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(header::LOCATION).is_none());
}

#[test]
fn the_example_users_are_those_local_broker_prints() {
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-broker"),
    )
    .unwrap();
    // The script's one table of users: `"name|who they are|--sub name ..."`.
    let printed: Vec<&str> = script
        .lines()
        .filter_map(|l| {
            l.split_once("|--sub ")
                .map(|(_, a)| a.trim_end_matches('"'))
        })
        .collect();
    assert_eq!(printed.len(), EXAMPLE_USERS.len(), "{printed:?}");
    for (args, u) in printed.iter().zip(EXAMPLE_USERS) {
        let mut want = vec![u.sub.to_owned()];
        want.extend(u.groups.iter().map(|g| format!("--group {g}")));
        want.extend(u.claims.iter().map(|(k, v)| format!("--claim {k}={v}")));
        if u.mfa {
            want.push("--mfa".into());
        }
        let mut have: Vec<String> = Vec::new();
        let mut words = args.split_whitespace();
        have.push(words.next().unwrap_or_default().to_owned());
        while let Some(w) = words.next() {
            match w {
                "--mfa" => have.push(w.to_owned()),
                flag => have.push(format!("{flag} {}", words.next().unwrap_or_default())),
            }
        }
        want.sort();
        have.sort();
        assert_eq!(have, want, "{}", u.sub);
    }
}
