//! The broker account and its target accounts, end to end through the real
//! local broker and the emulator's three accounts: credentials for roles in
//! the staging and production accounts, control sessions assumed once per
//! account and reused, unlisted accounts refused before any AWS call, and
//! `POST /roles/check` judging existing roles through the control role.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use tollgate::aws::{LOCAL_BROKER_ACCOUNT, LOCAL_PRODUCTION_ACCOUNT, LOCAL_STAGING_ACCOUNT};
use tollgate::aws::{create_role, testing::unique_name};
use tollgate_tests::broker::{ALICE, Auth, Broker, BrokerOptions, User, role_arn};

/// A member of the platform team, who onboards roles.
const PAT: User = User {
    sub: "pat",
    groups: &["platform"],
    mfa: true,
    claims: &[],
};

fn server() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate-test-server"))
}

async fn credentials_for(b: &Broker, role: &str) -> Value {
    let r = b
        .call(
            Method::POST,
            "/requests",
            Auth::As(&ALICE),
            Some(
                &json!({"role_arn": role_arn(role), "duration_seconds": 3600,
                        "reason": "cross-account check", "ticket": "INC-1"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    if r.body["status"] != "active" {
        return Value::Null;
    }
    let creds = b
        .call(
            Method::POST,
            &format!("/requests/{id}/credentials"),
            Auth::As(&ALICE),
            Some(&json!({})),
        )
        .await;
    assert_eq!(creds.status, 200, "{}", creds.body);
    creds.body
}

#[tokio::test]
async fn each_target_account_is_reached_through_one_control_session_that_is_reused() {
    let b = Broker::start(server(), BrokerOptions::default()).await;
    // Staging is auto-approved for alice: describe, decide, mint.
    for _ in 0..3 {
        credentials_for(&b, "StagingDeveloper").await;
    }
    // A production request is only described (it waits for approval).
    for _ in 0..2 {
        credentials_for(&b, "ProductionOperator").await;
    }
    let control = b.sts.control_session_calls();
    let mut assumed: Vec<&str> = control.iter().map(|c| c["RoleArn"].as_str()).collect();
    assumed.sort();
    assert_eq!(
        assumed,
        [
            format!("arn:aws:iam::{LOCAL_STAGING_ACCOUNT}:role/tollgate/TollgateControl"),
            format!("arn:aws:iam::{LOCAL_PRODUCTION_ACCOUNT}:role/tollgate/TollgateControl"),
        ],
        "one control session per account, cached across requests"
    );
    for call in &control {
        assert_eq!(call["ExternalId"], "tollgate-local");
        assert_eq!(call["RoleSessionName"], "tollgate-control");
        assert_eq!(call["DurationSeconds"], "3600");
    }
    // Credentials are for the target role in its own account, assumed
    // directly (not through the control role).
    let minted = b.sts.assume_role_calls();
    assert_eq!(minted.len(), 3);
    assert!(
        minted
            .iter()
            .all(|c| c["RoleArn"] == role_arn("StagingDeveloper"))
    );
}

#[tokio::test]
async fn roles_check_says_which_roles_can_be_brokered_and_what_to_fix() {
    let b = Broker::start(server(), BrokerOptions::default()).await;
    let prod = b.iam_in(LOCAL_PRODUCTION_ACCOUNT).await;
    // An existing role that is not yet managed: no tag, and the classic
    // single trust statement that puts sts:RoleSessionName beside
    // SetSourceIdentity and TagSession.
    let legacy = unique_name("Legacy");
    prod.create_role()
        .path("/tollgate/")
        .role_name(&legacy)
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{LOCAL_BROKER_ACCOUNT}:root")},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {"StringLike": {"sts:RoleSessionName": "tollgate-*"}},
            }]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let fresh = unique_name("Fresh");
    create_role(
        &prod,
        "/tollgate/",
        &fresh,
        3600,
        &[("tollgate:managed", "true"), ("tollgate:approvals", "2")],
    )
    .await
    .unwrap();
    let arn =
        |account: &str, path: &str, name: &str| format!("arn:aws:iam::{account}:role{path}{name}");
    let asked = [
        role_arn("ProductionOperator"),
        arn(LOCAL_PRODUCTION_ACCOUNT, "/tollgate/", &fresh),
        arn(LOCAL_PRODUCTION_ACCOUNT, "/tollgate/", &legacy),
        arn(LOCAL_PRODUCTION_ACCOUNT, "/tollgate/", "NoSuchRole"),
        arn("999988887777", "/tollgate/", "Elsewhere"),
        arn(LOCAL_STAGING_ACCOUNT, "/other/", "StagingDeveloper"),
    ];
    let r = b
        .call(
            Method::POST,
            "/roles/check",
            Auth::As(&PAT),
            Some(&json!({ "role_arns": asked })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let roles = r.body["roles"].as_array().unwrap();
    let verdict = |i: usize| {
        let role = &roles[i];
        assert_eq!(role["role_arn"], asked[i]);
        let problems: Vec<String> = role["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        (role["brokerable"].as_bool().unwrap(), problems)
    };
    assert_eq!(verdict(0), (true, vec![]));
    assert_eq!(roles[0]["max_grant_seconds"], 7200);
    assert_eq!(verdict(1), (true, vec![]));
    assert_eq!(roles[1]["approvals_required"], 2);
    let (ok, problems) = verdict(2);
    assert!(!ok);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("not tagged `tollgate:managed=true`"));
    assert!(
        problems[1].contains("`sts:SetSourceIdentity` but conditions on `sts:RoleSessionName`")
    );
    assert!(problems[2].contains("`sts:TagSession` but conditions on `sts:RoleSessionName`"));
    assert_eq!(
        verdict(3),
        (false, vec!["no role with this ARN exists".to_owned()])
    );
    let (ok, problems) = verdict(4);
    assert!(
        !ok && problems[0].contains("not a target account"),
        "{problems:?}"
    );
    let (ok, problems) = verdict(5);
    assert!(
        !ok && problems[0].contains("not the managed path"),
        "{problems:?}"
    );

    // The check is for operators: a developer is refused before any AWS call.
    let r = b
        .call(
            Method::POST,
            "/roles/check",
            Auth::As(&ALICE),
            Some(&json!({ "role_arns": [role_arn("ProductionOperator")] })),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "policy_denied"), "{}", r.body);
    for bad in [
        json!({}),
        json!({"role_arns": []}),
        json!({"role_arns": ["x"]}),
        json!({"role_arns": vec![role_arn("ProductionOperator"); 21]}),
    ] {
        let r = b
            .call(Method::POST, "/roles/check", Auth::As(&PAT), Some(&bad))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
}
