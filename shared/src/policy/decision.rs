//! The outcome of a policy decision and its explanation: which policies
//! permitted or forbade it, which failed to evaluate, and why nothing applied.

use super::entities::Action;
use serde::{Serialize, Serializer};
use std::fmt::Write as _;

/// A policy named in a decision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PolicyRef {
    /// The policy's `@id`, or `<file stem>:<index>` when it has none.
    pub id: String,
    /// The policy's `@description`, if it has one.
    pub description: Option<String>,
}

/// What the policies say about one [`Query`](super::Query).
///
/// `allowed` is true only when at least one policy permits, none forbids,
/// and no forbid failed to evaluate (default deny, fail closed). A permit
/// that failed to evaluate did not apply; a forbid that failed denies. Both
/// are in `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// The action asked about.
    pub action: Action,
    /// The principal's subject.
    pub principal: String,
    /// The role's ARN.
    pub role: String,
    /// Permit policies that were satisfied, sorted by id. They may be
    /// overridden by `forbidden_by`.
    pub permitted_by: Vec<PolicyRef>,
    /// Forbid policies that were satisfied, sorted by id.
    pub forbidden_by: Vec<PolicyRef>,
    /// Forbid policies that failed to evaluate, sorted by id: each denies,
    /// since whether it applies cannot be known.
    pub failed_forbids: Vec<PolicyRef>,
    /// Evaluation errors (each policy named), or why the query could not be
    /// put to the policies at all (then nothing was evaluated and it is denied).
    pub errors: Vec<String>,
}

fn list(out: &mut String, heading: &str, refs: &[PolicyRef]) {
    let _ = writeln!(out, "{heading}");
    for r in refs {
        match &r.description {
            Some(d) => {
                let _ = writeln!(out, "  - {}: {d}", r.id);
            }
            None => {
                let _ = writeln!(out, "  - {}", r.id);
            }
        }
    }
}

impl Decision {
    /// A multi-line explanation for people: the decision, the policies that
    /// permitted or forbade it, evaluation errors, and a hint when nothing
    /// permitted.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let verdict = if self.allowed { "ALLOW" } else { "DENY" };
        let _ = writeln!(
            out,
            "{verdict}: `{}` on {} for {}",
            self.action, self.role, self.principal
        );
        if !self.forbidden_by.is_empty() {
            list(&mut out, "forbidden by:", &self.forbidden_by);
        }
        if !self.failed_forbids.is_empty() {
            list(
                &mut out,
                "denied because these forbid policies failed to evaluate (a forbid that errors denies):",
                &self.failed_forbids,
            );
        }
        if !self.permitted_by.is_empty() {
            let heading = if self.forbidden_by.is_empty() && self.failed_forbids.is_empty() {
                "permitted by:"
            } else {
                "permitted by (overridden: a forbid always wins):"
            };
            list(&mut out, heading, &self.permitted_by);
        }
        if !self.errors.is_empty() {
            let _ = writeln!(
                out,
                "errors (a permit that fails to evaluate does not apply; a forbid that fails denies):"
            );
            for e in &self.errors {
                let _ = writeln!(out, "  - {e}");
            }
        }
        if self.permitted_by.is_empty()
            && self.forbidden_by.is_empty()
            && self.failed_forbids.is_empty()
        {
            let _ = writeln!(
                out,
                "no policy permits `{}` on {} for {}: default deny",
                self.action, self.role, self.principal
            );
        }
        out
    }

    /// The decision as JSON, for decision logs and API bodies:
    /// `{"decision": "allow"|"deny", "action", "principal", "role",
    /// "permitted_by": [{"id", "description"}], "forbidden_by": [...],
    /// "failed_forbids": [...], "errors": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let refs = |refs: &[PolicyRef]| {
            refs.iter()
                .map(|r| serde_json::json!({"id": r.id, "description": r.description}))
                .collect::<Vec<_>>()
        };
        serde_json::json!({
            "decision": if self.allowed { "allow" } else { "deny" },
            "action": self.action.as_str(),
            "principal": self.principal,
            "role": self.role,
            "permitted_by": refs(&self.permitted_by),
            "forbidden_by": refs(&self.forbidden_by),
            "failed_forbids": refs(&self.failed_forbids),
            "errors": self.errors,
        })
    }
}

/// Serialises as [`Decision::to_json`], so there is one JSON shape.
impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}
