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
//! create --(break_glass permits)--> active, review pending until reviewed
//! ```
//!
//! Later additions, each a transition with its own event:
//! - a scheduled grant (`starts_at`) is `scheduled` (read from `active`
//!   before its window starts); it lapses unapproved at its start, and gets
//!   no credentials before it (`not_started`);
//! - an extension asked of an active (or scheduled) grant is pending beside
//!   the grant: approvals and denials while the grant is open address it,
//!   with its own digest; approved, it moves the window end;
//! - a break-glass request is active at once and carries a review
//!   (`review_pending`, then `justified` or `unjustified`) that only an
//!   approver records, whatever its status, even after it ended.

use super::{
    GrantDuration, Identity, Reason, RequestId, RoleArn, SessionName, SessionPolicy, Ticket,
    Timestamp, UserId, ValidationError,
};
use crate::audit::chain;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// How long a request may wait for review before it lapses: 24 hours.
pub const DEFAULT_PENDING_TTL_SECONDS: u32 = 24 * 3600;

/// How far ahead a scheduled grant may start: 30 days.
pub const MAX_SCHEDULE_LEAD_SECONDS: i64 = 30 * 86_400;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for approvals.
    Pending,
    /// Approved: credentials may be minted until the window ends.
    Active,
    /// Approved, but its window has not started yet (a scheduled grant).
    /// Never stored: a stored `active` reads as `scheduled` before its start.
    Scheduled,
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
        !matches!(self, Self::Pending | Self::Active | Self::Scheduled)
    }

    /// Whether the grant is approved and not over: active or scheduled.
    pub const fn is_granted(self) -> bool {
        matches!(self, Self::Active | Self::Scheduled)
    }

    /// The snake_case name used in the API and storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Scheduled => "scheduled",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Lapsed => "lapsed",
        }
    }

    /// Every status, in lifecycle order.
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Active,
        Self::Scheduled,
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

/// When a scheduled grant starts: after `now` and at most
/// [`MAX_SCHEDULE_LEAD_SECONDS`] ahead of it, checked when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StartsAt(Timestamp);

impl StartsAt {
    /// Checks `at` against `now`: later than now, at most 30 days ahead.
    pub fn new(at: Timestamp, now: Timestamp) -> Result<Self, ValidationError> {
        if at <= now {
            return Err(ValidationError::new(
                "starts_at",
                format!(
                    "starts_at `{at}` is not in the future (it is {now} now); leave it out to start when approved"
                ),
            ));
        }
        if at.seconds_since(now) > MAX_SCHEDULE_LEAD_SECONDS {
            return Err(ValidationError::new(
                "starts_at",
                format!("starts_at `{at}` is more than 30 days ahead"),
            ));
        }
        Ok(Self(at))
    }

    /// Parses an RFC 3339 time and checks it against `now`.
    pub fn parse(input: &str, now: Timestamp) -> Result<Self, ValidationError> {
        let at = Timestamp::parse_rfc3339(input.trim()).ok_or_else(|| {
            ValidationError::new(
                "starts_at",
                format!(
                    "{} is not an RFC 3339 time like `2026-12-01T09:00:00Z`",
                    super::quote(input)
                ),
            )
        })?;
        Self::new(at, now)
    }

    /// The instant.
    pub const fn at(self) -> Timestamp {
        self.0
    }
}

/// How a new request begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Pending until approvals reach the threshold (from `starts_at`, when
    /// scheduled, or from approval).
    Review(Option<StartsAt>),
    /// Active at once because policy approved it (`auto_approve`); a
    /// scheduled one reads `scheduled` until its start.
    AutoApproved(Option<StartsAt>),
    /// Active at once because policy permits `break_glass`: no approval,
    /// never scheduled, and reviewed afterwards.
    BreakGlass,
}

impl Opening {
    /// The scheduled start, if any.
    pub const fn starts_at(self) -> Option<StartsAt> {
        match self {
            Self::Review(s) | Self::AutoApproved(s) => s,
            Self::BreakGlass => None,
        }
    }
}

