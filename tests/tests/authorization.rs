//! The authorisation matrix, over HTTP against the real local broker with
//! the example policies: every actor (the requester, an eligible approver
//! with and without MFA, an ineligible user, no token, a forged token) on
//! every route, for a pending, an active, a denied and a missing request.
//! Each cell is asserted against its expected status and error code; every
//! mismatch is reported at the end as one table.

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use tollgate::api::auth::{DevTokenSpec, mint_dev_token};
use tollgate::domain::Timestamp;
use tollgate_tests::broker::{
    ALICE, Auth, BOB, Broker, BrokerOptions, DAVE, ERIN, Reply, User, role_arn,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Requester,
    ApproverMfa,
    ApproverNoMfa,
    Ineligible,
    Unauthenticated,
    Forged,
}

const ACTORS: [Actor; 6] = [
    Actor::Requester,
    Actor::ApproverMfa,
    Actor::ApproverNoMfa,
    Actor::Ineligible,
    Actor::Unauthenticated,
    Actor::Forged,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Active,
    Denied,
    Missing,
}

/// A collection route: name, method, path, body and each actor's answer.
type Case = (&'static str, Method, &'static str, Option<Value>, [Want; 6]);

/// `(status, code)`; code `""` for successes.
type Want = (u16, &'static str);

const OK: Want = (200, "");
const UNAUTH: Want = (401, "unauthenticated");
const HIDDEN: Want = (404, "not_found");
const SELF: Want = (403, "self_review");
const POLICY: Want = (403, "policy_denied");
const NOT_REQ: Want = (403, "not_requester");
const NOT_PENDING: Want = (409, "not_pending");
const NOT_ACTIVE: Want = (409, "not_active");

/// The expected answer of each actor, in [`ACTORS`] order.
fn expected(route: &str, state: State) -> [Want; 6] {
    use State::*;
    if state == Missing {
        return [HIDDEN, HIDDEN, HIDDEN, HIDDEN, UNAUTH, UNAUTH];
    }
    match (route, state) {
        // SREs may read production requests (MFA or not); others see nothing.
        ("show", _) => [OK, OK, OK, HIDDEN, UNAUTH, UNAUTH],
        ("approve" | "deny", Pending) => [SELF, OK, POLICY, HIDDEN, UNAUTH, UNAUTH],
        ("approve" | "deny", _) => [SELF, NOT_PENDING, POLICY, HIDDEN, UNAUTH, UNAUTH],
        ("cancel", Pending) => [OK, NOT_REQ, NOT_REQ, HIDDEN, UNAUTH, UNAUTH],
        ("cancel", _) => [NOT_PENDING, NOT_REQ, NOT_REQ, HIDDEN, UNAUTH, UNAUTH],
        // SREs may revoke production grants without MFA.
        ("revoke", Active) => [OK, OK, OK, HIDDEN, UNAUTH, UNAUTH],
        ("revoke", _) => [NOT_ACTIVE, NOT_ACTIVE, NOT_ACTIVE, HIDDEN, UNAUTH, UNAUTH],
        // Credentials are the requester's alone: everyone else is answered
        // as for a request that does not exist (the credentials function
        // reads no role and asks no policy).
        ("credentials", Active) => [OK, HIDDEN, HIDDEN, HIDDEN, UNAUTH, UNAUTH],
        ("credentials", _) => [NOT_ACTIVE, HIDDEN, HIDDEN, HIDDEN, UNAUTH, UNAUTH],
        _ => panic!("no expectation for {route} {state:?}"),
    }
}

fn forged_token() -> String {
    // Bob's claims, signed with a secret the broker does not know.
    let spec = DevTokenSpec {
        sub: "bob".into(),
        groups: vec!["sre".into()],
        mfa: true,
        ttl_seconds: 600,
        ..DevTokenSpec::default()
    };
    mint_dev_token(
        &"not-the-broker-secret-not-the-broker-secret"
            .to_owned()
            .into(),
        &spec,
        Timestamp::now(),
    )
    .unwrap()
}

fn user(actor: Actor) -> Option<&'static User> {
    match actor {
        Actor::Requester => Some(&ALICE),
        Actor::ApproverMfa => Some(&BOB),
        Actor::ApproverNoMfa => Some(&DAVE),
        Actor::Ineligible => Some(&ERIN),
        Actor::Unauthenticated | Actor::Forged => None,
    }
}

