//! Revocation under concurrency, end to end: the real local broker
//! (`tollgate-test-server`, what `tollgate serve` runs) over HTTP, the
//! emulator behind it. Every test revokes on a role of its own, so no other
//! test's revocations or sweeps touch its policy.

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::aws::LOCAL_STAGING_ACCOUNT;
use tollgate::aws::testing::Emulator;
use tollgate_tests::aws_proxy::AwsProxy;
use tollgate_tests::broker::{Auth, Broker, BrokerOptions, Reply};
use tollgate_tests::revocations::{
    Grant, STAGING_TAGS, covers, denied_userids, grants_with_credentials, revoke_all, role_id,
    serve_defaults, uncovered,
};

/// The broker binary: this workspace's, or `TOLLGATE_TEST_SERVER` (another
/// build, to show what these tests find on it).
fn server() -> PathBuf {
    std::env::var_os("TOLLGATE_TEST_SERVER").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tollgate-test-server")),
        PathBuf::from,
    )
}

/// IAM in the local staging account, where these tests make their roles.
async fn staging(b: &Broker) -> aws_sdk_iam::Client {
    b.iam_in(LOCAL_STAGING_ACCOUNT).await
}

/// A staging role of the test's own, in the local staging account.
async fn own_role(b: &Broker) -> (String, String) {
    tollgate_tests::revocations::own_role(&staging(b).await, STAGING_TAGS).await
}

#[tokio::test]
async fn fifty_revocations_at_once_on_one_role_all_succeed_and_deny_every_session() {
    // An emulator of its own: the other tests of this binary do not share
    // its single thread.
    let emulator = Emulator::start().unwrap();
    let proxy = AwsProxy::start(emulator.endpoint()).await;
    let b = Arc::new(Broker::start(&server(), serve_defaults(&proxy)).await);
    let (arn, role_id) = own_role(&b).await;
    let grants = grants_with_credentials(&b, &arn, 50).await;
    let burst = revoke_all(&b, &grants, Some(&proxy)).await;
    println!("{}", burst.summary());
    for (grant, (status, body)) in grants.iter().zip(&burst.replies) {
        assert_eq!(*status, 200, "revoke of {}: {body}", grant.id);
        assert_eq!(body["status"], "revoked", "{body}");
    }
    let missing = uncovered(&staging(&b).await, &arn, &role_id, &grants).await;
    assert!(
        missing.is_empty(),
        "{} sessions are not denied: {missing:?}",
        missing.len()
    );
}

/// A broker whose AWS calls go through `proxy`, sweeping every
/// `sweep_seconds`, with `env` on top.
async fn broker_via(proxy: &AwsProxy, sweep_seconds: u64, env: &[(&str, &str)]) -> Arc<Broker> {
    Arc::new(
        Broker::start(
            &server(),
            BrokerOptions {
                aws_endpoint: Some(proxy.endpoint()),
                sweep_interval_seconds: sweep_seconds,
                extra_env: env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..BrokerOptions::default()
            },
        )
        .await,
    )
}

async fn revoke(b: &Broker, g: &Grant) -> Reply {
    b.call(
        Method::POST,
        &format!("/requests/{}/revoke", g.id),
        Auth::As(&g.user),
        Some(&json!({"reason": "done"})),
    )
    .await
}

async fn credentials(b: &Broker, g: &Grant) -> Reply {
    b.call(
        Method::POST,
        &format!("/requests/{}/credentials", g.id),
        Auth::As(&g.user),
        Some(&json!({})),
    )
    .await
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// `RevocationFailures` metric lines the broker wrote for `operation`.
fn revocation_failures(b: &Broker, operation: &str) -> usize {
    b.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["Operation"] == operation && v["RevocationFailures"] == 1)
        .count()
}

/// A grant with credentials on a role of its own, revoked while the
/// broker's `PutRolePolicy` calls get `status` `code`: 503
/// `revocation_incomplete`.
struct FailedRevoke {
    proxy: AwsProxy,
    b: Arc<Broker>,
    arn: String,
    g: Grant,
    userid: String,
    reply: Reply,
}

impl FailedRevoke {
    async fn new(sweep_seconds: u64, status: u16, code: &str) -> Self {
        let proxy = AwsProxy::start(Emulator::shared().unwrap().endpoint()).await;
        let b = broker_via(&proxy, sweep_seconds, &[]).await;
        let (arn, role_id) = own_role(&b).await;
        let g = grants_with_credentials(&b, &arn, 1).await.remove(0);
        let userid = format!("{role_id}:tollgate-{}", g.id);
        proxy.fail("iam:PutRolePolicy", status, code);
        let reply = revoke(&b, &g).await;
        assert_eq!(
            (reply.status, reply.code()),
            (503, "revocation_incomplete"),
            "{}",
            reply.body
        );
        Self {
            proxy,
            b,
            arn,
            g,
            userid,
            reply,
        }
    }

