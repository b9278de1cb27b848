//! The `requests` function: create (and dry-run), list, show and cancel.

use super::{
    authorize_view, decide_logged, explanation, is_requester, load_visible, parse_id, permitting,
    policy_denied, request_json, request_with_events_json, review_json, role_json, text_field,
    transition,
};
use crate::BrokerError;
use crate::api::input::{JsonObject, LimitedBody, field_error, query_pairs};
use crate::api::notify::Notice;
use crate::api::pagination::PageBinding;
use crate::api::{ApiResult, AppState, Caller};
use crate::audit::metrics;
use crate::aws::{Created, PageKey, PageRequest};
use crate::domain::{
    AccessRequest, Command, DecisionRecord, GrantDuration, IdempotencyKey, NewRequest, RequestId,
    RoleArn, SessionPolicy, Status, Ticket, Timestamp,
};
use crate::policy::{Action, DurationLimit, Query, QueryContext, longest_allowed};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Default and largest page sizes for `GET /requests`.
const DEFAULT_LIMIT: u32 = 50;
/// Store pages read per listing call while filtering, at most.
const MAX_STORE_PAGES: usize = 5;

/// The validated body of `POST /requests`: `{role_arn, duration_seconds,
/// reason, ticket?, session_policy?}`, nothing else.
#[derive(Debug)]
pub struct CreateInput {
    /// The role asked for.
    pub role_arn: RoleArn,
    /// The grant length asked for; checked against the role's limit later.
    pub duration_seconds: u64,
    /// Why.
    pub reason: crate::domain::Reason,
    /// A ticket reference.
    pub ticket: Option<Ticket>,
    /// A narrowing of the role's permissions.
    pub session_policy: Option<SessionPolicy>,
}

impl CreateInput {
    /// Parses a body: malformed JSON, unknown fields, wrong types and
    /// invalid values are refused with a 400 naming the field.
    pub fn parse(body: &[u8]) -> Result<Self, BrokerError> {
        let o = JsonObject::parse(
            body,
            &[
                "role_arn",
                "duration_seconds",
                "reason",
                "ticket",
                "session_policy",
            ],
        )?;
        Ok(Self {
            role_arn: RoleArn::parse(o.required_str("role_arn")?)?,
            duration_seconds: o.required_u64("duration_seconds")?,
            reason: text_field("reason", o.required_str("reason")?)?,
            ticket: o.optional_str("ticket")?.map(Ticket::parse).transpose()?,
            session_policy: o
                .optional_value("session_policy")
                .map(SessionPolicy::parse)
                .transpose()?,
        })
    }

