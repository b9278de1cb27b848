//! The grant lifecycle people ask for, end to end over HTTP against the real
//! local broker binary and the emulator: scheduled grants (no credentials
//! before the start, lapsing unapproved at it), extensions (their own
//! digest, approvals, the role's caps over the whole grant, several asked
//! at once), break-glass (active at once, always announced, reviewed once
//! afterwards, overdue reviews counted), and console sign-in against a
//! stand-in federation endpoint (the emulator serves none).

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use tollgate::domain::Timestamp;
use tollgate_tests::broker::{
    ALICE, Auth, BOB, Broker, BrokerOptions, CAROL, ERIN, Reply, User, role_arn,
};

/// On call, but signed in without MFA.
const OSCAR: User = User {
    sub: "oscar",
    groups: &["developers", "oncall"],
    mfa: false,
    claims: &[],
};
/// The security team: reviews break-glass grants of every role.
const SAM: User = User {
    sub: "sam",
    groups: &["security"],
    mfa: true,
    claims: &[],
};

fn server() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate-test-server"))
}

async fn broker() -> Broker {
    Broker::start(server(), BrokerOptions::default()).await
}

async fn create(b: &Broker, who: &User, body: &Value) -> Reply {
    b.call(Method::POST, "/requests", Auth::As(who), Some(body))
        .await
}

async fn act(b: &Broker, who: &User, id: &str, action: &str, body: Value) -> Reply {
    b.call(
        Method::POST,
        &format!("/requests/{id}/{action}"),
        Auth::As(who),
        Some(&body),
    )
    .await
}

