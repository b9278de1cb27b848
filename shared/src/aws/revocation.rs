//! Revocation: ends a grant's live sessions before their credentials expire,
//! with one inline role policy, [`POLICY_NAME`], that denies everything to
//! the session `aws:userid` `<role id>:tollgate-<request id>`.
//!
//! The table is the source of truth. Revoking a grant that had credentials
//! issued writes a role revocation item in the revoke's own transaction
//! ([`Store::transition`]); the statements a role needs are rendered from
//! a strongly consistent Query of the role's revocation items whose window
//! is still open, with the role id read fresh from IAM (`GetRole`, never
//! the cache: a role deleted and recreated under the same name has a new
//! id). IAM has no conditional write, so every write of a role's policy
//! happens under the role's lease in the table ([`Store::acquire_lease`]):
//! the holder queries, renders, writes (`PutRolePolicy`, or
//! `DeleteRolePolicy` when nothing is left), records on the lease item which
//! request ids the policy now covers, and releases. A revoker that finds the
//! lease held waits until the holder's record covers its own grant, or the
//! lease is free again; one render covers every revocation committed before
//! its Query, so many revocations on one role finish in a few renders. A
//! lease whose holder crashed lapses after [`DEFAULT_LEASE`] and is taken
//! over. Pruning is rendering at a later `now`: statements whose window has
//! passed are simply not rendered (the session policy's own deny has cut
//! the credentials off by then).
//!
//! Each revoked request gets its own statement, whose Sid encodes the request
//! id and the window end (`Revoke<id>Until<unix seconds>`). IAM allows 10,240
//! characters of inline policy per role ([`ROLE_POLICY_BUDGET_CHARS`], all
//! inline policies together). When the statements would not fit:
//! 1. every revocation is consolidated into one statement listing all the
//!    `aws:userid` values, until the latest window end;
//! 2. if that is still too large, one statement denies `<role id>:tollgate-*`
//!    — every Tollgate session on the role — until the latest window end,
//!    and a warning is logged. This fails safe: it revokes more than asked,
//!    never less. New sessions minted for other grants on the role are denied
//!    too until that time; operators see the warning and may prune by hand.
//!
//! Statements this module did not write are kept as they are. Statements in
//! Tollgate's own form that the table does not explain (written by a version
//! before the table held revocations, or by another deployment brokering the
//! same role) are kept until their window passes, as is an all-sessions
//! denial: revoke more, never less.
//!
//! Every IAM call goes through the functions at the end of this file, each
//! taking the `aws_sdk_iam::Client` of the role's account, acting through
//! that account's control role ([`super::Accounts::iam_for`]).

use super::dynamodb::{Lease, RoleRevocation, Store, StoreError};
use super::iam::RoleDirectory;
use super::{AwsError, OPERATION_TIMEOUT, aws_failure, percent_decode};
use crate::BrokerError;
use crate::domain::{RequestId, RoleArn, Timestamp};
use aws_sdk_iam::Client;
use aws_sdk_iam::error::SdkError;
use aws_sdk_iam::operation::delete_role_policy::DeleteRolePolicyError;
use aws_sdk_iam::operation::get_role_policy::GetRolePolicyError;
use aws_sdk_iam::operation::put_role_policy::PutRolePolicyError;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The inline role policy that holds revocations.
pub const POLICY_NAME: &str = "TollgateRevocations";
/// IAM's limit on all inline policies of one role, in characters (white
/// space excluded).
pub const ROLE_POLICY_BUDGET_CHARS: usize = 10_240;
/// Sid prefix of the statement that denies every Tollgate session on a role.
pub const FALLBACK_SID_PREFIX: &str = "RevokeAllSessionsUntil";
/// How long a lease on a role's revocation policy lasts unless given back.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(20);
const CONSOLIDATED_SID_PREFIX: &str = "RevokeManyUntil";
const SID_PREFIX: &str = "Revoke";
const SID_UNTIL: &str = "Until";
const SESSION_PREFIX: &str = ":tollgate-";
/// Lease time a holder must have left to start writing: a write that
/// starts with less could land after the lease lapsed and overwrite a newer
/// holder's policy (IAM has no conditional write). The SDK gives up on a
/// call after [`OPERATION_TIMEOUT`].
const WRITE_MARGIN: Duration = OPERATION_TIMEOUT.saturating_add(Duration::from_secs(2));
/// First and longest pause between looks at a held lease.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_millis(800);

