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
        self.emit(line);
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
