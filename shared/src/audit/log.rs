//! Audit log lines: one JSON object per line on stdout (CloudWatch Logs in
//! Lambda) for every decision, transition and credential issue, each with
//! `request_id`, `actor`, `role` and `outcome`.
//!
//! The functions take only ids, names and times: no type that carries a
//! secret, token or credential can be passed in, so none can be logged.

use crate::aws::CredentialPlan;
use crate::domain::{AccessRequest, Actor, Event, EventKind, RequestId, RoleArn, Timestamp};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where log lines go.
pub trait Sink: Send + Sync + 'static {
    /// Writes one line (without its newline).
    fn write_line(&self, line: &str);
}

/// Standard output, one line per write, never interleaved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl Sink for Stdout {
    fn write_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not fail the operation being logged.
        let _ = writeln!(out, "{line}");
    }
}

/// Keeps lines in memory, for tests.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The lines written so far, parsed (lines that are not JSON are skipped).
    pub fn json(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Sink for Capture {
    fn write_line(&self, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.to_owned());
        }
    }
}

/// A policy decision, as logged.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// The Cedar action (`request`, `approve`, ...).
    pub action: &'a str,
    /// The request decided on, when there is one yet.
    pub request_id: Option<RequestId>,
    /// Who asked.
    pub actor: &'a Actor,
    /// The role concerned.
    pub role: &'a RoleArn,
    /// Whether it was allowed.
    pub allowed: bool,
    /// The policies that decided it (permitting or forbidding).
    pub policies: &'a [String],
    /// The policy set version that decided it.
    pub policy_version: &'a str,
}

/// Writes audit lines to a sink. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::stdout()
    }
}

impl AuditLog {
    /// Lines to standard output.
    pub fn stdout() -> Self {
        Self::new(Arc::new(Stdout))
    }

    /// Lines to `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self { sink }
    }

    /// Lines kept in memory, and the handle to read them.
    pub fn capture() -> (Self, Capture) {
        let capture = Capture::default();
        (Self::new(Arc::new(capture.clone())), capture)
    }

    /// The sink, for [`super::Metrics`] to share.
    pub fn sink(&self) -> Arc<dyn Sink> {
        Arc::clone(&self.sink)
    }

    /// A policy decision: outcome `allow` or `deny`, with the deciding policies.
    pub fn decision(&self, d: &Decision<'_>) {
        let mut line = base("decision", d.request_id, d.actor, d.role);
        line.insert("action".into(), json!(d.action));
        line.insert(
            "outcome".into(),
            json!(if d.allowed { "allow" } else { "deny" }),
        );
        line.insert("policies".into(), json!(d.policies));
        line.insert("policy_version".into(), json!(d.policy_version));
        self.emit(line);
    }

    /// A listing filtered by policy, one line per call (not one per item):
    /// how many stored requests the `scope` examined and how many the caller
    /// was shown; the per-item questions are the same policies as `view`,
    /// `approve` and `revoke`, so one aggregate line keeps the log's volume
    /// proportional to calls. `policy_version` names the set that filtered.
    pub fn list_filter(
        &self,
        actor: &Actor,
        scope: &str,
        examined: usize,
        shown: usize,
        policy_version: &str,
    ) {
        let mut m = Map::new();
        m.insert("log".into(), json!("tollgate.audit"));
        m.insert("type".into(), json!("decision"));
        m.insert("time".into(), json!(Timestamp::now().to_rfc3339()));
        m.insert("request_id".into(), Value::Null);
        m.insert("actor".into(), json!(actor.to_string()));
        m.insert("role".into(), Value::Null);
        m.insert("action".into(), json!(format!("list:{scope}")));
        m.insert("outcome".into(), json!("filter"));
        m.insert("examined".into(), json!(examined));
        m.insert("shown".into(), json!(shown));
        m.insert("policy_version".into(), json!(policy_version));
        self.emit(m);
    }

    /// A transition that was persisted: outcome is the event type, with the
    /// status it led to and the event's place in the chain.
    pub fn transition(&self, req: &AccessRequest, event: &Event) {
        let mut line = base("transition", Some(req.id), &event.actor, &req.role_arn);
        line.insert("outcome".into(), json!(event_type(&event.kind)));
        line.insert("status".into(), json!(event.status.as_str()));
        line.insert("seq".into(), json!(event.seq));
        line.insert("event_hash".into(), json!(event.hash));
        if let Some(end) = req.window_end {
            line.insert("window_end".into(), json!(end.to_rfc3339()));
        }
        self.emit(line);
    }

    /// Credentials were minted: the session name and expiry, never the
    /// credentials themselves.
    pub fn credentials_issued(
        &self,
        req: &AccessRequest,
        plan: &CredentialPlan,
        expiration: Timestamp,
    ) {
        let actor = Actor::User(req.requester_id().clone());
        let mut line = base("credentials", Some(req.id), &actor, &req.role_arn);
        line.insert("outcome".into(), json!("issued"));
        line.insert("session_name".into(), json!(plan.session_name.as_str()));
        line.insert("source_identity".into(), json!(plan.source_identity));
        line.insert("duration_seconds".into(), json!(plan.duration_seconds));
        line.insert("expiration".into(), json!(expiration.to_rfc3339()));
        self.emit(line);
    }

    /// Minting failed after its event was recorded (STS refused or was
    /// unreachable): the event counts an attempt, this line says it failed.
    pub fn credentials_failed(&self, req: &AccessRequest, plan: &CredentialPlan, code: &str) {
        let actor = Actor::User(req.requester_id().clone());
        let mut line = base("credentials", Some(req.id), &actor, &req.role_arn);
        line.insert("outcome".into(), json!("failed"));
        line.insert("session_name".into(), json!(plan.session_name.as_str()));
        line.insert("error".into(), json!(code));
        self.emit(line);
    }

    fn emit(&self, line: Map<String, Value>) {
        self.sink.write_line(&Value::Object(line).to_string());
    }
}