    /// Whether the role's policy denies the grant's session now.
    async fn denied(&self) -> bool {
        let denied = denied_userids(&staging(&self.b).await, role_name(&self.arn)).await;
        covers(&denied, &self.userid)
    }
}

#[tokio::test]
async fn a_statement_that_cannot_be_written_is_a_503_that_a_repeated_revoke_finishes() {
    // No sweep during the test: only the repeated revoke may finish the job.
    let f = FailedRevoke::new(3600, 500, "ServiceFailure").await;
    let (b, g, r) = (&f.b, &f.g, &f.reply);
    assert_eq!(r.headers["retry-after"], "2");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("the grant is revoked"), "{message}");
    assert!(!message.contains("injected"), "no AWS detail for people");
    assert_eq!(revocation_failures(b, "revoke"), 1);
    // Revoked in the table: no new credentials, whatever IAM does.
    let c = credentials(b, g).await;
    assert_eq!((c.status, c.code()), (409, "not_active"));
    let shown = b.wait_for(&g.id, &g.user, "the request", |_| true).await;
    assert_eq!(shown["status"], "revoked");
    assert!(!f.denied().await);

    // Repeated while IAM still fails: the same answer, counted again.
    let r = revoke(b, g).await;
    assert_eq!((r.status, r.code()), (503, "revocation_incomplete"));
    assert_eq!(revocation_failures(b, "revoke"), 2);

    // Repeated once IAM works: 200, the statement is in; after that, 409.
    f.proxy.heal();
    let r = revoke(b, g).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "revoked");
    assert!(f.denied().await);
    let r = revoke(b, g).await;
    assert_eq!((r.status, r.code()), (409, "not_active"));
    // One revoked event however many times it was asked.
    let shown = b.wait_for(&g.id, &g.user, "the request", |_| true).await;
    let revoked_events = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "revoked")
        .count();
    assert_eq!(revoked_events, 1);
}

