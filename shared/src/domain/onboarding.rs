//! Whether an existing role can be brokered, and if not why: the rules
//! `tollgate roles check` applies to what IAM says of a role (through the
//! control role). Pure: the adapter gathers [`RoleFacts`], this judges them.
//!
//! A role is brokerable when its account is a target account, it lives
//! under the managed path, it is tagged `tollgate:managed=true`, its
//! Tollgate tags parse, and its trust policy lets the broker's account
//! `sts:AssumeRole`, `sts:SetSourceIdentity` and `sts:TagSession`, with
//! SetSourceIdentity and TagSession in statements that carry no condition
//! key AWS does not define for them (such a statement can fail every
//! AssumeRole that sets a source identity or tags).

use super::{RoleArn, RoleInfo};
use serde::Serialize;
use serde_json::Value;

/// The tag that marks a role as managed by Tollgate.
pub const MANAGED_TAG: &str = "tollgate:managed";

/// What IAM says of a role, as far as the control role could read it.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleFacts {
    /// The account is not a target account: nothing was asked of AWS.
    NotBrokered,
    /// The control role of the account could not be assumed.
    NoControlSession(String),
    /// No role with this ARN exists (or one of that name under another path).
    Missing,
    /// The control role may not read the role.
    Unreadable,
    /// The role as IAM describes it, with its trust policy.
    Found {
        /// Id, tags, maximum session duration.
        role: RoleInfo,
        /// The trust policy document.
        trust: Value,
    },
}

/// The settings the verdict depends on.
#[derive(Debug, Clone, Copy)]
pub struct OnboardingRules<'a> {
    /// The broker's own account, which the trust policy must name.
    pub broker_account: &'a str,
    /// The IAM path brokered roles live under.
    pub managed_path: &'a str,
    /// The configured ceiling on any grant, seconds.
    pub ceiling_seconds: u32,
}

/// The verdict on one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleCheck {
    /// The role.
    pub role_arn: RoleArn,
    /// Whether requests for it can work end to end.
    pub brokerable: bool,
    /// What to fix, in plain words; empty when brokerable.
    pub problems: Vec<String>,
    /// IAM's role id, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// The role's maximum session duration, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_session_seconds: Option<u32>,
    /// The longest grant the role's tags and the ceiling allow, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grant_seconds: Option<u32>,
    /// Distinct approvals a request needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals_required: Option<u8>,
    /// Principals of the broker's account the trust policy names.
    pub trusted_broker_principals: Vec<String>,
}

/// Judges `facts` about `arn` under `rules`.
pub fn assess(arn: &RoleArn, facts: &RoleFacts, rules: OnboardingRules<'_>) -> RoleCheck {
    let mut check = RoleCheck {
        role_arn: arn.clone(),
        brokerable: false,
        problems: Vec::new(),
        role_id: None,
        max_session_seconds: None,
        max_grant_seconds: None,
        approvals_required: None,
        trusted_broker_principals: Vec::new(),
    };
    if arn.path() != rules.managed_path {
        check.problems.push(format!(
            "the role's path is `{}`, not the managed path `{}`: IAM paths cannot change, so create the role under `{}`",
            arn.path(),
            rules.managed_path,
            rules.managed_path
        ));
    }
    match facts {
        RoleFacts::NotBrokered => check.problems.push(format!(
            "account `{}` is not a target account: add it to TOLLGATE_TARGET_ACCOUNTS (template parameter TargetAccountIds) and deploy the target-account stack there",
            arn.account()
        )),
        RoleFacts::NoControlSession(why) => check.problems.push(format!(
            "the broker cannot assume the control role in account `{}` ({why}): deploy the target-account stack there with the broker's ExternalId",
            arn.account()
        )),
        RoleFacts::Missing => check
            .problems
            .push("no role with this ARN exists".to_owned()),
        RoleFacts::Unreadable => check.problems.push(format!(
            "the control role may not read this role: tag it `{MANAGED_TAG}=true` under the managed path"
        )),
        RoleFacts::Found { role, trust } => judge_role(&mut check, role, trust, rules),
    }
    check.brokerable = check.problems.is_empty();
    check
}

