//! What a decision is asked over — an identity, an action, a role and the
//! circumstances — and its translation into Cedar entities, context and request.
//!
//! Everything is built directly from Rust values (no JSON round trip): this
//! runs on every decision.

use super::schema::Names;
use crate::domain::{Identity, RoleInfo, Timestamp, ValidationError, quote};
use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityUid, Request, RestrictedExpression, Schema,
};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use time::Weekday;

/// What the principal wants to do with the role (a `Tollgate::Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Ask for a grant of the role.
    Request,
    /// Whether a request may become active without a human approval.
    AutoApprove,
    /// Approve someone else's pending request for the role.
    Approve,
    /// End an active grant early.
    Revoke,
    /// See a request and its history.
    Read,
    /// Check whether a role can be brokered (`tollgate roles check`): an
    /// operator's question, decided before any AWS call over a role built
    /// from its ARN alone (no tags).
    Check,
    /// Ask to lengthen one's own active grant; `duration_seconds` is then
    /// the whole grant with the extension, `extension_seconds` what it adds.
    Extend,
    /// Take a grant at once without approval (break-glass), to be reviewed
    /// afterwards.
    BreakGlass,
    /// Record whether someone else's break-glass grant was justified.
    Review,
}

impl Action {
    /// Every action, in schema order.
    pub const ALL: [Action; 9] = [
        Self::Request,
        Self::AutoApprove,
        Self::Approve,
        Self::Revoke,
        Self::Read,
        Self::Check,
        Self::Extend,
        Self::BreakGlass,
        Self::Review,
    ];

    /// The Cedar action id (`request`, `auto_approve`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::AutoApprove => "auto_approve",
            Self::Approve => "approve",
            Self::Revoke => "revoke",
            Self::Read => "read",
            Self::Check => "check",
            Self::Extend => "extend",
            Self::BreakGlass => "break_glass",
            Self::Review => "review",
        }
    }

    /// Position in [`Action::ALL`].
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Request => 0,
            Self::AutoApprove => 1,
            Self::Approve => 2,
            Self::Revoke => 3,
            Self::Read => 4,
            Self::Check => 5,
            Self::Extend => 6,
            Self::BreakGlass => 7,
            Self::Review => 8,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "action",
                    format!(
                        "{} is not an action (request, auto_approve, approve, revoke, read, check, extend, break_glass, review)",
                        quote(s)
                    ),
                )
            })
    }
}

/// One authorization question: may `principal` do `action` on `role` now?
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// Who asks (for `approve`, the approver).
    pub principal: &'a Identity,
    /// What they want to do.
    pub action: Action,
    /// The role concerned.
    pub role: &'a RoleInfo,
    /// The circumstances.
    pub context: QueryContext<'a>,
}

/// The circumstances of a [`Query`]: what was asked for and when.
/// `context.mfa` is taken from the principal's [`Identity::mfa`].
#[derive(Debug, Clone)]
pub struct QueryContext<'a> {
    /// The grant length asked for.
    pub duration_seconds: u32,
    /// The requester's reason.
    pub reason: &'a str,
    /// The ticket, if any; absent from the Cedar context when `None`.
    pub ticket: Option<&'a str>,
    /// The caller's IP address, if known. A value that is not an IP address
    /// denies the query (it could otherwise slip past a network rule).
    pub source_ip: Option<&'a str>,
    /// Decision time; `hour` and `weekday` are derived from it in UTC.
    pub now: Timestamp,
    /// Who made the request: for `approve`, and for `read`/`revoke` of an
    /// existing request. Added as an entity and referenced as `context.requester`.
    pub requester: Option<&'a Identity>,
    /// Approvals the request already has (of the extension, when one is
    /// under review).
    pub approvals_so_far: u32,
    /// A scheduled grant's start; `lead_seconds` (from `now` to it) is
    /// derived. Absent from the Cedar context when `None`.
    pub starts_at: Option<Timestamp>,
    /// For `extend`, and for `auto_approve`/`approve` of an extension: the
    /// seconds it adds (`duration_seconds` is then the new total). Absent
    /// from the Cedar context when `None`.
    pub extension_seconds: Option<u32>,
}

