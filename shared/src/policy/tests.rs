//! Decision tests over the example policies in `infra/policies` and over
//! small purpose-made sets, plus loading errors. Every decision is also
//! checked against raw Cedar on the whole, unsliced set.

use super::*;
use crate::domain::{Identity, RoleArn, RoleInfo, Timestamp, UserId};
use cedar_policy::Authorizer;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn identity(sub: &str, groups: &[&str], tags: &[(&str, &str)], mfa: bool) -> Identity {
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

fn role(arn: &str, tags: &[(&str, &str)]) -> RoleInfo {
    RoleInfo {
        arn: RoleArn::parse(arn).unwrap(),
        role_id: "AROAEXAMPLE".into(),
        max_session_seconds: 3600,
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn at(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).unwrap()
}

/// The people of the example organisation.
fn user(key: &str) -> Identity {
    match key {
        "dev" => identity(
            "alice",
            &["developers"],
            &[("department", "platform")],
            false,
        ),
        "dev-mfa" => identity("amir", &["developers"], &[("department", "platform")], true),
        "dev-oncall" => identity("bob", &["developers", "oncall"], &[], false),
        "sre" => identity("carol", &["sre"], &[("department", "platform")], true),
        "sre-2" => identity("chen", &["sre"], &[], true),
        "sre-no-mfa" => identity("dave", &["sre"], &[], false),
        "analyst" => identity(
            "erin",
            &["data-engineers"],
            &[("department", "analytics")],
            false,
        ),
        "analyst-mfa" => identity(
            "judy",
            &["data-engineers"],
            &[("department", "analytics")],
            true,
        ),
        "payments" => identity(
            "frank",
            &["data-engineers"],
            &[("department", "payments")],
            true,
        ),
        "no-department" => identity("grace", &["data-engineers"], &[], true),
        "security" => identity("heidi", &["security"], &[], true),
        "platform" => identity("pat", &["platform"], &[], false),
        "nobody" => identity("ivan", &[], &[], true),
        other => panic!("no user {other}"),
    }
}

/// The roles of the example organisation.
fn example_role(key: &str) -> RoleInfo {
    match key {
        "staging" => role(
            "arn:aws:iam::111111111111:role/staging-deploy",
            &[("environment", "staging")],
        ),
        "prod" => role(
            "arn:aws:iam::222222222222:role/prod-admin",
            &[("environment", "production"), ("tollgate:approvals", "1")],
        ),
        "data" => role(
            "arn:aws:iam::333333333333:role/analytics-reader",
            &[
                ("data-classification", "confidential"),
                ("owner-team", "analytics"),
            ],
        ),
        "restricted" => role(
            "arn:aws:iam::333333333333:role/data/payments-pii",
            &[
                ("data-classification", "restricted"),
                ("owner-team", "payments"),
            ],
        ),
        "untagged" => role("arn:aws:iam::111111111111:role/sandbox", &[]),
        other => panic!("no role {other}"),
    }
}

/// Wednesday, in office hours.
const OFFICE: &str = "2026-11-18T10:00:00Z";

struct Case {
    name: &'static str,
    who: &'static str,
    action: Action,
    role: &'static str,
    duration: u32,
    ticket: Option<&'static str>,
    now: &'static str,
    requester: Option<&'static str>,
    allowed: bool,
    permitted: &'static [&'static str],
    forbidden: &'static [&'static str],
}

const BASE: Case = Case {
    name: "",
    who: "dev",
    action: Action::Request,
    role: "staging",
    duration: 3600,
    ticket: None,
    now: OFFICE,
    requester: None,
    allowed: false,
    permitted: &[],
    forbidden: &[],
};

fn examples() -> PolicyEngine {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/policies");
    PolicyEngine::load_dir(&dir).unwrap()
}

/// Runs a case: checks the decision, the policies named, and that raw Cedar
/// on the whole unsliced set agrees.
fn check(engine: &PolicyEngine, case: &Case, principal: &Identity, role: &RoleInfo) -> Decision {
    let requester = case.requester.map(user);
    let query = Query {
        principal,
        action: case.action,
        role,
        context: QueryContext {
            duration_seconds: case.duration,
            reason: "deploy the fix for INC-42",
            ticket: case.ticket,
            source_ip: None,
            now: at(case.now),
            requester: requester.as_ref(),
            approvals_so_far: 0,
        },
    };
    let decision = engine.decide(&query);
    let ids = |refs: &[PolicyRef]| refs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        decision.allowed,
        case.allowed,
        "{}: {}",
        case.name,
        decision.explain()
    );
    assert_eq!(
        ids(&decision.permitted_by),
        case.permitted,
        "{}: permitted_by",
        case.name
    );
    assert_eq!(
        ids(&decision.forbidden_by),
        case.forbidden,
        "{}: forbidden_by",
        case.name
    );
    assert!(
        decision.errors.is_empty(),
        "{}: {:?}",
        case.name,
        decision.errors
    );

    let (request, entities) = engine.cedar_inputs(&query).unwrap();
    let raw = Authorizer::new().is_authorized(&request, engine.policy_set(), &entities);
    assert_eq!(
        raw.decision() == cedar_policy::Decision::Allow,
        decision.allowed,
        "{}: sliced decide disagrees with raw Cedar",
        case.name
    );
    decision
}