async fn call(
    b: &Broker,
    actor: Actor,
    forged: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let auth = match (actor, user(actor)) {
        (_, Some(u)) => Auth::As(u),
        (Actor::Forged, None) => Auth::Token(forged),
        _ => Auth::None,
    };
    b.call(method, path, auth, body).await
}

fn production() -> Value {
    json!({"role_arn": role_arn("ProductionOperator"), "duration_seconds": 1800,
           "reason": "matrix", "ticket": "CHG-1"})
}

/// A fresh request by the requester, brought to `state`; its id and digest.
async fn request_in(b: &Broker, state: State) -> (String, String) {
    if state == State::Missing {
        return (
            tollgate::domain::RequestId::generate(Timestamp::now()).to_string(),
            "0".repeat(64),
        );
    }
    let r = b
        .call(
            Method::POST,
            "/requests",
            Auth::As(&ALICE),
            Some(&production()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let digest = r.body["digest"].as_str().unwrap().to_owned();
    let action = match state {
        State::Active => Some(("approve", json!({"digest": digest}))),
        State::Denied => Some(("deny", json!({"reason": "no"}))),
        _ => None,
    };
    if let Some((action, body)) = action {
        let r = b
            .call(
                Method::POST,
                &format!("/requests/{id}/{action}"),
                Auth::As(&BOB),
                Some(&body),
            )
            .await;
        assert_eq!(r.status, 200, "setting up {state:?}: {}", r.body);
    }
    (id, digest)
}

fn body_for(route: &str, digest: &str) -> Value {
    match route {
        "approve" => json!({"digest": digest}),
        "deny" | "revoke" => json!({"reason": "matrix check"}),
        _ => json!({}),
    }
}

fn matches(reply: &Reply, want: Want) -> bool {
    reply.status == want.0 && (want.1.is_empty() || reply.code() == want.1)
}

#[tokio::test]
async fn every_actor_on_every_route_in_every_state_gets_the_expected_answer() {
    let b = Broker::start(
        Path::new(env!("CARGO_BIN_EXE_tollgate-test-server")),
        BrokerOptions::default(),
    )
    .await;
    let forged = forged_token();
    let mut failures = Vec::new();
    let mut cells = 0;
    for state in [State::Pending, State::Active, State::Denied, State::Missing] {
        // Reads share one request per state.
        let (id, _) = request_in(&b, state).await;
        for (actor, want) in ACTORS.into_iter().zip(expected("show", state)) {
            let r = call(
                &b,
                actor,
                &forged,
                Method::GET,
                &format!("/requests/{id}"),
                None,
            )
            .await;
            cells += 1;
            if !matches(&r, want) {
                failures.push(format!(
                    "show {state:?} {actor:?}: want {want:?}, got {} {}",
                    r.status, r.body
                ));
            }
        }
        // Each change gets a fresh request in the state under test.
        for route in ["approve", "deny", "cancel", "revoke", "credentials"] {
            for (actor, want) in ACTORS.into_iter().zip(expected(route, state)) {
                let (id, digest) = request_in(&b, state).await;
                let body = body_for(route, &digest);
                let r = call(
                    &b,
                    actor,
                    &forged,
                    Method::POST,
                    &format!("/requests/{id}/{route}"),
                    Some(&body),
                )
                .await;
                cells += 1;
                if !matches(&r, want) {
                    failures.push(format!(
                        "{route} {state:?} {actor:?}: want {want:?}, got {} {}",
                        r.status, r.body
                    ));
                }
            }
        }
    }
    assert_eq!(cells, 4 * 6 * 6);
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn collection_routes_answer_each_actor_as_expected() {
    let b = Broker::start(
        Path::new(env!("CARGO_BIN_EXE_tollgate-test-server")),
        BrokerOptions::default(),
    )
    .await;
    let forged = forged_token();
    let (pending, _) = request_in(&b, State::Pending).await;
    let staging = json!({"role_arn": role_arn("StagingDeveloper"), "duration_seconds": 900, "reason": "matrix"});
    let mut failures = Vec::new();
    // Staging is for developers (the requester and the ineligible user are
    // developers; the SREs are not).
    let cases: Vec<Case> = vec![
        (
            "create",
            Method::POST,
            "/requests",
            Some(staging.clone()),
            [(201, ""), POLICY, POLICY, (201, ""), UNAUTH, UNAUTH],
        ),
        (
            "dry run",
            Method::POST,
            "/requests?dry_run=true",
            Some(staging),
            [OK, OK, OK, OK, UNAUTH, UNAUTH],
        ),
        (
            "list mine",
            Method::GET,
            "/requests?scope=mine",
            None,
            [OK, OK, OK, OK, UNAUTH, UNAUTH],
        ),
        (
            "list reviewable",
            Method::GET,
            "/requests?scope=reviewable",
            None,
            [OK, OK, OK, OK, UNAUTH, UNAUTH],
        ),
        ("health", Method::GET, "/health", None, [OK; 6]),
    ];
    for (name, method, path, body, wants) in cases {
        for (actor, want) in ACTORS.into_iter().zip(wants) {
            let r = call(&b, actor, &forged, method.clone(), path, body.as_ref()).await;
            if !matches(&r, want) {
                failures.push(format!(
                    "{name} {actor:?}: want {want:?}, got {} {}",
                    r.status, r.body
                ));
            }
            if name == "list reviewable" && r.status == 200 {
                let listed = r.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["id"] == pending.as_str());
                // Only an approver who may approve now sees it: not the
                // requester, not an SRE without MFA, not a developer.
                if listed != (actor == Actor::ApproverMfa) {
                    failures.push(format!("list reviewable {actor:?}: listed = {listed}"));
                }
            }
            if name == "list mine" && r.status == 200 {
                let listed = r.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["id"] == pending.as_str());
                if listed != (actor == Actor::Requester) {
                    failures.push(format!("list mine {actor:?}: listed = {listed}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One 404 as the caller and the operator see it: the message with the id
/// taken out, the AWS calls it cost, and the kinds of audit lines it wrote.
async fn not_found_shape(
    b: &Broker,
    proxy: &tollgate_tests::aws_proxy::AwsProxy,
    method: Method,
    path: &str,
    id: &str,
    body: Option<&Value>,
) -> (String, Vec<(String, u64)>, Vec<String>) {
    let before = b.stdout().lines().count();
    proxy.take();
    let r = b.call(method, path, Auth::As(&ERIN), body).await;
    assert_eq!(
        (r.status, r.code()),
        (404, "not_found"),
        "{path}: {}",
        r.body
    );
    let message = r.body["error"]["message"].as_str().unwrap().to_owned();
    let canonical = id.to_uppercase();
    assert!(
        message.contains(&canonical),
        "{path}: the message names the canonical id: {message}"
    );
    let calls = proxy
        .take()
        .into_iter()
        .map(|(op, s)| (op, s.calls))
        .collect();
    // Give the broker a moment to flush its line, if it wrote one.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let lines = b
        .stdout()
        .lines()
        .skip(before)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            format!("{} {}", v["type"], v["_aws"].is_object())
        })
        .collect();
    (message.replace(&canonical, "<id>"), calls, lines)
}

#[tokio::test]
async fn a_hidden_request_and_an_unknown_one_get_the_same_answer_for_the_same_work() {
    let emulator = tollgate::aws::testing::Emulator::shared().unwrap();
    let proxy = tollgate_tests::aws_proxy::AwsProxy::start(emulator.endpoint()).await;
    let b = Broker::start(
        Path::new(env!("CARGO_BIN_EXE_tollgate-test-server")),
        BrokerOptions {
            aws_endpoint: Some(proxy.endpoint()),
            sweep_interval_seconds: 3600,
            // The deployed default: role descriptions cached (the creation
            // below has just described the role).
            extra_env: vec![("TOLLGATE_ROLE_CACHE_SECONDS".into(), "300".into())],
            ..BrokerOptions::default()
        },
    )
    .await;
    let (hidden, digest) = request_in(&b, State::Pending).await;
    let unknown = tollgate::domain::RequestId::generate(Timestamp::now()).to_string();
    // Ids in lower case: the broker accepts them, and must not echo them back
    // differently for the two cases.
    for (method, route, body) in [
        (Method::GET, "", None),
        (Method::POST, "/approve", Some(json!({"digest": digest}))),
        (Method::POST, "/cancel", Some(json!({}))),
        (Method::POST, "/revoke", Some(json!({"reason": "probe"}))),
        (Method::POST, "/credentials", Some(json!({}))),
    ] {
        let mut shapes = Vec::new();
        for id in [&hidden, &unknown] {
            let id = id.to_lowercase();
            let path = format!("/requests/{id}{route}");
            shapes
                .push(not_found_shape(&b, &proxy, method.clone(), &path, &id, body.as_ref()).await);
        }
        assert_eq!(
            shapes[0], shapes[1],
            "{method} {route}: hidden (left) and unknown (right) differ"
        );
    }
}