/// How a role's revocation statements were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// One statement per revoked request.
    Individual,
    /// All revocations in one statement, until the latest window end.
    Consolidated,
    /// The budget was full: every Tollgate session on the role is denied
    /// until the latest window end.
    AllSessions,
}

/// What one render of a role's revocation policy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Render {
    /// The form the statements took.
    pub outcome: RevocationOutcome,
    /// Whether the policy differed from the table and was written (put or
    /// deleted); false when IAM already held exactly this policy.
    pub written: bool,
    /// Statements dropped because their window had passed.
    pub pruned: usize,
    /// The revoked grants whose sessions the policy now denies.
    pub covered: Vec<RequestId>,
    /// The role no longer exists: nothing was written, no session of it
    /// can act.
    pub role_missing: bool,
}

/// How [`Revoker::confirm`] got a grant's statement in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The render this call made under the lease, when it made one; none
    /// when another holder's render covered the grant.
    pub render: Option<Render>,
    /// Times the lease was found held by someone else and this call waited.
    pub lease_waits: u32,
}

/// What [`Revoker::reconcile`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The policy was rendered from the table (and written if it differed).
    Rendered(Render),
    /// Someone else holds the lease: their render covers what the table
    /// held when they queried it; try again later.
    Busy,
}

/// Why a role's revocation policy could not be brought in line with the table.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// IAM failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// DynamoDB failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The lease lapsed before the write could start or be recorded.
    #[error("the lease on the role's revocation policy lapsed")]
    LeaseLost,
    /// The lease stayed held by someone else, whose render did not cover the
    /// grant, for as long as the caller could wait.
    #[error("the revocation statement was not confirmed within {0:?}")]
    NotConfirmed(Duration),
}

impl From<RevocationError> for BrokerError {
    fn from(e: RevocationError) -> Self {
        match e {
            RevocationError::Aws(e) => e.into(),
            RevocationError::Store(e) => e.into(),
            other @ (RevocationError::LeaseLost | RevocationError::NotConfirmed(_)) => {
                Self::Unavailable {
                    message: "the revocation policy is busy; retry shortly".into(),
                    source: Some(Box::new(other)),
                }
            }
        }
    }
}

/// Renders and writes role revocation policies under the role's lease.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Revoker {
    store: Store,
    roles: RoleDirectory,
    budget: usize,
}

impl Revoker {
    /// A revoker reading revocations and leases from `store`, and role ids
    /// and writing policies in each role's account through `roles`'
    /// accounts (the control role), with IAM's per-role budget.
    pub fn new(store: Store, roles: RoleDirectory) -> Self {
        Self {
            store,
            roles,
            budget: ROLE_POLICY_BUDGET_CHARS,
        }
    }

    /// The same revoker with another budget (tests of the full-budget path
    /// use a small one; the emulator does not enforce IAM's).
    pub fn with_budget(mut self, budget: usize) -> Self {
        self.budget = budget;
        self
    }

    /// The IAM client acting in `role`'s account (through its control role).
    async fn iam(&self, role: &RoleArn) -> Result<Client, AwsError> {
        self.roles.accounts().iam_for(role).await
    }