#[test]
fn example_policies_decide_as_documented() {
    let engine = examples();
    let cases = [
        // Staging.
        Case {
            name: "developer may request a staging role for four hours",
            duration: 14_400,
            allowed: true,
            permitted: &["staging-request"],
            ..BASE
        },
        Case {
            name: "developer may not request a staging role for more than four hours",
            duration: 14_401,
            ..BASE
        },
        Case {
            name: "developer's short staging request is approved automatically",
            action: Action::AutoApprove,
            allowed: true,
            permitted: &["staging-auto-approve"],
            ..BASE
        },
        Case {
            name: "developer's five hour staging request is not approved automatically",
            action: Action::AutoApprove,
            duration: 18_000,
            ..BASE
        },
        Case {
            name: "user outside developers may not request staging",
            who: "nobody",
            ..BASE
        },
        Case {
            name: "sre with mfa may approve a staging request",
            who: "sre",
            action: Action::Approve,
            requester: Some("dev"),
            allowed: true,
            permitted: &["staging-approve"],
            ..BASE
        },
        Case {
            name: "sre staging requests are not approved automatically",
            who: "sre",
            action: Action::AutoApprove,
            ..BASE
        },
        // Production.
        Case {
            name: "developer may request production with a ticket in office hours",
            role: "prod",
            ticket: Some("CHG-1234"),
            allowed: true,
            permitted: &["production-request"],
            ..BASE
        },
        Case {
            name: "production request without a ticket is forbidden",
            role: "prod",
            forbidden: &["production-ticket-required"],
            ..BASE
        },
        Case {
            name: "production request for exactly two hours is allowed",
            role: "prod",
            ticket: Some("CHG-1234"),
            duration: 7200,
            allowed: true,
            permitted: &["production-request"],
            ..BASE
        },
        Case {
            name: "production request over two hours is forbidden even with a ticket",
            role: "prod",
            ticket: Some("CHG-1234"),
            duration: 7201,
            forbidden: &["production-two-hour-cap"],
            ..BASE
        },
        Case {
            name: "production is never approved automatically",
            role: "prod",
            action: Action::AutoApprove,
            ticket: Some("CHG-1234"),
            forbidden: &["production-never-automatic"],
            ..BASE
        },
        Case {
            name: "production request at 19:00 utc is forbidden for a developer not on call",
            role: "prod",
            ticket: Some("CHG-1234"),
            now: "2026-11-18T19:00:00Z",
            permitted: &["production-request"],
            forbidden: &["production-outside-office-hours"],
            ..BASE
        },
        Case {
            name: "production request just before 07:00 utc is forbidden for a developer not on call",
            role: "prod",
            ticket: Some("CHG-1234"),
            now: "2026-11-18T06:59:59Z",
            permitted: &["production-request"],
            forbidden: &["production-outside-office-hours"],
            ..BASE
        },
        Case {
            name: "production request at 07:00 utc is allowed",
            role: "prod",
            ticket: Some("CHG-1234"),
            now: "2026-11-18T07:00:00Z",
            allowed: true,
            permitted: &["production-request"],
            ..BASE
        },
        Case {
            name: "production request at 18:59 utc is allowed",
            role: "prod",
            ticket: Some("CHG-1234"),
            now: "2026-11-18T18:59:59Z",
            allowed: true,
            permitted: &["production-request"],
            ..BASE
        },
        Case {
            name: "on-call developer may request production at night",
            who: "dev-oncall",
            role: "prod",
            ticket: Some("INC-7"),
            now: "2026-11-18T23:30:00Z",
            allowed: true,
            permitted: &["production-request"],
            ..BASE
        },
        Case {
            name: "production request on a saturday is forbidden for a developer not on call",
            role: "prod",
            ticket: Some("CHG-1234"),
            now: "2026-11-21T10:00:00Z",
            permitted: &["production-request"],
            forbidden: &["production-weekend"],
            ..BASE
        },
        Case {
            name: "on-call developer may request production on a sunday",
            who: "dev-oncall",
            role: "prod",
            ticket: Some("INC-7"),
            now: "2026-11-22T10:00:00Z",
            allowed: true,
            permitted: &["production-request"],
            ..BASE
        },
        Case {
            name: "night and weekend forbids both apply on a saturday night",
            role: "prod",
            ticket: Some("CHG-1234"),
            now: "2026-11-21T22:00:00Z",
            permitted: &["production-request"],
            forbidden: &["production-outside-office-hours", "production-weekend"],
            ..BASE
        },
        Case {
            name: "sre with mfa may approve a production request with a ticket",
            who: "sre",
            action: Action::Approve,
            role: "prod",
            ticket: Some("CHG-1234"),
            requester: Some("dev"),
            allowed: true,
            permitted: &["production-approve"],
            ..BASE
        },
        Case {
            name: "sre without mfa may not approve production",
            who: "sre-no-mfa",
            action: Action::Approve,
            role: "prod",
            ticket: Some("CHG-1234"),
            requester: Some("dev"),
            forbidden: &["approver-mfa-required"],
            ..BASE
        },
        Case {
            name: "developer with mfa may not approve production",
            who: "dev-mfa",
            action: Action::Approve,
            role: "prod",
            ticket: Some("CHG-1234"),
            requester: Some("dev"),
            ..BASE
        },
        Case {
            name: "sre may not approve their own production request",
            who: "sre",
            action: Action::Approve,
            role: "prod",
            ticket: Some("CHG-1234"),
            requester: Some("sre"),
            permitted: &["production-approve"],
            forbidden: &["no-self-approval"],
            ..BASE
        },
        Case {
            name: "approving a production request without a ticket is forbidden",
            who: "sre",
            action: Action::Approve,
            role: "prod",
            requester: Some("dev"),
            permitted: &["production-approve"],
            forbidden: &["production-ticket-required"],
            ..BASE
        },
        // Data.
        Case {
            name: "analyst may request a data role their department owns",
            who: "analyst",
            role: "data",
            duration: 28_800,
            allowed: true,
            permitted: &["data-request"],
            ..BASE
        },
        Case {
            name: "data engineer of another department may not request the data role",
            who: "payments",
            role: "data",
            permitted: &["data-request"],
            forbidden: &["data-owner-team-only"],
            ..BASE
        },
        Case {
            name: "data engineer without a department claim may not request a data role",
            who: "no-department",
            role: "data",
            permitted: &["data-request"],
            forbidden: &["data-owner-team-only"],
            ..BASE
        },
        Case {
            name: "data role request over eight hours is not permitted",
            who: "analyst",
            role: "data",
            duration: 28_801,
            ..BASE
        },
        Case {
            name: "restricted data without a ticket is forbidden to its owners",
            who: "payments",
            role: "restricted",
            permitted: &["data-request"],
            forbidden: &["data-restricted-ticket-required"],
            ..BASE
        },
        Case {
            name: "restricted data with a ticket is allowed to its owners",
            who: "payments",
            role: "restricted",
            ticket: Some("DPO-12"),
            allowed: true,
            permitted: &["data-request"],
            ..BASE
        },
        Case {
            name: "owning team member with mfa may approve a data request",
            who: "analyst-mfa",
            action: Action::Approve,
            role: "data",
            requester: Some("analyst"),
            allowed: true,
            permitted: &["data-approve"],
            ..BASE
        },
        Case {
            name: "data engineer of another team may not approve a data request",
            who: "payments",
            action: Action::Approve,
            role: "data",
            requester: Some("analyst"),
            permitted: &["data-approve"],
            forbidden: &["data-owner-team-only"],
            ..BASE
        },
        // Oversight.
        Case {
            name: "requester may read their own request",
            action: Action::Read,
            requester: Some("dev"),
            allowed: true,
            permitted: &["requester-read-revoke-own"],
            ..BASE
        },
        Case {
            name: "requester may revoke their own grant",
            action: Action::Revoke,
            requester: Some("dev"),
            allowed: true,
            permitted: &["requester-read-revoke-own"],
            ..BASE
        },
        Case {
            name: "developer may not read someone else's request",
            who: "dev-oncall",
            action: Action::Read,
            requester: Some("dev"),
            ..BASE
        },
        Case {
            name: "sre may revoke anyone's production grant",
            who: "sre-2",
            action: Action::Revoke,
            role: "prod",
            requester: Some("dev"),
            allowed: true,
            permitted: &["sre-read-revoke-production"],
            ..BASE
        },
        Case {
            name: "sre may not revoke someone else's staging grant",
            who: "sre",
            action: Action::Revoke,
            requester: Some("dev"),
            ..BASE
        },
        Case {
            name: "security may read any data request",
            who: "security",
            action: Action::Read,
            role: "restricted",
            requester: Some("payments"),
            allowed: true,
            permitted: &["security-read-revoke-all"],
            ..BASE
        },
        Case {
            name: "an untagged role is denied to everyone by default",
            role: "untagged",
            ..BASE
        },
        Case {
            name: "an sre may not request an untagged role",
            who: "sre",
            role: "untagged",
            ticket: Some("INC-1"),
            ..BASE
        },
        // Onboarding checks.
        Case {
            name: "the platform team may check whether a role can be brokered",
            who: "platform",
            action: Action::Check,
            role: "untagged",
            allowed: true,
            permitted: &["platform-check-roles"],
            ..BASE
        },
        Case {
            name: "the security team may check roles too",
            who: "security",
            action: Action::Check,
            role: "prod",
            allowed: true,
            permitted: &["platform-check-roles"],
            ..BASE
        },
        Case {
            name: "a developer may not check roles",
            action: Action::Check,
            role: "prod",
            ..BASE
        },
        Case {
            name: "an sre may not check roles",
            who: "sre",
            action: Action::Check,
            role: "prod",
            ..BASE
        },
    ];
    for case in &cases {
        check(&engine, case, &user(case.who), &example_role(case.role));
    }
}

