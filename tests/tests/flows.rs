//! End-to-end flows over HTTP against the real local broker binary and the
//! emulator: auto-approved staging, production with one MFA approval and
//! working credentials, two approvers, deny, cancel, revoke with its deny
//! statement on the role, lapse and expiry through the sweep, pagination,
//! idempotency and signed webhooks.

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use tollgate::api::notify::signature;
use tollgate_tests::broker::{
    ALICE, Auth, BOB, Broker, BrokerOptions, CAROL, DAVE, ERIN, User, account_of, role_arn,
};

fn server() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate-test-server"))
}

async fn broker() -> Broker {
    Broker::start(server(), BrokerOptions::default()).await
}

fn production(duration: u64) -> Value {
    json!({
        "role_arn": role_arn("ProductionOperator"),
        "duration_seconds": duration,
        "reason": "deploy the hotfix for INC-4711",
        "ticket": "INC-4711",
    })
}

async fn create(b: &Broker, who: &User, body: &Value) -> Value {
    let r = b
        .call(Method::POST, "/requests", Auth::As(who), Some(body))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn act(
    b: &Broker,
    who: &User,
    id: &str,
    action: &str,
    body: Value,
) -> tollgate_tests::broker::Reply {
    b.call(
        Method::POST,
        &format!("/requests/{id}/{action}"),
        Auth::As(who),
        Some(&body),
    )
    .await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// Uses credentials against the emulator and returns the caller ARN.
async fn caller_arn(b: &Broker, creds: &Value) -> String {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&b.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            creds["access_key_id"].as_str().unwrap(),
            creds["secret_access_key"].as_str().unwrap(),
            creds["session_token"].as_str().map(str::to_owned),
            None,
            "tollgate-e2e",
        ))
        .load()
        .await;
    let out = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("the minted credentials work against the emulator");
    out.arn().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_staging_request_is_auto_approved_and_its_credentials_work() {
    let b = broker().await;
    let req = create(
        &b,
        &ALICE,
        &json!({"role_arn": role_arn("StagingDeveloper"), "duration_seconds": 3600, "reason": "load test"}),
    )
    .await;
    assert_eq!(req["status"], "active");
    assert!(req["window_end"].is_string());
    let id = id_of(&req);
    let r = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let arn = caller_arn(&b, &r.body).await;
    assert_eq!(
        arn,
        format!(
            "arn:aws:sts::{}:assumed-role/StagingDeveloper/tollgate-{id}",
            account_of("StagingDeveloper")
        )
    );
    let calls = b.sts.assume_role_calls();
    assert_eq!(calls.len(), 1);
    let tags: Vec<(&str, &str)> = (1..=3)
        .filter_map(|i| {
            Some((
                calls[0].get(&format!("Tags.member.{i}.Key"))?.as_str(),
                calls[0].get(&format!("Tags.member.{i}.Value"))?.as_str(),
            ))
        })
        .collect();
    assert!(tags.contains(&("tollgate:approver", "auto")), "{tags:?}");
    // The secret never reaches a log line.
    let secret = r.body["secret_access_key"].as_str().unwrap();
    let token = r.body["session_token"].as_str().unwrap();
    for out in [b.stdout(), b.stderr()] {
        assert!(!out.contains(secret) && !out.contains(token));
    }
}

#[tokio::test]
async fn a_production_request_approved_by_an_sre_with_mfa_yields_tagged_credentials() {
    let b = broker().await;
    let req = create(&b, &ALICE, &production(3600)).await;
    assert_eq!(req["status"], "pending");
    assert_eq!(req["approvals_required"], 1);
    let id = id_of(&req);
    // The approver finds it among what they can review.
    let list = b
        .call(
            Method::GET,
            "/requests?scope=reviewable",
            Auth::As(&BOB),
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str())
    );
    // No credentials before approval.
    let early = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!((early.status, early.code()), (409, "not_active"));
    let approved = act(
        &b,
        &BOB,
        &id,
        "approve",
        json!({"digest": req["digest"], "comment": "looks right"}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["status"], "active");
    assert_eq!(approved.body["approvals"][0]["approver"], "bob");
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    assert_eq!(
        caller_arn(&b, &creds.body).await,
        format!(
            "arn:aws:sts::{}:assumed-role/ProductionOperator/tollgate-{id}",
            account_of("ProductionOperator")
        )
    );
    let call = b.sts.assume_role_calls().pop().expect("an AssumeRole call");
    assert_eq!(call["RoleSessionName"], format!("tollgate-{id}"));
    assert_eq!(call["SourceIdentity"], "alice");
    assert_eq!(call["RoleArn"], role_arn("ProductionOperator"));
    let tags: std::collections::BTreeMap<&str, &str> = (1..=10)
        .filter_map(|i| {
            Some((
                call.get(&format!("Tags.member.{i}.Key"))?.as_str(),
                call.get(&format!("Tags.member.{i}.Value"))?.as_str(),
            ))
        })
        .collect();
    assert_eq!(tags.get("tollgate:request"), Some(&id.as_str()));
    assert_eq!(tags.get("tollgate:approver"), Some(&"bob"));
    assert_eq!(tags.get("tollgate:ticket"), Some(&"INC-4711"));
    let policy: Value = serde_json::from_str(&call["Policy"]).unwrap();
    let window_end = approved.body["window_end"].as_str().unwrap();
    assert!(policy.to_string().contains(window_end), "{policy}");
    // The audit trail: created, approved, credentials issued.
    let shown = b
        .call(
            Method::GET,
            &format!("/requests/{id}"),
            Auth::As(&ALICE),
            None,
        )
        .await;
    let kinds: Vec<&str> = shown.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "approved", "credentials_issued"]);
    let events: Vec<tollgate::domain::Event> =
        serde_json::from_value(shown.body["events"].clone()).unwrap();
    tollgate::audit::chain::verify(
        &events,
        shown.body["chain_head"].as_str().unwrap(),
        shown.body["version"].as_u64().unwrap(),
    )
    .expect("the chain verifies");
}