/// Lowercase English weekday, as policies compare it.
pub(crate) const fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "monday",
        Weekday::Tuesday => "tuesday",
        Weekday::Wednesday => "wednesday",
        Weekday::Thursday => "thursday",
        Weekday::Friday => "friday",
        Weekday::Saturday => "saturday",
        Weekday::Sunday => "sunday",
    }
}

thread_local! {
    // Building a `datetime(..)` or `ip(..)` value makes Cedar parse the
    // function's name each time (about 10 µs, more than the rest of the
    // request together). Decisions in the same second, or for the same
    // address, reuse the last value built on this thread.
    static LAST_NOW: RefCell<Option<(i64, RestrictedExpression)>> = const { RefCell::new(None) };
    static LAST_IP: RefCell<Option<(IpAddr, RestrictedExpression)>> = const { RefCell::new(None) };
}

/// `f(key)`, remembered in `cache` for the next call with the same key.
fn memo<K: PartialEq + Copy>(
    cache: &'static std::thread::LocalKey<RefCell<Option<(K, RestrictedExpression)>>>,
    key: K,
    f: impl FnOnce() -> RestrictedExpression,
) -> RestrictedExpression {
    cache.with(|cell| {
        let Ok(mut last) = cell.try_borrow_mut() else {
            return f();
        };
        if let Some((k, value)) = &*last
            && *k == key
        {
            return value.clone();
        }
        let value = f();
        *last = Some((key, value.clone()));
        value
    })
}

fn datetime(now: Timestamp) -> RestrictedExpression {
    memo(&LAST_NOW, now.unix(), || {
        RestrictedExpression::new_datetime(now.to_rfc3339())
    })
}

