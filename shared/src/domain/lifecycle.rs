//! The request lifecycle as a pure function: given a request, a command, who
//! issues it and when, either the next request and its audit event, or a
//! refusal. Storage persists exactly what this returns, in one transaction.
//!
//! ```text
//! pending --approve (threshold reached)--> active --(window ends)--> expired
//! pending --deny--> denied          active --revoke--> revoked
//! pending --cancel (requester)--> cancelled
//! pending --(not reviewed in pending TTL)--> lapsed
//! create --(auto_approve permits)--> active
//! ```

use super::{
    GrantDuration, Identity, Reason, RequestId, RoleArn, SessionName, SessionPolicy, Ticket,
    Timestamp, UserId,
};
use crate::audit::chain;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// How long a request may wait for review before it lapses: 24 hours.
pub const DEFAULT_PENDING_TTL_SECONDS: u32 = 24 * 3600;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for approvals.
    Pending,
    /// Approved: credentials may be minted until the window ends.
    Active,
    /// Refused by an approver.
    Denied,
    /// Withdrawn by the requester.
    Cancelled,
    /// Ended early by the requester or an approver.
    Revoked,
    /// The window ended.
    Expired,
    /// Nobody reviewed it within the pending TTL.
    Lapsed,
}

impl Status {
    /// Whether no command can move a request out of this state.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Active)
    }

    /// The snake_case name used in the API and storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Lapsed => "lapsed",
        }
    }

    /// Every status, in lifecycle order.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Active,
        Self::Denied,
        Self::Cancelled,
        Self::Revoked,
        Self::Expired,
        Self::Lapsed,
    ];

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did something: a verified user, or Tollgate itself (expiry, lapse).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A user, by token subject.
    User(UserId),
    /// The broker's own scheduled sweep.
    System,
}

impl Actor {
    /// The user, if a user acted.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Self::User(u) => Some(u),
            Self::System => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(u) => f.write_str(u.as_str()),
            Self::System => f.write_str("tollgate"),
        }
    }
}

/// One approval counted toward a request's threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub approver: UserId,
    /// When.
    pub at: Timestamp,
    /// What they said, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Reason>,
}

/// A validated request, before it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// Its id.
    pub id: RequestId,
    /// Who asks, as their token showed at the time.
    pub requester: Identity,
    /// The role asked for.
    pub role_arn: RoleArn,
    /// How long the grant lasts once active.
    pub duration: GrantDuration,
    /// Why.
    pub reason: Reason,
    /// A change or incident reference.
    pub ticket: Option<Ticket>,
    /// A narrowing of the role's permissions.
    pub session_policy: Option<SessionPolicy>,
    /// Distinct approvals needed (from the role's tags).
    pub approvals_required: u8,
    /// How long it may wait for review.
    pub pending_ttl_seconds: u32,
}

/// A request for access and, once approved, its grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Its id.
    pub id: RequestId,
    /// Who asked, as their token showed when they asked (approve policies
    /// read this as the `requester`).
    pub requester: Identity,
    /// The role asked for.
    pub role_arn: RoleArn,
    /// Grant length.
    pub duration: GrantDuration,
    /// Why.
    pub reason: Reason,
    /// Ticket reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
    /// Requested narrowing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<SessionPolicy>,
    /// Current state as stored. Reads use [`AccessRequest::effective_status`].
    pub status: Status,
    /// Bumped by every transition; storage writes are conditional on it.
    pub version: u64,
    /// When it was asked.
    pub created_at: Timestamp,
    /// When it lapses if still pending.
    pub pending_deadline: Timestamp,
    /// When the grant began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<Timestamp>,
    /// When the grant ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<Timestamp>,
    /// Distinct approvals needed.
    pub approvals_required: u8,
    /// Approvals so far.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// sha256 over what was asked; approvers must quote it.
    pub digest: String,
    /// Who ended it (deny, cancel, revoke), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<Actor>,
    /// The deny or revoke reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<Reason>,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// Credentials minted for it so far.
    #[serde(default)]
    pub credentials_issued: u32,
    /// Hash of its latest audit event: the next event chains from it.
    pub chain_head: String,
}

/// What a create was decided over besides the request and the requester's
/// identity (both stored with the request): the policy set version, the
/// role as IAM described it, and where the call came from. Recorded in the
/// `created` event so `tollgate policy diff` can put the same question to
/// another policy set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The policy set version that decided.
    pub policy_version: String,
    /// The role's IAM tags at the time.
    pub role_tags: BTreeMap<String, String>,
    /// The role's maximum session duration at the time, seconds.
    pub role_max_session_seconds: u32,
    /// The caller's address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