#[test]
fn example_policies_load_with_ids_and_descriptions() {
    let engine = examples();
    assert_eq!(engine.file_count(), 5);
    assert_eq!(engine.policy_count(), 20);
    assert!(engine.warnings().is_empty(), "{:?}", engine.warnings());
    let policies = engine.policies();
    // Load order: files sorted by name, then position in the file.
    assert_eq!(policies[0].id, "data-request");
    assert!(
        policies
            .iter()
            .all(|p| p.description.as_deref().is_some_and(|d| !d.is_empty())),
        "every example policy has a description"
    );
}

/// The purpose-made sets below share these.
fn member(groups: &[&str], tags: &[(&str, &str)], mfa: bool) -> Identity {
    identity("pat", groups, tags, mfa)
}
const PROD_ARN: &str = "arn:aws:iam::222222222222:role/prod-admin";
const OTHER_ARN: &str = "arn:aws:iam::222222222222:role/prod-readonly";

fn ask(
    engine: &PolicyEngine,
    who: &Identity,
    action: Action,
    arn: &str,
    ctx: QueryContext<'_>,
) -> Decision {
    let r = role(
        arn,
        &[("environment", "production"), ("owner-team", "payments")],
    );
    engine.decide(&Query {
        principal: who,
        action,
        role: &r,
        context: ctx,
    })
}

fn ctx() -> QueryContext<'static> {
    QueryContext {
        duration_seconds: 3600,
        reason: "rotate keys after INC-99",
        ticket: None,
        source_ip: None,
        now: at(OFFICE),
        requester: None,
        approvals_so_far: 0,
    }
}