#[tokio::test]
async fn a_statement_that_cannot_be_written_is_written_by_the_sweep() {
    let f = FailedRevoke::new(1, 403, "AccessDenied").await;
    // The sweep fails too while IAM refuses, and says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    while revocation_failures(&f.b, "sweep") == 0 {
        assert!(Instant::now() < deadline, "the sweep never tried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!f.denied().await);
    f.proxy.heal();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f.denied().await {
        assert!(
            Instant::now() < deadline,
            "the sweep never wrote the statement"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Done by the sweep: a repeated revoke has nothing left to do.
    let r = revoke(&f.b, &f.g).await;
    assert_eq!((r.status, r.code()), (409, "not_active"));
}

#[tokio::test]
async fn only_grants_with_credentials_get_a_statement_even_when_credentials_race_the_revoke() {
    let b = Arc::new(Broker::start(&server(), BrokerOptions::default()).await);
    let (arn, role_id) = own_role(&b).await;
    // Twelve grants, none used yet; each is revoked while its requester
    // asks for credentials at the same moment.
    let mut grants = Vec::new();
    for i in 0..12 {
        let user = tollgate_tests::revocations::developer(100 + i);
        let r = b
            .call(
                Method::POST,
                "/requests",
                Auth::As(&user),
                Some(&json!({"role_arn": arn, "duration_seconds": 3600, "reason": "race"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        grants.push(Grant {
            user,
            id: r.body["id"].as_str().unwrap().to_owned(),
        });
    }
    let start = Arc::new(tokio::sync::Barrier::new(2 * grants.len()));
    let mut tasks = Vec::new();
    for g in &grants {
        for action in ["revoke", "credentials"] {
            let (b, g, start) = (b.clone(), g.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                match action {
                    "revoke" => revoke(&b, &g).await,
                    _ => credentials(&b, &g).await,
                }
            }));
        }
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let denied = denied_userids(&staging(&b).await, role_name(&arn)).await;
    let mut with_credentials = 0;
    for (i, g) in grants.iter().enumerate() {
        let (revoked, creds) = (&replies[2 * i], &replies[2 * i + 1]);
        assert_eq!(revoked.status, 200, "{}", revoked.body);
        assert!(
            creds.status == 200 || (creds.status, creds.code()) == (409, "not_active"),
            "{}",
            creds.body
        );
        let shown = b.wait_for(&g.id, &g.user, "the request", |_| true).await;
        let issued = shown["credentials_issued"].as_u64().unwrap();
        // Credentials handed out were recorded first.
        if creds.status == 200 {
            assert_eq!(issued, 1);
        }
        let userid = format!("{role_id}:tollgate-{}", g.id);
        assert_eq!(
            covers(&denied, &userid),
            issued > 0,
            "grant {} (credentials issued: {issued})",
            g.id
        );
        with_credentials += usize::from(issued > 0);
    }
    println!(
        "revoke racing credentials: {with_credentials} of {} grants had credentials issued first",
        grants.len()
    );
}

#[tokio::test]
async fn a_full_role_policy_budget_denies_every_tollgate_session_on_the_role() {
    let b = Arc::new(Broker::start(&server(), BrokerOptions::default()).await);
    let (arn, role_id) = own_role(&b).await;
    // Another inline policy that leaves 230 of the role's 10,240 characters:
    // room for one all-sessions statement, not for three sessions.
    let mut resources = Vec::new();
    let mut bulk = String::new();
    for i in 0.. {
        resources.push(format!("arn:aws:s3:::team-bucket-{i:05}/*"));
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Team", "Effect": "Allow", "Action": "s3:GetObject", "Resource": resources}]});
        if doc.to_string().len() > 10_240 - 230 {
            break;
        }
        bulk = doc.to_string();
    }
    staging(&b)
        .await
        .put_role_policy()
        .role_name(role_name(&arn))
        .policy_name("TeamAccess")
        .policy_document(&bulk)
        .send()
        .await
        .unwrap();
    let grants = grants_with_credentials(&b, &arn, 3).await;
    let burst = revoke_all(&b, &grants, None).await;
    assert_eq!(burst.statuses(), [(200, 3)].into(), "{:?}", burst.replies);
    let denied = denied_userids(&staging(&b).await, role_name(&arn)).await;
    assert_eq!(denied, [format!("{role_id}:tollgate-*")]);
    assert!(
        b.stderr().contains("revocation policy budget full"),
        "the fallback is logged as a warning"
    );
}

#[tokio::test]
async fn a_role_recreated_under_the_same_name_within_the_cache_lifetime_is_denied_by_its_current_id()
 {
    let b = Arc::new(
        Broker::start(
            &server(),
            BrokerOptions {
                extra_env: vec![("TOLLGATE_ROLE_CACHE_SECONDS".into(), "300".into())],
                ..BrokerOptions::default()
            },
        )
        .await,
    );
    let (arn, first_id) = own_role(&b).await;
    let g = grants_with_credentials(&b, &arn, 1).await.remove(0);
    // Deleted and created again under the same name: a new role id, while
    // the broker still has the old description cached.
    let name = role_name(&arn);
    let iam = staging(&b).await;
    iam.delete_role().role_name(name).send().await.unwrap();
    tollgate::aws::create_role(&iam, "/tollgate/", name, 3600, STAGING_TAGS)
        .await
        .unwrap();
    let current_id = role_id(&iam, name).await;
    assert_ne!(current_id, first_id);
    let c = credentials(&b, &g).await;
    assert_eq!(c.status, 200, "{}", c.body);
    let r = revoke(&b, &g).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let denied = denied_userids(&staging(&b).await, name).await;
    assert_eq!(denied, [format!("{current_id}:tollgate-{}", g.id)]);
}

#[tokio::test]
async fn a_role_that_vanishes_before_the_write_is_described_again() {
    let proxy = AwsProxy::start(Emulator::shared().unwrap().endpoint()).await;
    // The role description cached, so that the revoke's own GetRole calls
    // are the render's.
    let b = broker_via(&proxy, 3600, &[("TOLLGATE_ROLE_CACHE_SECONDS", "60")]).await;
    let (arn, role_id) = own_role(&b).await;
    let g = grants_with_credentials(&b, &arn, 1).await.remove(0);
    // IAM says the role does not exist on the first write, as it does when
    // the role was deleted (and maybe created again) since GetRole.
    proxy.take();
    proxy.fail_times("iam:PutRolePolicy", 404, "NoSuchEntity", 1);
    let r = revoke(&b, &g).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let calls = proxy.take();
    let count = |op: &str| calls.get(op).map_or(0, |s| s.calls);
    assert_eq!(
        (count("iam:GetRole"), count("iam:PutRolePolicy")),
        (2, 2),
        "described again and written again: {calls:?}"
    );
    let denied = denied_userids(&staging(&b).await, role_name(&arn)).await;
    assert_eq!(denied, [format!("{role_id}:tollgate-{}", g.id)]);
}
