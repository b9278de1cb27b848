//! The longest grant a request may have, and what sets it: the broker's
//! ceiling, the role's `tollgate:max-duration` tag, or a policy.
//!
//! Policies are probed, not parsed: the same query is decided again with
//! only `duration_seconds` changed, bisecting to the second between an
//! allowed duration (the one asked, else the shortest grant) and the hard
//! limit: about 20 decisions, each in memory. Where the allowed durations
//! are one range from the shortest up (every "at most N" rule), that is the
//! exact longest grant; with stranger sets it is still a duration the
//! policies allow, right below one they do not. The probes are hypothetical
//! questions, not decisions about a request, so they are not logged.

use super::{Decision, PolicyEngine, Query};
use crate::domain::{MIN_DURATION_SECONDS, RoleInfo, ValidationError, format_seconds};
use serde_json::{Value, json};

/// What sets the longest grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitSource {
    /// The broker's ceiling on every grant (`TOLLGATE_MAX_DURATION`).
    Ceiling,
    /// The role's `tollgate:max-duration` tag.
    RoleTag,
    /// A policy: the one that forbids just above the limit, or that stops
    /// permitting there.
    Policy(String),
}

/// The longest grant and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationLimit {
    /// The longest grant, seconds.
    pub seconds: u32,
    /// What sets it.
    pub source: LimitSource,
}

impl DurationLimit {
    /// The hard limit in code: the lesser of the role's tag and the ceiling.
    pub fn hard(role: &RoleInfo, ceiling: u32) -> Result<Self, ValidationError> {
        let seconds = role.max_duration_seconds(ceiling)?;
        let source = if seconds < ceiling {
            LimitSource::RoleTag
        } else {
            LimitSource::Ceiling
        };
        Ok(Self { seconds, source })
    }

    /// `2h allowed by policy `x``, for messages.
    pub fn describe(&self) -> String {
        let by = match &self.source {
            LimitSource::Ceiling => "the broker's ceiling (`TOLLGATE_MAX_DURATION`)".to_owned(),
            LimitSource::RoleTag => format!("the role's `{}` tag", RoleInfo::MAX_DURATION_TAG),
            LimitSource::Policy(id) => format!("policy `{id}`"),
        };
        format!(
            "{} allowed by {by}",
            format_seconds(u64::from(self.seconds))
        )
    }

    /// The refusal for a duration above this limit.
    pub fn exceeded(&self, asked: u64) -> ValidationError {
        ValidationError::new(
            "duration_seconds",
            format!(
                "duration `{}` exceeds the {}",
                format_seconds(asked),
                self.describe()
            ),
        )
    }

    /// `{"seconds", "source": "ceiling"|"role_tag"|"policy", "policy"?}`.
    pub fn to_json(&self) -> Value {
        match &self.source {
            LimitSource::Ceiling => json!({"seconds": self.seconds, "source": "ceiling"}),
            LimitSource::RoleTag => json!({
                "seconds": self.seconds,
                "source": "role_tag",
                "tag": RoleInfo::MAX_DURATION_TAG,
            }),
            LimitSource::Policy(id) => {
                json!({"seconds": self.seconds, "source": "policy", "policy": id})
            }
        }
    }
}