fn engine(text: &str) -> PolicyEngine {
    PolicyEngine::from_sources(&[("test.cedar", text)]).unwrap()
}

#[test]
fn purpose_made_sets_decide_as_written() {
    struct Row {
        name: &'static str,
        policy: &'static str,
        who: Identity,
        action: Action,
        arn: &'static str,
        ctx: QueryContext<'static>,
        allowed: bool,
    }
    let admins = || member(&["admins"], &[], false);
    let request = Action::Request;
    let rows = [
        Row {
            name: "group member is permitted by group rule",
            policy: r#"permit(principal in Tollgate::Group::"admins", action == Tollgate::Action::"request", resource);"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "non member is denied by group rule",
            policy: r#"permit(principal in Tollgate::Group::"admins", action == Tollgate::Action::"request", resource);"#,
            who: member(&["admins-not"], &[], false),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "a rule for one action does not grant another",
            policy: r#"permit(principal in Tollgate::Group::"admins", action == Tollgate::Action::"request", resource);"#,
            who: admins(),
            action: Action::AutoApprove,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "a rule without an action constraint applies to every action",
            policy: r#"permit(principal in Tollgate::Group::"admins", action, resource);"#,
            who: admins(),
            action: Action::Revoke,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "a rule naming one user applies to that user only",
            policy: r#"permit(principal == Tollgate::User::"someone-else", action, resource);"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "user claim tag matches",
            policy: r#"permit(principal, action, resource) when { principal.hasTag("clearance") && principal.getTag("clearance") == "high" };"#,
            who: member(&[], &[("clearance", "high")], false),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "missing user claim tag does not match",
            policy: r#"permit(principal, action, resource) when { principal.hasTag("clearance") && principal.getTag("clearance") == "high" };"#,
            who: member(&[], &[], false),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "user claim compared with role tag matches",
            policy: r#"permit(principal, action, resource) when { principal.hasTag("department") && resource.hasTag("owner-team") && principal.getTag("department") == resource.getTag("owner-team") };"#,
            who: member(&[], &[("department", "payments")], false),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "role attributes come from the arn",
            policy: r#"permit(principal, action, resource) when { resource.account == "222222222222" && resource.name like "prod-*" && resource.path == "/" && resource.max_session_seconds == 3600 };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "a rule pinned to one role applies to it",
            policy: r#"permit(principal, action, resource == Tollgate::Role::"arn:aws:iam::222222222222:role/prod-admin");"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "a rule pinned to one role does not apply to another",
            policy: r#"permit(principal, action, resource == Tollgate::Role::"arn:aws:iam::222222222222:role/prod-admin");"#,
            who: admins(),
            action: request,
            arn: OTHER_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "a forbid pinned to one role wins over a general permit",
            policy: r#"permit(principal, action, resource);
                       forbid(principal, action in [Tollgate::Action::"request"], resource in Tollgate::Role::"arn:aws:iam::222222222222:role/prod-admin");"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "mfa in context comes from the principal",
            policy: r#"permit(principal, action, resource) when { context.mfa };"#,
            who: member(&[], &[], true),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "no mfa means the mfa rule does not match",
            policy: r#"permit(principal, action, resource) when { context.mfa };"#,
            who: member(&[], &[], false),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "weekday is the lowercase utc weekday",
            policy: r#"permit(principal, action, resource) when { context.weekday == "wednesday" && context.hour == 10 };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "weekday rule does not match on thursday",
            policy: r#"permit(principal, action, resource) when { context.weekday == "wednesday" };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: QueryContext {
                now: at("2026-11-19T10:00:00Z"),
                ..ctx()
            },
            allowed: false,
        },
        Row {
            name: "hour is taken in utc whatever the offset given",
            policy: r#"permit(principal, action, resource) when { context.hour == 10 };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: QueryContext {
                now: at("2026-11-18T12:00:00+02:00"),
                ..ctx()
            },
            allowed: true,
        },
        Row {
            name: "now is a cedar datetime",
            policy: r#"permit(principal, action, resource) when { context.now < datetime("2026-12-01") && context.now.toDate() == datetime("2026-11-18") };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "duration cap admits the cap itself",
            policy: r#"permit(principal, action, resource) when { context.duration_seconds <= 3600 };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "duration cap refuses one second more",
            policy: r#"permit(principal, action, resource) when { context.duration_seconds <= 3600 };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: QueryContext {
                duration_seconds: 3601,
                ..ctx()
            },
            allowed: false,
        },
        Row {
            name: "ticket rule matches when a ticket is given",
            policy: r#"permit(principal, action, resource) when { context has ticket && context.ticket like "CHG-*" };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: QueryContext {
                ticket: Some("CHG-77"),
                ..ctx()
            },
            allowed: true,
        },
        Row {
            name: "ticket rule does not match without a ticket",
            policy: r#"permit(principal, action, resource) when { context has ticket };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "reason is visible to policies",
            policy: r#"permit(principal, action, resource) when { context.reason like "*INC-*" };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "source ip inside the corporate range matches",
            policy: r#"permit(principal, action, resource) when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: QueryContext {
                source_ip: Some("10.1.2.3"),
                ..ctx()
            },
            allowed: true,
        },
        Row {
            name: "source ip outside the corporate range does not match",
            policy: r#"permit(principal, action, resource) when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: QueryContext {
                source_ip: Some("192.168.1.1"),
                ..ctx()
            },
            allowed: false,
        },
        Row {
            name: "unknown source ip does not match a network rule",
            policy: r#"permit(principal, action, resource) when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "approvals so far are visible to policies",
            policy: r#"permit(principal, action == Tollgate::Action::"approve", resource) when { context.approvals_so_far == 1 };"#,
            who: admins(),
            action: Action::Approve,
            arn: PROD_ARN,
            ctx: QueryContext {
                approvals_so_far: 1,
                ..ctx()
            },
            allowed: true,
        },
        Row {
            name: "forbid wins over permit",
            policy: r#"permit(principal, action, resource);
                       forbid(principal, action, resource) when { context.hour >= 9 } unless { principal in Tollgate::Group::"oncall" };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
        Row {
            name: "forbid with unless spares the excepted group",
            policy: r#"permit(principal, action, resource);
                       forbid(principal, action, resource) when { context.hour >= 9 } unless { principal in Tollgate::Group::"oncall" };"#,
            who: member(&["oncall"], &[], false),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: true,
        },
        Row {
            name: "a forbid alone allows nothing",
            policy: r#"forbid(principal, action, resource) when { context.hour == 3 };"#,
            who: admins(),
            action: request,
            arn: PROD_ARN,
            ctx: ctx(),
            allowed: false,
        },
    ];
    for row in rows {
        let e = engine(row.policy);
        let d = ask(&e, &row.who, row.action, row.arn, row.ctx.clone());
        assert_eq!(d.allowed, row.allowed, "{}: {}", row.name, d.explain());
        assert!(d.errors.is_empty(), "{}: {:?}", row.name, d.errors);

        // Slicing never changes the outcome: raw Cedar on the whole set agrees.
        let r = role(
            row.arn,
            &[("environment", "production"), ("owner-team", "payments")],
        );
        let q = Query {
            principal: &row.who,
            action: row.action,
            role: &r,
            context: row.ctx,
        };
        let (request, entities) = e.cedar_inputs(&q).unwrap();
        let raw = Authorizer::new().is_authorized(&request, e.policy_set(), &entities);
        assert_eq!(
            raw.decision() == cedar_policy::Decision::Allow,
            row.allowed,
            "{}: raw Cedar disagrees",
            row.name
        );
    }
}