    /// Makes sure the role's revocation policy denies the sessions of
    /// request `id` (revoked, its role revocation item committed, window
    /// ending at `until`), rendering the policy from the table as of `now`
    /// under the lease when it is free, or waiting for the holder's render
    /// to cover it. Gives up at `deadline` while someone else holds the
    /// lease ([`RevocationError::NotConfirmed`]); the sweep finishes the job
    /// then.
    #[tracing::instrument(skip_all, fields(request_id = %id, role = %role))]
    pub async fn confirm(
        &self,
        role: &RoleArn,
        id: RequestId,
        until: Timestamp,
        now: Timestamp,
        deadline: Instant,
    ) -> Result<Confirmation, RevocationError> {
        let started = Instant::now();
        let owner = lease_owner();
        let mut lease_waits = 0;
        let mut pause = FIRST_PAUSE;
        let mut first = true;
        loop {
            if !first && Instant::now() >= deadline {
                return Err(RevocationError::NotConfirmed(started.elapsed()));
            }
            first = false;
            let look = Instant::now();
            let lease = self.try_lease(role, &owner).await?;
            let mut last_look = look.elapsed();
            match lease {
                Lease::Acquired => match self.render_and_release(role, &owner, now).await {
                    Ok(render) => {
                        if render.covered.contains(&id) || render.role_missing || until <= now {
                            return Ok(Confirmation {
                                render: Some(render),
                                lease_waits,
                            });
                        }
                        return Err(StoreError::Corrupt(format!(
                            "request {id} needs a statement, but neither the table nor the role's policy has one"
                        ))
                        .into());
                    }
                    Err(RevocationError::LeaseLost) => {
                        tracing::info!("the lease lapsed during the render; rendering again");
                    }
                    Err(e) => return Err(e),
                },
                Lease::Held(mut state) => {
                    // Wait with reads (cheaper than failed conditional
                    // writes) until the holder's render covers this grant
                    // or the lease is free again.
                    while !state.covers(id) && state.expires_ms >= epoch_ms() {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(RevocationError::NotConfirmed(started.elapsed()));
                        }
                        lease_waits += 1;
                        // Look no more often than every twice the time a look
                        // takes: on a loaded table, waiters leave most of it
                        // to the holder's render. The last look is at the
                        // deadline.
                        let nap = jittered(pause).max(last_look * 2).min(left);
                        tokio::time::sleep(nap).await;
                        pause = (pause * 2).min(LONGEST_PAUSE);
                        let look = Instant::now();
                        state = self.store.lease(role).await?;
                        last_look = look.elapsed();
                    }
                    if state.covers(id) {
                        return Ok(Confirmation {
                            render: None,
                            lease_waits,
                        });
                    }
                }
            }
        }
    }

    /// Whether the last policy written under the role's lease covers
    /// request `id` (one consistent read of the lease item).
    pub async fn is_confirmed(&self, role: &RoleArn, id: RequestId) -> Result<bool, StoreError> {
        Ok(self.store.lease(role).await?.covers(id))
    }

    /// Renders the role's policy from the table as of `now` and writes it
    /// if it differs, when the lease is free; [`Reconciled::Busy`] when
    /// someone else holds it. The sweep's way in: it fixes a policy a
    /// failed or crashed revocation left behind, and prunes passed windows.
    #[tracing::instrument(skip_all, fields(role = %role))]
    pub async fn reconcile(
        &self,
        role: &RoleArn,
        now: Timestamp,
    ) -> Result<Reconciled, RevocationError> {
        let owner = lease_owner();
        match self.try_lease(role, &owner).await? {
            Lease::Held(_) => Ok(Reconciled::Busy),
            Lease::Acquired => match self.render_and_release(role, &owner, now).await {
                Ok(render) => Ok(Reconciled::Rendered(render)),
                Err(RevocationError::LeaseLost) => Ok(Reconciled::Busy),
                Err(e) => Err(e),
            },
        }
    }

    /// The policy document as stored, if any (decoded JSON).
    pub async fn policy_document(&self, role: &RoleArn) -> Result<Option<Value>, AwsError> {
        get_policy(&self.iam(role).await?, role.name(), POLICY_NAME).await
    }

    async fn try_lease(&self, role: &RoleArn, owner: &str) -> Result<Lease, StoreError> {
        let now = epoch_ms();
        let lease = i64::try_from(DEFAULT_LEASE.as_millis()).unwrap_or(i64::MAX);
        self.store
            .acquire_lease(role, owner, now, now.saturating_add(lease))
            .await
    }

    /// Renders under the lease just acquired, then gives it back, recording
    /// what the policy covers when the render succeeded.
    async fn render_and_release(
        &self,
        role: &RoleArn,
        owner: &str,
        now: Timestamp,
    ) -> Result<Render, RevocationError> {
        let acquired = Instant::now();
        match self.render(role, acquired, now).await {
            Ok((render, role_id)) => {
                let recorded = self
                    .store
                    .release_lease(role, owner, Some((&render.covered, now, &role_id)))
                    .await?;
                if recorded {
                    Ok(render)
                } else {
                    Err(RevocationError::LeaseLost)
                }
            }
            Err(e) => {
                if let Err(release) = self.store.release_lease(role, owner, None).await {
                    tracing::warn!(error = %release, "could not give the lease back; it lapses by itself");
                }
                Err(e)
            }
        }
    }

    /// One render: Query the role's revocations, read the role id and the
    /// current policy, render within the budget, write if different.
    /// Returns the render and the role id used.
    async fn render(
        &self,
        role: &RoleArn,
        acquired: Instant,
        now: Timestamp,
    ) -> Result<(Render, String), RevocationError> {
        // INVARIANT: the Query runs under the lease, before the role id is
        // read, so the policy covers every revocation committed before it.
        let table = self.store.role_revocations(role).await?;
        let iam = &self.iam(role).await?;
        let mut described_again = false;
        loop {
            // The three reads are independent; together they take one
            // round trip.
            let (info, current, others) = tokio::join!(
                self.roles.describe_fresh(role),
                get_policy(iam, role.name(), POLICY_NAME),
                other_policies_size(iam, role.name()),
            );
            let Some(info) = info? else {
                return Ok((
                    Render {
                        outcome: RevocationOutcome::Individual,
                        written: false,
                        pruned: 0,
                        covered: table
                            .iter()
                            .filter(|r| r.until > now)
                            .map(|r| r.id)
                            .collect(),
                        role_missing: true,
                    },
                    String::new(),
                ));
            };
            let (current, others) = (current?, others?);
            let (mut wanted, pruned) = Revocations::from_table(
                current.as_ref().map(Revocations::parse).unwrap_or_default(),
                &table,
                &info.role_id,
                now.unix(),
            );
            let covered = wanted.covered(&table, now.unix());
            let (doc, outcome) =
                wanted.render_within(&info.role_id, self.budget.saturating_sub(others));
            if outcome == RevocationOutcome::AllSessions {
                tracing::warn!(
                    role = %role,
                    "revocation policy budget full: denying every Tollgate session on the role until the latest window end"
                );
            }
            let rendered: Option<Value> = doc
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| {
                    AwsError::Corrupt(format!("rendered revocation policy is not JSON: {e}"))
                })?;
            let render = Render {
                outcome,
                written: rendered != current,
                pruned,
                covered,
                role_missing: false,
            };
            if !render.written {
                return Ok((render, info.role_id));
            }
            if acquired.elapsed() + WRITE_MARGIN > DEFAULT_LEASE {
                return Err(RevocationError::LeaseLost);
            }
            match write_policy(iam, role.name(), doc).await {
                Ok(()) => return Ok((render, info.role_id)),
                // The role was deleted since GetRole (maybe recreated under
                // the same name with a new id): describe it again, once.
                Err(WriteError::NoSuchRole) if !described_again => {
                    tracing::info!(role = %role, "the role vanished before the write; describing it again");
                    described_again = true;
                }
                Err(WriteError::NoSuchRole) => {
                    return Err(AwsError::Corrupt(format!(
                        "role {role} keeps vanishing between GetRole and the policy write"
                    ))
                    .into());
                }
                Err(WriteError::Aws(e)) => return Err(e.into()),
            }
        }
    }
}

