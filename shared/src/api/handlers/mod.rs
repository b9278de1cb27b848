//! Route handlers, one file per Lambda function, and what they share:
//! loading a request, deciding who may see or act on it, applying a
//! lifecycle command with retries on benign version conflicts, and the
//! JSON shape of a request.
//!
//! Who may do what, in code on top of policy: the requester may always
//! read, cancel (pending) and revoke (active) their own request, and is the
//! only one who gets credentials; anyone else may read it when `read` or
//! `approve` is permitted for them on its role, and otherwise gets 404;
//! approve and deny need `approve` (403 `policy_denied` when visible but not
//! permitted); revoke by others needs `revoke`.
//!
//! Response bodies:
//! - a request: the stored [`AccessRequest`] as JSON (`id`, `requester`
//!   `{sub, groups, tags, mfa}`, `role_arn`, `duration`, `reason`, `ticket`,
//!   `session_policy`, `status`, `version`, `created_at`, `pending_deadline`,
//!   `window_start`, `window_end`, `approvals_required`, `approvals`,
//!   `digest`, `closed_by`, `closed_reason`, `closed_at`,
//!   `credentials_issued`, `chain_head`), with `status` as of now (a pending
//!   request past its deadline reads `lapsed`, an active grant past its
//!   window `expired`); `GET /requests/{id}` adds `events` (the hash chain,
//!   verifiable with `audit::chain::verify(events, chain_head, version)`),
//!   `role` (`{arn, account, path, name, tags, max_session_seconds}` as IAM
//!   describes the role now, `null` when it no longer can) and `review`
//!   (`{allowed, code, message, decision}`: whether the caller may approve
//!   or deny it now; when not, `code` says why: `self_review`,
//!   `not_pending`, `already_approved` or `policy_denied`; `decision` is the
//!   caller's `approve` decision with its explanation, when policies were
//!   asked), so a page can show everything the digest covers and what
//!   policy says before anyone decides;
//! - `POST /requests`: 201 and the request (`Location` header; a replayed
//!   `Idempotency-Key` answers 201 with the same request and
//!   `Idempotent-Replayed: true`);
//! - `POST /requests?dry_run=true`: 200 `{dry_run, allowed, outcome:
//!   "active"|"pending"|"denied", auto_approved, approvals_required,
//!   max_duration_seconds, duration_limit, decision, auto_approve,
//!   explanation}`; `max_duration_seconds` is the longest grant policies
//!   allow for this request as asked (null: none), `duration_limit` says
//!   what sets it: `{seconds, source: "ceiling"|"role_tag"|"policy", tag?,
//!   policy?}`. A duration over a limit is refused naming it (400 over the
//!   ceiling or role tag, 403 `policy_denied` over a policy's);
//! - `GET /requests`: 200 `{items: [request...], next_token}`; scope
//!   `reviewable` adds `requester_active_grant` (`{id, window_end}` or
//!   null) to each item and `awaiting_mfa` (how many of the pending
//!   requests read the caller could approve after signing in with MFA);
//!   scope `revocable` lists active grants the caller may revoke;
//! - `POST /requests/{id}/credentials`: 200 `{access_key_id,
//!   secret_access_key, session_token, expiration, request_id,
//!   session_name, window_end}` with `Cache-Control: no-store`;
//! - `POST /requests/{id}/revoke`: 200 and the revoked request; 503
//!   `revocation_incomplete` when the grant is revoked but its deny statement
//!   is not on the role yet (a repeated revoke finishes it: 200, or 409
//!   `not_active` once it is in; see [`revocations`]);
//! - errors: `{"error": {"code", "message"}}`, plus `explanation` (the
//!   decision JSON and its text) on 403 `policy_denied`.

pub mod credentials;
pub mod health;
pub mod requests;
pub mod reviews;
pub mod revocations;
pub mod roles;

use super::{AppState, Caller};
use crate::BrokerError;
use crate::audit::Decision as LoggedDecision;
use crate::aws::StoreError;
use crate::domain::{AccessRequest, Event, Identity, Reason, RequestId, RoleInfo, Timestamp};
use crate::policy::{Action, Decision, Query, QueryContext};
use serde_json::Value;