#[test]
fn requester_is_an_entity_with_its_groups_and_tags() {
    let e = engine(
        r#"permit(principal, action == Tollgate::Action::"approve", resource)
           when { context has requester && context.requester in Tollgate::Group::"contractors"
                  && context.requester.hasTag("department") && context.requester.getTag("department") == "payments" };"#,
    );
    let approver = member(&["sre"], &[], true);
    let contractor = identity(
        "zoe",
        &["contractors"],
        &[("department", "payments")],
        false,
    );
    let employee = identity("yan", &["staff"], &[("department", "payments")], false);
    let decide = |requester: &Identity| {
        ask(
            &e,
            &approver,
            Action::Approve,
            PROD_ARN,
            QueryContext {
                requester: Some(requester),
                ..ctx()
            },
        )
    };
    assert!(decide(&contractor).allowed);
    assert!(!decide(&employee).allowed);
}

#[test]
fn principal_who_is_also_the_requester_is_one_entity() {
    let e = engine(
        r#"permit(principal, action == Tollgate::Action::"read", resource) when { context has requester && context.requester == principal };"#,
    );
    let me = member(&["developers"], &[], false);
    let d = ask(
        &e,
        &me,
        Action::Read,
        PROD_ARN,
        QueryContext {
            requester: Some(&me),
            ..ctx()
        },
    );
    assert!(d.allowed, "{}", d.explain());
    assert!(d.errors.is_empty());
}

#[test]
fn source_ip_that_is_not_an_address_is_denied_with_a_reason() {
    let e = engine(r#"permit(principal, action, resource);"#);
    let who = member(&[], &[], false);
    for bad in ["not-an-ip", "10.0.0.0/8", "10.0.0.256", ""] {
        let d = ask(
            &e,
            &who,
            Action::Request,
            PROD_ARN,
            QueryContext {
                source_ip: Some(bad),
                ..ctx()
            },
        );
        assert!(!d.allowed, "{bad}");
        assert!(d.permitted_by.is_empty());
        assert_eq!(d.errors.len(), 1, "{bad}");
        assert!(d.errors[0].contains("source_ip"), "{}", d.errors[0]);
    }
    let d = ask(
        &e,
        &who,
        Action::Request,
        PROD_ARN,
        QueryContext {
            source_ip: Some("2001:db8::1"),
            ..ctx()
        },
    );
    assert!(d.allowed, "ipv6 addresses are addresses too");
}

#[test]
fn evaluation_error_means_the_policy_did_not_apply_and_is_reported() {
    let e = PolicyEngine::from_sources(&[(
        "overflow.cedar",
        r#"@id("overflows")
           permit(principal, action, resource) when { context.duration_seconds * 4611686018427387904 > 0 };
           @id("plain")
           permit(principal in Tollgate::Group::"admins", action, resource);"#,
    )])
    .unwrap();
    let outsider = member(&[], &[], false);
    let d = ask(&e, &outsider, Action::Request, PROD_ARN, ctx());
    assert!(!d.allowed);
    assert_eq!(d.errors.len(), 1);
    assert!(d.errors[0].contains("overflows"), "{}", d.errors[0]);
    assert!(d.explain().contains("overflows"));

    let admin = member(&["admins"], &[], false);
    let d = ask(&e, &admin, Action::Request, PROD_ARN, ctx());
    assert!(d.allowed, "{}", d.explain());
    assert_eq!(d.permitted_by.len(), 1);
    assert_eq!(d.errors.len(), 1, "the failing policy is still reported");
}

#[test]
fn a_forbid_that_fails_to_evaluate_denies_and_explain_says_so() {
    let e = PolicyEngine::from_sources(&[(
        "fail-closed.cedar",
        r#"@id("admins")
           permit(principal in Tollgate::Group::"admins", action, resource);
           @id("long-grants-forbidden")
           @description("no grant over an hour, counted in quarter-hours")
           forbid(principal, action, resource) when { context.duration_seconds * 4611686018427387904 > 3600 };"#,
    )])
    .unwrap();
    let admin = member(&["admins"], &[], false);
    let d = ask(&e, &admin, Action::Request, PROD_ARN, ctx());
    let ids = |refs: &[PolicyRef]| refs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert!(!d.allowed, "{}", d.explain());
    assert_eq!(ids(&d.permitted_by), ["admins"]);
    assert_eq!(ids(&d.failed_forbids), ["long-grants-forbidden"]);
    let text = d.explain();
    assert!(text.starts_with("DENY"), "{text}");
    assert!(
        text.contains("long-grants-forbidden") && text.contains("failed to evaluate"),
        "{text}"
    );
    assert_eq!(
        d.to_json()["failed_forbids"][0]["id"],
        "long-grants-forbidden"
    );
}

#[test]
fn empty_set_loads_and_denies_everything() {
    let e = PolicyEngine::from_sources(&[]).unwrap();
    assert_eq!(e.policy_count(), 0);
    assert!(
        e.warnings()
            .iter()
            .any(|w| w.contains("every request will be denied"))
    );
    let who = member(&["admins"], &[], true);
    for action in Action::ALL {
        let d = ask(&e, &who, action, PROD_ARN, ctx());
        assert!(!d.allowed);
        assert!(d.explain().contains("default deny"), "{}", d.explain());
    }
}

#[test]
fn empty_directory_loads_and_denies_everything() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "not a policy").unwrap();
    let e = PolicyEngine::load_dir(dir.path()).unwrap();
    assert_eq!((e.policy_count(), e.file_count()), (0, 0));
    let d = ask(
        &e,
        &member(&["admins"], &[], true),
        Action::Request,
        PROD_ARN,
        ctx(),
    );
    assert!(!d.allowed);
}