fn judge_role(check: &mut RoleCheck, role: &RoleInfo, trust: &Value, rules: OnboardingRules<'_>) {
    check.role_id = Some(role.role_id.clone());
    check.max_session_seconds = Some(role.max_session_seconds);
    if role.tags.get(MANAGED_TAG).map(String::as_str) != Some("true") {
        check.problems.push(format!(
            "the role is not tagged `{MANAGED_TAG}=true`: the broker may neither assume it nor revoke its sessions"
        ));
    }
    match role.approvals_required() {
        Ok(n) => check.approvals_required = Some(n),
        Err(e) => check.problems.push(e.message),
    }
    match role.max_duration_seconds(rules.ceiling_seconds) {
        Ok(n) => check.max_grant_seconds = Some(n),
        Err(e) => check.problems.push(e.message),
    }
    let statements = match trust.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let mut principals = Vec::new();
    for action in ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"] {
        let granting: Vec<&Value> = statements
            .iter()
            .filter(|st| st.get("Effect").and_then(Value::as_str) == Some("Allow"))
            .filter(|st| names_action(st, action))
            .filter(|st| {
                let found = broker_principals(st, rules.broker_account);
                principals.extend(found.iter().cloned());
                !found.is_empty()
            })
            .collect();
        if granting.is_empty() {
            check.problems.push(format!(
                "the trust policy does not allow `{action}` to the broker's account `{}`",
                rules.broker_account
            ));
        }
        if action != "sts:AssumeRole" {
            for st in granting {
                for key in foreign_condition_keys(st, action) {
                    check.problems.push(format!(
                        "trust statement {} allows `{action}` but conditions on `{key}`, which `{action}` does not carry: AWS may refuse every AssumeRole with a source identity or tags; give `{action}` a statement of its own",
                        st.get("Sid").and_then(Value::as_str).map_or_else(|| "without a Sid".to_owned(), |s| format!("`{s}`"))
                    ));
                }
            }
        }
    }
    principals.sort();
    principals.dedup();
    check.trusted_broker_principals = principals;
}

/// Whether statement `st` lists `action` (exactly, or through `sts:*`/`*`).
fn names_action(st: &Value, action: &str) -> bool {
    strings(st.get("Action"))
        .iter()
        .any(|a| a == "*" || a == "sts:*" || a.eq_ignore_ascii_case(action))
}

/// The AWS principals of `st` in the broker's account.
fn broker_principals(st: &Value, broker_account: &str) -> Vec<String> {
    let aws = match st.get("Principal") {
        Some(Value::Object(p)) => strings(p.get("AWS")),
        _ => Vec::new(),
    };
    aws.into_iter()
        .filter(|p| p == broker_account || p.split(':').nth(4) == Some(broker_account))
        .collect()
}