/// Something someone asks to happen to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Count an approval; `digest` must match what was asked.
    Approve {
        /// The digest the approver was shown.
        digest: String,
        /// Optional comment.
        comment: Option<Reason>,
        /// Policies that made the approver eligible.
        policies: Vec<String>,
    },
    /// Refuse the request.
    Deny {
        /// Why.
        reason: Reason,
    },
    /// Withdraw it (requester only).
    Cancel,
    /// End an active grant now.
    Revoke {
        /// Why.
        reason: Reason,
    },
    /// Record that credentials are being minted (requester only, in window).
    IssueCredentials {
        /// The STS session name used.
        session_name: SessionName,
        /// When the STS credentials expire.
        expires_at: Timestamp,
    },
    /// Close a grant whose window has ended.
    Expire,
    /// Close a pending request past its deadline.
    Lapse,
}

impl Command {
    /// A short name for logs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Approve { .. } => "approve",
            Self::Deny { .. } => "deny",
            Self::Cancel => "cancel",
            Self::Revoke { .. } => "revoke",
            Self::IssueCredentials { .. } => "issue_credentials",
            Self::Expire => "expire",
            Self::Lapse => "lapse",
        }
    }
}

/// What happened, as recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The request was made.
    Created {
        /// Role asked for.
        role_arn: RoleArn,
        /// Grant length.
        duration_seconds: u32,
        /// Why.
        reason: Reason,
        /// Ticket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<Ticket>,
        /// The request digest.
        digest: String,
        /// Whether policy approved it outright.
        auto_approved: bool,
        /// Policies that permitted it.
        policies: Vec<String>,
        /// When the window ends, if auto-approved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_end: Option<Timestamp>,
        /// What the decision was made over besides the request itself (absent
        /// from events written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decided_over: Option<DecisionRecord>,
    },
    /// An approval was counted.
    Approved {
        /// Comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<Reason>,
        /// Approvals after this one.
        approvals: u8,
        /// Approvals required.
        required: u8,
        /// Policies that made the approver eligible.
        policies: Vec<String>,
        /// When the window ends, if this approval activated the grant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_end: Option<Timestamp>,
    },
    /// An approver refused.
    Denied {
        /// Why.
        reason: Reason,
    },
    /// The requester withdrew.
    Cancelled,
    /// The grant was ended early.
    Revoked {
        /// Why.
        reason: Reason,
    },
    /// Credentials were minted (never the credentials themselves).
    CredentialsIssued {
        /// STS session name.
        session_name: String,
        /// When they expire.
        expires_at: Timestamp,
    },
    /// The window ended.
    Expired,
    /// Nobody reviewed in time.
    Lapsed,
}

impl EventKind {
    /// Whether this event ends an open (pending or active) request.
    pub const fn closes_request(&self) -> bool {
        matches!(
            self,
            Self::Denied { .. }
                | Self::Cancelled
                | Self::Revoked { .. }
                | Self::Expired
                | Self::Lapsed
        )
    }
}