fn ip(addr: IpAddr) -> RestrictedExpression {
    memo(&LAST_IP, addr, || {
        RestrictedExpression::new_ip(addr.to_string())
    })
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn user_uid(names: &Names, identity: &Identity) -> EntityUid {
    EntityUid::from_type_name_and_id(names.user.clone(), EntityId::new(identity.sub.as_str()))
}

/// The role's uid: `Tollgate::Role::"<arn>"`.
pub(crate) fn role_uid(names: &Names, role: &RoleInfo) -> EntityUid {
    EntityUid::from_type_name_and_id(names.role.clone(), EntityId::new(role.arn.as_str()))
}

/// A `Tollgate::User` with its groups as `Tollgate::Group` parents and its
/// claims as tags.
///
/// INVARIANT: a user's ancestors are exactly its groups: group entities are
/// never created (so have no parents) and users are never anyone's parent.
/// The engine relies on this to slice policies by `principal in Group::"g"`
/// and `principal == User::"u"`.
fn user_entity(names: &Names, identity: &Identity) -> Result<Entity, String> {
    let parents = identity
        .groups
        .iter()
        .map(|g| EntityUid::from_type_name_and_id(names.group.clone(), EntityId::new(g.as_str())));
    let tags = identity.tags.iter().map(|(k, v)| (k.clone(), string(v)));
    Entity::new_with_tags(user_uid(names, identity), [], parents, tags)
        .map_err(|e| format!("user {}: {e}", quote(identity.sub.as_str())))
}

/// A `Tollgate::Role` with its ARN parts as attributes and IAM tags as tags.
fn role_entity(names: &Names, role: &RoleInfo) -> Result<Entity, String> {
    let attrs = [
        ("account".to_owned(), string(role.arn.account())),
        ("name".to_owned(), string(role.arn.name())),
        ("path".to_owned(), string(role.arn.path())),
        (
            "max_session_seconds".to_owned(),
            RestrictedExpression::new_long(i64::from(role.max_session_seconds)),
        ),
    ];
    let tags = role.tags.iter().map(|(k, v)| (k.clone(), string(v)));
    // INVARIANT: roles have no parents, so `resource in Role::"x"` holds only
    // for role x; the engine relies on this to slice policies by role.
    Entity::new_with_tags(role_uid(names, role), attrs, [], tags)
        .map_err(|e| format!("role {}: {e}", quote(role.arn.as_str())))
}

fn context(q: &Query<'_>, names: &Names) -> Result<Context, String> {
    let c = &q.context;
    let when = c.now.to_offset_date_time();
    let mut pairs = Vec::with_capacity(14);
    pairs.push((
        "duration_seconds".to_owned(),
        RestrictedExpression::new_long(i64::from(c.duration_seconds)),
    ));
    pairs.push(("reason".to_owned(), string(c.reason)));
    if let Some(ticket) = c.ticket {
        pairs.push(("ticket".to_owned(), string(ticket)));
    }
    pairs.push((
        "mfa".to_owned(),
        RestrictedExpression::new_bool(q.principal.mfa),
    ));
    if let Some(given) = c.source_ip {
        let addr = IpAddr::from_str(given)
            .map_err(|_| format!("source_ip {} is not an IP address", quote(given)))?;
        pairs.push(("source_ip".to_owned(), ip(addr)));
    }
    pairs.push(("now".to_owned(), datetime(c.now)));
    pairs.push((
        "hour".to_owned(),
        RestrictedExpression::new_long(i64::from(when.hour())),
    ));
    pairs.push(("weekday".to_owned(), string(weekday_name(when.weekday()))));
    pairs.push((
        "approvals_so_far".to_owned(),
        RestrictedExpression::new_long(i64::from(c.approvals_so_far)),
    ));
    if let Some(start) = c.starts_at {
        pairs.push((
            "starts_at".to_owned(),
            RestrictedExpression::new_datetime(start.to_rfc3339()),
        ));
        pairs.push((
            "lead_seconds".to_owned(),
            RestrictedExpression::new_long(start.seconds_since(c.now).max(0)),
        ));
    }
    if let Some(seconds) = c.extension_seconds {
        pairs.push((
            "extension_seconds".to_owned(),
            RestrictedExpression::new_long(i64::from(seconds)),
        ));
    }
    if let Some(requester) = c.requester {
        pairs.push((
            "requester".to_owned(),
            RestrictedExpression::new_entity_uid(user_uid(names, requester)),
        ));
    }
    Context::from_pairs(pairs).map_err(|e| format!("context: {e}"))
}

/// The Cedar request and entities for `q`. With `schema`, both are also
/// checked against it (tests do this; `decide` builds them correct by
/// construction and skips the cost).
pub(crate) fn cedar_inputs(
    q: &Query<'_>,
    names: &Names,
    schema: Option<&Schema>,
) -> Result<(Request, Entities), String> {
    let entities = cedar_entities(q, names, schema)?;
    let request = cedar_request(q, names, cedar_context(q, names)?, schema)?;
    Ok((request, entities))
}

/// The entities of `q`: the principal, the role and the requester. They do
/// not depend on the rest of the context, so probes of one role share them.
pub(crate) fn cedar_entities(
    q: &Query<'_>,
    names: &Names,
    schema: Option<&Schema>,
) -> Result<Entities, String> {
    let mut entities = Vec::with_capacity(3);
    entities.push(user_entity(names, q.principal)?);
    entities.push(role_entity(names, q.role)?);
    if let Some(requester) = q.context.requester {
        // The requester may be the principal (reading or revoking one's own
        // request): one entity, not two that would clash.
        if requester.sub != q.principal.sub {
            entities.push(user_entity(names, requester)?);
        }
    }
    Entities::from_entities(entities, schema).map_err(|e| format!("entities: {e}"))
}

/// The context of `q`. It does not depend on the role, so probes of many
/// roles in the same circumstances share it.
pub(crate) fn cedar_context(q: &Query<'_>, names: &Names) -> Result<Context, String> {
    context(q, names)
}

/// The request of `q` in `context`.
pub(crate) fn cedar_request(
    q: &Query<'_>,
    names: &Names,
    context: Context,
    schema: Option<&Schema>,
) -> Result<Request, String> {
    Request::new(
        user_uid(names, q.principal),
        names.action(q.action).clone(),
        role_uid(names, q.role),
        context,
        schema,
    )
    .map_err(|e| format!("request: {e}"))
}
