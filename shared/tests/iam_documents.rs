//! Every shape of session policy Tollgate sends to STS, asserted whole
//! (every statement, effect, action, resource and condition: an extra
//! statement or a narrowed deny fails), and linted by parliament
//! (`scripts/iam-lint`) with no finding. The emulator evaluates no IAM, so
//! the documents' content is what is tested. Revocation policies are pinned
//! and linted in `aws_revocation.rs`, the stacks' documents in
//! `tests/tests/infra_stack.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use tollgate::aws::CredentialPlan;
use tollgate::aws::testing::{IamDocument, iam_lint, new_request};
use tollgate::domain::{AccessRequest, RoleArn, SessionPolicy, Timestamp};

const T0: i64 = 1_800_000_000;

fn role() -> RoleArn {
    RoleArn::parse("arn:aws:iam::444455556666:role/tollgate/ProductionOperator").unwrap()
}

/// An auto-approved grant of one hour from `T0`, narrowed by `narrowing`.
fn grant(narrowing: Option<Value>) -> AccessRequest {
    let mut new = new_request(&role(), "alice", 3600, 1).unwrap();
    new.session_policy = narrowing.map(|n| SessionPolicy::parse(&n).unwrap());
    AccessRequest::create(new, true, vec![], Timestamp::from_unix(T0)).0
}

fn session_policy(req: &AccessRequest) -> (String, Value) {
    let plan = CredentialPlan::new(req, Timestamp::from_unix(T0)).unwrap();
    let doc = serde_json::from_str(&plan.policy).unwrap();
    (plan.policy, doc)
}

fn cut_off() -> String {
    Timestamp::from_unix(T0 + 3600).to_rfc3339()
}

/// The statement every session policy ends with.
fn deny_after_the_window() -> Value {
    json!({
        "Sid": "TollgateWindowEnd",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": cut_off()}},
    })
}

#[test]
fn without_a_narrowing_the_role_is_allowed_until_the_window_end_and_denied_after() {
    let (_, doc) = session_policy(&grant(None));
    assert_eq!(
        doc,
        json!({"Version": "2012-10-17", "Statement": [
            {
                "Sid": "TollgateWindow",
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:CurrentTime": cut_off()}},
            },
            deny_after_the_window(),
        ]})
    );
}

#[test]
fn a_narrowing_is_kept_as_asked_and_followed_by_the_deny_after_the_window() {
    let narrowing = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadLogs", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"]},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
    ]});
    let (_, doc) = session_policy(&grant(Some(narrowing.clone())));
    let mut statements = narrowing["Statement"].as_array().unwrap().clone();
    statements.push(deny_after_the_window());
    assert_eq!(
        doc,
        json!({"Version": "2012-10-17", "Statement": statements})
    );
}

/// The largest narrowing the broker accepts, whose session policy sits at
/// STS's 2,048-character limit.
fn largest_narrowing() -> Value {
    let limit = SessionPolicy::STS_LIMIT_CHARS - SessionPolicy::RESERVED_CHARS;
    let shell = json!([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": ""}])
        .to_string()
        .len();
    let prefix = "arn:aws:s3:::b/";
    let resource = format!("{prefix}{}", "x".repeat(limit - shell - prefix.len()));
    json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resource}]})
}

#[test]
fn at_the_2048_character_edge_the_narrowing_still_fits_whole_with_its_cut_off() {
    let narrowing = largest_narrowing();
    let (text, doc) = session_policy(&grant(Some(narrowing.clone())));
    assert!(
        text.chars().count() <= SessionPolicy::STS_LIMIT_CHARS,
        "{}",
        text.len()
    );
    let mut statements = narrowing["Statement"].as_array().unwrap().clone();
    statements.push(deny_after_the_window());
    assert_eq!(
        doc,
        json!({"Version": "2012-10-17", "Statement": statements})
    );
    // One character more and the narrowing itself is refused.
    let mut over = narrowing;
    let resource = over["Statement"][0]["Resource"]
        .as_str()
        .unwrap()
        .to_owned();
    over["Statement"][0]["Resource"] = json!(format!("{resource}x"));
    assert!(SessionPolicy::parse(&over).is_err());
}

#[test]
fn parliament_finds_nothing_in_any_session_policy_shape() {
    let shapes = [
        ("session policy, no narrowing", None),
        (
            "session policy, narrowed",
            Some(
                json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                       "Resource": "arn:aws:s3:::logs/*"}]}),
            ),
        ),
        (
            "session policy, at the size limit",
            Some(largest_narrowing()),
        ),
    ];
    let docs: Vec<IamDocument> = shapes
        .into_iter()
        .map(|(name, narrowing)| IamDocument {
            name: name.to_owned(),
            trust_of: None,
            document: session_policy(&grant(narrowing)).1,
        })
        .collect();
    assert_eq!(iam_lint(&docs).unwrap(), vec![]);
}

#[test]
fn the_linter_reports_what_it_should_so_a_clean_result_means_something() {
    let bad = [
        IamDocument {
            name: "unknown action".into(),
            trust_of: None,
            document: json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObjectt", "Resource": "*"}]}),
        },
        IamDocument {
            name: "trust with a key SetSourceIdentity does not define".into(),
            trust_of: Some(role().to_string()),
            document: json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                 "Action": "sts:SetSourceIdentity",
                 "Condition": {"StringLike": {"sts:RoleSessionName": "tollgate-*"}}}]}),
        },
    ];
    let found: Vec<String> = iam_lint(&bad)
        .unwrap()
        .into_iter()
        .map(|(name, f)| format!("{name}: {}", f["issue"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            "trust with a key SetSourceIdentity does not define: UNKNOWN_CONDITION_FOR_ACTION",
            "unknown action: UNKNOWN_ACTION"
        ]
    );
}
