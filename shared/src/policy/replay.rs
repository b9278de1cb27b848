//! The impact of a proposed policy set on past decisions: each recorded
//! request is put again, exactly as it was asked (the requester's identity
//! as their token showed it, the role's tags and session limit at the time,
//! the duration, reason, ticket, source address and time of day), to the set
//! in force and to the proposed set, and the requests whose outcome differs
//! are reported with the policies behind each side.

use super::decision::{Decision, PolicyRef};
use super::engine::PolicyEngine;
use super::entities::{Action, Query, QueryContext};
use crate::domain::{AccessRequest, Event, EventKind, Identity, RequestId, RoleInfo, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

/// One past create, as it was asked.
#[derive(Debug, Clone)]
pub struct Case {
    /// The request.
    pub request_id: RequestId,
    /// The requester, as their token showed when they asked.
    pub requester: Identity,
    /// The role as IAM described it then (tags and session limit).
    pub role: RoleInfo,
    /// The duration asked.
    pub duration_seconds: u32,
    /// The reason given.
    pub reason: String,
    /// The ticket given.
    pub ticket: Option<String>,
    /// Where the call came from.
    pub source_ip: Option<String>,
    /// When it was decided.
    pub at: Timestamp,
    /// The policy set version that decided it then.
    pub policy_version: String,
}

/// Why a stored request cannot be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReplayable {
    /// Its `created` event predates recorded decision inputs (the role's tags
    /// at the time are unknown, and guessing them would make the replay lie).
    NotRecorded,
    /// Its first event is not a `created` event.
    NoCreatedEvent,
}

impl Case {
    /// The case of a stored request, from its `created` event.
    pub fn from_stored(req: &AccessRequest, created: &Event) -> Result<Self, NotReplayable> {
        let EventKind::Created { decided_over, .. } = &created.kind else {
            return Err(NotReplayable::NoCreatedEvent);
        };
        let record = decided_over.as_ref().ok_or(NotReplayable::NotRecorded)?;
        Ok(Self {
            request_id: req.id,
            requester: req.requester.clone(),
            role: RoleInfo {
                arn: req.role_arn.clone(),
                role_id: String::new(),
                max_session_seconds: record.role_max_session_seconds,
                tags: record.role_tags.clone(),
            },
            duration_seconds: req.duration.seconds(),
            reason: req.reason.as_str().to_owned(),
            ticket: req.ticket.as_ref().map(|t| t.as_str().to_owned()),
            source_ip: record.source_ip.clone(),
            at: created.at,
            policy_version: record.policy_version.clone(),
        })
    }

    fn query(&self, action: Action) -> Query<'_> {
        Query {
            principal: &self.requester,
            action,
            role: &self.role,
            context: QueryContext {
                duration_seconds: self.duration_seconds,
                reason: &self.reason,
                ticket: self.ticket.as_deref(),
                source_ip: self.source_ip.as_deref(),
                now: self.at,
                requester: None,
                approvals_so_far: 0,
            },
        }
    }
}

/// What a create comes to: as `POST /requests` answers (and its dry run's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `request` is not permitted: 403.
    Denied,
    /// Permitted, waiting for approvals.
    Pending,
    /// Permitted and auto-approved: active at once.
    Active,
}

impl Outcome {
    /// `denied`, `pending` or `active`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Pending => "pending",
            Self::Active => "active",
        }
    }
}

/// One set's answer to a case: the outcome and the policies responsible.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What the create comes to.
    pub outcome: Outcome,
    /// The `request` decision.
    pub request: Decision,
    /// The `auto_approve` decision, asked only when `request` is allowed.
    pub auto_approve: Option<Decision>,
}

impl Verdict {
    /// Decides `case` as `POST /requests` does: `request`, then `auto_approve`.
    pub fn of(engine: &PolicyEngine, case: &Case) -> Self {
        let request = engine.decide(&case.query(Action::Request));
        let auto_approve = request
            .allowed
            .then(|| engine.decide(&case.query(Action::AutoApprove)));
        let outcome = match (&auto_approve, request.allowed) {
            (_, false) => Outcome::Denied,
            (Some(a), true) if a.allowed => Outcome::Active,
            _ => Outcome::Pending,
        };
        Self {
            outcome,
            request,
            auto_approve,
        }
    }

    /// The policies responsible: for a denial the forbids of `request`
    /// (none: nothing permits it); otherwise what permitted `request`, and
    /// what permitted `auto_approve` (active) or forbade it (pending).
    pub fn responsible(&self) -> Vec<&PolicyRef> {
        fn denying(d: &Decision) -> Vec<&PolicyRef> {
            d.forbidden_by.iter().chain(&d.failed_forbids).collect()
        }
        let d = &self.request;
        if !d.allowed {
            return denying(d);
        }
        let mut refs: Vec<&PolicyRef> = d.permitted_by.iter().collect();
        match &self.auto_approve {
            Some(a) if a.allowed => refs.extend(&a.permitted_by),
            Some(a) => refs.extend(denying(a)),
            None => {}
        }
        refs
    }

