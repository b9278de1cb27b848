//! `PolicyEngine::decide` beside raw Cedar `Authorizer::is_authorized` on the
//! same policy set, entities and request, at 10 to 10,000 generated policies.
//!
//! The generated set reads like a large organisation's: 80% of policies are
//! team grants pinned to one group and one role (`principal in Group::"..."`,
//! `resource == Role::"..."`), 15% are tag-based team rules for any role, 5%
//! are forbids for anyone on any role; actions cycle through all five.
//! There are n/20 teams; the principal is in two groups. `decide` includes building entities, context and request
//! from `Identity`/`RoleInfo` on every call; raw Cedar gets them prebuilt.
//!
//! `longest_allowed` (what a dry run adds to find the longest grant the
//! policies allow) is measured beside one `decide` on the same set.
//!
//! Run: `cargo bench -p tollgate --bench decide -- --warm-up-time 1 --measurement-time 3`

// A benchmark whose setup fails has nothing to measure: stop loudly.
#![allow(clippy::expect_used)]

use cedar_policy::Authorizer;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use tollgate::domain::{Identity, RoleArn, RoleInfo, Timestamp, UserId};
use tollgate::policy::{
    Action, DurationLimit, LimitSource, PolicyEngine, Query, QueryContext, longest_allowed,
};

const ACTIONS: [&str; 5] = ["request", "auto_approve", "approve", "revoke", "read"];
const ACCOUNT: &str = "123456789012";

/// `n` policies: mostly role-pinned team grants, some tag rules, a few forbids.
fn generate(n: usize) -> String {
    let teams = (n / 20).max(1);
    let mut out = String::with_capacity(n * 260);
    for i in 0..n {
        let team = i % teams;
        let action = ACTIONS[(i / teams) % ACTIONS.len()];
        let policy = match i % 20 {
            0..16 => format!(
                "@id(\"team-{team}-grant-{i}\")\n\
                 permit(principal in Tollgate::Group::\"team-{team}\", action == Tollgate::Action::\"{action}\", \
                 resource == Tollgate::Role::\"arn:aws:iam::{ACCOUNT}:role/team-{team}-{r}\")\n\
                 when {{ context.duration_seconds <= {d} && principal.hasTag(\"department\") && \
                 principal.getTag(\"department\") == \"dept-{dept}\" }};\n",
                r = (i / teams) % 4,
                d = 3600 * (1 + i % 8),
                dept = team % 7,
            ),
            16..19 => format!(
                "@id(\"env-rule-{i}\")\n\
                 permit(principal in Tollgate::Group::\"team-{team}\", action == Tollgate::Action::\"{action}\", resource)\n\
                 when {{ resource.hasTag(\"environment\") && resource.getTag(\"environment\") == \"env-{e}\" && \
                 context.hour >= 7 && context.hour < 19 }};\n",
                e = i % 11,
            ),
            _ => format!(
                "@id(\"freeze-{i}\")\n\
                 forbid(principal, action == Tollgate::Action::\"{action}\", resource)\n\
                 when {{ resource.hasTag(\"frozen-{i}\") }} unless {{ principal in Tollgate::Group::\"oncall\" }};\n"
            ),
        };
        out.push_str(&policy);
    }
    out
}

fn bench_decide(c: &mut Criterion) {
    let principal = Identity {
        sub: UserId::parse("alice@example.com").expect("user id"),
        groups: vec!["team-0".into(), "developers".into()],
        tags: BTreeMap::from([
            ("department".into(), "dept-0".into()),
            ("clearance".into(), "high".into()),
        ]),
        mfa: true,
    };
    let role = RoleInfo {
        arn: RoleArn::parse(&format!("arn:aws:iam::{ACCOUNT}:role/team-0-0")).expect("role arn"),
        role_id: "AROAEXAMPLE".into(),
        max_session_seconds: 3600,
        tags: BTreeMap::from([
            ("environment".into(), "env-5".into()),
            ("owner-team".into(), "team-0".into()),
        ]),
    };
    let query = Query {
        principal: &principal,
        action: Action::Request,
        role: &role,
        context: QueryContext {
            duration_seconds: 3600,
            reason: "deploy the fix for INC-42",
            ticket: Some("INC-42"),
            source_ip: Some("10.1.2.3"),
            now: Timestamp::parse_rfc3339("2026-11-18T10:00:00Z").expect("time"),
            requester: None,
            approvals_so_far: 0,
        },
    };
    let authorizer = Authorizer::new();

    let mut group = c.benchmark_group("decide");
    for n in [10, 100, 1_000, 10_000] {
        let text = generate(n);
        let engine =
            PolicyEngine::from_sources(&[("generated.cedar", &text)]).expect("generated policies");
        assert_eq!(engine.policy_count(), n);
        let (request, entities) = engine.cedar_inputs(&query).expect("cedar inputs");
        let policies = engine.policy_set();

        // Both paths must reach the same answer, or the comparison means nothing.
        let decision = engine.decide(&query);
        let raw = authorizer.is_authorized(&request, policies, &entities);
        assert!(decision.allowed, "the query is permitted at every size");
        assert_eq!(raw.decision(), cedar_policy::Decision::Allow);

        group.bench_with_input(BenchmarkId::new("tollgate_decide", n), &n, |b, _| {
            b.iter(|| black_box(engine.decide(black_box(&query))));
        });
        // What a dry run adds: the longest grant the policies allow, probed
        // by deciding the same query at other durations.
        let ceiling = DurationLimit {
            seconds: 43_200,
            source: LimitSource::Ceiling,
        };
        assert!(longest_allowed(&engine, &query, &ceiling).is_some());
        group.bench_with_input(BenchmarkId::new("longest_allowed", n), &n, |b, _| {
            b.iter(|| black_box(longest_allowed(&engine, black_box(&query), &ceiling)));
        });
        group.bench_with_input(BenchmarkId::new("cedar_is_authorized", n), &n, |b, _| {
            b.iter(|| {
                black_box(authorizer.is_authorized(
                    black_box(&request),
                    black_box(policies),
                    black_box(&entities),
                ))
            });
        });
    }
    group.finish();

    // What `decide` spends before evaluating anything: with the same second
    // and address as the previous decision (as in the loops above), and with
    // a new second every time (the `datetime` value is rebuilt).
    let engine = PolicyEngine::from_sources(&[]).expect("empty set");
    c.bench_function("build_inputs/same_second", |b| {
        b.iter(|| black_box(engine.cedar_inputs(black_box(&query))));
    });
    c.bench_function("build_inputs/new_second", |b| {
        let mut q = query.clone();
        b.iter(|| {
            q.context.now = q.context.now.plus(1);
            black_box(engine.cedar_inputs(black_box(&q)))
        });
    });
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