/// One link of a request's hash-chained audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The request it belongs to.
    pub request_id: RequestId,
    /// Position in the chain, from 1; equals the request version it produced.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// The request's status after the event.
    pub status: Status,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
    /// Hash of the previous event ([`chain::GENESIS`] for the first).
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical event)`, hex.
    pub hash: String,
    /// The audit key's signature over `hash`, added by the store just before
    /// the event is written; not part of the hashed content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<EventSignature>,
}

/// An asymmetric KMS signature over an event's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSignature {
    /// The key that signed, as KMS names it (its ARN).
    pub key_id: String,
    /// `ECDSA_SHA_256`: ECDSA on P-256 over sha256 of the 32 hash bytes.
    pub algorithm: String,
    /// The DER-encoded signature, base64.
    pub value: String,
}

/// Why a command was refused. Each maps to a stable API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is not pending (already decided, or lapsed).
    #[error("the request is {0}, not pending")]
    NotPending(Status),
    /// The request has no active grant.
    #[error("the request is {0}, not active")]
    NotActive(Status),
    /// Requesters may not review their own request.
    #[error("you cannot review your own request")]
    SelfReview,
    /// Each approver counts once.
    #[error("you have already approved this request")]
    AlreadyApproved,
    /// The approver was shown something other than what is stored.
    #[error("digest does not match the request; fetch it again and review what is asked")]
    DigestMismatch,
    /// Only the requester may do this.
    #[error("only the requester can do this")]
    NotRequester,
    /// A system command issued by a user, or the other way round.
    #[error("this action is reserved for the broker")]
    NotPermitted,
    /// The request is not yet due for this (expire before the end, lapse before the deadline).
    #[error("the request is not due for this yet")]
    NotDue,
}

impl Refusal {
    /// Stable snake_case code for the API.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotPending(_) => "not_pending",
            Self::NotActive(_) => "not_active",
            Self::SelfReview => "self_review",
            Self::AlreadyApproved => "already_approved",
            Self::DigestMismatch => "digest_mismatch",
            Self::NotRequester => "not_requester",
            Self::NotPermitted => "not_permitted",
            Self::NotDue => "not_due",
        }
    }
}

impl AccessRequest {
    /// Creates a request, active at once when `auto_approved`.
    pub fn create(
        new: NewRequest,
        auto_approved: bool,
        policies: Vec<String>,
        now: Timestamp,
    ) -> (Self, Event) {
        Self::create_recorded(new, auto_approved, policies, None, now)
    }

    /// [`AccessRequest::create`], recording what the decision was made over
    /// in the `created` event.
    pub fn create_recorded(
        new: NewRequest,
        auto_approved: bool,
        policies: Vec<String>,
        decided_over: Option<DecisionRecord>,
        now: Timestamp,
    ) -> (Self, Event) {
        let digest = request_digest(&new);
        let mut req = Self {
            id: new.id,
            requester: new.requester,
            role_arn: new.role_arn,
            duration: new.duration,
            reason: new.reason,
            ticket: new.ticket,
            session_policy: new.session_policy,
            status: Status::Pending,
            version: 1,
            created_at: now,
            pending_deadline: now.plus(i64::from(new.pending_ttl_seconds)),
            window_start: None,
            window_end: None,
            approvals_required: new.approvals_required.max(1),
            approvals: Vec::new(),
            digest: digest.clone(),
            closed_by: None,
            closed_reason: None,
            closed_at: None,
            credentials_issued: 0,
            chain_head: chain::GENESIS.to_owned(),
        };
        if auto_approved {
            req.activate(now);
        }
        let kind = EventKind::Created {
            role_arn: req.role_arn.clone(),
            duration_seconds: req.duration.seconds(),
            reason: req.reason.clone(),
            ticket: req.ticket.clone(),
            digest,
            auto_approved,
            policies,
            window_end: req.window_end,
            decided_over,
        };
        let actor = Actor::User(req.requester.sub.clone());
        let event = req.record(actor, kind, now);
        (req, event)
    }

    /// The status as of `now`: a stored `pending` past its deadline reads as
    /// `lapsed`, a stored `active` past its window as `expired`. TTL deletes
    /// and the sweep are housekeeping; this is what every read enforces.
    pub fn effective_status(&self, now: Timestamp) -> Status {
        match self.status {
            Status::Pending if now >= self.pending_deadline => Status::Lapsed,
            Status::Active if self.window_end.is_none_or(|end| now >= end) => Status::Expired,
            s => s,
        }
    }

    /// Until when a revoked grant's sessions must be denied on the role: its
    /// window end, when it is revoked and credentials were issued for it.
    /// A grant that never had credentials has no session to deny, so it
    /// needs no statement (and cannot fill the role's policy budget).
    pub fn revocation_until(&self) -> Option<Timestamp> {
        if self.status == Status::Revoked && self.credentials_issued > 0 {
            self.window_end
        } else {
            None
        }
    }

    /// The requester's user id.
    pub fn requester_id(&self) -> &UserId {
        &self.requester.sub
    }

    /// Seconds of grant left at `now` (0 when not active).
    pub fn remaining_seconds(&self, now: Timestamp) -> i64 {
        match (self.effective_status(now), self.window_end) {
            (Status::Active, Some(end)) => end.seconds_since(now).max(0),
            _ => 0,
        }
    }

    /// Applies `command` by `actor` at `now`. Pure: the caller persists the
    /// returned request and event together, conditional on `self.version`.
    pub fn apply(
        &self,
        command: Command,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(Self, Event), Refusal> {
        let mut next = self.clone();
        let effective = self.effective_status(now);
        let kind = match command {
            Command::Approve {
                digest,
                comment,
                policies,
            } => {
                let user = self.reviewer(actor, effective)?;
                if self.approvals.iter().any(|a| &a.approver == user) {
                    return Err(Refusal::AlreadyApproved);
                }
                // INVARIANT: approvers approve exactly what was asked; the
                // digest covers every requested field.
                if !constant_time_eq(digest.as_bytes(), self.digest.as_bytes()) {
                    return Err(Refusal::DigestMismatch);
                }
                next.approvals.push(Approval {
                    approver: user.clone(),
                    at: now,
                    comment: comment.clone(),
                });
                let approvals = u8::try_from(next.approvals.len()).unwrap_or(u8::MAX);
                if approvals >= self.approvals_required {
                    next.activate(now);
                }
                EventKind::Approved {
                    comment,
                    approvals,
                    required: self.approvals_required,
                    policies,
                    window_end: next.window_end,
                }
            }
            Command::Deny { reason } => {
                self.reviewer(actor, effective)?;
                next.close(Status::Denied, actor, Some(reason.clone()), now);
                EventKind::Denied { reason }
            }
            Command::Cancel => {
                self.by_requester(actor)?;
                if effective != Status::Pending {
                    return Err(Refusal::NotPending(effective));
                }
                next.close(Status::Cancelled, actor, None, now);
                EventKind::Cancelled
            }
            Command::Revoke { reason } => {
                if actor.user().is_none() {
                    return Err(Refusal::NotPermitted);
                }
                if effective != Status::Active {
                    return Err(Refusal::NotActive(effective));
                }
                next.close(Status::Revoked, actor, Some(reason.clone()), now);
                EventKind::Revoked { reason }
            }
            Command::IssueCredentials {
                session_name,
                expires_at,
            } => {
                self.by_requester(actor)?;
                if effective != Status::Active {
                    return Err(Refusal::NotActive(effective));
                }
                next.credentials_issued = next.credentials_issued.saturating_add(1);
                EventKind::CredentialsIssued {
                    session_name: session_name.as_str().to_owned(),
                    expires_at,
                }
            }
            Command::Expire => {
                if actor.user().is_some() {
                    return Err(Refusal::NotPermitted);
                }
                if self.status != Status::Active {
                    return Err(Refusal::NotActive(self.status));
                }
                if effective != Status::Expired {
                    return Err(Refusal::NotDue);
                }
                next.close(Status::Expired, actor, None, now);
                EventKind::Expired
            }
            Command::Lapse => {
                if actor.user().is_some() {
                    return Err(Refusal::NotPermitted);
                }
                if self.status != Status::Pending {
                    return Err(Refusal::NotPending(self.status));
                }
                if effective != Status::Lapsed {
                    return Err(Refusal::NotDue);
                }
                next.close(Status::Lapsed, actor, None, now);
                EventKind::Lapsed
            }
        };
        next.version = self.version + 1;
        let event = next.record(actor.clone(), kind, now);
        Ok((next, event))
    }

    /// The reviewing user, if `actor` may review now: a user, not the
    /// requester, while the request is pending.
    fn reviewer<'a>(&self, actor: &'a Actor, effective: Status) -> Result<&'a UserId, Refusal> {
        let Some(user) = actor.user() else {
            return Err(Refusal::NotPermitted);
        };
        if effective != Status::Pending {
            return Err(Refusal::NotPending(effective));
        }
        // INVARIANT: nobody reviews their own request, whatever policies say.
        if user == self.requester_id() {
            return Err(Refusal::SelfReview);
        }
        Ok(user)
    }

    fn by_requester(&self, actor: &Actor) -> Result<(), Refusal> {
        match actor.user() {
            Some(user) if user == self.requester_id() => Ok(()),
            _ => Err(Refusal::NotRequester),
        }
    }

    fn activate(&mut self, now: Timestamp) {
        self.status = Status::Active;
        self.window_start = Some(now);
        self.window_end = Some(now.plus(i64::from(self.duration.seconds())));
    }

    fn close(&mut self, status: Status, actor: &Actor, reason: Option<Reason>, now: Timestamp) {
        self.status = status;
        self.closed_by = Some(actor.clone());
        self.closed_reason = reason;
        self.closed_at = Some(now);
    }

    /// Builds the event for the current version, chained from the current
    /// head, and moves the head to it.
    fn record(&mut self, actor: Actor, kind: EventKind, now: Timestamp) -> Event {
        let mut event = Event {
            request_id: self.id,
            seq: self.version,
            at: now,
            actor,
            status: self.status,
            kind,
            prev_hash: self.chain_head.clone(),
            hash: String::new(),
            signature: None,
        };
        event.hash = chain::hash_event(&event);
        self.chain_head = event.hash.clone();
        event
    }
}

/// sha256 over the canonical requested fields, hex. Approvers quote it so
/// that what they approve is exactly what was asked.
fn request_digest(new: &NewRequest) -> String {
    let canonical = serde_json::json!([
        new.id.to_string(),
        new.requester.sub.as_str(),
        new.role_arn.as_str(),
        new.duration.seconds(),
        new.reason.as_str(),
        new.ticket.as_ref().map(Ticket::as_str),
        new.session_policy
            .as_ref()
            .map(SessionPolicy::as_compact_json),
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