/// An extension of a grant, asked by the requester and waiting for
/// approvals. Approvers approve it (or deny it) through the same routes as
/// a request, quoting its own [`Extension::digest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Which extension of this grant it is (1 for the first asked); part of
    /// its digest, so no approval of an earlier one can match it.
    pub number: u32,
    /// Seconds added to the grant once approved.
    pub seconds: u32,
    /// Why.
    pub reason: Reason,
    /// When it was asked.
    pub asked_at: Timestamp,
    /// The whole grant, in seconds, once this is added.
    pub total_seconds: u32,
    /// The longest the whole grant may be (the role's limit when asked);
    /// checked again when the extension is applied.
    pub max_total_seconds: u32,
    /// Distinct approvals needed: the request's own threshold.
    pub approvals_required: u8,
    /// Approvals so far.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// sha256 over the request's digest, the number, the seconds, the reason
    /// and the new total; approvers quote it.
    pub digest: String,
}

/// How a break-glass grant was judged afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// Nobody has reviewed it yet.
    ReviewPending,
    /// An approver found it justified.
    Justified,
    /// An approver found it unjustified.
    Unjustified,
}

impl ReviewState {
    /// The snake_case name used in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReviewPending => "review_pending",
            Self::Justified => "justified",
            Self::Unjustified => "unjustified",
        }
    }
}

/// The outcome an approver records for a break-glass grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// The emergency access was warranted.
    Justified,
    /// It was not.
    Unjustified,
}

impl ReviewOutcome {
    /// Parses `justified` or `unjustified`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "justified" => Some(Self::Justified),
            "unjustified" => Some(Self::Unjustified),
            _ => None,
        }
    }

    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Justified => "justified",
            Self::Unjustified => "unjustified",
        }
    }
}

/// The after-the-fact review of a break-glass grant. It composes with the
/// request's status: the status follows the grant (active, then expired or
/// revoked), while `review` stays `review_pending` until an approver
/// records an outcome, whatever the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    /// Where the review stands.
    pub review: ReviewState,
    /// Who reviewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<UserId>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<Timestamp>,
    /// What the reviewer said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Reason>,
}

/// What credentials are minted for: the CLI and SDKs, or a console sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialUse {
    /// `POST /requests/{id}/credentials`.
    Api,
    /// `POST /requests/{id}/console`: exchanged for a console sign-in URL.
    Console,
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
    /// Credentials minted for it so far (console sign-ins included).
    #[serde(default)]
    pub credentials_issued: u32,
    /// Hash of its latest audit event: the next event chains from it.
    pub chain_head: String,
    /// When a scheduled grant starts (absent: when approved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// Seconds added to the grant by approved extensions (the window is
    /// `duration + extended_seconds` long).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extended_seconds: u32,
    /// Extensions asked so far (numbers them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extensions_asked: u32,
    /// The extension waiting for approvals, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_extension: Option<Extension>,
    /// Present on a break-glass request: its review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlass>,
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
const fn is_zero(n: &u32) -> bool {
    *n == 0
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
    /// Record that credentials are being minted for a console sign-in
    /// (requester only, in window): the same rules, its own event.
    IssueConsole {
        /// The STS session name used.
        session_name: SessionName,
        /// When the STS credentials (and the console session) expire.
        expires_at: Timestamp,
    },
    /// Ask to lengthen an active or scheduled grant (requester only). A new
    /// extension replaces one still waiting for approvals.
    Extend {
        /// What to add.
        by: GrantDuration,
        /// Why.
        reason: Reason,
        /// The longest the whole grant may be: the role's limit (its
        /// `tollgate:max-duration` tag or the ceiling, the lesser).
        max_total_seconds: u32,
        /// Whether policy approves it outright (`auto_approve`).
        auto_approved: bool,
        /// Policies that permitted it.
        policies: Vec<String>,
    },
    /// Record the after-the-fact review of a break-glass grant (a user
    /// other than the requester, once).
    Review {
        /// Justified or not.
        outcome: ReviewOutcome,
        /// What the reviewer says.
        comment: Reason,
        /// Policies that permitted the reviewer.
        policies: Vec<String>,
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
            Self::IssueConsole { .. } => "issue_console",
            Self::Extend { .. } => "extend",
            Self::Review { .. } => "review",
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
        /// When a scheduled grant starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts_at: Option<Timestamp>,
        /// Whether it is a break-glass grant (active without approval).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        break_glass: bool,
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
    /// Credentials were minted for a console sign-in (never the
    /// credentials or the sign-in URL).
    ConsoleIssued {
        /// STS session name.
        session_name: String,
        /// When they, and the console session, expire.
        expires_at: Timestamp,
    },
    /// The requester asked to extend the grant.
    ExtensionRequested {
        /// Which extension.
        number: u32,
        /// Seconds asked for.
        seconds: u32,
        /// Why.
        reason: Reason,
        /// The extension's digest, which approvers quote.
        digest: String,
        /// The whole grant with it, seconds.
        total_seconds: u32,
        /// Whether policy approved it outright.
        auto_approved: bool,
        /// Policies that permitted it.
        policies: Vec<String>,
        /// The pending extension it replaces, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<u32>,
        /// The window end before, when this applied it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_window_end: Option<Timestamp>,
        /// The window end after, when this applied it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_end: Option<Timestamp>,
    },
    /// An approval of the pending extension was counted.
    ExtensionApproved {
        /// Which extension.
        number: u32,
        /// Comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<Reason>,
        /// Approvals after this one.
        approvals: u8,
        /// Approvals required.
        required: u8,
        /// Policies that made the approver eligible.
        policies: Vec<String>,
        /// The window end before, when this approval applied the extension.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_window_end: Option<Timestamp>,
        /// The window end after, when this approval applied the extension.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_end: Option<Timestamp>,
    },
    /// An approver refused the pending extension; the grant is unchanged.
    ExtensionDenied {
        /// Which extension.
        number: u32,
        /// Why.
        reason: Reason,
    },
    /// An approver reviewed a break-glass grant.
    Reviewed {
        /// Justified or not.
        outcome: ReviewOutcome,
        /// What they said.
        comment: Reason,
        /// Policies that permitted the reviewer.
        policies: Vec<String>,
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
    /// A scheduled grant before its start: no credentials yet.
    #[error("the grant starts at {0}; no credentials before then")]
    NotStarted(Timestamp),
    /// An extension would make the grant longer than the role allows.
    #[error("with this extension the grant would last {total}, over the {max} the role allows")]
    ExtensionTooLong {
        /// The whole grant with the extension.
        total: GrantLength,
        /// The longest allowed.
        max: GrantLength,
    },
    /// Only break-glass grants are reviewed.
    #[error("only break-glass grants are reviewed")]
    NotBreakGlass,
    /// The break-glass grant has its review already.
    #[error("this break-glass grant was already reviewed")]
    AlreadyReviewed,
}

/// A length in seconds, shown as `2h30m` in refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantLength(pub u64);

impl fmt::Display for GrantLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::format_seconds(self.0))
    }
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
            Self::NotStarted(_) => "not_started",
            Self::ExtensionTooLong { .. } => "extension_too_long",
            Self::NotBreakGlass => "not_break_glass",
            Self::AlreadyReviewed => "already_reviewed",
        }
    }
}

