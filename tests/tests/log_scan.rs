//! Hostile input, the logs: drives every route of the real broker binary
//! (auto-approved and approved flows with credentials, reads, lists, revoke,
//! refusals, forged and malformed bearer tokens), keeps everything it wrote
//! to stdout (audit and metric lines) and stderr (tracing), and scans each
//! line for AWS access key ids (`AKIA`/`ASIA` + 16), the secret keys and
//! session tokens actually returned, and the bearer tokens used.

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use tollgate::api::auth::{DevTokenSpec, mint_dev_token};
use tollgate::domain::Timestamp;
use tollgate_tests::broker::{ALICE, Auth, BOB, Broker, BrokerOptions, ERIN, role_arn};

fn server() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate-test-server"))
}

/// Every `AKIA…`/`ASIA…` access key id shape (four letters, then sixteen
/// upper-case letters or digits) in `text`.
fn key_ids(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    for i in 0..b.len().saturating_sub(19) {
        let head = &b[i..i + 4];
        if (head == b"AKIA" || head == b"ASIA")
            && b[i + 4..i + 20]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            found.push(String::from_utf8_lossy(&b[i..i + 20]).into_owned());
        }
    }
    found
}

#[test]
fn the_key_id_scanner_finds_what_it_looks_for() {
    assert_eq!(
        key_ids("x AKIAIOSFODNN7EXAMPLE y ASIA0123456789ABCDEF"),
        ["AKIAIOSFODNN7EXAMPLE", "ASIA0123456789ABCDEF"]
    );
    assert!(key_ids("AKIA-short ASIAlower01234567890ab 01J9ZKQ8W3").is_empty());
}

struct Secrets {
    /// What must never appear, with a label for the failure message.
    values: Vec<(String, String)>,
}

impl Secrets {
    fn add(&mut self, label: &str, value: &str) {
        assert!(!value.is_empty(), "{label} is empty");
        self.values.push((label.to_owned(), value.to_owned()));
    }

    fn add_token(&mut self, label: &str, token: &str) {
        self.add(label, token);
        // The signature alone would be enough to replay nothing, but it is
        // still the secret part: it must not be logged either.
        if let Some(sig) = token.rsplit('.').next()
            && sig.len() >= 16
        {
            self.add(&format!("{label} signature"), sig);
        }
    }

    fn add_credentials(&mut self, label: &str, body: &Value) {
        self.add(
            &format!("{label} secret key"),
            body["secret_access_key"].as_str().unwrap(),
        );
        self.add(
            &format!("{label} session token"),
            body["session_token"].as_str().unwrap(),
        );
    }
}

async fn post(b: &Broker, path: &str, token: &str, body: Value) -> tollgate_tests::broker::Reply {
    b.call(Method::POST, path, Auth::Token(token), Some(&body))
        .await
}