/// A random lease owner token.
fn lease_owner() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `pause` scaled by a random factor in [0.5, 1.5), so waiters spread out.
fn jittered(pause: Duration) -> Duration {
    pause.mul_f64(0.5 + rand::random::<f64>())
}

/// Milliseconds since the epoch from the system clock (never the
/// development clock: leases are shared between processes).
fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The revocations a policy document holds.
#[derive(Debug, Default, Clone, PartialEq)]
struct Revocations {
    /// `aws:userid` value → until (unix seconds).
    entries: BTreeMap<String, i64>,
    /// The all-sessions denial: pattern and until.
    all_sessions: Option<(String, i64)>,
    /// Statements this module did not write: kept as they are.
    foreign: Vec<Value>,
}

impl Revocations {
    fn parse(doc: &Value) -> Self {
        let mut out = Self::default();
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        for st in statements {
            if !out.absorb(&st) {
                out.foreign.push(st);
            }
        }
        out
    }

    /// Takes in a statement this module wrote; false for anything else.
    fn absorb(&mut self, st: &Value) -> bool {
        let Some(sid) = st.get("Sid").and_then(Value::as_str) else {
            return false;
        };
        let userids: Vec<String> = match st.pointer("/Condition/StringLike/aws:userid") {
            Some(Value::String(v)) => vec![v.clone()],
            Some(Value::Array(vs)) => vs
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => return false,
        };
        if st.get("Effect").and_then(Value::as_str) != Some("Deny") || userids.is_empty() {
            return false;
        }
        if let Some(until) = sid.strip_prefix(FALLBACK_SID_PREFIX).and_then(parse_unix) {
            let pattern = userids.into_iter().next().unwrap_or_default();
            let until = self
                .all_sessions
                .as_ref()
                .map_or(until, |(_, u)| until.max(*u));
            self.all_sessions = Some((pattern, until));
            return true;
        }
        let until = if let Some(rest) = sid.strip_prefix(CONSOLIDATED_SID_PREFIX) {
            parse_unix(rest)
        } else if let Some(rest) = sid.strip_prefix(SID_PREFIX) {
            rest.split_once(SID_UNTIL).and_then(|(id, u)| {
                let id_ok = RequestId::parse(id).is_ok();
                let one = userids.len() == 1 && userids[0].ends_with(id);
                (id_ok && one).then(|| parse_unix(u)).flatten()
            })
        } else {
            None
        };
        let Some(until) = until else {
            return false;
        };
        if !userids.iter().all(|u| session_id(u).is_some()) {
            return false;
        }
        for u in userids {
            self.add(u, until);
        }
        true
    }