#[test]
fn missing_directory_is_an_io_error() {
    let err =
        PolicyEngine::load_dir(std::path::Path::new("/nonexistent/tollgate-policies")).unwrap_err();
    assert_eq!(err.code(), "policy_unreadable");
    assert!(
        err.to_string().contains("/nonexistent/tollgate-policies"),
        "{err}"
    );
}

#[test]
fn load_dir_reads_cedar_files_sorted_and_not_recursively() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.cedar"),
        "permit(principal, action == Tollgate::Action::\"read\", resource);",
    )
    .unwrap();
    std::fs::write(dir.path().join("a.cedar"), "forbid(principal, action == Tollgate::Action::\"read\", resource) when { context.hour == 3 };\npermit(principal, action == Tollgate::Action::\"revoke\", resource);").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "permit(").unwrap();
    std::fs::create_dir(dir.path().join("old.cedar")).unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/c.cedar"), "permit(").unwrap();
    let e = PolicyEngine::load_dir(dir.path()).unwrap();
    let ids: Vec<String> = e.policies().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["a:0", "a:1", "b:0"]);
}

fn problems(sources: &[(&str, &str)]) -> Vec<PolicyProblem> {
    let err = PolicyEngine::from_sources(sources).unwrap_err();
    assert_eq!(err.code(), "policy_invalid");
    err.problems().to_vec()
}

#[test]
fn syntax_error_is_located_by_file_line_and_column() {
    let p = problems(&[(
        "infra/policies/broken.cedar",
        "// comment\npermit(principal, action, resource);\npermit(principal action, resource);\n",
    )]);
    assert!(!p.is_empty());
    assert_eq!(p[0].file, "infra/policies/broken.cedar");
    assert_eq!(p[0].line, 3, "{p:?}");
    let rendered = p[0].to_string();
    assert!(
        rendered.starts_with("infra/policies/broken.cedar:3:"),
        "{rendered}"
    );
}

#[test]
fn unknown_attribute_is_refused_with_its_location() {
    let p = problems(&[(
        "roles.cedar",
        "@id(\"owner\")\npermit(principal, action, resource)\nwhen {\n  resource.owner == \"payments\"\n};\n",
    )]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].file.as_str(), p[0].line), ("roles.cedar", 4), "{p:?}");
    assert_eq!(p[0].column, 3, "{p:?}");
    assert!(p[0].message.contains("owner"), "{}", p[0].message);
}

#[test]
fn type_error_is_refused_in_strict_mode() {
    let p = problems(&[(
        "types.cedar",
        "permit(principal, action, resource) when { context.mfa == 1 };\npermit(principal, action, resource) when { context.hour > \"seven\" };",
    )]);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].line, 1);
    assert_eq!(p[1].line, 2);
}

#[test]
fn unguarded_tag_access_and_unknown_types_are_refused() {
    let p = problems(&[(
        "tags.cedar",
        "permit(principal, action, resource) when { principal.getTag(\"department\") == \"x\" };\npermit(principal in Tollgate::Team::\"a\", action, resource);\npermit(principal, action == Tollgate::Action::\"delete\", resource);",
    )]);
    let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
    assert_eq!(lines, [1, 2, 3], "{p:?}");
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let p = problems(&[
        (
            "a.cedar",
            "@id(\"same\")\npermit(principal, action, resource);",
        ),
        (
            "b.cedar",
            "\n\n@id(\"same\")\nforbid(principal, action, resource);",
        ),
    ]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].file.as_str(), p[0].line, p[0].column),
        ("b.cedar", 3, 1)
    );
    assert!(
        p[0].message.contains("duplicate policy id `same`"),
        "{}",
        p[0].message
    );
    assert!(p[0].message.contains("a.cedar:1:1"), "{}", p[0].message);
}

