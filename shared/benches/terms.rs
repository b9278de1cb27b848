//! Discovery's terms for one caller over 1,000 roles and 200 policies,
//! beside one `decide` per role (the least any listing that asks the
//! policies about each role could cost), and the terms of one role.
//!
//! The policies read like a large organisation's: per team two `request`
//! permits for the team's roles (up to a few hours, or 8 hours with a
//! ticket), an `auto_approve` permit for short grants outside production,
//! an office-hours forbid for production unless on call, and a freeze by
//! tag (or cost centre). Roles come in two
//! catalogues: every role with tags of its own (no two roles share a
//! shape, the worst case), and 1,000 roles over 40 tag sets (what tagging
//! by team and environment gives).
//!
//! Run: `cargo bench -p tollgate --bench terms -- --warm-up-time 1 --measurement-time 5`

// A benchmark whose setup fails has nothing to measure: stop loudly.
#![allow(clippy::expect_used)]
// It prints how many roles the caller may request, beside the timings.
#![allow(clippy::print_stdout)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use tollgate::domain::{Identity, RoleArn, RoleInfo, Timestamp, UserId};
use tollgate::policy::{Action, Discovery, PolicyEngine, Query, QueryContext, TermsQuery};

const TEAMS: usize = 40;
const ENVIRONMENTS: [&str; 4] = ["dev", "staging", "production", "sandbox"];

/// 200 policies: five per team.
fn policies() -> String {
    let mut out = String::new();
    for t in 0..TEAMS {
        let hours = 3600 * (1 + t % 8);
        out.push_str(&format!(
            "@id(\"team-{t}-request\")\n\
             permit(principal in Tollgate::Group::\"team-{t}\", action == Tollgate::Action::\"request\", resource)\n\
             when {{ resource.hasTag(\"team\") && resource.getTag(\"team\") == \"team-{t}\" && context.duration_seconds <= {hours} }};\n\
             @id(\"team-{t}-ticketed\")\n\
             permit(principal in Tollgate::Group::\"team-{t}\", action == Tollgate::Action::\"request\", resource)\n\
             when {{ resource.hasTag(\"team\") && resource.getTag(\"team\") == \"team-{t}\" && context has ticket && context.duration_seconds <= 28800 }};\n\
             @id(\"team-{t}-auto\")\n\
             permit(principal in Tollgate::Group::\"team-{t}\", action == Tollgate::Action::\"auto_approve\", resource)\n\
             when {{ resource.hasTag(\"environment\") && resource.getTag(\"environment\") != \"production\" && context.duration_seconds <= {auto} }};\n\
             @id(\"team-{t}-office-hours\")\n\
             forbid(principal in Tollgate::Group::\"team-{t}\", action == Tollgate::Action::\"request\", resource)\n\
             when {{ resource.hasTag(\"environment\") && resource.getTag(\"environment\") == \"production\" && (context.hour < 7 || context.hour >= 19) }}\n\
             unless {{ principal in Tollgate::Group::\"oncall\" }};\n\
             @id(\"freeze-{t}\")\n\
             forbid(principal, action == Tollgate::Action::\"request\", resource)\n\
             when {{ resource.hasTag(\"frozen-{t}\") || (resource.hasTag(\"cost-centre\") && resource.getTag(\"cost-centre\") == \"cc-frozen-{t}\") }};\n",
            auto = 1800 * (1 + t % 4),
        ));
    }
    out
}

/// 1,000 roles over `shapes` tag sets (each role its own when 1,000, by
/// its cost centre).
fn roles(shapes: usize) -> Vec<RoleInfo> {
    (0..1000)
        .map(|i| {
            let shape = i % shapes;
            let mut tags = BTreeMap::from([
                ("team".to_owned(), format!("team-{}", shape % TEAMS)),
                (
                    "environment".to_owned(),
                    ENVIRONMENTS[shape % ENVIRONMENTS.len()].to_owned(),
                ),
                ("tollgate:managed".to_owned(), "true".to_owned()),
            ]);
            if shapes > TEAMS * ENVIRONMENTS.len() {
                tags.insert("cost-centre".to_owned(), format!("cc-{shape}"));
            }
            RoleInfo {
                arn: RoleArn::parse(&format!(
                    "arn:aws:iam::{}:role/tollgate/role-{i:04}",
                    if i % 2 == 0 {
                        "111122223333"
                    } else {
                        "444455556666"
                    }
                ))
                .expect("role arn"),
                role_id: format!("AROA{i:016}"),
                max_session_seconds: 3600,
                tags,
            }
        })
        .collect()
}

fn bench_terms(c: &mut Criterion) {
    let text = policies();
    let engine =
        PolicyEngine::from_sources(&[("generated.cedar", &text)]).expect("generated policies");
    assert_eq!(engine.policy_count(), 200);
    let caller = Identity {
        sub: UserId::parse("alice@example.com").expect("user"),
        groups: vec!["team-0".into(), "team-2".into(), "developers".into()],
        tags: BTreeMap::from([("department".into(), "platform".into())]),
        mfa: true,
    };
    // A Wednesday in office hours.
    let now = Timestamp::parse_rfc3339("2026-11-18T10:00:00Z").expect("time");
    let q = TermsQuery {
        principal: &caller,
        now,
        source_ip: Some("10.1.2.3"),
        ceiling_seconds: 43_200,
    };
    let mut group = c.benchmark_group("discovery_1000_roles_200_policies");
    group.sample_size(10);
    for (name, shapes) in [("distinct_shapes", 1000), ("40_shapes", 40)] {
        let roles = roles(shapes);
        let listed = {
            let mut d = Discovery::new(&engine, q);
            roles.iter().filter(|r| d.terms(r).is_some()).count()
        };
        println!(
            "{name}: the caller may request {listed} of {} roles",
            roles.len()
        );
        assert!(listed > 0, "the caller may request some roles");
        group.bench_function(format!("terms/{name}"), |b| {
            b.iter(|| {
                let mut d = Discovery::new(&engine, q);
                black_box(roles.iter().filter_map(|r| d.terms(r)).count())
            });
        });
        // The baseline: one `request` decision per role, nothing else.
        group.bench_function(format!("one_decide_per_role/{name}"), |b| {
            b.iter(|| {
                black_box(
                    roles
                        .iter()
                        .filter(|role| {
                            engine
                                .decide(&Query {
                                    principal: &caller,
                                    action: Action::Request,
                                    role,
                                    context: QueryContext {
                                        duration_seconds: 3600,
                                        reason: "bench",
                                        ticket: Some("T-1"),
                                        source_ip: Some("10.1.2.3"),
                                        now,
                                        requester: None,
                                        approvals_so_far: 0,
                                        starts_at: None,
                                        extension_seconds: None,
                                    },
                                })
                                .allowed
                        })
                        .count(),
                )
            });
        });
    }
    group.finish();
    let roles = roles(1000);
    let production = roles
        .iter()
        .find(|r| r.tags["environment"] == "production" && r.tags["team"] == "team-2")
        .expect("a production role of the caller's team");
    c.bench_function("terms/one_role", |b| {
        b.iter(|| black_box(Discovery::new(&engine, q).terms(black_box(production))));
    });
}

criterion_group!(benches, bench_terms);
criterion_main!(benches);