#[tokio::test]
async fn no_log_line_holds_a_key_id_secret_key_session_token_or_bearer_token() {
    let b = Broker::start(server(), BrokerOptions::default()).await;
    let mut secrets = Secrets { values: Vec::new() };
    let alice = b.token(&ALICE);
    let bob = b.token(&BOB);
    let erin = b.token(&ERIN);
    secrets.add_token("alice's token", &alice);
    secrets.add_token("bob's token", &bob);
    secrets.add_token("erin's token", &erin);
    let mut key_ids_returned = Vec::new();

    // Auto-approved staging: create, credentials twice.
    let staging = post(
        &b,
        "/requests",
        &alice,
        json!({"role_arn": role_arn("StagingDeveloper"), "duration_seconds": 900, "reason": "log scan"}),
    )
    .await;
    assert_eq!(staging.status, 201, "{}", staging.body);
    let sid = staging.body["id"].as_str().unwrap().to_owned();
    for n in 0..2 {
        let c = post(
            &b,
            &format!("/requests/{sid}/credentials"),
            &alice,
            json!({}),
        )
        .await;
        assert_eq!(c.status, 200, "{}", c.body);
        secrets.add_credentials(&format!("staging #{n}"), &c.body);
        key_ids_returned.push(c.body["access_key_id"].as_str().unwrap().to_owned());
    }

    // Production: pending, refused approvals, approved, credentials.
    let prod = post(
        &b,
        "/requests",
        &alice,
        json!({"role_arn": role_arn("ProductionOperator"), "duration_seconds": 900,
               "reason": "scan the logs", "ticket": "SEC-1"}),
    )
    .await;
    assert_eq!(prod.status, 201, "{}", prod.body);
    let pid = prod.body["id"].as_str().unwrap().to_owned();
    let wrong = post(
        &b,
        &format!("/requests/{pid}/approve"),
        &bob,
        json!({"digest": "0".repeat(64)}),
    )
    .await;
    assert_eq!(wrong.status, 409, "{}", wrong.body);
    let ineligible = post(
        &b,
        &format!("/requests/{pid}/approve"),
        &erin,
        json!({"digest": prod.body["digest"]}),
    )
    .await;
    // Erin may not see production requests at all: the same 404 as for one
    // that does not exist.
    assert_eq!(
        (ineligible.status, ineligible.code()),
        (404, "not_found"),
        "{}",
        ineligible.body
    );
    let approved = post(
        &b,
        &format!("/requests/{pid}/approve"),
        &bob,
        json!({"digest": prod.body["digest"], "comment": "ok"}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    let c = post(
        &b,
        &format!("/requests/{pid}/credentials"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.body);
    secrets.add_credentials("production", &c.body);
    key_ids_returned.push(c.body["access_key_id"].as_str().unwrap().to_owned());

    // Reads and lists.
    for path in [
        format!("/requests/{pid}"),
        "/requests".to_owned(),
        "/requests?scope=reviewable".to_owned(),
    ] {
        let r = b.call(Method::GET, &path, Auth::Token(&bob), None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let r = b.call(Method::GET, &path, Auth::Token(&alice), None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }

    // Revoke, then credentials are refused.
    let revoked = post(
        &b,
        &format!("/requests/{sid}/revoke"),
        &alice,
        json!({"reason": "done"}),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let refused = post(
        &b,
        &format!("/requests/{sid}/credentials"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);

    // Forged and malformed bearer tokens are refused and not logged.
    let forged = mint_dev_token(
        &SecretString::from("a-different-secret-of-enough-length-0123456789"),
        &DevTokenSpec {
            sub: "mallory".into(),
            groups: vec!["sre".into()],
            claims: BTreeMap::new(),
            mfa: true,
            ttl_seconds: 3600,
            ..DevTokenSpec::default()
        },
        Timestamp::now(),
    )
    .unwrap();
    secrets.add_token("forged token", &forged);
    let garbage = "not.a-jwt.but-a-secret-looking-value-0123456789abcdef";
    secrets.add_token("garbage token", garbage);
    for token in [forged.as_str(), garbage] {
        let r = b
            .call(Method::GET, "/requests", Auth::Token(token), None)
            .await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // A token where a body is expected.
    let r = post(&b, "/requests", &alice, json!({"reason": alice.clone()})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // The scan. Wait for the last lines to be written.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (stdout, stderr) = (b.stdout(), b.stderr());
    assert!(
        stdout.lines().count() > 10 && stderr.lines().count() > 10,
        "the broker logged too little to scan:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&pid),
        "the audit log names the request (so the scan reads the right logs)"
    );
    let mut found = Vec::new();
    for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        for (n, line) in text.lines().enumerate() {
            for id in key_ids(line) {
                found.push(format!("{stream}:{}: access key id {id}", n + 1));
            }
            for id in &key_ids_returned {
                if line.contains(id.as_str()) {
                    found.push(format!("{stream}:{}: returned access key id", n + 1));
                }
            }
            for (label, value) in &secrets.values {
                if line.contains(value.as_str()) {
                    found.push(format!("{stream}:{}: {label}", n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "secrets in the logs: {found:#?}");
}