#[test]
fn explicit_id_may_not_take_a_generated_one() {
    let p = problems(&[
        ("a.cedar", "permit(principal, action, resource);"),
        (
            "b.cedar",
            "@id(\"a:0\")\npermit(principal, action, resource);",
        ),
    ]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].file, "b.cedar");
}

#[test]
fn blank_id_is_refused() {
    let p = problems(&[(
        "a.cedar",
        "@id(\" \")\npermit(principal, action, resource);",
    )]);
    assert!(p[0].message.contains("@id"), "{}", p[0].message);
}

#[test]
fn templates_are_refused() {
    let p = problems(&[(
        "t.cedar",
        "permit(principal, action, resource);\n\npermit(principal == ?principal, action, resource);",
    )]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].line, 3);
    assert!(p[0].message.contains("templates"), "{}", p[0].message);
}

#[test]
fn every_problem_in_every_file_is_listed_at_once() {
    let err = PolicyEngine::from_sources(&[
        (
            "a.cedar",
            "permit(principal, action, resource) when { resource.colour == \"red\" };",
        ),
        ("b.cedar", "permit(principal, action resource);"),
        ("c.cedar", "permit(principal, action, resource);"),
        (
            "d.cedar",
            "forbid(principal, action, resource) when { context.ticket == \"x\" };",
        ),
    ])
    .unwrap_err();
    let files: Vec<&str> = err.problems().iter().map(|p| p.file.as_str()).collect();
    assert_eq!(files, ["a.cedar", "b.cedar", "d.cedar"], "{err}");
    let text = err.to_string();
    assert!(text.starts_with("3 problems in the policies:"), "{text}");
    assert!(text.contains("\n  a.cedar:1:"), "{text}");
}

#[test]
fn bidirectional_control_characters_are_refused() {
    let p = problems(&[(
        "bidi.cedar",
        "permit(principal, action, resource) when { context.reason == \"ok\u{202E}\" };",
    )]);
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn policy_that_can_never_apply_loads_with_a_warning() {
    let e = engine("permit(principal, action, resource) when { 1 == 2 && context.mfa };");
    assert_eq!(e.policy_count(), 1);
    let w = e.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("test.cedar:1:"), "{w:?}");
}

#[test]
fn explain_names_forbids_permits_and_descriptions() {
    let e = PolicyEngine::from_sources(&[(
        "p.cedar",
        r#"@id("let-in") @description("Admins may do anything")
           permit(principal in Tollgate::Group::"admins", action, resource);
           @id("night") @description("Nothing at night")
           forbid(principal, action, resource) when { context.hour >= 19 };"#,
    )])
    .unwrap();
    let admin = member(&["admins"], &[], false);
    let d = ask(
        &e,
        &admin,
        Action::Request,
        PROD_ARN,
        QueryContext {
            now: at("2026-11-18T21:00:00Z"),
            ..ctx()
        },
    );
    assert!(!d.allowed);
    let text = d.explain();
    assert!(
        text.starts_with(&format!("DENY: `request` on {PROD_ARN} for pat\n")),
        "{text}"
    );
    assert!(
        text.contains("forbidden by:\n  - night: Nothing at night\n"),
        "{text}"
    );
    assert!(text.contains("overridden"), "{text}");
    assert!(
        text.contains("  - let-in: Admins may do anything\n"),
        "{text}"
    );
    assert!(!text.contains("default deny"), "{text}");

    let json = d.to_json();
    assert_eq!(json["decision"], "deny");
    assert_eq!(json["forbidden_by"][0]["id"], "night");
    assert_eq!(json["forbidden_by"][0]["description"], "Nothing at night");
    assert_eq!(json["permitted_by"][0]["id"], "let-in");
    assert_eq!(json["action"], "request");
    assert_eq!(json["role"], PROD_ARN);

    assert_eq!(serde_json::to_value(&d).unwrap(), json);

    let d = ask(&e, &admin, Action::Request, PROD_ARN, ctx());
    assert!(d.allowed);
    assert!(d.explain().starts_with("ALLOW: "), "{}", d.explain());
    assert_eq!(d.to_json()["decision"], "allow");
}

