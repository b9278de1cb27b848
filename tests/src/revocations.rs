//! Revocations at once on one role, as users would run them: N developers
//! each get an auto-approved grant on the same role and mint credentials,
//! then all N grants are revoked at the same moment over HTTP. Used by the
//! end-to-end test (which asserts every revoke succeeded and every session
//! is in the role's policy) and by `tollgate-bench` (which prints figures).

use crate::aws_proxy::{AwsProxy, OpStats};
use crate::broker::{Auth, Broker, BrokerOptions, User};
use crate::load::{ms, percentile};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tags that make a role auto-approved for developers under the example
/// policies (`infra/policies/staging.cedar`) and brokerable.
pub const STAGING_TAGS: &[(&str, &str)] =
    &[("environment", "staging"), ("tollgate:managed", "true")];

/// A developer with a name of its own (`dev-<n>`), so that per-user limits
/// never decide a burst.
pub fn developer(n: usize) -> User {
    User {
        sub: Box::leak(format!("dev-{n}").into_boxed_str()),
        groups: &["developers"],
        mfa: true,
        claims: &[],
    }
}

/// One grant of a burst.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Its requester.
    pub user: User,
    /// The request id.
    pub id: String,
}

/// Creates one auto-approved grant per developer `0..n` on `role_arn` and
/// mints credentials for each (so each needs a deny statement when revoked).
pub async fn grants_with_credentials(b: &Arc<Broker>, role_arn: &str, n: usize) -> Vec<Grant> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let b = b.clone();
        let role_arn = role_arn.to_owned();
        tasks.push(tokio::spawn(async move {
            let user = developer(i);
            let body = json!({"role_arn": role_arn, "duration_seconds": 3600, "reason": "revocation burst"});
            let r = b
                .call(Method::POST, "/requests", Auth::As(&user), Some(&body))
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            assert_eq!(r.body["status"], "active", "{}", r.body);
            let id = r.body["id"].as_str().expect("an id").to_owned();
            let c = b
                .call(
                    Method::POST,
                    &format!("/requests/{id}/credentials"),
                    Auth::As(&user),
                    Some(&json!({})),
                )
                .await;
            assert_eq!(c.status, 200, "{}", c.body);
            Grant { user, id }
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("a grant task"));
    }
    out
}

/// What a burst of revocations did.
#[derive(Debug, Clone)]
pub struct Burst {
    /// Status and body of each revoke, in grant order.
    pub replies: Vec<(u16, Value)>,
    /// Each revoke's latency, in grant order.
    pub latencies: Vec<Duration>,
    /// From the first revoke sent to the last answer.
    pub wall: Duration,
    /// AWS calls the broker made during the burst, per operation, when a
    /// proxy counted them.
    pub aws: BTreeMap<String, OpStats>,
    /// Lease waits and renders the broker logged for these revocations.
    pub lease: LeaseFigures,
}

/// Lease figures from the broker's `revocation statement in place` lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseFigures {
    /// Revocations that logged the line.
    pub revocations: u64,
    /// Times a revocation found the lease held and waited.
    pub waits: u64,
    /// Policies written by a revocation holding the lease.
    pub renders: u64,
    /// Revocations whose statement another revocation's render covered.
    pub covered_by_others: u64,
}