    fn add(&mut self, userid: String, until: i64) {
        let e = self.entries.entry(userid).or_insert(until);
        *e = (*e).max(until);
    }

    /// Whether `userid` is denied until at least `until`.
    #[cfg(test)]
    fn covers(&self, userid: &str, until: i64) -> bool {
        let by_entry = self.entries.get(userid).is_some_and(|u| *u >= until);
        let by_all = self.all_sessions.as_ref().is_some_and(|(pattern, u)| {
            *u >= until
                && pattern
                    .strip_suffix('*')
                    .is_some_and(|prefix| userid.starts_with(prefix))
        });
        by_entry || by_all
    }

    /// What the role's policy should hold as of `now`: this policy's
    /// statements that are not Tollgate's own kept as they are; the table's
    /// open revocations, with `role_id`; and Tollgate-form statements the
    /// table does not explain (an earlier version's, another deployment's,
    /// an all-sessions denial) until their window passes. Returns it with the
    /// number of this policy's statements dropped because their window passed.
    fn from_table(
        current: Self,
        table: &[RoleRevocation],
        role_id: &str,
        now: i64,
    ) -> (Self, usize) {
        let known: HashSet<String> = table.iter().map(|r| r.id.to_string()).collect();
        let passed = current.entries.values().filter(|u| **u <= now).count()
            + usize::from(
                current
                    .all_sessions
                    .as_ref()
                    .is_some_and(|(_, u)| *u <= now),
            );
        let mut wanted = Self {
            entries: BTreeMap::new(),
            all_sessions: current.all_sessions,
            foreign: current.foreign,
        };
        for (userid, until) in current.entries {
            if session_id(&userid).is_some_and(|id| !known.contains(id)) {
                wanted.add(userid, until);
            }
        }
        for r in table {
            wanted.add(format!("{role_id}{SESSION_PREFIX}{}", r.id), r.until.unix());
        }
        wanted.prune(now);
        (wanted, passed)
    }