    /// One line for people: `pending (permitted by staging-request; not
    /// auto-approved: forbidden by short-staging)`.
    pub fn describe(&self) -> String {
        let ids = |refs: Vec<&PolicyRef>| {
            refs.iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let d = &self.request;
        let why = if !d.allowed {
            match ids(d.forbidden_by.iter().chain(&d.failed_forbids).collect()) {
                f if f.is_empty() => "no policy permits it".to_owned(),
                f => format!("forbidden by {f}"),
            }
        } else {
            let mut why = format!("permitted by {}", ids(d.permitted_by.iter().collect()));
            if let Some(a) = &self.auto_approve {
                let (verb, refs) = if a.allowed {
                    ("auto-approved by", a.permitted_by.iter().collect())
                } else {
                    (
                        "not auto-approved: forbidden by",
                        a.forbidden_by.iter().chain(&a.failed_forbids).collect(),
                    )
                };
                match ids(refs) {
                    r if r.is_empty() => why.push_str("; no policy auto-approves it"),
                    r => why.push_str(&format!("; {verb} {r}")),
                }
            }
            why
        };
        format!("{} ({why})", self.outcome.as_str())
    }

    /// `{outcome, policies, explanation}` for `--output json`.
    pub fn to_json(&self) -> Value {
        let ids: Vec<&str> = self.responsible().iter().map(|p| p.id.as_str()).collect();
        json!({ "outcome": self.outcome, "policies": ids, "explanation": self.describe() })
    }
}

/// A past request the proposed set would decide differently.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The case.
    pub case: &'a Case,
    /// The set in force.
    pub before: Verdict,
    /// The proposed set.
    pub after: Verdict,
}

/// Replays every case against both sets; returns the changed ones, in the
/// order given.
pub fn replay<'a>(
    current: &PolicyEngine,
    proposed: &PolicyEngine,
    cases: &'a [Case],
) -> Vec<Change<'a>> {
    cases
        .iter()
        .filter_map(|case| {
            let before = Verdict::of(current, case);
            let after = Verdict::of(proposed, case);
            (before.outcome != after.outcome).then_some(Change {
                case,
                before,
                after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RoleArn, UserId};
    use std::collections::BTreeMap;

    fn engine(text: &str) -> PolicyEngine {
        PolicyEngine::from_sources(&[("p.cedar", text)]).unwrap()
    }

    fn case(sub: &str, groups: &[&str], tags: &[(&str, &str)], hour_unix: i64) -> Case {
        Case {
            request_id: RequestId::generate(Timestamp::from_unix(hour_unix)),
            requester: Identity {
                sub: UserId::parse(sub).unwrap(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                tags: BTreeMap::new(),
                mfa: false,
            },
            role: RoleInfo {
                arn: RoleArn::parse("arn:aws:iam::444455556666:role/tollgate/ProductionOperator")
                    .unwrap(),
                role_id: String::new(),
                max_session_seconds: 3600,
                tags: tags
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            duration_seconds: 3600,
            reason: "deploy".into(),
            ticket: None,
            source_ip: Some("10.0.0.1".into()),
            at: Timestamp::from_unix(hour_unix),
            policy_version: "v1".into(),
        }
    }

    const BASE: &str = r#"
@id("ops-request")
permit(principal in Tollgate::Group::"ops", action == Tollgate::Action::"request", resource);
@id("staging-auto")
permit(principal, action == Tollgate::Action::"auto_approve", resource)
when { resource.hasTag("env") && resource.getTag("env") == "staging" };
"#;

    #[test]
    fn only_changed_outcomes_are_reported_with_policies_on_both_sides() {
        // 2027-01-15 is a Friday; 1_800_000_000 is 2027-01-15T08:00:00Z.
        let friday_8 = 1_800_000_000;
        let cases = vec![
            case("alice", &["ops"], &[("env", "prod")], friday_8),
            case("bob", &["dev"], &[("env", "prod")], friday_8),
            case("carol", &["ops"], &[("env", "staging")], friday_8),
            case("dan", &["ops"], &[("env", "prod")], friday_8 + 12 * 3600),
        ];
        let current = engine(BASE);
        let proposed = engine(&format!(
            "{BASE}\n@id(\"no-prod-at-night\")\nforbid(principal, action == Tollgate::Action::\"request\", resource)\n\
             when {{ resource.hasTag(\"env\") && resource.getTag(\"env\") == \"prod\" && context.hour >= 18 }};\n\
             @id(\"dev-request\")\npermit(principal in Tollgate::Group::\"dev\", action == Tollgate::Action::\"request\", resource);"
        ));
        let changes = replay(&current, &proposed, &cases);
        let got: Vec<(&str, Outcome, Outcome)> = changes
            .iter()
            .map(|c| {
                (
                    c.case.requester.sub.as_str(),
                    c.before.outcome,
                    c.after.outcome,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("bob", Outcome::Denied, Outcome::Pending),
                ("dan", Outcome::Pending, Outcome::Denied),
            ]
        );
        let ids = |v: &Verdict| {
            v.responsible()
                .iter()
                .map(|p| p.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&changes[0].after), ["dev-request"]);
        assert!(ids(&changes[0].before).is_empty());
        assert_eq!(ids(&changes[1].before), ["ops-request"]);
        assert_eq!(ids(&changes[1].after), ["no-prod-at-night"]);
        assert_eq!(
            changes[1].after.describe(),
            "denied (forbidden by no-prod-at-night)"
        );
        assert_eq!(
            changes[0].after.describe(),
            "pending (permitted by dev-request; no policy auto-approves it)"
        );
        // Carol stays active under both: staging-auto applies to her role's tags.
        assert_eq!(Verdict::of(&proposed, &cases[2]).outcome, Outcome::Active);
        assert!(replay(&current, &current, &cases).is_empty());
    }
}