impl Burst {
    /// Statuses and how many of each.
    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        let mut m = BTreeMap::new();
        for (s, _) in &self.replies {
            *m.entry(*s).or_insert(0) += 1;
        }
        m
    }

    /// IAM calls the broker made, per operation.
    pub fn iam_calls(&self) -> BTreeMap<String, u64> {
        self.aws
            .iter()
            .filter(|(op, _)| op.starts_with("iam:"))
            .map(|(op, s)| (op.clone(), s.calls))
            .collect()
    }

    /// The figures, one line each, for people.
    pub fn summary(&self) -> String {
        let n = self.replies.len().max(1) as f64;
        let iam: u64 = self.iam_calls().values().sum();
        let dynamodb: u64 = self
            .aws
            .iter()
            .filter(|(op, _)| op.starts_with("dynamodb:"))
            .map(|(_, s)| s.calls)
            .sum();
        format!(
            "revocations: {} on one role, statuses {:?}\n\
             wall time: {} ms\n\
             per revoke: p50 {} ms, p95 {} ms, max {} ms\n\
             IAM calls: {} ({:.2} per revocation) {:?}\n\
             DynamoDB calls: {} ({:.2} per revocation)\n\
             emulator time per operation: {}\n\
             lease: {} waits ({:.2} per revocation), {} renders by a revoker, {} statements covered by another revoker's render",
            self.replies.len(),
            self.statuses(),
            ms(self.wall),
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 95.0)),
            ms(self.latencies.iter().copied().max().unwrap_or_default()),
            iam,
            iam as f64 / n,
            self.iam_calls(),
            dynamodb,
            dynamodb as f64 / n,
            self.aws
                .iter()
                .map(|(op, s)| format!(
                    "{op} {}x {} ms avg",
                    s.calls,
                    ms(s.time / u32::try_from(s.calls.max(1)).unwrap_or(1))
                ))
                .collect::<Vec<_>>()
                .join(", "),
            self.lease.waits,
            self.lease.waits as f64 / n,
            self.lease.renders,
            self.lease.covered_by_others,
        )
    }
}

/// Revokes every grant at the same moment (each by its own requester), and
/// counts what the broker did meanwhile through `proxy` when given.
pub async fn revoke_all(b: &Arc<Broker>, grants: &[Grant], proxy: Option<&AwsProxy>) -> Burst {
    measure(b, grants, proxy, true).await
}

/// Revokes the grants one after the other: the baseline for [`revoke_all`].
pub async fn revoke_one_by_one(
    b: &Arc<Broker>,
    grants: &[Grant],
    proxy: Option<&AwsProxy>,
) -> Burst {
    measure(b, grants, proxy, false).await
}

async fn revoke_timed(b: &Broker, g: &Grant) -> (u16, Value, Duration) {
    let t = Instant::now();
    let r = b
        .call(
            Method::POST,
            &format!("/requests/{}/revoke", g.id),
            Auth::As(&g.user),
            Some(&json!({"reason": "revocation burst"})),
        )
        .await;
    (r.status, r.body, t.elapsed())
}

async fn measure(
    b: &Arc<Broker>,
    grants: &[Grant],
    proxy: Option<&AwsProxy>,
    at_once: bool,
) -> Burst {
    let stderr_before = b.stderr().len();
    if let Some(p) = proxy {
        p.take();
    }
    let mut results = Vec::with_capacity(grants.len());
    let t0;
    if at_once {
        let start = Arc::new(tokio::sync::Barrier::new(grants.len() + 1));
        let mut tasks = Vec::new();
        for g in grants {
            let (b, g, start) = (b.clone(), g.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                revoke_timed(&b, &g).await
            }));
        }
        start.wait().await;
        t0 = Instant::now();
        for t in tasks {
            results.push(t.await.expect("a revoke task"));
        }
    } else {
        t0 = Instant::now();
        for g in grants {
            results.push(revoke_timed(b, g).await);
        }
    }
    let wall = t0.elapsed();
    let (replies, latencies) = results
        .into_iter()
        .map(|(status, body, elapsed)| ((status, body), elapsed))
        .unzip();
    let aws = proxy.map(AwsProxy::take).unwrap_or_default();
    let stderr = b.stderr();
    let lease = lease_figures(stderr.get(stderr_before..).unwrap_or_default());
    Burst {
        replies,
        latencies,
        wall,
        aws,
        lease,
    }
}