#[test]
fn explain_hints_at_default_deny_when_nothing_permits() {
    let e = engine(r#"permit(principal in Tollgate::Group::"admins", action, resource);"#);
    let d = ask(
        &e,
        &member(&[], &[], false),
        Action::AutoApprove,
        PROD_ARN,
        ctx(),
    );
    assert_eq!(
        d.explain(),
        format!(
            "DENY: `auto_approve` on {PROD_ARN} for pat\nno policy permits `auto_approve` on {PROD_ARN} for pat: default deny\n"
        )
    );
    assert_eq!(d.to_json()["permitted_by"], serde_json::json!([]));
}

#[test]
fn built_requests_and_entities_conform_to_the_schema() {
    let e = examples();
    let requester = user("dev");
    for (who, role_key) in [("sre", "prod"), ("analyst", "data"), ("nobody", "untagged")] {
        let principal = user(who);
        let r = example_role(role_key);
        for action in Action::ALL {
            let q = Query {
                principal: &principal,
                action,
                role: &r,
                context: QueryContext {
                    ticket: Some("CHG-1"),
                    source_ip: Some("10.0.0.1"),
                    requester: Some(&requester),
                    ..ctx()
                },
            };
            e.cedar_inputs_checked(&q).unwrap();
        }
    }
}

#[test]
fn actions_parse_from_their_cedar_names() {
    for action in Action::ALL {
        assert_eq!(action.as_str().parse::<Action>().unwrap(), action);
        assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
    }
    let err = "delete".parse::<Action>().unwrap_err();
    assert!(err.message.contains("`delete`"), "{}", err.message);
}

#[test]
fn the_schema_parses_and_declares_every_action() {
    let schema = super::schema::parse_schema().unwrap();
    let actions: Vec<String> = schema
        .actions()
        .map(|a| a.id().unescaped().to_owned())
        .collect();
    for action in Action::ALL {
        assert!(actions.iter().any(|a| a == action.as_str()), "{action}");
    }
}

#[test]
fn clones_share_one_loaded_set() {
    let a = examples();
    let b = a.clone();
    assert!(std::ptr::eq(a.policy_set(), b.policy_set()));
    assert_eq!(
        format!("{a:?}"),
        "PolicyEngine { policies: 20, files: 5, .. }"
    );
}

#[test]
fn consecutive_decisions_see_their_own_time_and_address() {
    let e = engine(
        r#"permit(principal, action, resource) when { context.now == datetime("2026-11-18T10:00:00Z") };
           permit(principal, action, resource) when { context has source_ip && context.source_ip == ip("10.0.0.1") };"#,
    );
    let who = member(&[], &[], false);
    let at_ten = QueryContext {
        now: at("2026-11-18T10:00:00Z"),
        ..ctx()
    };
    let a_second_later = QueryContext {
        now: at("2026-11-18T10:00:01Z"),
        ..ctx()
    };
    let from = |ip| QueryContext {
        source_ip: Some(ip),
        ..a_second_later.clone()
    };
    let outcomes: Vec<bool> = [
        at_ten.clone(),
        a_second_later.clone(),
        at_ten,
        from("10.0.0.1"),
        from("10.0.0.2"),
        from("10.0.0.1"),
    ]
    .into_iter()
    .map(|c| ask(&e, &who, Action::Request, PROD_ARN, c).allowed)
    .collect();
    assert_eq!(outcomes, [true, false, true, true, false, true]);
}

#[test]
fn policies_pinned_to_users_and_groups_apply_to_them_only() {
    let e = PolicyEngine::from_sources(&[(
        "pinned.cedar",
        r#"@id("pat-only") permit(principal == Tollgate::User::"pat", action == Tollgate::Action::"read", resource);
           @id("pat-in") permit(principal in Tollgate::User::"pat", action == Tollgate::Action::"revoke", resource);
           @id("admins") permit(principal is Tollgate::User in Tollgate::Group::"admins", action == Tollgate::Action::"request", resource);
           @id("ops-forbid") forbid(principal in Tollgate::Group::"ops", action, resource == Tollgate::Role::"arn:aws:iam::222222222222:role/prod-admin");
           @id("typed") permit(principal is Tollgate::User, action == Tollgate::Action::"approve", resource) when { principal in Tollgate::Group::"admins" };"#,
    )])
    .unwrap();
    let pat = member(&["admins", "admins"], &[], true);
    let sam = identity("sam", &["admins", "ops"], &[], true);
    let cases = [
        (&pat, Action::Read, PROD_ARN, true),
        (&sam, Action::Read, PROD_ARN, false),
        (&pat, Action::Revoke, PROD_ARN, true),
        (&sam, Action::Revoke, PROD_ARN, false),
        (&pat, Action::Request, PROD_ARN, true),
        (&sam, Action::Request, PROD_ARN, false),
        (&sam, Action::Request, OTHER_ARN, true),
        (&pat, Action::Approve, PROD_ARN, true),
        (&sam, Action::Approve, PROD_ARN, false),
    ];
    for (who, action, arn, allowed) in cases {
        let d = ask(&e, who, action, arn, ctx());
        assert_eq!(d.allowed, allowed, "{}", d.explain());
        let r = role(
            arn,
            &[("environment", "production"), ("owner-team", "payments")],
        );
        let q = Query {
            principal: who,
            action,
            role: &r,
            context: ctx(),
        };
        let (request, entities) = e.cedar_inputs(&q).unwrap();
        let raw = Authorizer::new().is_authorized(&request, e.policy_set(), &entities);
        assert_eq!(
            raw.decision() == cedar_policy::Decision::Allow,
            allowed,
            "raw Cedar disagrees"
        );
    }
    // A group listed twice is still one permit.
    let d = ask(&e, &pat, Action::Request, PROD_ARN, ctx());
    assert_eq!(d.permitted_by.len(), 1, "{:?}", d.permitted_by);
}

#[test]
fn engine_and_decision_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<PolicyEngine>();
    shareable::<Decision>();
    let engine = examples();
    let handle = std::thread::spawn(move || {
        ask(&engine, &user("sre"), Action::Read, PROD_ARN, ctx()).allowed
    });
    assert!(handle.join().unwrap(), "sres read production requests");
}

#[test]
fn a_policy_that_lists_an_action_twice_loads_and_applies_once() {
    let e = engine(
        r#"@id("twice") permit (principal, action in [Tollgate::Action::"read", Tollgate::Action::"approve", Tollgate::Action::"read"], resource);"#,
    );
    let d = ask(&e, &member(&[], &[], false), Action::Read, PROD_ARN, ctx());
    assert!(d.allowed);
    assert_eq!(d.permitted_by.len(), 1);
    assert!(
        !ask(
            &e,
            &member(&[], &[], false),
            Action::Request,
            PROD_ARN,
            ctx()
        )
        .allowed
    );
}