#[tokio::test]
async fn a_two_approver_role_needs_two_different_approvers() {
    let b = broker().await;
    let req = create(
        &b,
        &ALICE,
        &json!({"role_arn": role_arn("ProductionBreakGlass"), "duration_seconds": 1800,
                "reason": "database failover", "ticket": "INC-9"}),
    )
    .await;
    assert_eq!(req["approvals_required"], 2);
    let id = id_of(&req);
    let digest = req["digest"].clone();
    let first = act(&b, &BOB, &id, "approve", json!({"digest": digest})).await;
    assert_eq!(
        (first.status, first.body["status"].as_str()),
        (200, Some("pending"))
    );
    let twice = act(&b, &BOB, &id, "approve", json!({"digest": digest})).await;
    assert_eq!((twice.status, twice.code()), (409, "already_approved"));
    let second = act(&b, &CAROL, &id, "approve", json!({"digest": digest})).await;
    assert_eq!(
        (second.status, second.body["status"].as_str()),
        (200, Some("active"))
    );
    assert_eq!(second.body["approvals"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_denied_request_gives_no_credentials() {
    let b = broker().await;
    let id = id_of(&create(&b, &ALICE, &production(1800)).await);
    let denied = act(
        &b,
        &BOB,
        &id,
        "deny",
        json!({"reason": "use the runbook instead"}),
    )
    .await;
    assert_eq!(denied.status, 200, "{}", denied.body);
    assert_eq!(denied.body["status"], "denied");
    assert_eq!(denied.body["closed_reason"], "use the runbook instead");
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!((creds.status, creds.code()), (409, "not_active"));
    let again = act(&b, &CAROL, &id, "approve", json!({"digest": "x"})).await;
    assert_eq!(again.status, 409);
}

#[tokio::test]
async fn the_requester_cancels_a_pending_request_once() {
    let b = broker().await;
    let id = id_of(&create(&b, &ALICE, &production(1800)).await);
    let by_other = act(&b, &BOB, &id, "cancel", json!({})).await;
    assert_eq!((by_other.status, by_other.code()), (403, "not_requester"));
    let cancelled = act(&b, &ALICE, &id, "cancel", json!({})).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (200, Some("cancelled"))
    );
    let again = act(&b, &ALICE, &id, "cancel", json!({})).await;
    assert_eq!((again.status, again.code()), (409, "not_pending"));
    let reviewable = b
        .call(
            Method::GET,
            "/requests?scope=reviewable",
            Auth::As(&BOB),
            None,
        )
        .await;
    assert!(
        !reviewable.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str())
    );
}

#[tokio::test]
async fn revoking_a_grant_puts_a_deny_statement_on_the_role_and_stops_credentials() {
    let b = broker().await;
    let req = create(&b, &ALICE, &production(3600)).await;
    let id = id_of(&req);
    act(&b, &BOB, &id, "approve", json!({"digest": req["digest"]})).await;
    // Credentials were handed out, so live sessions must be denied.
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    let revoked = act(
        &b,
        &BOB,
        &id,
        "revoke",
        json!({"reason": "incident closed"}),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(revoked.body["closed_by"]["user"], "bob");
    let iam = b.iam_in(account_of("ProductionOperator")).await;
    let doc = iam
        .get_role_policy()
        .role_name("ProductionOperator")
        .policy_name("TollgateRevocations")
        .send()
        .await
        .expect("the revocation policy exists");
    let text = urlencoding_decode(doc.policy_document());
    let role_id = iam
        .get_role()
        .role_name("ProductionOperator")
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .role_id()
        .to_owned();
    assert!(text.contains(&format!("{role_id}:tollgate-{id}")), "{text}");
    assert!(text.contains("\"Deny\""), "{text}");
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!((creds.status, creds.code()), (409, "not_active"));
    let again = act(&b, &ALICE, &id, "revoke", json!({"reason": "again"})).await;
    assert_eq!((again.status, again.code()), (409, "not_active"));
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    let form = tollgate::aws::testing::form_params(&format!("d={}", s.replace('+', "%2B")));
    form.get("d").cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_sweep_lapses_stale_requests_and_expires_ended_grants() {
    let b = Broker::start(
        server(),
        BrokerOptions {
            pending_ttl_seconds: Some(120),
            ..BrokerOptions::default()
        },
    )
    .await;
    let pending = id_of(&create(&b, &ALICE, &production(1800)).await);
    let active = create(
        &b,
        &ALICE,
        &json!({"role_arn": role_arn("StagingDeveloper"), "duration_seconds": 60, "reason": "quick look"}),
    )
    .await;
    assert_eq!(active["status"], "active");
    let active = id_of(&active);
    // Nothing is due yet: a sweep or two pass and nothing changes.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let still = b
        .call(
            Method::GET,
            &format!("/requests/{pending}"),
            Auth::As(&ALICE),
            None,
        )
        .await;
    assert_eq!(still.body["status"], "pending");
    // Jump past both deadlines; the in-process sweep records both.
    b.set_clock_offset(600);
    let lapsed = b
        .wait_for(&pending, &ALICE, "the lapse event", |v| {
            v["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["type"] == "lapsed"))
        })
        .await;
    assert_eq!(lapsed["status"], "lapsed");
    assert_eq!(
        lapsed["events"].as_array().unwrap().last().unwrap()["actor"],
        "system"
    );
    let expired = b
        .wait_for(&active, &ALICE, "the expiry event", |v| {
            v["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["type"] == "expired"))
        })
        .await;
    assert_eq!(expired["status"], "expired");
    // Exactly one event each, however many sweeps ran.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let after = b
        .call(
            Method::GET,
            &format!("/requests/{active}"),
            Auth::As(&ALICE),
            None,
        )
        .await;
    let n = after.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "expired")
        .count();
    assert_eq!(n, 1);
    let creds = act(&b, &ALICE, &active, "credentials", json!({})).await;
    assert_eq!((creds.status, creds.code()), (409, "not_active"));
}

#[tokio::test]
async fn a_revocation_statement_is_dropped_by_the_sweep_once_its_window_has_passed() {
    let b = broker().await;
    // DataAnalyst is for data engineers of the owning team, and only this
    // test revokes on it, so no other test's sweep touches its statements.
    let requester = User {
        sub: "grace",
        groups: &["data-engineers", "oncall"],
        mfa: true,
        claims: &[("department", "data")],
    };
    let approver = User {
        sub: "frank",
        groups: &["data-engineers"],
        mfa: true,
        claims: &[("department", "data")],
    };
    let req = create(
        &b,
        &requester,
        &json!({"role_arn": role_arn("DataAnalyst"), "duration_seconds": 900, "reason": "quarterly numbers", "ticket": "DATA-7"}),
    )
    .await;
    let id = id_of(&req);
    assert_eq!(req["status"], "pending");
    let ok = act(
        &b,
        &approver,
        &id,
        "approve",
        json!({"digest": req["digest"]}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let creds = act(&b, &requester, &id, "credentials", json!({})).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    let revoked = act(
        &b,
        &requester,
        &id,
        "revoke",
        json!({"reason": "done early"}),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    // The role's revocation policy: `None` when the role has none (IAM says
    // NoSuchEntity); any other IAM answer fails the test.
    let iam = b.iam_in(account_of("DataAnalyst")).await;
    let policy = || async {
        match iam
            .get_role_policy()
            .role_name("DataAnalyst")
            .policy_name("TollgateRevocations")
            .send()
            .await
        {
            Ok(doc) => Some(urlencoding_decode(doc.policy_document())),
            Err(e) => {
                let e = e.into_service_error();
                assert!(e.is_no_such_entity_exception(), "reading the policy: {e:?}");
                None
            }
        }
    };
    let text = policy().await.expect("the revocation policy exists");
    assert!(text.contains(&format!("tollgate-{id}")), "{text}");
    b.set_clock_offset(3600);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Its only statement pruned, the policy is deleted.
    while let Some(text) = policy().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the statement was never pruned: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn lists_page_with_sealed_tokens_that_only_their_owner_can_use() {
    let b = broker().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = production(900);
        body["reason"] = json!(format!("batch job {i}"));
        ids.push(id_of(&create(&b, &ALICE, &body).await));
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/requests?scope=mine&limit=2&next_token={t}"),
            None => "/requests?scope=mine&limit=2".to_owned(),
        };
        let r = b.call(Method::GET, &path, Auth::As(&ALICE), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match r.body["next_token"].as_str() {
            Some(t) => {
                // Bob cannot use Alice's token, and a changed token is refused.
                let stolen = b
                    .call(
                        Method::GET,
                        &format!("/requests?scope=mine&limit=2&next_token={t}"),
                        Auth::As(&BOB),
                        None,
                    )
                    .await;
                assert_eq!((stolen.status, stolen.code()), (400, "invalid_page_token"));
                let mut forged = t.to_owned();
                let last = forged.pop().unwrap();
                forged.push(if last == 'A' { 'B' } else { 'A' });
                let bad = b
                    .call(
                        Method::GET,
                        &format!("/requests?scope=mine&limit=2&next_token={forged}"),
                        Auth::As(&ALICE),
                        None,
                    )
                    .await;
                assert_eq!(bad.status, 400);
                token = Some(t.to_owned());
            }
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages");
    // Each exactly once (ids made within one second have no set order).
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "an item came twice: {seen:?}");
    ids.sort();
    assert_eq!(sorted, ids);
    let filtered = b
        .call(
            Method::GET,
            "/requests?scope=mine&status=active",
            Auth::As(&ALICE),
            None,
        )
        .await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_request_and_refuses_another_body() {
    let b = broker().await;
    let body = production(900);
    let key = [("idempotency-key", "deploy-2026-11-23-001")];
    let send = |body: Value| {
        let b = &b;
        async move {
            b.raw(
                Method::POST,
                "/requests",
                Auth::As(&ALICE),
                Some(body.to_string().into_bytes()),
                &key,
            )
            .await
        }
    };
    let first = send(body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = send(body.clone()).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let mut other = body;
    other["duration_seconds"] = json!(1200);
    let clash = send(other).await;
    assert_eq!(
        (clash.status, clash.code()),
        (409, "idempotency_key_reused")
    );
}

#[tokio::test]
async fn a_dry_run_explains_the_decision_and_stores_nothing() {
    let b = broker().await;
    let r = b
        .call(
            Method::POST,
            "/requests?dry_run=true",
            Auth::As(&ALICE),
            Some(&production(3600)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["outcome"], "pending");
    assert!(
        r.body["explanation"]
            .as_str()
            .unwrap()
            .contains("production-request")
    );
    let denied = b
        .call(
            Method::POST,
            "/requests?dry_run=true",
            Auth::As(&ALICE),
            Some(&json!({"role_arn": role_arn("ProductionOperator"), "duration_seconds": 3600, "reason": "no ticket"})),
        )
        .await;
    assert_eq!(denied.status, 200);
    assert_eq!(denied.body["outcome"], "denied");
    assert_eq!(
        denied.body["decision"]["forbidden_by"][0]["id"],
        "production-ticket-required"
    );
    let mine = b
        .call(Method::GET, "/requests", Auth::As(&ALICE), None)
        .await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 0);
    // The same request for real is refused with the explanation.
    let real = b
        .call(
            Method::POST,
            "/requests",
            Auth::As(&ALICE),
            Some(&json!({"role_arn": role_arn("ProductionOperator"), "duration_seconds": 3600, "reason": "no ticket"})),
        )
        .await;
    assert_eq!((real.status, real.code()), (403, "policy_denied"));
    assert_eq!(
        real.body["error"]["explanation"]["forbidden_by"][0]["id"],
        "production-ticket-required"
    );
}

#[tokio::test]
async fn webhooks_announce_pending_requests_and_decisions_signed_and_a_dead_webhook_changes_nothing()
 {
    let (url, got) = tollgate_tests::webhooks::receiver("SECRETPATH").await;
    let dead = format!(
        "http://127.0.0.1:{}/hook/x",
        tollgate_tests::broker::free_port()
    );
    let secret = "webhook-signing-secret-e2e";
    let b = Broker::start(
        server(),
        BrokerOptions {
            webhook_urls: vec![url, dead],
            webhook_secret: Some(secret.into()),
            ..BrokerOptions::default()
        },
    )
    .await;
    let req = create(&b, &ALICE, &production(1800)).await;
    let id = id_of(&req);
    let ok = act(&b, &BOB, &id, "approve", json!({"digest": req["digest"]})).await;
    assert_eq!(ok.status, 200);
    let got = got.lock().unwrap().clone();
    let events: Vec<String> = got
        .iter()
        .map(|(_, body)| {
            let v: Value = serde_json::from_slice(body).unwrap();
            v["tollgate"]["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(events, ["request.pending", "request.approved"]);
    for (headers, body) in &got {
        let ts: i64 = headers["x-tollgate-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            headers["x-tollgate-signature"].to_str().unwrap(),
            signature(&secret.to_owned().into(), ts, body)
        );
        let v: Value = serde_json::from_slice(body).unwrap();
        assert!(v["text"].as_str().unwrap().contains("alice"));
        assert_eq!(v["tollgate"]["request_id"], id.as_str());
        // The deep link into the web console, on this server by default.
        assert_eq!(
            v["tollgate"]["link"],
            format!("{}/ui/requests/{id}", b.url).as_str()
        );
    }
    assert!(
        !b.stderr().contains("SECRETPATH"),
        "a webhook path reached the logs"
    );
}

#[tokio::test]
async fn a_deny_ends_a_two_approver_request_whatever_approvals_it_already_has() {
    let b = broker().await;
    let req = create(
        &b,
        &ALICE,
        &json!({"role_arn": role_arn("ProductionBreakGlass"), "duration_seconds": 1800,
                "reason": "database failover", "ticket": "INC-9"}),
    )
    .await;
    let id = id_of(&req);
    let digest = req["digest"].clone();
    let first = act(&b, &BOB, &id, "approve", json!({"digest": digest})).await;
    assert_eq!(first.body["status"], "pending", "{}", first.body);
    let denied = act(&b, &CAROL, &id, "deny", json!({"reason": "not this way"})).await;
    assert_eq!(denied.status, 200, "{}", denied.body);
    assert_eq!(denied.body["status"], "denied");
    assert_eq!(denied.body["closed_by"]["user"], "carol");
    // The earlier approval stays on the record, and counts for nothing.
    assert_eq!(denied.body["approvals"][0]["approver"], "bob");
    assert_eq!(denied.body["window_start"], Value::Null);
    let late = act(&b, &CAROL, &id, "approve", json!({"digest": digest})).await;
    assert_eq!(
        (late.status, late.code()),
        (409, "not_pending"),
        "{}",
        late.body
    );
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!((creds.status, creds.code()), (409, "not_active"));
}

#[tokio::test]
async fn dry_runs_and_refusals_name_the_limit_that_applies() {
    let b = broker().await;
    let dry = |role: &str, seconds: u64, ticket: Option<&str>| {
        let mut body =
            json!({"role_arn": role_arn(role), "duration_seconds": seconds, "reason": "limits"});
        if let Some(t) = ticket {
            body["ticket"] = json!(t);
        }
        body
    };
    let call = |path: &'static str, body: Value| {
        let b = &b;
        async move {
            b.call(Method::POST, path, Auth::As(&ALICE), Some(&body))
                .await
        }
    };
    // The ceiling says 12h for ProductionBreakGlass; a policy says 2h.
    let r = call(
        "/requests?dry_run=true",
        dry("ProductionBreakGlass", 3600, Some("INC-1")),
    )
    .await;
    assert_eq!(r.body["max_duration_seconds"], 7200, "{}", r.body);
    assert_eq!(
        r.body["duration_limit"],
        json!({"seconds": 7200, "source": "policy", "policy": "production-two-hour-cap"})
    );
    let r = call(
        "/requests",
        dry("ProductionBreakGlass", 10_800, Some("INC-1")),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "policy_denied"), "{}", r.body);
    assert_eq!(
        r.body["error"]["message"],
        "duration `3h` exceeds the 2h allowed by policy `production-two-hour-cap`"
    );
    // ProductionOperator's own tag says 2h: refused before any policy.
    let r = call(
        "/requests",
        dry("ProductionOperator", 10_800, Some("INC-1")),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_input"), "{}", r.body);
    assert_eq!(
        r.body["error"]["message"],
        "duration `3h` exceeds the 2h allowed by the role's `tollgate:max-duration` tag"
    );
    let r = call(
        "/requests?dry_run=true",
        dry("ProductionOperator", 3600, Some("INC-1")),
    )
    .await;
    assert_eq!(
        r.body["duration_limit"],
        json!({"seconds": 7200, "source": "role_tag", "tag": "tollgate:max-duration"})
    );
    // Over the ceiling, the tightest limit is named: staging's policy.
    let r = call("/requests", dry("StagingDeveloper", 46_800, None)).await;
    assert_eq!(
        r.body["error"]["message"],
        "duration `13h` exceeds the 4h allowed by policy `staging-request`"
    );
    // Without a ticket production is allowed at no duration: no longest grant.
    let r = call(
        "/requests?dry_run=true",
        dry("ProductionBreakGlass", 3600, None),
    )
    .await;
    assert_eq!(r.body["allowed"], false);
    assert_eq!(r.body["max_duration_seconds"], Value::Null);
    assert_eq!(r.body["duration_limit"], Value::Null);
}

#[tokio::test]
async fn approvers_see_held_grants_what_waits_for_mfa_and_what_they_may_revoke() {
    let b = broker().await;
    let list = |who: &'static User, scope: &'static str| {
        let b = &b;
        async move {
            let r = b
                .call(
                    Method::GET,
                    &format!("/requests?scope={scope}"),
                    Auth::As(who),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect()
    };
    let staging = create(
        &b,
        &ALICE,
        &json!({"role_arn": role_arn("StagingDeveloper"), "duration_seconds": 3600, "reason": "tests"}),
    )
    .await;
    let held = create(&b, &ALICE, &production(1800)).await;
    let approved = act(
        &b,
        &BOB,
        &id_of(&held),
        "approve",
        json!({"digest": held["digest"]}),
    )
    .await;
    assert_eq!(approved.body["status"], "active");
    let waiting = id_of(&create(&b, &ALICE, &production(3600)).await);

    let bob = list(&BOB, "reviewable").await;
    assert_eq!(ids(&bob), vec![waiting.clone()]);
    assert_eq!(
        bob["items"][0]["requester_active_grant"]["id"],
        id_of(&held)
    );
    assert_eq!(
        bob["items"][0]["requester_active_grant"]["window_end"],
        approved.body["window_end"]
    );
    assert_eq!(bob["awaiting_mfa"], 0);
    // An SRE without MFA may approve nothing now, and is told one waits.
    let dave = list(&DAVE, "reviewable").await;
    assert_eq!(ids(&dave), Vec::<String>::new());
    assert_eq!(dave["awaiting_mfa"], 1);
    assert_eq!(list(&ERIN, "reviewable").await["awaiting_mfa"], 0);

    // Revocable: the requester's own active grants; an SRE's production ones.
    let mut alice = ids(&list(&ALICE, "revocable").await);
    alice.sort();
    let mut want = vec![id_of(&staging), id_of(&held)];
    want.sort();
    assert_eq!(alice, want);
    assert_eq!(ids(&list(&BOB, "revocable").await), vec![id_of(&held)]);
    assert_eq!(ids(&list(&ERIN, "revocable").await), Vec::<String>::new());
    let r = b
        .call(
            Method::GET,
            "/requests?scope=revocable&status=pending",
            Auth::As(&BOB),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_input"));
}

/// The broker's decision lines (stdout) so far.
fn decision_lines(b: &Broker) -> Vec<Value> {
    b.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "decision")
        .collect()
}

#[tokio::test]
async fn every_decision_is_logged_and_joins_its_request() {
    let b = broker().await;
    let created = create(&b, &ALICE, &production(1800)).await;
    let id = id_of(&created);
    // The create's decisions name the request they created.
    let lines = decision_lines(&b);
    let request = lines
        .iter()
        .find(|l| l["action"] == "request")
        .expect("a request decision");
    assert_eq!(request["request_id"], json!(id));
    assert_eq!(request["outcome"], "allow");
    // Who may see it: a line per visibility decision, allowed or not.
    let seen = b
        .call(
            Method::GET,
            &format!("/requests/{id}"),
            Auth::As(&BOB),
            None,
        )
        .await;
    assert_eq!(seen.status, 200);
    let hidden = b
        .call(
            Method::GET,
            &format!("/requests/{id}"),
            Auth::As(&ERIN),
            None,
        )
        .await;
    assert_eq!(hidden.status, 404);
    let views: Vec<(String, String)> = decision_lines(&b)
        .iter()
        .filter(|l| l["action"] == "view" && l["request_id"] == json!(id))
        .map(|l| {
            (
                l["actor"].as_str().unwrap().to_owned(),
                l["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        views,
        [
            ("bob".to_owned(), "allow".to_owned()),
            ("erin".to_owned(), "deny".to_owned())
        ]
    );
    // A filtered listing: one aggregate line per call.
    let listed = b
        .call(
            Method::GET,
            "/requests?scope=reviewable",
            Auth::As(&BOB),
            None,
        )
        .await;
    assert_eq!(listed.status, 200);
    let shown = listed.body["items"].as_array().unwrap().len();
    let filters: Vec<Value> = decision_lines(&b)
        .into_iter()
        .filter(|l| l["action"] == "list:reviewable")
        .collect();
    assert_eq!(filters.len(), 1, "{filters:?}");
    assert_eq!(filters[0]["actor"], "bob");
    assert_eq!(filters[0]["shown"], json!(shown));
    assert!(filters[0]["examined"].as_u64().unwrap() >= shown as u64);
}
