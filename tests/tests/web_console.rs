//! The web console's server side against the real local broker: the pages
//! and their headers, the development sign-in (present only with a
//! development secret, a real code flow with PKCE whose token the API
//! accepts), and what `GET /requests/{id}` adds for the request page. The
//! console itself runs in a browser in `tests/browser/`.

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use tollgate_tests::broker::{ALICE, Auth, BOB, Broker, BrokerOptions, DAVE, role_arn};

fn server() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate-test-server"))
}

/// `application/x-www-form-urlencoded`, as OAuth sends it.
fn form(req: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let mut u = reqwest::Url::parse("http://form/").unwrap();
    u.query_pairs_mut().extend_pairs(pairs);
    req.header("content-type", "application/x-www-form-urlencoded")
        .body(u.query().unwrap_or_default().to_owned())
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_development_sign_in_gives_a_token_the_api_accepts_and_exists_only_with_the_secret() {
    let b = Broker::start(server(), BrokerOptions::default()).await;
    let http = no_redirects();
    let shell = http
        .get(format!("{}/ui/requests/new", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(shell.status(), 200);
    assert!(
        shell.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = shell.text().await.unwrap();
    assert!(html.contains(
        "<meta name=\"tollgate-discovery\" content=\"/dev-oidc/.well-known/openid-configuration\">"
    ));
    let doc: Value = http
        .get(format!(
            "{}/dev-oidc/.well-known/openid-configuration",
            b.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let callback = format!("{}/ui/callback", b.url);
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let picked = form(
        http.post(doc["authorization_endpoint"].as_str().unwrap()),
        &[
            ("response_type", "code"),
            ("client_id", "tollgate"),
            ("redirect_uri", callback.as_str()),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("user", "bob"),
        ],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(picked.status(), 303);
    let location = reqwest::Url::parse(picked.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: Value = form(
        http.post(doc["token_endpoint"].as_str().unwrap()),
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("client_id", "tollgate"),
            ("code_verifier", verifier.as_str()),
        ],
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token = tokens["id_token"].as_str().unwrap();
    let mine = b
        .call(
            Method::GET,
            "/requests?scope=reviewable",
            Auth::Token(token),
            None,
        )
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);

    // Without a development secret (tokens from a JWKS file instead) there
    // is no development sign-in, and the console says sign-in is not set up.
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256","x":"THjupzliRi8y9G7IvdiljRkdzxfj1eB2lSMuuK-zXQU","y":"fEsmwjub5VPufLrM3qHaxJaQ_aQyL7_QKaC69yf066I"}]}"#,
    )
    .unwrap();
    let prod = Broker::start(
        server(),
        BrokerOptions {
            extra_env: vec![
                ("TOLLGATE_DEV_SECRET".into(), String::new()),
                ("TOLLGATE_DEV_CLOCK_FILE".into(), String::new()),
                ("TOLLGATE_JWKS_FILE".into(), jwks.display().to_string()),
            ],
            ..BrokerOptions::default()
        },
    )
    .await;
    for path in [
        "/dev-oidc/.well-known/openid-configuration",
        "/dev-oidc/authorize",
    ] {
        let r = http
            .get(format!("{}{path}", prod.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = form(
        http.post(format!("{}/dev-oidc/token", prod.url)),
        &[("grant_type", "authorization_code")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let html = http
        .get(format!("{}/ui/", prod.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<meta name=\"tollgate-sign-in\" content=\"none\">"));
    assert!(!html.contains("dev-oidc"));
}

#[tokio::test]
async fn a_request_shows_its_role_and_what_the_caller_may_do_and_errors_name_their_field() {
    let b = Broker::start(server(), BrokerOptions::default()).await;
    let role = role_arn("ProductionOperator");
    let created = b
        .call(
            Method::POST,
            "/requests",
            Auth::As(&ALICE),
            Some(&json!({
                "role_arn": role,
                "duration_seconds": 3600,
                "reason": "rotate certificates",
                "ticket": "CHG-1",
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let path = format!("/requests/{id}");
    let show = |who| b.call(Method::GET, &path, Auth::As(who), None);

    let bob = show(&BOB).await.body;
    assert_eq!(bob["role"]["account"], role.split(':').nth(4).unwrap());
    assert_eq!(bob["role"]["name"], "ProductionOperator");
    assert_eq!(bob["role"]["tags"]["environment"], "production");
    assert_eq!(bob["review"]["allowed"], true);
    assert_eq!(bob["review"]["decision"]["decision"], "allow");
    assert!(
        bob["review"]["decision"]["permitted_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "production-approve")
    );

    let alice = show(&ALICE).await.body;
    assert_eq!(alice["review"]["allowed"], false);
    assert_eq!(alice["review"]["code"], "self_review");
    assert!(alice["review"].get("decision").is_none());

    // An SRE without MFA may see it, and is told why they may not approve.
    let dave = show(&DAVE).await.body;
    assert_eq!(dave["review"]["allowed"], false);
    assert_eq!(dave["review"]["code"], "policy_denied");
    assert!(
        dave["review"]["decision"]["forbidden_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "approver-mfa-required")
    );

    let approved = b
        .call(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Auth::As(&BOB),
            Some(&json!({"digest": bob["digest"]})),
        )
        .await;
    assert_eq!(approved.status, 200);
    let after = show(&BOB).await.body;
    assert_eq!(after["review"]["code"], "not_pending");

    // A form can point at the field an error is about.
    let r = b
        .call(
            Method::POST,
            "/requests?dry_run=true",
            Auth::As(&ALICE),
            Some(&json!({
                "role_arn": role,
                "duration_seconds": 3600,
                "reason": "",
            })),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_input"));
    assert_eq!(r.body["error"]["field"], "reason");
}