/// Condition keys of `st` that `action` does not define: any `sts:` key but
/// the action's own (global `aws:` keys apply to every action).
fn foreign_condition_keys(st: &Value, action: &str) -> Vec<String> {
    let own: &[&str] = match action {
        "sts:SetSourceIdentity" => &["sts:sourceidentity"],
        _ => &["sts:transitivetagkeys"],
    };
    let Some(Value::Object(conditions)) = st.get("Condition") else {
        return Vec::new();
    };
    let mut keys: Vec<String> = conditions
        .values()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys())
        .filter(|k| {
            let k = k.to_ascii_lowercase();
            k.starts_with("sts:") && !own.contains(&k.as_str())
        })
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:iam::444455556666:role/tollgate/Ops";
    const RULES: OnboardingRules<'static> = OnboardingRules {
        broker_account: "123456789012",
        managed_path: "/tollgate/",
        ceiling_seconds: 43_200,
    };

    fn role(tags: &[(&str, &str)]) -> RoleInfo {
        RoleInfo {
            arn: RoleArn::parse(ARN).unwrap(),
            role_id: "AROAOPS".into(),
            max_session_seconds: 3600,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn split_trust() -> Value {
        let broker = "arn:aws:iam::123456789012:role/tollgate-CredentialsFunctionRole";
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Assume", "Effect": "Allow", "Principal": {"AWS": broker}, "Action": "sts:AssumeRole",
             "Condition": {"StringLike": {"sts:RoleSessionName": "tollgate-*"}}},
            {"Sid": "Identity", "Effect": "Allow", "Principal": {"AWS": broker}, "Action": "sts:SetSourceIdentity",
             "Condition": {"StringLike": {"sts:SourceIdentity": "?*"}}},
            {"Sid": "Tags", "Effect": "Allow", "Principal": {"AWS": broker}, "Action": "sts:TagSession",
             "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": "tollgate:*"}}},
        ]})
    }

    fn check(facts: &RoleFacts) -> RoleCheck {
        assess(&RoleArn::parse(ARN).unwrap(), facts, RULES)
    }

    #[test]
    fn a_managed_role_trusting_the_broker_in_split_statements_is_brokerable() {
        let c = check(&RoleFacts::Found {
            role: role(&[(MANAGED_TAG, "true"), ("tollgate:max-duration", "2h")]),
            trust: split_trust(),
        });
        assert!(c.brokerable, "{:?}", c.problems);
        assert_eq!(c.max_grant_seconds, Some(7200));
        assert_eq!(c.approvals_required, Some(1));
        assert_eq!(
            c.trusted_broker_principals,
            ["arn:aws:iam::123456789012:role/tollgate-CredentialsFunctionRole"]
        );
    }

    #[test]
    fn each_reason_a_role_cannot_be_brokered_is_named() {
        let one_statement = json!({"Statement": {"Effect": "Allow",
            "Principal": {"AWS": "123456789012"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
            "Condition": {"StringLike": {"sts:RoleSessionName": "tollgate-*"}}}});
        let cases: Vec<(RoleFacts, &str)> = vec![
            (RoleFacts::NotBrokered, "not a target account"),
            (
                RoleFacts::NoControlSession("AccessDenied".into()),
                "cannot assume the control role",
            ),
            (RoleFacts::Missing, "no role with this ARN"),
            (RoleFacts::Unreadable, "may not read this role"),
            (
                RoleFacts::Found {
                    role: role(&[]),
                    trust: split_trust(),
                },
                "not tagged `tollgate:managed=true`",
            ),
            (
                RoleFacts::Found {
                    role: role(&[(MANAGED_TAG, "true"), ("tollgate:approvals", "9")]),
                    trust: split_trust(),
                },
                "not a number from 1 to 5",
            ),
            (
                RoleFacts::Found {
                    role: role(&[(MANAGED_TAG, "true")]),
                    trust: json!({}),
                },
                "does not allow `sts:AssumeRole`",
            ),
            (
                RoleFacts::Found {
                    role: role(&[(MANAGED_TAG, "true")]),
                    trust: one_statement,
                },
                "conditions on `sts:RoleSessionName`",
            ),
        ];
        for (facts, want) in cases {
            let c = check(&facts);
            assert!(!c.brokerable, "{facts:?}");
            assert!(
                c.problems.iter().any(|p| p.contains(want)),
                "{want}: {:?}",
                c.problems
            );
        }
        let other_path = assess(
            &RoleArn::parse("arn:aws:iam::444455556666:role/Ops").unwrap(),
            &RoleFacts::Missing,
            RULES,
        );
        assert!(other_path.problems[0].contains("not the managed path"));
    }

    #[test]
    fn a_trust_policy_naming_another_account_does_not_count() {
        let mut trust = split_trust();
        for st in trust["Statement"].as_array_mut().unwrap() {
            st["Principal"]["AWS"] = json!("arn:aws:iam::999988887777:root");
        }
        let c = check(&RoleFacts::Found {
            role: role(&[(MANAGED_TAG, "true")]),
            trust,
        });
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
        assert!(c.trusted_broker_principals.is_empty());
    }
}