    /// The revoked grants this rendering denies: the table's whose window
    /// is open after `now`, and those of the statements it carries.
    fn covered(&self, table: &[RoleRevocation], now: i64) -> Vec<RequestId> {
        let mut ids: Vec<RequestId> = table
            .iter()
            .filter(|r| r.until.unix() > now)
            .map(|r| r.id)
            .collect();
        for userid in self.entries.keys() {
            if let Some(id) = session_id(userid).and_then(|id| RequestId::parse(id).ok())
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }

    /// Drops revocations whose window ended at or before `now` (a session
    /// policy's own deny cuts credentials off from the window end on);
    /// returns how many.
    fn prune(&mut self, now: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, until| *until > now);
        let mut removed = before - self.entries.len();
        if self.all_sessions.as_ref().is_some_and(|(_, u)| *u <= now) {
            self.all_sessions = None;
            removed += 1;
        }
        // Entries an all-sessions denial already outlasts add nothing.
        if let Some((pattern, u)) = &self.all_sessions
            && let Some(prefix) = pattern.strip_suffix('*')
        {
            self.entries
                .retain(|id, until| !(id.starts_with(prefix) && *until <= *u));
        }
        removed
    }

    /// The document to write (none when empty) in the first form that fits
    /// `budget` characters: individual, consolidated, then all sessions.
    fn render_within(
        &mut self,
        role_id: &str,
        budget: usize,
    ) -> (Option<String>, RevocationOutcome) {
        let individual = self.render(false);
        if fits(&individual, budget) {
            return (individual, RevocationOutcome::Individual);
        }
        let consolidated = self.render(true);
        if fits(&consolidated, budget) {
            return (consolidated, RevocationOutcome::Consolidated);
        }
        let latest = self
            .entries
            .values()
            .copied()
            .chain(self.all_sessions.iter().map(|(_, u)| *u))
            .max()
            .unwrap_or_default();
        self.all_sessions = Some((format!("{role_id}{SESSION_PREFIX}*"), latest));
        self.entries.clear();
        (self.render(false), RevocationOutcome::AllSessions)
    }

    fn render(&self, consolidate: bool) -> Option<String> {
        let mut statements = self.foreign.clone();
        if let Some((pattern, until)) = &self.all_sessions {
            statements.push(deny(
                &format!("{FALLBACK_SID_PREFIX}{until}"),
                json!(pattern),
            ));
        }
        if consolidate && self.entries.len() > 1 {
            let latest = self.entries.values().copied().max().unwrap_or_default();
            let ids: Vec<&String> = self.entries.keys().collect();
            statements.push(deny(
                &format!("{CONSOLIDATED_SID_PREFIX}{latest}"),
                json!(ids),
            ));
        } else {
            for (userid, until) in &self.entries {
                let id = session_id(userid).unwrap_or_default();
                statements.push(deny(
                    &format!("{SID_PREFIX}{id}{SID_UNTIL}{until}"),
                    json!(userid),
                ));
            }
        }
        if statements.is_empty() {
            return None;
        }
        Some(json!({"Version": "2012-10-17", "Statement": statements}).to_string())
    }
}

fn deny(sid: &str, userids: Value) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringLike": {"aws:userid": userids}},
    })
}