/// Transitions retried after a version conflict before giving up.
const MAX_TRANSITION_ATTEMPTS: usize = 3;

/// The one answer for a request that does not exist or may not be seen:
/// the same message (the canonical id, however the path spelt it) either way.
pub(crate) fn not_found(id: RequestId) -> BrokerError {
    BrokerError::NotFound(format!("request `{id}` was not found"))
}

/// A request id from the path: malformed ids are bad input.
pub(crate) fn parse_id(raw: &str) -> Result<RequestId, BrokerError> {
    Ok(RequestId::parse(raw)?)
}

/// A free-text field checked as a [`Reason`] but reported under its own name.
pub(crate) fn text_field(field: &'static str, value: &str) -> Result<Reason, BrokerError> {
    Reason::parse(value).map_err(|e| {
        let message = match e.message.strip_prefix("reason") {
            Some(rest) => format!("{field}{rest}"),
            None => e.message,
        };
        super::input::field_error(field, message)
    })
}

/// The validated body of `POST /requests/{id}/deny` and
/// `POST /requests/{id}/revoke`: `{reason}`, nothing else.
#[derive(Debug)]
pub struct ReasonInput {
    /// Why.
    pub reason: Reason,
}

impl ReasonInput {
    /// Parses a body, refusing anything but a valid `reason` with a 400.
    pub fn parse(body: &[u8]) -> Result<Self, BrokerError> {
        let o = super::input::JsonObject::parse(body, &["reason"])?;
        let reason = text_field("reason", o.required_str("reason")?)?;
        Ok(Self { reason })
    }
}

/// The policy question `action` by `caller` about an existing request.
pub(crate) fn query<'a>(
    caller: &'a Caller,
    action: Action,
    role: &'a RoleInfo,
    req: &'a AccessRequest,
    now: Timestamp,
) -> Query<'a> {
    Query {
        principal: &caller.identity,
        action,
        role,
        context: query_context(caller, req, now),
    }
}

/// The policy context of a question about an existing request.
fn query_context<'a>(
    caller: &'a Caller,
    req: &'a AccessRequest,
    now: Timestamp,
) -> QueryContext<'a> {
    QueryContext {
        duration_seconds: req.duration.seconds(),
        reason: req.reason.as_str(),
        ticket: req.ticket.as_ref().map(|t| t.as_str()),
        source_ip: caller.source_ip.as_deref(),
        now,
        requester: Some(&req.requester),
        approvals_so_far: u32::try_from(req.approvals.len()).unwrap_or(u32::MAX),
    }
}

/// Decides `q` and writes the decision's audit line.
pub(crate) fn decide_logged(
    state: &AppState,
    q: &Query<'_>,
    request_id: Option<RequestId>,
) -> Decision {
    let policy = state.policy.current();
    let decision = policy.decide(q);
    let policies: Vec<String> = if decision.allowed {
        decision.permitted_by.iter().map(|p| p.id.clone()).collect()
    } else {
        decision
            .forbidden_by
            .iter()
            .chain(&decision.failed_forbids)
            .map(|p| p.id.clone())
            .collect()
    };
    let actor = crate::domain::Actor::User(q.principal.sub.clone());
    state.audit.decision(&LoggedDecision {
        action: q.action.as_str(),
        request_id,
        actor: &actor,
        role: &q.role.arn,
        allowed: decision.allowed,
        policies: &policies,
        policy_version: &policy.version,
    });
    if !decision.errors.is_empty() {
        tracing::warn!(action = q.action.as_str(), errors = ?decision.errors, "policy evaluation errors");
    }
    decision
}

/// 403 `policy_denied` with the explanation.
pub(crate) fn policy_denied(decision: &Decision) -> BrokerError {
    let why = match (
        decision.forbidden_by.first(),
        decision.failed_forbids.first(),
    ) {
        (Some(p), _) => format!("forbidden by policy `{}`", p.id),
        (None, Some(p)) => format!(
            "forbid policy `{}` failed to evaluate, and a forbid that fails denies",
            p.id
        ),
        (None, None) => "no policy permits it".to_owned(),
    };
    BrokerError::Denied {
        code: "policy_denied",
        message: format!(
            "`{}` on `{}` is not allowed: {why}",
            decision.action, decision.role
        ),
        explanation: Some(explanation(decision)),
    }
}