/// What approvers are asked to decide on a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderReview<'a> {
    /// The request itself, while it is pending.
    Request,
    /// The extension waiting beside an active or scheduled grant.
    Extension(&'a Extension),
}

impl UnderReview<'_> {
    /// `request` or `extension`, as the API names what is under review.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Extension(_) => "extension",
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
        let opening = if auto_approved {
            Opening::AutoApproved(None)
        } else {
            Opening::Review(None)
        };
        Self::open_recorded(new, opening, policies, decided_over, now)
    }

    /// Creates a request that begins as `opening` says: pending (lapsing at
    /// its start when scheduled, else after the pending TTL), auto-approved,
    /// or break-glass (active at once, review pending).
    pub fn open(
        new: NewRequest,
        opening: Opening,
        policies: Vec<String>,
        now: Timestamp,
    ) -> (Self, Event) {
        Self::open_recorded(new, opening, policies, None, now)
    }

    /// [`AccessRequest::open`], recording what the decision was made over
    /// in the `created` event.
    pub fn open_recorded(
        new: NewRequest,
        opening: Opening,
        policies: Vec<String>,
        decided_over: Option<DecisionRecord>,
        now: Timestamp,
    ) -> (Self, Event) {
        let starts_at = opening.starts_at().map(StartsAt::at);
        let break_glass = opening == Opening::BreakGlass;
        let digest = request_digest(&new, starts_at, break_glass);
        let pending_deadline = match starts_at {
            // INVARIANT: an unapproved scheduled request lapses at its
            // start, so a grant never begins later than it was asked to.
            Some(start) => start,
            None => now.plus(i64::from(new.pending_ttl_seconds)),
        };
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
            pending_deadline,
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
            starts_at,
            extended_seconds: 0,
            extensions_asked: 0,
            pending_extension: None,
            break_glass: break_glass.then_some(BreakGlass {
                review: ReviewState::ReviewPending,
                reviewed_by: None,
                reviewed_at: None,
                comment: None,
            }),
        };
        let auto_approved = matches!(opening, Opening::AutoApproved(_));
        if auto_approved || break_glass {
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
            starts_at,
            break_glass,
            decided_over,
        };
        let actor = Actor::User(req.requester.sub.clone());
        let event = req.record(actor, kind, now);
        (req, event)
    }

    /// The status as of `now`: a stored `pending` past its deadline reads as
    /// `lapsed`, a stored `active` past its window as `expired` and before
    /// its window as `scheduled`. TTL deletes and the sweep are
    /// housekeeping; this is what every read enforces.
    pub fn effective_status(&self, now: Timestamp) -> Status {
        match self.status {
            Status::Pending if now >= self.pending_deadline => Status::Lapsed,
            Status::Active if self.window_end.is_none_or(|end| now >= end) => Status::Expired,
            Status::Active if self.window_start.is_some_and(|start| now < start) => {
                Status::Scheduled
            }
            s => s,
        }
    }

    /// What approvers decide on now: the pending request, the extension
    /// waiting beside an open grant, or nothing.
    pub fn under_review(&self, now: Timestamp) -> Option<UnderReview<'_>> {
        match self.effective_status(now) {
            Status::Pending => Some(UnderReview::Request),
            s if s.is_granted() => self.pending_extension.as_ref().map(UnderReview::Extension),
            _ => None,
        }
    }

    /// The digest an approval must quote now: the request's while it is
    /// pending, the pending extension's while the grant is open.
    pub fn review_digest(&self, now: Timestamp) -> Option<&str> {
        match self.under_review(now)? {
            UnderReview::Request => Some(&self.digest),
            UnderReview::Extension(ext) => Some(&ext.digest),
        }
    }

    /// Checks a digest an approver quotes (on deny, where it is optional)
    /// against what is under review now.
    pub fn check_review_digest(&self, digest: &str, now: Timestamp) -> Result<(), Refusal> {
        match self.review_digest(now) {
            Some(d) if constant_time_eq(digest.as_bytes(), d.as_bytes()) => Ok(()),
            Some(_) => Err(Refusal::DigestMismatch),
            None => Err(Refusal::NotPending(self.effective_status(now))),
        }
    }

    /// Seconds the grant lasts in all: the duration asked for plus approved
    /// extensions.
    pub fn total_seconds(&self) -> u32 {
        self.duration
            .seconds()
            .saturating_add(self.extended_seconds)
    }

    /// When the window would end without extensions (the request item's
    /// retention counts from it, so no event outlives its request's item).
    pub fn original_window_end(&self) -> Option<Timestamp> {
        self.window_start
            .map(|start| start.plus(i64::from(self.duration.seconds())))
    }

    /// Whether a break-glass grant still waits for its review.
    pub fn awaits_break_glass_review(&self) -> bool {
        self.break_glass
            .as_ref()
            .is_some_and(|b| b.review == ReviewState::ReviewPending)
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
                let (user, subject) = self.reviewer(actor, now)?;
                let approval = Approval {
                    approver: user.clone(),
                    at: now,
                    comment: comment.clone(),
                };
                match subject {
                    UnderReview::Request => {
                        if self.approvals.iter().any(|a| &a.approver == user) {
                            return Err(Refusal::AlreadyApproved);
                        }
                        // INVARIANT: approvers approve exactly what was
                        // asked; the digest covers every requested field.
                        if !constant_time_eq(digest.as_bytes(), self.digest.as_bytes()) {
                            return Err(Refusal::DigestMismatch);
                        }
                        next.approvals.push(approval);
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
                    UnderReview::Extension(ext) => {
                        if ext.approvals.iter().any(|a| &a.approver == user) {
                            return Err(Refusal::AlreadyApproved);
                        }
                        // INVARIANT: an approval of an extension quotes the
                        // extension's own digest, never the request's.
                        if !constant_time_eq(digest.as_bytes(), ext.digest.as_bytes()) {
                            return Err(Refusal::DigestMismatch);
                        }
                        let mut ext = ext.clone();
                        ext.approvals.push(approval);
                        let approvals = u8::try_from(ext.approvals.len()).unwrap_or(u8::MAX);
                        let (previous_window_end, window_end) =
                            if approvals >= ext.approvals_required {
                                next.pending_extension = None;
                                let before = next.window_end;
                                next.lengthen(&ext)?;
                                (before, next.window_end)
                            } else {
                                next.pending_extension = Some(ext.clone());
                                (None, None)
                            };
                        EventKind::ExtensionApproved {
                            number: ext.number,
                            comment,
                            approvals,
                            required: ext.approvals_required,
                            policies,
                            previous_window_end,
                            window_end,
                        }
                    }
                }
            }
            Command::Deny { reason } => match self.reviewer(actor, now)?.1 {
                UnderReview::Request => {
                    next.close(Status::Denied, actor, Some(reason.clone()), now);
                    EventKind::Denied { reason }
                }
                // INVARIANT: denying an extension leaves the grant as it was.
                UnderReview::Extension(ext) => {
                    next.pending_extension = None;
                    EventKind::ExtensionDenied {
                        number: ext.number,
                        reason,
                    }
                }
            },
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
                if !effective.is_granted() {
                    return Err(Refusal::NotActive(effective));
                }
                next.close(Status::Revoked, actor, Some(reason.clone()), now);
                EventKind::Revoked { reason }
            }
            Command::IssueCredentials {
                session_name,
                expires_at,
            } => {
                self.may_issue(actor, now)?;
                next.credentials_issued = next.credentials_issued.saturating_add(1);
                EventKind::CredentialsIssued {
                    session_name: session_name.as_str().to_owned(),
                    expires_at,
                }
            }
            Command::IssueConsole {
                session_name,
                expires_at,
            } => {
                self.may_issue(actor, now)?;
                next.credentials_issued = next.credentials_issued.saturating_add(1);
                EventKind::ConsoleIssued {
                    session_name: session_name.as_str().to_owned(),
                    expires_at,
                }
            }
            Command::Extend {
                by,
                reason,
                max_total_seconds,
                auto_approved,
                policies,
            } => {
                self.by_requester(actor)?;
                if !effective.is_granted() {
                    return Err(Refusal::NotActive(effective));
                }
                let seconds = by.seconds();
                let total = u64::from(self.total_seconds()) + u64::from(seconds);
                // INVARIANT: no extension makes a grant longer than the
                // role's limit, counted over the whole grant.
                let Some(total_seconds) = u32::try_from(total)
                    .ok()
                    .filter(|t| *t <= max_total_seconds)
                else {
                    return Err(Refusal::ExtensionTooLong {
                        total: GrantLength(total),
                        max: GrantLength(u64::from(max_total_seconds)),
                    });
                };
                let number = self.extensions_asked.saturating_add(1);
                let digest = extension_digest(self, number, seconds, &reason, total_seconds);
                let ext = Extension {
                    number,
                    seconds,
                    reason: reason.clone(),
                    asked_at: now,
                    total_seconds,
                    max_total_seconds,
                    approvals_required: self.approvals_required,
                    approvals: Vec::new(),
                    digest: digest.clone(),
                };
                next.extensions_asked = number;
                let replaces = self.pending_extension.as_ref().map(|p| p.number);
                next.pending_extension = None;
                let (previous_window_end, window_end) = if auto_approved {
                    let before = next.window_end;
                    next.lengthen(&ext)?;
                    (before, next.window_end)
                } else {
                    next.pending_extension = Some(ext);
                    (None, None)
                };
                EventKind::ExtensionRequested {
                    number,
                    seconds,
                    reason,
                    digest,
                    total_seconds,
                    auto_approved,
                    policies,
                    replaces,
                    previous_window_end,
                    window_end,
                }
            }
            Command::Review {
                outcome,
                comment,
                policies,
            } => {
                let Some(user) = actor.user() else {
                    return Err(Refusal::NotPermitted);
                };
                let Some(review) = &self.break_glass else {
                    return Err(Refusal::NotBreakGlass);
                };
                // INVARIANT: nobody reviews their own break-glass grant.
                if user == self.requester_id() {
                    return Err(Refusal::SelfReview);
                }
                if review.review != ReviewState::ReviewPending {
                    return Err(Refusal::AlreadyReviewed);
                }
                next.break_glass = Some(BreakGlass {
                    review: match outcome {
                        ReviewOutcome::Justified => ReviewState::Justified,
                        ReviewOutcome::Unjustified => ReviewState::Unjustified,
                    },
                    reviewed_by: Some(user.clone()),
                    reviewed_at: Some(now),
                    comment: Some(comment.clone()),
                });
                EventKind::Reviewed {
                    outcome,
                    comment,
                    policies,
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

    /// The reviewing user and what they review, if `actor` may review now: a
    /// user, not the requester, while something is under review.
    fn reviewer<'a>(
        &self,
        actor: &'a Actor,
        now: Timestamp,
    ) -> Result<(&'a UserId, UnderReview<'_>), Refusal> {
        let Some(user) = actor.user() else {
            return Err(Refusal::NotPermitted);
        };
        let Some(subject) = self.under_review(now) else {
            return Err(Refusal::NotPending(self.effective_status(now)));
        };
        // INVARIANT: nobody reviews their own request (or extension),
        // whatever policies say.
        if user == self.requester_id() {
            return Err(Refusal::SelfReview);
        }
        Ok((user, subject))
    }

    fn by_requester(&self, actor: &Actor) -> Result<(), Refusal> {
        match actor.user() {
            Some(user) if user == self.requester_id() => Ok(()),
            _ => Err(Refusal::NotRequester),
        }
    }

    /// Whether `actor` may have credentials minted now: the requester,
    /// inside the window.
    fn may_issue(&self, actor: &Actor, now: Timestamp) -> Result<(), Refusal> {
        self.by_requester(actor)?;
        // INVARIANT: no credentials outside the window, before it or after.
        match self.effective_status(now) {
            Status::Active => Ok(()),
            Status::Scheduled => Err(Refusal::NotStarted(self.window_start.unwrap_or(now))),
            other => Err(Refusal::NotActive(other)),
        }
    }

    /// Starts the window now, or at the scheduled start when that is later.
    fn activate(&mut self, now: Timestamp) {
        let start = self.starts_at.filter(|s| *s > now).unwrap_or(now);
        self.status = Status::Active;
        self.window_start = Some(start);
        self.window_end = Some(start.plus(i64::from(self.total_seconds())));
    }

    /// Adds an approved extension to the window.
    fn lengthen(&mut self, ext: &Extension) -> Result<(), Refusal> {
        let total = u64::from(self.total_seconds()) + u64::from(ext.seconds);
        if total > u64::from(ext.max_total_seconds) {
            return Err(Refusal::ExtensionTooLong {
                total: GrantLength(total),
                max: GrantLength(u64::from(ext.max_total_seconds)),
            });
        }
        self.extended_seconds = self.extended_seconds.saturating_add(ext.seconds);
        self.window_end = self
            .window_start
            .map(|start| start.plus(i64::from(self.total_seconds())));
        Ok(())
    }

    fn close(&mut self, status: Status, actor: &Actor, reason: Option<Reason>, now: Timestamp) {
        self.status = status;
        self.closed_by = Some(actor.clone());
        self.closed_reason = reason;
        self.closed_at = Some(now);
        self.pending_extension = None;
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
/// that what they approve is exactly what was asked. A schedule and the
/// break-glass mark are appended only when present, so the digest of a
/// request without them is what it always was.
fn request_digest(new: &NewRequest, starts_at: Option<Timestamp>, break_glass: bool) -> String {
    let mut canonical = vec![
        serde_json::json!(new.id.to_string()),
        serde_json::json!(new.requester.sub.as_str()),
        serde_json::json!(new.role_arn.as_str()),
        serde_json::json!(new.duration.seconds()),
        serde_json::json!(new.reason.as_str()),
        serde_json::json!(new.ticket.as_ref().map(Ticket::as_str)),
        serde_json::json!(
            new.session_policy
                .as_ref()
                .map(SessionPolicy::as_compact_json)
        ),
    ];
    if let Some(start) = starts_at {
        canonical.push(serde_json::json!({ "starts_at": start.to_rfc3339() }));
    }
    if break_glass {
        canonical.push(serde_json::json!({ "break_glass": true }));
    }
    hex::encode(Sha256::digest(
        serde_json::Value::Array(canonical).to_string().as_bytes(),
    ))
}

/// sha256 over what an extension asks, bound to the request's own digest
/// and the extension's number, hex.
fn extension_digest(
    req: &AccessRequest,
    number: u32,
    seconds: u32,
    reason: &Reason,
    total_seconds: u32,
) -> String {
    let canonical = serde_json::json!([
        "extension",
        req.digest,
        number,
        seconds,
        reason.as_str(),
        total_seconds,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