fn fits(doc: &Option<String>, budget: usize) -> bool {
    doc.as_ref().is_none_or(|d| d.len() <= budget)
}

/// The request id in `<role id>:tollgate-<id>`.
fn session_id(userid: &str) -> Option<&str> {
    let (_, id) = userid.split_once(SESSION_PREFIX)?;
    RequestId::parse(id).ok().map(|_| id)
}

fn parse_unix(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Why a policy write failed.
enum WriteError {
    /// The role does not exist (any more).
    NoSuchRole,
    /// Anything else.
    Aws(AwsError),
}

/// An inline policy of a role as stored, if any (decoded JSON).
async fn get_policy(iam: &Client, role_name: &str, name: &str) -> Result<Option<Value>, AwsError> {
    let out = match iam
        .get_role_policy()
        .role_name(role_name)
        .policy_name(name)
        .send()
        .await
    {
        Ok(out) => out,
        Err(SdkError::ServiceError(ctx))
            if matches!(ctx.err(), GetRolePolicyError::NoSuchEntityException(_)) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(aws_failure("GetRolePolicy", e)),
    };
    let raw = out.policy_document();
    let text = if raw.trim_start().starts_with('{') {
        raw.to_owned()
    } else {
        percent_decode(raw)
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| AwsError::Corrupt(format!("inline policy `{name}` is not JSON: {e}")))
}

/// Characters used by the role's inline policies other than [`POLICY_NAME`].
async fn other_policies_size(iam: &Client, role_name: &str) -> Result<usize, AwsError> {
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let out = iam
            .list_role_policies()
            .role_name(role_name)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| aws_failure("ListRolePolicies", e))?;
        names.extend(out.policy_names().iter().cloned());
        match out.marker() {
            Some(m) if out.is_truncated() => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    let mut size = 0;
    for name in names.iter().filter(|n| *n != POLICY_NAME) {
        if let Some(doc) = get_policy(iam, role_name, name).await? {
            size += doc.to_string().len();
        }
    }
    Ok(size)
}

/// Puts [`POLICY_NAME`] on the role, or deletes it when `doc` is none.
async fn write_policy(
    iam: &Client,
    role_name: &str,
    doc: Option<String>,
) -> Result<(), WriteError> {
    match doc {
        Some(doc) => match iam
            .put_role_policy()
            .role_name(role_name)
            .policy_name(POLICY_NAME)
            .policy_document(doc)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx))
                if matches!(ctx.err(), PutRolePolicyError::NoSuchEntityException(_)) =>
            {
                Err(WriteError::NoSuchRole)
            }
            Err(e) => Err(WriteError::Aws(aws_failure("PutRolePolicy", e))),
        },
        None => match iam
            .delete_role_policy()
            .role_name(role_name)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            // Already gone (or the role is): nothing to delete either way.
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx))
                if matches!(ctx.err(), DeleteRolePolicyError::NoSuchEntityException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(WriteError::Aws(aws_failure("DeleteRolePolicy", e))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: i64) -> RequestId {
        RequestId::generate(Timestamp::from_unix(1_800_000_000 + n))
    }

    fn userid(id: RequestId) -> String {
        format!("AROAEXAMPLE{SESSION_PREFIX}{id}")
    }

    #[test]
    fn percent_decoding_restores_the_json() {
        assert_eq!(
            percent_decode("%7B%22a%22%3A%5B%22x%3Atollgate-%2A%22%5D%7D"),
            r#"{"a":["x:tollgate-*"]}"#
        );
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn rendered_statements_parse_back_to_the_same_revocations() {
        let mut r = Revocations::default();
        r.add(userid(id(1)), 100);
        r.add(userid(id(2)), 200);
        r.foreign
            .push(json!({"Sid": "Mine", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}));
        let doc: Value = serde_json::from_str(&r.render(false).unwrap()).unwrap();
        assert_eq!(Revocations::parse(&doc), r);
        let consolidated: Value = serde_json::from_str(&r.render(true).unwrap()).unwrap();
        let back = Revocations::parse(&consolidated);
        assert_eq!(back.entries.len(), 2);
        assert!(back.entries.values().all(|u| *u == 200));
        assert_eq!(back.foreign.len(), 1);
    }

    #[test]
    fn pruning_drops_only_passed_windows() {
        let mut r = Revocations::default();
        r.add(userid(id(1)), 100);
        r.add(userid(id(2)), 300);
        r.all_sessions = Some(("AROAEXAMPLE:tollgate-*".into(), 150));
        assert_eq!(r.prune(200), 2);
        assert_eq!(r.entries.len(), 1);
        assert!(r.all_sessions.is_none());
    }

    #[test]
    fn a_full_budget_falls_back_to_denying_every_session_until_the_latest_end() {
        let mut r = Revocations::default();
        for n in 0..5 {
            r.add(userid(id(n)), 100 + n);
        }
        let individual = r.render(false).unwrap().len();
        let consolidated = r.render(true).unwrap().len();
        assert!(consolidated < individual);
        let (_, outcome) = r.clone().render_within("AROAEXAMPLE", individual);
        assert_eq!(outcome, RevocationOutcome::Individual);
        let (_, outcome) = r.clone().render_within("AROAEXAMPLE", consolidated);
        assert_eq!(outcome, RevocationOutcome::Consolidated);
        let (doc, outcome) = r.render_within("AROAEXAMPLE", 10);
        assert_eq!(outcome, RevocationOutcome::AllSessions);
        let back = Revocations::parse(&serde_json::from_str(&doc.unwrap()).unwrap());
        assert_eq!(
            back.all_sessions,
            Some(("AROAEXAMPLE:tollgate-*".to_owned(), 104))
        );
        assert!(back.covers(&userid(id(9)), 104));
        assert!(!back.covers(&userid(id(9)), 105));
    }

    #[test]
    fn the_table_decides_tollgate_statements_and_unknown_ones_are_carried_until_they_pass() {
        let (known, stale_known, unknown, passed) = (id(1), id(2), id(3), id(4));
        let mut current = Revocations::default();
        // Known to the table, written with the role's old id.
        current.add(format!("AROAOLD{SESSION_PREFIX}{stale_known}"), 500);
        // Unknown to the table (an earlier version's, another deployment's).
        current.add(userid(unknown), 400);
        current.add(userid(passed), 150);
        current.all_sessions = Some(("AROAEXAMPLE:tollgate-*".into(), 300));
        current
            .foreign
            .push(json!({"Sid": "Mine", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}));
        let table = [
            RoleRevocation {
                id: known,
                until: Timestamp::from_unix(600),
            },
            RoleRevocation {
                id: stale_known,
                until: Timestamp::from_unix(500),
            },
        ];
        let (wanted, pruned) = Revocations::from_table(current, &table, "AROANEW", 200);
        assert_eq!(pruned, 1, "the passed unknown entry");
        assert_eq!(
            wanted.entries,
            BTreeMap::from([
                (format!("AROANEW{SESSION_PREFIX}{known}"), 600),
                (format!("AROANEW{SESSION_PREFIX}{stale_known}"), 500),
                (userid(unknown), 400),
            ])
        );
        assert_eq!(
            wanted.all_sessions,
            Some(("AROAEXAMPLE:tollgate-*".into(), 300))
        );
        assert_eq!(wanted.foreign.len(), 1);
        let mut covered = wanted.covered(&table, 200);
        covered.sort();
        let mut expected = vec![known, stale_known, unknown];
        expected.sort();
        assert_eq!(covered, expected);
        // At 500 the statements ending at 400 and 500 and the denial pass.
        let (later, pruned) = Revocations::from_table(wanted, &table, "AROANEW", 500);
        assert_eq!(pruned, 3);
        assert_eq!(
            later.entries,
            BTreeMap::from([(format!("AROANEW{SESSION_PREFIX}{known}"), 600)])
        );
        assert_eq!(later.all_sessions, None);
    }
}