    /// sha256 over what was asked, so a reused idempotency key with another
    /// body is told apart.
    pub fn fingerprint(&self) -> String {
        let canonical = json!([
            self.role_arn.as_str(),
            self.duration_seconds,
            self.reason.as_str(),
            self.ticket.as_ref().map(Ticket::as_str),
            self.session_policy
                .as_ref()
                .map(SessionPolicy::as_compact_json),
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

fn flag(params: &[(String, String)], name: &str) -> Result<bool, BrokerError> {
    match params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
    {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(BrokerError::invalid(format!(
            "`{name}` must be `true` or `false`, not {}",
            crate::domain::quote(other)
        ))),
    }
}

/// `POST /requests` (and `?dry_run=true`).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let params = query_pairs(raw_query.as_deref(), &["dry_run"])?;
    let dry_run = flag(&params, "dry_run")?;
    let input = CreateInput::parse(&body)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| field_error("idempotency_key", "`Idempotency-Key` is not text".into()))
                .and_then(|s| IdempotencyKey::parse(s).map_err(BrokerError::from))
        })
        .transpose()?;
    state.accounts.check(&input.role_arn)?;
    let role = state
        .roles
        .describe(&input.role_arn)
        .await?
        .ok_or_else(|| BrokerError::InvalidInput {
            code: "unknown_role",
            message: format!(
                "role `{}` does not exist or cannot be described",
                input.role_arn
            ),
        })?;
    let approvals_required = role.approvals_required()?;
    let hard = DurationLimit::hard(&role, state.config.max_duration_seconds)?;
    let ask = |action, duration_seconds| Query {
        principal: &caller.identity,
        action,
        role: &role,
        context: QueryContext {
            duration_seconds,
            reason: input.reason.as_str(),
            ticket: input.ticket.as_ref().map(Ticket::as_str),
            source_ip: caller.source_ip.as_deref(),
            now,
            requester: None,
            approvals_so_far: 0,
        },
    };
    // The longest grant policies allow for this request as asked (`None`:
    // none at all), and what sets it.
    let asked = u32::try_from(input.duration_seconds).unwrap_or(u32::MAX);
    let limit = || longest_allowed(&state.policy.current(), &ask(Action::Request, asked), &hard);
    if input.duration_seconds > u64::from(hard.seconds) {
        let tightest = limit().unwrap_or_else(|| hard.clone());
        return Err(BrokerError::from(tightest.exceeded(input.duration_seconds)).into());
    }
    let duration = GrantDuration::new(input.duration_seconds, hard.seconds)?;
    // The id comes first so that the decision lines name the request they
    // decided (a dry run stores nothing and names none).
    let id = RequestId::generate(now);
    let logged_id = (!dry_run).then_some(id);
    let decision = decide_logged(&state, &ask(Action::Request, duration.seconds()), logged_id);
    let auto = decision.allowed.then(|| {
        decide_logged(
            &state,
            &ask(Action::AutoApprove, duration.seconds()),
            logged_id,
        )
    });
    let auto_approved = auto.as_ref().is_some_and(|d| d.allowed);
    if dry_run {
        let limit = limit();
        let outcome = match (decision.allowed, auto_approved) {
            (false, _) => "denied",
            (true, true) => "active",
            (true, false) => "pending",
        };
        let mut text = decision.explain();
        if let Some(a) = &auto {
            text.push_str(&a.explain());
        }
        let body = json!({
            "dry_run": true,
            "allowed": decision.allowed,
            "outcome": outcome,
            "auto_approved": auto_approved,
            "approvals_required": if auto_approved { 0 } else { approvals_required },
            "max_duration_seconds": limit.as_ref().map(|l| l.seconds),
            "duration_limit": limit.as_ref().map(DurationLimit::to_json),
            "decision": explanation(&decision),
            "auto_approve": auto.as_ref().map(explanation),
            "explanation": text,
            "policy_version": state.policy.current().version,
        });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    if !decision.allowed {
        state.metrics.count(metrics::DENIALS, "request", 1);
        let mut denied = policy_denied(&decision);
        // Too long for the policies, though shorter would do: say by how much.
        if let (Some(l), BrokerError::Denied { message, .. }) = (limit(), &mut denied)
            && u64::from(l.seconds) < input.duration_seconds
        {
            *message = l.exceeded(input.duration_seconds).message;
        }
        return Err(denied.into());
    }
    let mut policies = permitting(&decision);
    if let Some(a) = auto.as_ref().filter(|a| a.allowed) {
        policies.extend(permitting(a));
    }
    let fingerprint = input.fingerprint();
    let new = NewRequest {
        id,
        requester: caller.identity.clone(),
        role_arn: input.role_arn,
        duration,
        reason: input.reason,
        ticket: input.ticket,
        session_policy: input.session_policy,
        approvals_required,
        pending_ttl_seconds: state.config.pending_ttl_seconds,
    };
    // What `tollgate policy diff` needs to put this decision again.
    let decided_over = DecisionRecord {
        policy_version: state.policy.current().version.clone(),
        role_tags: role.tags.clone(),
        role_max_session_seconds: role.max_session_seconds,
        source_ip: caller.source_ip.clone(),
    };
    let (req, event) =
        AccessRequest::create_recorded(new, auto_approved, policies, Some(decided_over), now);
    let idem = idempotency_key.as_ref().map(|k| (k, fingerprint.as_str()));
    let (stored, replayed) = match state.store.create(&req, &event, idem).await? {
        Created::New => {
            state.audit.transition(&req, &event);
            state.metrics.count(metrics::REQUESTS_CREATED, "create", 1);
            let notice = if req.status == Status::Active {
                Notice::AutoApproved(&req)
            } else {
                Notice::Pending(&req)
            };
            state.notifier.notify(notice).await;
            (req, false)
        }
        Created::Existing(existing) => (existing, true),
    };
    let mut response = (StatusCode::CREATED, Json(request_json(&stored, now))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/requests/{}", stored.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Which requests `GET /requests` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Mine,
    Reviewable,
    Revocable,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Mine => "mine",
            Self::Reviewable => "reviewable",
            Self::Revocable => "revocable",
        }
    }

    /// The one status a scope lists, when it lists only one.
    fn only(self) -> Option<Status> {
        match self {
            Self::Mine => None,
            Self::Reviewable => Some(Status::Pending),
            Self::Revocable => Some(Status::Active),
        }
    }
}