/// The longest duration up to `hard` at which the policies allow `q` with
/// everything else unchanged, and what stops it there; `None` when they
/// allow neither the duration `q` asks nor the shortest grant.
pub fn longest_allowed(
    engine: &PolicyEngine,
    q: &Query<'_>,
    hard: &DurationLimit,
) -> Option<DurationLimit> {
    let decide = |seconds: u32| {
        let mut probe = q.clone();
        probe.context.duration_seconds = seconds;
        engine.decide(&probe)
    };
    if hard.seconds < MIN_DURATION_SECONDS {
        return None;
    }
    if decide(hard.seconds).allowed {
        return Some(hard.clone());
    }
    let asked = q.context.duration_seconds;
    let mut lo = if (MIN_DURATION_SECONDS..hard.seconds).contains(&asked) && decide(asked).allowed {
        asked
    } else if decide(MIN_DURATION_SECONDS).allowed {
        MIN_DURATION_SECONDS
    } else {
        return None;
    };
    // INVARIANT: `lo` is allowed and `hi` is not.
    let mut hi = hard.seconds;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if decide(mid).allowed {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let source = LimitSource::Policy(boundary_policy(&decide(lo), &decide(hi)));
    Some(DurationLimit {
        seconds: lo,
        source,
    })
}

/// The policy that makes the difference between `below` (allowed) and
/// `above` (denied): a forbid that applies only above, else a permit that
/// applies only below.
fn boundary_policy(below: &Decision, above: &Decision) -> String {
    let forbids_only_above = above
        .forbidden_by
        .iter()
        .find(|p| !below.forbidden_by.contains(p));
    let permits_only_below = below
        .permitted_by
        .iter()
        .find(|p| !above.permitted_by.contains(p));
    forbids_only_above
        .or(permits_only_below)
        .or_else(|| above.forbidden_by.first())
        .or_else(|| below.permitted_by.first())
        .map_or_else(|| "(unnamed)".to_owned(), |p| p.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Identity, RoleArn, Timestamp, UserId};
    use crate::policy::{Action, QueryContext};
    use std::collections::BTreeMap;

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
        sources.push(("extra.cedar".into(), extra.into()));
        let borrowed: Vec<(&str, &str)> = sources
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        PolicyEngine::from_sources(&borrowed).unwrap()
    }

    fn role(name: &str, tags: &[(&str, &str)]) -> RoleInfo {
        RoleInfo {
            arn: RoleArn::parse(&format!("arn:aws:iam::123456789012:role/tollgate/{name}"))
                .unwrap(),
            role_id: "AROAEXAMPLE".into(),
            max_session_seconds: 3600,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn alice() -> Identity {
        Identity {
            sub: UserId::parse("alice").unwrap(),
            groups: vec!["developers".into(), "oncall".into()],
            tags: BTreeMap::new(),
            mfa: true,
        }
    }

    fn query<'a>(who: &'a Identity, role: &'a RoleInfo, ticket: Option<&'a str>) -> Query<'a> {
        Query {
            principal: who,
            action: Action::Request,
            role,
            context: QueryContext {
                duration_seconds: 3600,
                reason: "why",
                ticket,
                source_ip: None,
                // A Wednesday, 10:00 UTC.
                now: Timestamp::parse_rfc3339("2026-11-18T10:00:00Z").unwrap(),
                requester: None,
                approvals_so_far: 0,
            },
        }
    }

    #[test]
    fn the_hard_limit_names_the_role_tag_only_when_it_is_below_the_ceiling() {
        let tagged = role("P", &[("tollgate:max-duration", "2h")]);
        assert_eq!(
            DurationLimit::hard(&tagged, 43_200).unwrap(),
            DurationLimit {
                seconds: 7200,
                source: LimitSource::RoleTag
            }
        );
        assert_eq!(
            DurationLimit::hard(&tagged, 3600).unwrap().source,
            LimitSource::Ceiling
        );
        assert_eq!(
            DurationLimit::hard(&role("S", &[]), 43_200)
                .unwrap()
                .describe(),
            "12h allowed by the broker's ceiling (`TOLLGATE_MAX_DURATION`)"
        );
        assert_eq!(
            DurationLimit::hard(&tagged, 43_200)
                .unwrap()
                .exceeded(10_800)
                .message,
            "duration `3h` exceeds the 2h allowed by the role's `tollgate:max-duration` tag"
        );
    }

    #[test]
    fn a_policy_cap_below_the_hard_limit_is_found_and_named() {
        let engine = engine("");
        let who = alice();
        // Production without a duration tag: the ceiling says 12h, the
        // policies 2h.
        let prod = role("ProductionBreakGlass", &[("environment", "production")]);
        let hard = DurationLimit::hard(&prod, 43_200).unwrap();
        let limit = longest_allowed(&engine, &query(&who, &prod, Some("CHG-1")), &hard).unwrap();
        assert_eq!(limit.seconds, 7200);
        assert_eq!(
            limit.source,
            LimitSource::Policy("production-two-hour-cap".into())
        );
        // Staging: no forbid, the permit stops at 4h.
        let staging = role("StagingDeveloper", &[("environment", "staging")]);
        let limit = longest_allowed(&engine, &query(&who, &staging, None), &hard).unwrap();
        assert_eq!(limit.seconds, 14_400);
        assert_eq!(limit.source, LimitSource::Policy("staging-request".into()));
    }

    #[test]
    fn the_hard_limit_stands_when_policies_allow_it_and_none_when_they_allow_nothing() {
        let engine = engine("");
        let who = alice();
        let prod = role(
            "ProductionOperator",
            &[
                ("environment", "production"),
                ("tollgate:max-duration", "1h"),
            ],
        );
        let hard = DurationLimit::hard(&prod, 43_200).unwrap();
        assert_eq!(
            longest_allowed(&engine, &query(&who, &prod, Some("CHG-1")), &hard),
            Some(hard.clone())
        );
        // No ticket: production is denied at any duration.
        assert_eq!(
            longest_allowed(&engine, &query(&who, &prod, None), &hard),
            None
        );
    }

    #[test]
    fn limits_off_the_grid_are_found_to_the_second() {
        let engine = engine(
            r#"@id("staging-fifty-minutes")
forbid (principal, action == Tollgate::Action::"request", resource)
when { resource.hasTag("environment") && resource.getTag("environment") == "staging" && context.duration_seconds > 3000 };
@id("staging-at-least-half-an-hour")
forbid (principal, action == Tollgate::Action::"request", resource)
when { resource.hasTag("environment") && resource.getTag("environment") == "staging" && context.duration_seconds < 1800 };"#,
        );
        let who = alice();
        let staging = role("StagingDeveloper", &[("environment", "staging")]);
        let hard = DurationLimit::hard(&staging, 43_200).unwrap();
        // The shortest grant is forbidden too: the search starts from the
        // duration asked, which is allowed.
        let mut q = query(&who, &staging, None);
        q.context.duration_seconds = 2400;
        let limit = longest_allowed(&engine, &q, &hard).unwrap();
        assert_eq!(
            limit,
            DurationLimit {
                seconds: 3000,
                source: LimitSource::Policy("staging-fifty-minutes".into())
            }
        );
        assert_eq!(
            limit.describe(),
            "50m allowed by policy `staging-fifty-minutes`"
        );
        assert_eq!(
            limit.to_json(),
            json!({"seconds": 3000, "source": "policy", "policy": "staging-fifty-minutes"})
        );
    }
}