/// A decision as JSON plus its explanation for people.
pub(crate) fn explanation(decision: &Decision) -> Value {
    let mut v = decision.to_json();
    v["explanation"] = Value::String(decision.explain());
    v
}

/// The permitting policies' ids.
pub(crate) fn permitting(decision: &Decision) -> Vec<String> {
    decision.permitted_by.iter().map(|p| p.id.clone()).collect()
}

/// Reads request `id`, or 404 (for re-reads after a version conflict).
pub(crate) async fn load(state: &AppState, id: RequestId) -> Result<AccessRequest, BrokerError> {
    state.store.get(id).await?.ok_or_else(|| not_found(id))
}

/// Reads request `id` and checks that `caller` may see it (see
/// [`authorize_view`]); 404 otherwise, the same for an unknown request.
pub(crate) async fn load_visible(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    now: Timestamp,
) -> Result<(AccessRequest, Option<RoleInfo>), BrokerError> {
    let found = state.store.get(id).await?;
    authorize_view(state, caller, id, found, now).await
}

/// Whether `caller` may see request `id` (`found`, as read): the requester
/// always; anyone else when `read` or `approve` is permitted on the role.
/// Returns the request and the role as IAM describes it (`None` only for
/// the requester, when the role no longer exists).
// INVARIANT: a request the caller may not see answers exactly as one that
// does not exist: the same 404 message, and the same work (both policy
// questions asked, one `view` decision line written), so the answer does not
// tell them apart. The log line does, for whoever reads the logs: an unknown
// request is logged against the placeholder role, which shows probing. What
// remains is the role lookup, which the role cache answers without IAM after
// the first call per role.
pub(crate) async fn authorize_view(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    found: Option<AccessRequest>,
    now: Timestamp,
) -> Result<(AccessRequest, Option<RoleInfo>), BrokerError> {
    let Some(req) = found else {
        if let Some(role) = unknown_role() {
            let context = QueryContext {
                duration_seconds: 3600,
                reason: "",
                ticket: None,
                source_ip: caller.source_ip.as_deref(),
                now,
                requester: Some(&caller.identity),
                approvals_so_far: 0,
            };
            may_see(state, caller, id, &role, context);
        }
        return Err(not_found(id));
    };
    let role = state.roles.describe(&req.role_arn).await?;
    if is_requester(&caller.identity, &req) {
        return Ok((req, role));
    }
    let role = match role {
        Some(role) => role,
        None => {
            if let Some(unknown) = unknown_role() {
                may_see(
                    state,
                    caller,
                    id,
                    &unknown,
                    query_context(caller, &req, now),
                );
            }
            return Err(not_found(id));
        }
    };
    if may_see(state, caller, id, &role, query_context(caller, &req, now)) {
        return Ok((req, Some(role)));
    }
    Err(not_found(id))
}

/// Both visibility questions (`read`, `approve`), always both, and one
/// decision line `view` for request `id`: allowed when either permits,
/// naming the permitting policies (or, denied, the forbidding ones).
fn may_see(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    role: &RoleInfo,
    context: QueryContext<'_>,
) -> bool {
    let ask = |action| Query {
        principal: &caller.identity,
        action,
        role,
        context: context.clone(),
    };
    let policy = state.policy.current();
    let read = policy.decide(&ask(Action::Read));
    let approve = policy.decide(&ask(Action::Approve));
    let allowed = read.allowed || approve.allowed;
    let policies: Vec<String> = [&read, &approve]
        .into_iter()
        .flat_map(|d| {
            if allowed {
                d.permitted_by.iter()
            } else {
                d.forbidden_by.iter()
            }
        })
        .map(|p| p.id.clone())
        .collect();
    state.audit.decision(&LoggedDecision {
        action: "view",
        request_id: Some(id),
        actor: &caller.actor(),
        role: &role.arn,
        allowed,
        policies: &policies,
        policy_version: &policy.version,
    });
    allowed
}