/// Sums the broker's `revocation statement in place` log lines.
pub fn lease_figures(stderr: &str) -> LeaseFigures {
    let mut f = LeaseFigures::default();
    for line in stderr.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["message"] != "revocation statement in place" {
            continue;
        }
        f.revocations += 1;
        f.waits += fields["lease_waits"].as_u64().unwrap_or(0);
        if fields["rendered"].as_bool() == Some(true) {
            f.renders += 1;
        } else {
            f.covered_by_others += 1;
        }
    }
    f
}

/// The `aws:userid` values the role's `TollgateRevocations` policy denies,
/// read straight from IAM (empty when there is no such policy).
pub async fn denied_userids(iam: &aws_sdk_iam::Client, role_name: &str) -> Vec<String> {
    let doc = match iam
        .get_role_policy()
        .role_name(role_name)
        .policy_name(tollgate::aws::POLICY_NAME)
        .send()
        .await
    {
        Ok(out) => out.policy_document().to_owned(),
        Err(e) => {
            let service = e.into_service_error();
            assert!(
                service.is_no_such_entity_exception(),
                "reading the revocation policy failed: {service:?}"
            );
            return Vec::new();
        }
    };
    let text = tollgate::aws::testing::form_params(&format!("d={}", doc.replace('+', "%2B")))
        .remove("d")
        .unwrap_or_default();
    let doc: Value = serde_json::from_str(&text).expect("the policy is JSON");
    let mut out = Vec::new();
    for st in doc["Statement"].as_array().cloned().unwrap_or_default() {
        if st["Effect"] != "Deny" {
            continue;
        }
        match &st["Condition"]["StringLike"]["aws:userid"] {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => out.extend(a.iter().filter_map(|v| v.as_str().map(str::to_owned))),
            _ => {}
        }
    }
    out
}

/// Whether `denied` (a policy's `aws:userid` values) covers `userid`.
pub fn covers(denied: &[String], userid: &str) -> bool {
    denied.iter().any(|d| match d.strip_suffix('*') {
        Some(prefix) => userid.starts_with(prefix),
        None => d == userid,
    })
}

/// The grants whose sessions the role's revocation policy does not deny.
pub async fn uncovered(
    iam: &aws_sdk_iam::Client,
    role_arn: &str,
    role_id: &str,
    grants: &[Grant],
) -> Vec<String> {
    let name = role_arn.rsplit('/').next().unwrap_or_default();
    let denied = denied_userids(iam, name).await;
    grants
        .iter()
        .filter(|g| !covers(&denied, &format!("{role_id}:tollgate-{}", g.id)))
        .map(|g| g.id.clone())
        .collect()
}

/// A role of its own with `tags` under `/tollgate/`: its ARN and role id.
pub async fn own_role(iam: &aws_sdk_iam::Client, tags: &[(&str, &str)]) -> (String, String) {
    let name = tollgate::aws::testing::unique_name("Burst");
    let arn = tollgate::aws::create_role(iam, "/tollgate/", &name, 3600, tags)
        .await
        .expect("create the role");
    (arn.to_string(), role_id(iam, &name).await)
}

/// The role id IAM gives the role `name` now.
pub async fn role_id(iam: &aws_sdk_iam::Client, name: &str) -> String {
    iam.get_role()
        .role_name(name)
        .send()
        .await
        .expect("the role")
        .role()
        .expect("a role")
        .role_id()
        .to_owned()
}

/// A broker's options as `tollgate serve` runs by default (role cache 60 s,
/// sweep every 5 s; the test brokers turn the cache off and sweep every
/// second), its AWS calls through `proxy`.
pub fn serve_defaults(proxy: &AwsProxy) -> BrokerOptions {
    BrokerOptions {
        aws_endpoint: Some(proxy.endpoint()),
        sweep_interval_seconds: 5,
        extra_env: vec![("TOLLGATE_ROLE_CACHE_SECONDS".into(), "60".into())],
        ..BrokerOptions::default()
    }
}