fn base(
    kind: &str,
    request_id: Option<RequestId>,
    actor: &Actor,
    role: &RoleArn,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("log".into(), json!("tollgate.audit"));
    m.insert("type".into(), json!(kind));
    m.insert("time".into(), json!(Timestamp::now().to_rfc3339()));
    m.insert(
        "request_id".into(),
        request_id.map_or(Value::Null, |id| json!(id.to_string())),
    );
    m.insert("actor".into(), json!(actor.to_string()));
    m.insert("role".into(), json!(role.as_str()));
    m
}

fn event_type(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Created { .. } => "created",
        EventKind::Approved { .. } => "approved",
        EventKind::Denied { .. } => "denied",
        EventKind::Cancelled => "cancelled",
        EventKind::Revoked { .. } => "revoked",
        EventKind::CredentialsIssued { .. } => "credentials_issued",
        EventKind::Expired => "expired",
        EventKind::Lapsed => "lapsed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Command, GrantDuration, Identity, NewRequest, Reason, Status, Ticket, UserId,
    };

    fn request() -> AccessRequest {
        let new = NewRequest {
            id: RequestId::generate(Timestamp::from_unix(1_800_000_000)),
            requester: Identity {
                sub: UserId::parse("alice").unwrap(),
                groups: vec![],
                tags: Default::default(),
                mfa: false,
            },
            role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/Prod").unwrap(),
            duration: GrantDuration::new(3600, 43_200).unwrap(),
            reason: Reason::parse("deploy").unwrap(),
            ticket: Some(Ticket::parse("CHG-1").unwrap()),
            session_policy: None,
            approvals_required: 1,
            pending_ttl_seconds: 3600,
        };
        AccessRequest::create(new, false, vec![], Timestamp::from_unix(1_800_000_000)).0
    }

    #[test]
    fn each_line_is_one_json_object_with_request_actor_role_and_outcome() {
        let (log, capture) = AuditLog::capture();
        let req = request();
        let bob = Actor::User(UserId::parse("bob").unwrap());
        log.decision(&Decision {
            action: "approve",
            request_id: Some(req.id),
            actor: &bob,
            role: &req.role_arn,
            allowed: false,
            policies: &["forbid-weekend".to_owned()],
            policy_version: "v7",
        });
        let (next, event) = req
            .apply(
                Command::Deny {
                    reason: Reason::parse("not now").unwrap(),
                },
                &bob,
                Timestamp::from_unix(1_800_000_100),
            )
            .unwrap();
        log.transition(&next, &event);
        let lines = capture.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| !l.contains('\n')));
        let json = capture.json();
        for line in &json {
            assert_eq!(line["log"], "tollgate.audit");
            assert_eq!(line["request_id"], req.id.to_string());
            assert_eq!(line["actor"], "bob");
            assert_eq!(line["role"], "arn:aws:iam::123456789012:role/Prod");
        }
        assert_eq!(json[0]["type"], "decision");
        assert_eq!(json[0]["outcome"], "deny");
        assert_eq!(json[0]["policies"][0], "forbid-weekend");
        assert_eq!(json[0]["policy_version"], "v7");
        assert_eq!(json[1]["type"], "transition");
        assert_eq!(json[1]["outcome"], "denied");
        assert_eq!(json[1]["status"], Status::Denied.as_str());
        assert_eq!(json[1]["seq"], 2);
        assert_eq!(json[1]["event_hash"], event.hash);
    }

    #[test]
    fn a_decision_before_the_request_exists_has_a_null_request_id() {
        let (log, capture) = AuditLog::capture();
        let req = request();
        let alice = Actor::User(req.requester_id().clone());
        log.decision(&Decision {
            action: "request",
            request_id: None,
            actor: &alice,
            role: &req.role_arn,
            allowed: true,
            policies: &[],
            policy_version: "bundled-0123456789ab",
        });
        let json = capture.json();
        assert_eq!(json[0]["request_id"], Value::Null);
        assert_eq!(json[0]["outcome"], "allow");
    }
}