/// `GET /requests?scope=mine|reviewable|revocable&status=&limit=&next_token=`.
/// `reviewable` items also say whether the requester already holds an
/// active grant for the role (`requester_active_grant`), and the answer
/// counts the requests the caller could approve after signing in with MFA
/// (`awaiting_mfa`); `revocable` lists active grants the caller may revoke.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw_query): RawQuery,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let params = query_pairs(
        raw_query.as_deref(),
        &["scope", "status", "limit", "next_token"],
    )?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let scope = match get("scope") {
        None | Some("mine") => Scope::Mine,
        Some("reviewable") => Scope::Reviewable,
        Some("revocable") => Scope::Revocable,
        Some(other) => {
            return Err(BrokerError::invalid(format!(
                "scope {} is not `mine`, `reviewable` or `revocable`",
                crate::domain::quote(other)
            ))
            .into());
        }
    };
    let status = match get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            BrokerError::invalid(format!(
                "status {} is not one of `pending`, `active`, `denied`, `cancelled`, `revoked`, `expired`, `lapsed`",
                crate::domain::quote(s)
            ))
        })?),
    };
    if let (Some(only), Some(asked)) = (scope.only(), status)
        && only != asked
    {
        return Err(BrokerError::invalid(format!(
            "scope `{}` lists {only} requests only; leave out `status` or use `{only}`",
            scope.as_str()
        ))
        .into());
    }
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=PageRequest::MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                BrokerError::invalid(format!(
                    "limit {} is not a number from 1 to {}",
                    crate::domain::quote(v),
                    PageRequest::MAX_LIMIT
                ))
            })?,
    };
    let status_name = status.map(Status::as_str);
    let binding = PageBinding {
        sub: caller.identity.sub.as_str(),
        scope: scope.as_str(),
        status: status_name,
    };
    let mut start: Option<PageKey> = match get("next_token").filter(|t| !t.is_empty()) {
        Some(token) => Some(state.pages.open(binding, token, now)?),
        None => None,
    };
    let mut items = Vec::new();
    let mut awaiting_mfa = 0u32;
    let mut examined = 0usize;
    let mut held = Vec::new();
    let mut next = None;
    for _ in 0..MAX_STORE_PAGES {
        let want = limit - u32::try_from(items.len()).unwrap_or(limit);
        let page = PageRequest { limit: want, start };
        let page = match scope {
            Scope::Mine => {
                state
                    .store
                    .list_by_requester(&caller.identity.sub, page)
                    .await?
            }
            Scope::Reviewable => state.store.list_pending(None, page).await?,
            Scope::Revocable => state.store.list_open(now, page).await?,
        };
        examined += page.items.len();
        for req in page.items {
            let item = match scope {
                Scope::Mine => status
                    .is_none_or(|s| req.effective_status(now) == s)
                    .then(|| request_json(&req, now)),
                Scope::Reviewable => match reviewable(&state, &caller, &req, now).await? {
                    Review::Now => {
                        let grant = held_grant(&state, &mut held, &req, now).await?;
                        let mut v = request_json(&req, now);
                        v["requester_active_grant"] = grant.map_or(
                            Value::Null,
                            |g| json!({"id": g.id, "window_end": g.window_end}),
                        );
                        Some(v)
                    }
                    Review::WithMfa => {
                        awaiting_mfa += 1;
                        None
                    }
                    Review::No => None,
                },
                Scope::Revocable => revocable(&state, &caller, &req, now)
                    .await?
                    .then(|| request_json(&req, now)),
            };
            items.extend(item);
        }
        next = page.next;
        if next.is_none() || items.len() >= limit as usize {
            break;
        }
        start = next.clone();
    }
    if scope != Scope::Mine {
        state.audit.list_filter(
            &caller.actor(),
            scope.as_str(),
            examined,
            items.len(),
            &state.policy.current().version,
        );
    }
    let next_token = next.map(|key| state.pages.seal(binding, &key, now));
    let mut body = json!({ "items": items, "next_token": next_token });
    if scope == Scope::Reviewable {
        body["awaiting_mfa"] = awaiting_mfa.into();
    }
    Ok(Json(body))
}

/// Whether the caller can review a pending request.
enum Review {
    /// Yes, now.
    Now,
    /// After signing in again with MFA: policy would permit it then.
    WithMfa,
    /// No.
    No,
}

