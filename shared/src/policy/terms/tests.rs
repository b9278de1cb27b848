//! Terms over the example policies and purpose-made sets, and the check
//! that matters most: what the terms say agrees with what `decide` then
//! answers for the request they describe.

use super::*;
use crate::domain::{RoleArn, UserId};

fn engine(extra: &str) -> PolicyEngine {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/policies");
    let mut sources: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    sources.sort();
    sources.push(("extra.cedar".into(), extra.into()));
    let borrowed: Vec<(&str, &str)> = sources
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    PolicyEngine::from_sources(&borrowed).unwrap()
}

fn only(text: &str) -> PolicyEngine {
    PolicyEngine::from_sources(&[("only.cedar", text)]).unwrap()
}

fn who(sub: &str, groups: &[&str], tags: &[(&str, &str)], mfa: bool) -> Identity {
    Identity {
        sub: UserId::parse(sub).unwrap(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        mfa,
    }
}

/// The example users of `scripts/local-broker`, and a developer who is not
/// on call.
fn user(name: &str) -> Identity {
    match name {
        "alice" => who(
            "alice",
            &["developers", "oncall"],
            &[("department", "platform")],
            false,
        ),
        "bob" | "carol" => who(name, &["sre"], &[], true),
        "dana" => who("dana", &["data-engineers"], &[("department", "data")], true),
        "erin" => who("erin", &["developers"], &[], false),
        other => panic!("no user {other}"),
    }
}

/// The example roles of `aws::provision`.
fn role(name: &str) -> RoleInfo {
    let r = crate::aws::example_role(name).unwrap();
    RoleInfo {
        arn: RoleArn::parse(&r.arn()).unwrap(),
        role_id: "AROAEXAMPLE".into(),
        max_session_seconds: u32::try_from(r.max_session_seconds).unwrap(),
        tags: r
            .tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

/// A Wednesday in office hours, and the same Wednesday late at night.
const OFFICE: &str = "2026-11-18T10:00:00Z";
const NIGHT: &str = "2026-11-18T22:00:00Z";

fn terms_of(engine: &PolicyEngine, who: &Identity, role: &RoleInfo, now: &str) -> Option<Terms> {
    Discovery::new(
        engine,
        TermsQuery {
            principal: who,
            now: at(now),
            source_ip: None,
            ceiling_seconds: 43_200,
        },
    )
    .terms(role)
}

fn auto(max: u32) -> Option<AutoApproval> {
    Some(AutoApproval {
        max_duration_seconds: max,
        ticket_required: false,
    })
}

fn policy(id: &str) -> Limit {
    Limit::Policy { policy: id.into() }
}

#[test]
fn the_example_users_see_the_terms_the_example_policies_set() {
    use Factor::{DayOfWeek, TimeOfDay};
    struct Case {
        user: &'static str,
        role: &'static str,
        now: &'static str,
        want: Option<Terms>,
    }
    let t = |available_now, max, limit, ticket, auto, approvals, depends_on: &[Factor]| {
        Some(Terms {
            available_now,
            max_duration_seconds: max,
            max_duration_limit: limit,
            max_duration_without_ticket_seconds: None,
            ticket_required: ticket,
            mfa_required: false,
            auto_approve: auto,
            approvals_required: approvals,
            depends_on: depends_on.to_vec(),
        })
    };
    let cases = [
        // Staging: developers help themselves for up to 4 hours.
        Case {
            user: "alice",
            role: "StagingDeveloper",
            now: OFFICE,
            want: t(
                true,
                14_400,
                policy("staging-request"),
                false,
                auto(14_400),
                1,
                &[],
            ),
        },
        // Production for an on-call developer: any hour, a ticket, 2 hours
        // (the role's tag), one approval.
        Case {
            user: "alice",
            role: "ProductionOperator",
            now: NIGHT,
            want: t(true, 7200, Limit::RoleTag, true, None, 1, &[]),
        },
        Case {
            user: "alice",
            role: "ProductionBreakGlass",
            now: OFFICE,
            want: t(
                true,
                7200,
                policy("production-two-hour-cap"),
                true,
                None,
                2,
                &[],
            ),
        },
        // Not the data team.
        Case {
            user: "alice",
            role: "DataAnalyst",
            now: OFFICE,
            want: None,
        },
        // SREs may request production but not staging.
        Case {
            user: "bob",
            role: "ProductionOperator",
            now: OFFICE,
            want: t(
                true,
                7200,
                Limit::RoleTag,
                true,
                None,
                1,
                &[TimeOfDay, DayOfWeek],
            ),
        },
        Case {
            user: "bob",
            role: "StagingDeveloper",
            now: OFFICE,
            want: None,
        },
        // A developer not on call: office hours only; at night the role is
        // shown with the terms of office hours, not available now.
        Case {
            user: "erin",
            role: "ProductionOperator",
            now: OFFICE,
            want: t(
                true,
                7200,
                Limit::RoleTag,
                true,
                None,
                1,
                &[TimeOfDay, DayOfWeek],
            ),
        },
        Case {
            user: "erin",
            role: "ProductionOperator",
            now: NIGHT,
            want: t(
                false,
                7200,
                Limit::RoleTag,
                true,
                None,
                1,
                &[TimeOfDay, DayOfWeek],
            ),
        },
        // The data team's role is a production role too: 2 hours (the
        // production cap), a ticket, office hours.
        Case {
            user: "dana",
            role: "DataAnalyst",
            now: OFFICE,
            want: t(
                true,
                7200,
                policy("production-two-hour-cap"),
                true,
                None,
                1,
                &[TimeOfDay, DayOfWeek],
            ),
        },
        Case {
            user: "dana",
            role: "StagingDeveloper",
            now: OFFICE,
            want: None,
        },
    ];
    let engine = engine("");
    for c in cases {
        let got = terms_of(&engine, &user(c.user), &role(c.role), c.now);
        assert_eq!(got, c.want, "{} on {} at {}", c.user, c.role, c.now);
    }
}

/// Asks `decide` exactly what `POST /requests` would.
fn request_allowed(
    engine: &PolicyEngine,
    who: &Identity,
    role: &RoleInfo,
    now: &str,
    duration: u32,
    ticket: bool,
    action: Action,
) -> bool {
    let q = |action| Query {
        principal: who,
        action,
        role,
        context: QueryContext {
            duration_seconds: duration,
            reason: "agreement",
            ticket: ticket.then_some("CHG-1042"),
            source_ip: None,
            now: at(now),
            requester: None,
            approvals_so_far: 0,
            starts_at: None,
            extension_seconds: None,
        },
    };
    engine.decide(&q(Action::Request)).allowed
        && (action == Action::Request || engine.decide(&q(action)).allowed)
}

#[test]
fn the_terms_agree_with_what_decide_answers_for_every_example_user_role_and_time() {
    let engine = engine("");
    let mut checked = 0;
    for user_name in ["alice", "bob", "carol", "dana", "erin"] {
        let who = user(user_name);
        for r in crate::aws::EXAMPLE_ROLES {
            let role = role(r.name);
            let hard = role.max_duration_seconds(43_200).unwrap();
            for now in [OFFICE, NIGHT, "2026-11-21T10:00:00Z"] {
                let ctx = format!("{user_name} on {} at {now}", r.name);
                let allowed = |d, t, a| request_allowed(&engine, &who, &role, now, d, t, a);
                match terms_of(&engine, &who, &role, now) {
                    Some(t) if t.available_now => {
                        let ticket = t.ticket_required;
                        assert!(
                            allowed(t.max_duration_seconds, ticket, Action::Request),
                            "{ctx}"
                        );
                        assert!(
                            allowed(MIN_DURATION_SECONDS, ticket, Action::Request),
                            "{ctx}"
                        );
                        if t.max_duration_seconds < hard {
                            assert!(
                                !allowed(t.max_duration_seconds + 1, ticket, Action::Request),
                                "{ctx}: longer than the terms say"
                            );
                        }
                        if ticket {
                            assert!(
                                !allowed(MIN_DURATION_SECONDS, false, Action::Request),
                                "{ctx}"
                            );
                        }
                        match &t.auto_approve {
                            Some(a) => {
                                let d = a.max_duration_seconds;
                                assert!(
                                    allowed(d, a.ticket_required, Action::AutoApprove),
                                    "{ctx}"
                                );
                                if d < t.max_duration_seconds {
                                    assert!(!allowed(d + 1, ticket, Action::AutoApprove), "{ctx}");
                                }
                            }
                            None => assert!(
                                !allowed(MIN_DURATION_SECONDS, true, Action::AutoApprove)
                                    && !allowed(MIN_DURATION_SECONDS, false, Action::AutoApprove),
                                "{ctx}: approved automatically after all"
                            ),
                        }
                        assert_eq!(
                            t.approvals_required,
                            role.approvals_required().unwrap(),
                            "{ctx}"
                        );
                    }
                    shown => {
                        for d in [MIN_DURATION_SECONDS, 3600, 7200, hard] {
                            for ticket in [false, true] {
                                assert!(
                                    !allowed(d, ticket, Action::Request),
                                    "{ctx}: allowed now at {d}s though the terms say {shown:?}"
                                );
                            }
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 4 * 3);
}

#[test]
fn mfa_is_required_when_only_a_sign_in_with_it_is_permitted() {
    let engine = only(
        r#"permit(principal in Tollgate::Group::"ops", action == Tollgate::Action::"request", resource)
           when { context.mfa && context.duration_seconds <= 3600 };"#,
    );
    let role = role("StagingDeveloper");
    let without = who("u", &["ops"], &[], false);
    let t = terms_of(&engine, &without, &role, OFFICE).unwrap();
    assert!(!t.available_now && t.mfa_required, "{t:?}");
    assert_eq!(t.max_duration_seconds, 3600);
    let with = who("u", &["ops"], &[], true);
    let t = terms_of(&engine, &with, &role, OFFICE).unwrap();
    assert!(t.available_now && t.mfa_required, "{t:?}");
    assert!(terms_of(&engine, &who("v", &["other"], &[], true), &role, OFFICE).is_none());
}

#[test]
fn a_network_rule_shows_as_depending_on_the_source_address() {
    let engine = only(
        r#"permit(principal, action == Tollgate::Action::"request", resource)
           when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
    );
    let role = role("StagingDeveloper");
    let me = who("u", &[], &[], false);
    let terms_from = |ip| {
        Discovery::new(
            &engine,
            TermsQuery {
                principal: &me,
                now: at(OFFICE),
                source_ip: ip,
                ceiling_seconds: 43_200,
            },
        )
        .terms(&role)
        .unwrap()
    };
    let inside = terms_from(Some("10.1.2.3"));
    assert!(inside.available_now);
    assert_eq!(inside.depends_on, [Factor::SourceIp]);
    let outside = terms_from(Some("203.0.113.5"));
    assert!(!outside.available_now);
    assert_eq!(outside.depends_on, [Factor::SourceIp]);
    assert_eq!(outside.max_duration_seconds, 43_200);
}

#[test]
fn a_rule_that_ends_on_a_date_shows_as_depending_on_the_date() {
    let engine = only(
        r#"permit(principal, action == Tollgate::Action::"request", resource)
           when { context.now < datetime("2026-12-01T00:00:00Z") };"#,
    );
    let me = who("u", &[], &[], false);
    let t = terms_of(&engine, &me, &role("StagingDeveloper"), OFFICE).unwrap();
    assert!(t.available_now);
    assert_eq!(t.depends_on, [Factor::Date]);
    // Once the date has passed nothing is probed ahead of it: not listed.
    assert!(
        terms_of(
            &engine,
            &me,
            &role("StagingDeveloper"),
            "2026-12-02T00:00:00Z"
        )
        .is_none()
    );
}

#[test]
fn a_ticket_that_allows_longer_grants_and_automatic_approval_is_reported() {
    let engine = only(
        r#"permit(principal, action == Tollgate::Action::"request", resource)
           when { context.duration_seconds <= 3600 || (context has ticket && context.duration_seconds <= 28800) };
           permit(principal, action == Tollgate::Action::"auto_approve", resource)
           when { context has ticket && context.ticket like "INC-*" && context.duration_seconds <= 1800 };"#,
    );
    let t = terms_of(
        &engine,
        &who("u", &[], &[], false),
        &role("StagingDeveloper"),
        OFFICE,
    )
    .unwrap();
    assert_eq!(t.max_duration_seconds, 28_800);
    assert_eq!(t.max_duration_without_ticket_seconds, Some(3600));
    assert!(!t.ticket_required);
    assert_eq!(
        t.auto_approve,
        Some(AutoApproval {
            max_duration_seconds: 1800,
            ticket_required: true
        })
    );
}

#[test]
fn durations_compared_with_anything_but_literals_are_found_by_bisection() {
    let engine = only(
        r#"permit(principal, action == Tollgate::Action::"request", resource)
           when { context.duration_seconds * 2 <= resource.max_session_seconds };"#,
    );
    let mut role = role("StagingDeveloper");
    role.max_session_seconds = 7201;
    let t = terms_of(&engine, &who("u", &[], &[], false), &role, OFFICE).unwrap();
    assert_eq!(t.max_duration_seconds, 3600);
    assert_eq!(
        t.max_duration_limit,
        Limit::Policy {
            policy: "only:0".into()
        }
    );
}

#[test]
fn a_window_of_allowed_durations_above_the_shortest_is_found() {
    let engine = only(
        r#"permit(principal, action == Tollgate::Action::"request", resource)
           when { context.duration_seconds >= 1800 && context.duration_seconds <= 3000 };"#,
    );
    let t = terms_of(
        &engine,
        &who("u", &[], &[], false),
        &role("StagingDeveloper"),
        OFFICE,
    )
    .unwrap();
    assert_eq!(t.max_duration_seconds, 3000);
}

#[test]
fn rules_on_the_reason_are_flagged_and_bad_role_tags_hide_the_role() {
    let engine = only(
        r#"permit(principal, action == Tollgate::Action::"request", resource)
           when { context.reason like "*INC-*" || context.duration_seconds <= 600 };"#,
    );
    let me = who("u", &[], &[], false);
    let t = terms_of(&engine, &me, &role("StagingDeveloper"), OFFICE).unwrap();
    assert_eq!(t.depends_on, [Factor::Reason]);
    let mut bad = role("StagingDeveloper");
    bad.tags.insert("tollgate:approvals".into(), "many".into());
    assert!(terms_of(&engine, &me, &bad, OFFICE).is_none());
}

#[test]
fn roles_of_one_shape_are_probed_once_unless_a_policy_looks_at_names() {
    let roles: Vec<RoleInfo> = (0..50)
        .map(|i| RoleInfo {
            arn: RoleArn::parse(&format!("arn:aws:iam::111122223333:role/tollgate/R{i}")).unwrap(),
            ..role("StagingDeveloper")
        })
        .collect();
    let me = user("alice");
    let probe = |engine: &PolicyEngine| {
        let mut d = Discovery::new(
            engine,
            TermsQuery {
                principal: &me,
                now: at(OFFICE),
                source_ip: None,
                ceiling_seconds: 43_200,
            },
        );
        let listed = roles.iter().filter(|r| d.terms(r).is_some()).count();
        (listed, d.shapes_probed())
    };
    assert_eq!(probe(&engine("")), (50, 1));
    let by_name = engine(
        r#"forbid(principal, action == Tollgate::Action::"request", resource) when { resource.name == "R7" };"#,
    );
    assert_eq!(probe(&by_name), (49, 50));
    let pinned = engine(
        r#"forbid(principal, action, resource == Tollgate::Role::"arn:aws:iam::111122223333:role/tollgate/R7");"#,
    );
    assert_eq!(probe(&pinned), (49, 2));
}