/// The role put to the policies for a request that does not exist (or
/// whose role no longer does): an account that is never real, no tags.
fn unknown_role() -> Option<RoleInfo> {
    static ROLE: std::sync::LazyLock<Option<RoleInfo>> = std::sync::LazyLock::new(|| {
        crate::domain::RoleArn::parse("arn:aws:iam::000000000000:role/tollgate-unknown")
            .ok()
            .map(|arn| RoleInfo {
                arn,
                role_id: String::new(),
                max_session_seconds: 3600,
                tags: Default::default(),
            })
    });
    ROLE.clone()
}

/// Whether `who` asked for `req`.
pub(crate) fn is_requester(who: &Identity, req: &AccessRequest) -> bool {
    &who.sub == req.requester_id()
}

/// Applies `step` to the request and persists the result. On a version
/// conflict (someone changed it meanwhile) the request is read again and
/// `step` applied again, up to three times, so benign concurrent updates do
/// not fail the caller; `step` re-checks everything against the fresh copy.
pub(crate) async fn transition<F>(
    state: &AppState,
    first: AccessRequest,
    mut step: F,
) -> Result<(AccessRequest, Event), BrokerError>
where
    F: FnMut(&AccessRequest) -> Result<(AccessRequest, Event), BrokerError>,
{
    let mut current = first;
    for attempt in 1..=MAX_TRANSITION_ATTEMPTS {
        let (next, event) = step(&current)?;
        match state.store.transition(current.version, &next, &event).await {
            Ok(()) => {
                state.audit.transition(&next, &event);
                return Ok((next, event));
            }
            Err(StoreError::Conflict) if attempt < MAX_TRANSITION_ATTEMPTS => {
                tracing::info!(request_id = %current.id, attempt, "version conflict; reading the request again");
                current = load(state, current.id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// A request as the API shows it: the stored request with `status` as of
/// `now` (a pending request past its deadline reads `lapsed`, an active
/// grant past its window `expired`).
pub(crate) fn request_json(req: &AccessRequest, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(req).unwrap_or(Value::Null);
    v["status"] = Value::String(req.effective_status(now).as_str().to_owned());
    v
}

/// A role as `GET /requests/{id}` shows it: where it lives and its tags.
pub(crate) fn role_json(role: Option<&RoleInfo>) -> Value {
    match role {
        None => Value::Null,
        Some(r) => serde_json::json!({
            "arn": r.arn,
            "account": r.arn.account(),
            "path": r.arn.path(),
            "name": r.arn.name(),
            "tags": r.tags,
            "max_session_seconds": r.max_session_seconds,
        }),
    }
}

/// Whether `caller` may approve or deny `req` now, and if not, why (see
/// the module documentation). Not an action, so not a logged decision.
pub(crate) fn review_json(
    state: &AppState,
    caller: &Caller,
    req: &AccessRequest,
    role: Option<&RoleInfo>,
    now: Timestamp,
) -> Value {
    use crate::domain::{Refusal, Status};
    let refused = |r: Refusal| serde_json::json!({ "allowed": false, "code": r.code(), "message": r.to_string() });
    if is_requester(&caller.identity, req) {
        return refused(Refusal::SelfReview);
    }
    let status = req.effective_status(now);
    if status != Status::Pending {
        return refused(Refusal::NotPending(status));
    }
    if req
        .approvals
        .iter()
        .any(|a| a.approver == caller.identity.sub)
    {
        return refused(Refusal::AlreadyApproved);
    }
    let Some(role) = role else {
        return refused(Refusal::NotPermitted);
    };
    let decision = state
        .policy
        .current()
        .decide(&query(caller, Action::Approve, role, req, now));
    let (code, message) = if decision.allowed {
        (Value::Null, Value::Null)
    } else {
        let denied = policy_denied(&decision);
        (
            Value::String(denied.code().to_owned()),
            Value::String(denied.to_string()),
        )
    };
    serde_json::json!({
        "allowed": decision.allowed,
        "code": code,
        "message": message,
        "decision": explanation(&decision),
    })
}

/// A request with its audit events.
pub(crate) fn request_with_events_json(
    req: &AccessRequest,
    events: &[Event],
    now: Timestamp,
) -> Value {
    let mut v = request_json(req, now);
    v["events"] = serde_json::to_value(events).unwrap_or(Value::Array(Vec::new()));
    v
}