/// Whether `caller` can act on pending `req` now: someone else's, still
/// pending, not yet approved by them, and `approve` permitted (or would be,
/// with MFA).
async fn reviewable(
    state: &AppState,
    caller: &Caller,
    req: &AccessRequest,
    now: Timestamp,
) -> Result<Review, BrokerError> {
    if is_requester(&caller.identity, req)
        || req.effective_status(now) != Status::Pending
        || req
            .approvals
            .iter()
            .any(|a| a.approver == caller.identity.sub)
    {
        return Ok(Review::No);
    }
    let Some(role) = state.roles.describe(&req.role_arn).await? else {
        return Ok(Review::No);
    };
    let q = super::query(caller, Action::Approve, &role, req, now);
    if state.policy.current().decide(&q).allowed {
        return Ok(Review::Now);
    }
    if caller.identity.mfa {
        return Ok(Review::No);
    }
    let with_mfa = crate::domain::Identity {
        mfa: true,
        ..caller.identity.clone()
    };
    let q = Query {
        principal: &with_mfa,
        ..q
    };
    Ok(if state.policy.current().decide(&q).allowed {
        Review::WithMfa
    } else {
        Review::No
    })
}

/// Whether `caller` may revoke active `req`: their own, or one they may
/// see and `revoke` is permitted on (as `POST /requests/{id}/revoke` checks).
async fn revocable(
    state: &AppState,
    caller: &Caller,
    req: &AccessRequest,
    now: Timestamp,
) -> Result<bool, BrokerError> {
    if req.effective_status(now) != Status::Active {
        return Ok(false);
    }
    if is_requester(&caller.identity, req) {
        return Ok(true);
    }
    let Some(role) = state.roles.describe(&req.role_arn).await? else {
        return Ok(false);
    };
    let may = |action| {
        state
            .policy
            .current()
            .decide(&super::query(caller, action, &role, req, now))
            .allowed
    };
    Ok((may(Action::Read) || may(Action::Approve)) && may(Action::Revoke))
}

/// The requester's active grant for `req`'s role, if any, remembered in
/// `held` per requester and role for the rest of the listing. Only requests
/// created within the pending TTL plus the ceiling can still be active, so
/// the requester's newest requests are read until older than that.
async fn held_grant(
    state: &AppState,
    held: &mut Vec<(String, Option<AccessRequest>)>,
    req: &AccessRequest,
    now: Timestamp,
) -> Result<Option<AccessRequest>, BrokerError> {
    let key = format!("{}\n{}", req.requester_id(), req.role_arn);
    if let Some((_, found)) = held.iter().find(|(k, _)| *k == key) {
        return Ok(found.clone());
    }
    let horizon = now.plus(
        -(i64::from(state.config.pending_ttl_seconds)
            + i64::from(state.config.max_duration_seconds)),
    );
    let mut found = None;
    let mut start = None;
    'pages: for _ in 0..MAX_STORE_PAGES {
        let page = state
            .store
            .list_by_requester(
                req.requester_id(),
                PageRequest {
                    limit: PageRequest::MAX_LIMIT,
                    start,
                },
            )
            .await?;
        for other in page.items {
            if other.created_at < horizon {
                break 'pages;
            }
            if other.role_arn == req.role_arn && other.effective_status(now) == Status::Active {
                found = Some(other);
                break 'pages;
            }
        }
        match page.next {
            Some(n) => start = Some(n),
            None => break,
        }
    }
    held.push((key, found.clone()));
    Ok(found)
}

/// `GET /requests/{id}`: the request with its events and approvals.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let id = parse_id(&raw_id)?;
    let (found, events) = match state.store.get_with_events(id).await? {
        Some((req, events)) => (Some(req), events),
        None => (None, Vec::new()),
    };
    let (req, role) = authorize_view(&state, &caller, id, found, now).await?;
    let mut body = request_with_events_json(&req, &events, now);
    body["role"] = role_json(role.as_ref());
    body["review"] = review_json(&state, &caller, &req, role.as_ref(), now);
    Ok(Json(body))
}

/// `POST /requests/{id}/cancel`: the requester withdraws a pending request.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let id = parse_id(&raw_id)?;
    JsonObject::parse(&body, &[])?;
    let (req, _) = load_visible(&state, &caller, id, now).await?;
    let actor = caller.actor();
    let (next, _) = transition(&state, req, |current| {
        Ok(current.apply(Command::Cancel, &actor, now)?)
    })
    .await?;
    Ok(Json(request_json(&next, now)))
}