async fn show(b: &Broker, who: &User, id: &str) -> Value {
    let r = b
        .call(Method::GET, &format!("/requests/{id}"), Auth::As(who), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

fn time(v: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
}

fn events_of<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

fn production(duration: u64) -> Value {
    json!({
        "role_arn": role_arn("ProductionOperator"),
        "duration_seconds": duration,
        "reason": "deploy the hotfix for INC-4711",
        "ticket": "INC-4711",
    })
}

fn staging(duration: u64) -> Value {
    json!({
        "role_arn": role_arn("StagingDeveloper"),
        "duration_seconds": duration,
        "reason": "load test",
    })
}

/// Uses credentials against the emulator and returns the caller ARN.
async fn caller_arn(b: &Broker, key: &str, secret: &str, token: &str) -> String {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&b.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            key,
            secret,
            Some(token.to_owned()),
            None,
            "tollgate-e2e",
        ))
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("the minted credentials work against the emulator")
        .arn()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_scheduled_grant_approved_early_gives_credentials_only_inside_its_window() {
    let b = broker().await;
    let now = Timestamp::now();
    let start = now.plus(1800);
    // 15 minutes, so that the whole test stays within the test token's hour.
    let mut body = production(900);
    body["starts_at"] = start.to_rfc3339().into();
    let r = create(&b, &ALICE, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(time(&r.body["starts_at"]), start);
    // An unapproved scheduled request lapses at its start, not a day later.
    assert_eq!(time(&r.body["pending_deadline"]), start);
    let id = id_of(&r.body);
    let digest = r.body["digest"].as_str().unwrap().to_owned();

    let approved = act(&b, &BOB, &id, "approve", json!({ "digest": digest })).await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["status"], "scheduled");
    assert_eq!(time(&approved.body["window_start"]), start);
    assert_eq!(time(&approved.body["window_end"]), start.plus(900));

    // Before the start: neither credentials nor a console sign-in, and no
    // event is written for the refusal.
    for action in ["credentials", "console"] {
        let early = act(&b, &ALICE, &id, action, json!({})).await;
        assert_eq!(
            (early.status, early.code()),
            (409, "not_started"),
            "{action}"
        );
    }
    assert!(b.sts.assume_role_calls().is_empty());
    let before = show(&b, &ALICE, &id).await;
    assert_eq!(before["version"], 2, "{before}");

    // Inside the window: credentials work, capped at its end.
    b.set_clock_offset(1900);
    let seen = show(&b, &ALICE, &id).await;
    assert_eq!(seen["status"], "active");
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    assert!(time(&creds.body["expiration"]) <= start.plus(900));
    let arn = caller_arn(
        &b,
        creds.body["access_key_id"].as_str().unwrap(),
        creds.body["secret_access_key"].as_str().unwrap(),
        creds.body["session_token"].as_str().unwrap(),
    )
    .await;
    assert!(arn.ends_with(&format!("/tollgate-{id}")), "{arn}");

    // After its end: nothing.
    b.set_clock_offset(1800 + 900 + 5);
    let late = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!((late.status, late.code()), (409, "not_active"));
}

#[tokio::test]
async fn scheduled_requests_are_checked_and_an_unapproved_one_lapses_at_its_start() {
    let b = broker().await;
    let now = Timestamp::now();
    let cases = [
        (now.plus(-60).to_rfc3339(), "starts_at"),
        (now.plus(31 * 86_400).to_rfc3339(), "starts_at"),
        ("tomorrow at nine".to_owned(), "starts_at"),
    ];
    for (starts_at, field) in cases {
        let mut body = production(3600);
        body["starts_at"] = starts_at.clone().into();
        let r = create(&b, &ALICE, &body).await;
        assert_eq!(r.status, 400, "{starts_at}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(field),
            "{}",
            r.body
        );
    }
    // Production policies allow scheduling at most a week ahead.
    let mut far = production(3600);
    far["starts_at"] = now.plus(8 * 86_400).to_rfc3339().into();
    let r = create(&b, &ALICE, &far).await;
    assert_eq!((r.status, r.code()), (403, "policy_denied"), "{}", r.body);

    let mut soon = production(3600);
    soon["starts_at"] = now.plus(600).to_rfc3339().into();
    let id = id_of(&create(&b, &ALICE, &soon).await.body);
    b.set_clock_offset(700);
    let lapsed = b
        .wait_for(&id, &ALICE, "the lapse at the start", |v| {
            !events_of(v, "lapsed").is_empty()
        })
        .await;
    assert_eq!(lapsed["status"], "lapsed");
    let late = act(
        &b,
        &BOB,
        &id,
        "approve",
        json!({ "digest": lapsed["digest"] }),
    )
    .await;
    assert_eq!((late.status, late.code()), (409, "not_pending"));
}

#[tokio::test]
async fn an_extension_is_approved_on_its_own_digest_and_moves_the_window_end_within_the_caps() {
    let b = broker().await;
    let req = create(&b, &ALICE, &production(1800)).await.body;
    let id = id_of(&req);
    let approved = act(&b, &BOB, &id, "approve", json!({ "digest": req["digest"] })).await;
    assert_eq!(approved.body["status"], "active");
    let first_end = time(&approved.body["window_end"]);

    // Only the requester extends; others who cannot see it get 404.
    let by_other = act(
        &b,
        &BOB,
        &id,
        "extend",
        json!({"duration_seconds": 1800, "reason": "more"}),
    )
    .await;
    assert_eq!((by_other.status, by_other.code()), (403, "not_requester"));
    let by_stranger = act(
        &b,
        &ERIN,
        &id,
        "extend",
        json!({"duration_seconds": 1800, "reason": "more"}),
    )
    .await;
    assert_eq!(by_stranger.status, 404);
    // Never past the role's 2 h over the whole grant.
    let too_long = act(
        &b,
        &ALICE,
        &id,
        "extend",
        json!({"duration_seconds": 6000, "reason": "the rollout is slow"}),
    )
    .await;
    assert_eq!(
        (too_long.status, too_long.code()),
        (400, "extension_too_long"),
        "{}",
        too_long.body
    );

    let asked = act(
        &b,
        &ALICE,
        &id,
        "extend",
        json!({"duration_seconds": 1800, "reason": "the rollout is slow"}),
    )
    .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let ext = asked.body["pending_extension"].clone();
    assert_eq!(ext["seconds"], 1800);
    assert_eq!(ext["total_seconds"], 3600);
    assert_ne!(ext["digest"], req["digest"]);
    assert_eq!(time(&asked.body["window_end"]), first_end, "not moved yet");

    // Approvers see it in their inbox, with what `GET` shows them.
    let inbox = b
        .call(
            Method::GET,
            "/requests?scope=reviewable",
            Auth::As(&CAROL),
            None,
        )
        .await;
    assert!(
        inbox.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str()),
        "{}",
        inbox.body
    );
    // The request's own digest does not approve the extension; the
    // requester cannot approve it either.
    let stale = act(
        &b,
        &CAROL,
        &id,
        "approve",
        json!({ "digest": req["digest"] }),
    )
    .await;
    assert_eq!((stale.status, stale.code()), (409, "digest_mismatch"));
    let own = act(
        &b,
        &ALICE,
        &id,
        "approve",
        json!({ "digest": ext["digest"] }),
    )
    .await;
    assert_eq!((own.status, own.code()), (403, "self_review"));

    let done = act(
        &b,
        &CAROL,
        &id,
        "approve",
        json!({ "digest": ext["digest"] }),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(time(&done.body["window_end"]), first_end.plus(1800));
    assert!(done.body["pending_extension"].is_null());
    assert_eq!(done.body["extended_seconds"], 1800);

    // The events keep both windows.
    let shown = show(&b, &ALICE, &id).await;
    let applied = events_of(&shown, "extension_approved");
    assert_eq!(applied.len(), 1);
    assert_eq!(time(&applied[0]["previous_window_end"]), first_end);
    assert_eq!(time(&applied[0]["window_end"]), first_end.plus(1800));
    // A further extension would pass the 2 h cap over the whole grant.
    let more = act(
        &b,
        &ALICE,
        &id,
        "extend",
        json!({"duration_seconds": 4000, "reason": "still slow"}),
    )
    .await;
    assert_eq!((more.status, more.code()), (400, "extension_too_long"));

    // Credentials now last into the extended window.
    b.set_clock_offset(1900);
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
}

#[tokio::test]
async fn a_denied_extension_leaves_the_grant_as_it_was() {
    let b = broker().await;
    let req = create(&b, &ALICE, &production(1800)).await.body;
    let id = id_of(&req);
    let approved = act(&b, &BOB, &id, "approve", json!({ "digest": req["digest"] })).await;
    let end = time(&approved.body["window_end"]);
    let asked = act(
        &b,
        &ALICE,
        &id,
        "extend",
        json!({"duration_seconds": 1800, "reason": "more"}),
    )
    .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let denied = act(&b, &BOB, &id, "deny", json!({"reason": "finish tomorrow"})).await;
    assert_eq!(denied.status, 200, "{}", denied.body);
    assert_eq!(denied.body["status"], "active");
    assert_eq!(time(&denied.body["window_end"]), end);
    assert!(denied.body["pending_extension"].is_null());
    let shown = show(&b, &ALICE, &id).await;
    assert_eq!(events_of(&shown, "extension_denied").len(), 1);
}

#[tokio::test]
async fn extensions_asked_at_once_never_take_a_grant_past_its_policy_limit() {
    let b = Arc::new(broker().await);
    // Staging: auto-approved up to 4 h in all, extensions included.
    let req = create(&b, &ALICE, &staging(3600)).await.body;
    assert_eq!(req["status"], "active");
    let id = id_of(&req);
    let start = time(&req["window_start"]);
    let asks = (0..8).map(|_| {
        let b = b.clone();
        let id = id.clone();
        tokio::spawn(async move {
            act(
                &b,
                &ALICE,
                &id,
                "extend",
                json!({"duration_seconds": 3600, "reason": "another hour"}),
            )
            .await
        })
    });
    let mut applied = 0u32;
    for ask in asks {
        let r = ask.await.unwrap();
        match (r.status, r.code()) {
            (200, _) => applied += 1,
            (403, "policy_denied") | (409, "conflict") => {}
            other => panic!("unexpected answer {other:?}: {}", r.body),
        }
    }
    let shown = show(&b, &ALICE, &id).await;
    println!("8 extensions of 1h asked at once on a 1h grant capped at 4h: {applied} applied");
    assert!((1..=3).contains(&applied), "{applied} applied");
    assert_eq!(shown["extended_seconds"], 3600 * applied);
    assert_eq!(
        time(&shown["window_end"]),
        start.plus(i64::from(3600 + 3600 * applied))
    );
    assert!(time(&shown["window_end"]) <= start.plus(14_400));
    assert_eq!(
        events_of(&shown, "extension_requested").len(),
        applied as usize,
        "one event per applied extension"
    );
}

#[tokio::test]
async fn two_approvers_approving_one_extension_at_once_move_the_window_once() {
    let b = Arc::new(broker().await);
    let req = create(&b, &ALICE, &production(1800)).await.body;
    let id = id_of(&req);
    let approved = act(&b, &BOB, &id, "approve", json!({ "digest": req["digest"] })).await;
    let end = time(&approved.body["window_end"]);
    let asked = act(
        &b,
        &ALICE,
        &id,
        "extend",
        json!({"duration_seconds": 1800, "reason": "more"}),
    )
    .await;
    let digest = asked.body["pending_extension"]["digest"].clone();
    let both = [&BOB, &CAROL].map(|who| {
        let b = b.clone();
        let id = id.clone();
        let digest = digest.clone();
        tokio::spawn(async move { act(&b, who, &id, "approve", json!({ "digest": digest })).await })
    });
    let mut ok = 0;
    for r in both {
        let r = r.await.unwrap();
        match (r.status, r.code()) {
            (200, _) => ok += 1,
            (409, "not_pending") => {}
            other => panic!("unexpected answer {other:?}: {}", r.body),
        }
    }
    assert_eq!(ok, 1, "exactly one approval applies it");
    let shown = show(&b, &ALICE, &id).await;
    assert_eq!(time(&shown["window_end"]), end.plus(1800));
    assert_eq!(events_of(&shown, "extension_approved").len(), 1);
}

#[tokio::test]
async fn break_glass_is_active_at_once_announced_and_reviewed_once_by_someone_else() {
    let (hook, received) = tollgate_tests::webhooks::receiver("glass").await;
    let b = Arc::new(
        Broker::start(
            server(),
            BrokerOptions {
                webhook_urls: vec![hook],
                extra_env: vec![("TOLLGATE_BREAK_GLASS_REVIEW_SECONDS".into(), "600".into())],
                ..BrokerOptions::default()
            },
        )
        .await,
    );
    let body = json!({
        "role_arn": role_arn("ProductionBreakGlass"),
        "duration_seconds": 1800,
        "reason": "INC-9 database is down, restoring",
        "break_glass": true,
    });
    // Without MFA, or scheduled, or on a role not marked for it: refused.
    let no_mfa = create(&b, &OSCAR, &body).await;
    assert_eq!((no_mfa.status, no_mfa.code()), (403, "policy_denied"));
    let mut scheduled = body.clone();
    scheduled["starts_at"] = Timestamp::now().plus(600).to_rfc3339().into();
    assert_eq!(create(&b, &ALICE, &scheduled).await.status, 400);
    let mut unmarked = body.clone();
    unmarked["role_arn"] = role_arn("ProductionOperator").into();
    unmarked["ticket"] = "INC-9".into();
    assert_eq!(create(&b, &ALICE, &unmarked).await.code(), "policy_denied");

    // A two-approval role, and yet active at once.
    let r = create(&b, &ALICE, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["break_glass"]["review"], "review_pending");
    let id = id_of(&r.body);
    let creds = act(&b, &ALICE, &id, "credentials", json!({})).await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    // Announced: an alert line and the webhook.
    assert!(
        b.stdout()
            .lines()
            .any(|l| l.contains(r#""type":"alert""#) && l.contains(&id)),
        "no alert line"
    );
    let announced = received.lock().unwrap().iter().any(|(_, body)| {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        v.to_string().contains("request.break_glass") && v.to_string().contains(&id)
    });
    assert!(announced, "no break-glass webhook");

    // Reviewers find it; others do not see it at all.
    let list = |who: &'static User| {
        let b = b.clone();
        async move {
            b.call(
                Method::GET,
                "/requests?scope=unreviewed",
                Auth::As(who),
                None,
            )
            .await
            .body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(&SAM).await, vec![id.clone()]);
    assert_eq!(list(&BOB).await, vec![id.clone()]);
    assert!(list(&ERIN).await.is_empty());
    assert!(list(&ALICE).await.is_empty(), "not their own");
    let review = json!({"outcome": "justified", "comment": "INC-9 confirmed"});
    let own = act(&b, &ALICE, &id, "review", review.clone()).await;
    assert_eq!((own.status, own.code()), (403, "self_review"));
    let stranger = act(&b, &ERIN, &id, "review", review.clone()).await;
    assert_eq!(stranger.status, 404);
    let bad = act(
        &b,
        &SAM,
        &id,
        "review",
        json!({"outcome": "fine", "comment": "x"}),
    )
    .await;
    assert_eq!(bad.status, 400);

    // Overdue: past the review deadline the sweep counts it.
    b.set_clock_offset(1900);
    b.wait_for(&id, &ALICE, "the expiry", |v| v["status"] == "expired")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !b
        .stdout()
        .lines()
        .any(|l| l.contains(r#""UnreviewedBreakGlass":1"#))
    {
        assert!(std::time::Instant::now() < deadline, "no overdue count");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Two reviewers at once, after the grant ended: one review counts.
    let both = [&SAM, &BOB].map(|who| {
        let b = b.clone();
        let id = id.clone();
        let review = review.clone();
        tokio::spawn(async move { act(&b, who, &id, "review", review).await })
    });
    let mut ok = 0;
    for r in both {
        let r = r.await.unwrap();
        match (r.status, r.code()) {
            (200, _) => {
                ok += 1;
                assert_eq!(r.body["break_glass"]["review"], "justified");
                assert_eq!(r.body["status"], "expired");
            }
            (409, "already_reviewed") => {}
            other => panic!("unexpected answer {other:?}: {}", r.body),
        }
    }
    assert_eq!(ok, 1);
    let shown = show(&b, &ALICE, &id).await;
    assert_eq!(events_of(&shown, "reviewed").len(), 1);
    assert!(list(&SAM).await.is_empty());
}

#[tokio::test]
async fn a_console_sign_in_mints_recorded_credentials_and_builds_the_url_from_a_fresh_token() {
    let (endpoint, calls) = tollgate_tests::federation::federation_endpoint().await;
    let b = Broker::start(
        server(),
        BrokerOptions {
            extra_env: vec![("TOLLGATE_FEDERATION_ENDPOINT".into(), endpoint.clone())],
            ..BrokerOptions::default()
        },
    )
    .await;
    let req = create(&b, &ALICE, &staging(3600)).await.body;
    let id = id_of(&req);

    // A destination off the console is refused before anything is minted.
    for bad in [
        "https://evil.example.com/",
        "http://console.aws.amazon.com/",
        "https://console.aws.amazon.com.evil.example.com/",
    ] {
        let r = act(&b, &ALICE, &id, "console", json!({ "destination": bad })).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let other = act(&b, &BOB, &id, "console", json!({})).await;
    assert_eq!(other.status, 404, "only the requester");
    assert!(b.sts.assume_role_calls().is_empty());
    assert!(calls.lock().unwrap().is_empty());

    let r = act(&b, &ALICE, &id, "console", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let url = reqwest::Url::parse(r.body["url"].as_str().unwrap()).unwrap();
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        endpoint,
        "the configured endpoint"
    );
    let query: std::collections::BTreeMap<String, String> =
        url.query_pairs().into_owned().collect();
    let call = calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!(query["Action"], "login");
    assert_eq!(query["SigninToken"], call.token);
    assert_eq!(
        query["Destination"],
        "https://us-east-1.console.aws.amazon.com/console/home?region=us-east-1"
    );
    assert!(!call.query.contains_key("SessionDuration"), "role chaining");
    // The session handed to the federation endpoint is the grant's: it
    // works, as the grant's session name.
    let arn = caller_arn(
        &b,
        call.session["sessionId"].as_str().unwrap(),
        call.session["sessionKey"].as_str().unwrap(),
        call.session["sessionToken"].as_str().unwrap(),
    )
    .await;
    assert!(
        arn.ends_with(&format!("assumed-role/StagingDeveloper/tollgate-{id}")),
        "{arn}"
    );
    // Minted exactly as for the CLI: the cut-off session policy and tags.
    let assumed = b.sts.assume_role_calls();
    assert_eq!(assumed.len(), 1);
    assert!(assumed[0]["Policy"].contains("DateGreaterThan"));
    assert!(assumed[0].values().any(|v| v == "tollgate:request"));
    // Its own event, recorded first; nothing of the URL in any log.
    let shown = show(&b, &ALICE, &id).await;
    assert_eq!(events_of(&shown, "console_issued").len(), 1);
    assert_eq!(shown["credentials_issued"], 1);
    for out in [b.stdout(), b.stderr()] {
        assert!(!out.contains(&call.token), "the sign-in token was logged");
        assert!(!out.contains(call.session["sessionKey"].as_str().unwrap()));
    }

    // A console page of the role's partition is a valid landing page.
    let s3 = "https://console.aws.amazon.com/s3/home";
    let r = act(&b, &ALICE, &id, "console", json!({ "destination": s3 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = reqwest::Url::parse(r.body["url"].as_str().unwrap()).unwrap();
    assert!(
        url.query_pairs()
            .any(|(k, v)| k == "Destination" && v == s3)
    );
}

#[tokio::test]
async fn a_federation_endpoint_that_does_not_answer_is_503_and_the_issue_stays_recorded() {
    // A port nothing listens on.
    let closed = tollgate_tests::broker::free_port();
    let b = Broker::start(
        server(),
        BrokerOptions {
            extra_env: vec![(
                "TOLLGATE_FEDERATION_ENDPOINT".into(),
                format!("http://127.0.0.1:{closed}/federation"),
            )],
            ..BrokerOptions::default()
        },
    )
    .await;
    let id = id_of(&create(&b, &ALICE, &staging(3600)).await.body);
    let r = act(&b, &ALICE, &id, "console", json!({})).await;
    assert_eq!((r.status, r.code()), (503, "aws_unavailable"), "{}", r.body);
    assert!(r.body.get("url").is_none());
    // The credentials were minted behind their event: it stays, counted.
    let shown = show(&b, &ALICE, &id).await;
    assert_eq!(events_of(&shown, "console_issued").len(), 1);
    assert_eq!(b.sts.assume_role_calls().len(), 1);
}
