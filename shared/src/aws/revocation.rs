//! Revocation: ends a grant's live sessions before their credentials expire,
//! with one inline role policy, [`POLICY_NAME`], that denies everything to
//! the session `aws:userid` `<role id>:tollgate-<request id>`.
//!
//! Each revoked request gets its own statement, whose Sid encodes the request
//! id and the window end (`Revoke<id>Until<unix seconds>`); statements are
//! dropped once their window has passed (the session policy already cuts the
//! credentials off then). IAM allows 10,240 characters of inline policy per
//! role ([`ROLE_POLICY_BUDGET_CHARS`], all inline policies together). When a
//! revocation would not fit:
//! 1. expired statements are pruned (always done first);
//! 2. every revocation is consolidated into one statement listing all the
//!    `aws:userid` values, until the latest window end;
//! 3. if that is still too large, one statement denies `<role id>:tollgate-*`
//!    — every Tollgate session on the role — until the latest window end,
//!    and a warning is logged. This fails safe: it revokes more than asked,
//!    never less. New sessions minted for other grants on the role are denied
//!    too until that time; operators see the warning and may prune by hand.
//!
//! IAM has no conditional write, so after each write the policy is read back
//! and the write is retried if a concurrent writer overwrote it.

use super::accounts::Accounts;
use super::{AwsError, aws_failure, percent_decode};
use crate::domain::{RequestId, RoleArn, RoleInfo, Timestamp};
use aws_sdk_iam::Client;
use aws_sdk_iam::error::SdkError;
use aws_sdk_iam::operation::delete_role_policy::DeleteRolePolicyError;
use aws_sdk_iam::operation::get_role_policy::GetRolePolicyError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The inline role policy that holds revocations.
pub const POLICY_NAME: &str = "TollgateRevocations";
/// IAM's limit on all inline policies of one role, in characters (white
/// space excluded).
pub const ROLE_POLICY_BUDGET_CHARS: usize = 10_240;
/// Sid prefix of the statement that denies every Tollgate session on a role.
pub const FALLBACK_SID_PREFIX: &str = "RevokeAllSessionsUntil";
const CONSOLIDATED_SID_PREFIX: &str = "RevokeManyUntil";
const SID_PREFIX: &str = "Revoke";
const SID_UNTIL: &str = "Until";
const SESSION_PREFIX: &str = ":tollgate-";
const WRITE_ATTEMPTS: usize = 3;

/// How a revocation was written.
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

/// Writes and prunes revocation statements, in each role's account through
/// its control role. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Revoker {
    accounts: Accounts,
    budget: usize,
}

impl Revoker {
    /// A revoker acting through `accounts`, with IAM's per-role budget.
    pub fn new(accounts: Accounts) -> Self {
        Self {
            accounts,
            budget: ROLE_POLICY_BUDGET_CHARS,
        }
    }

    /// The same revoker with another budget (tests of the full-budget path
    /// use a small one; the emulator does not enforce IAM's).
    pub fn with_budget(mut self, budget: usize) -> Self {
        self.budget = budget;
        self
    }

    /// Denies the sessions of request `id` on `role` until `window_end`,
    /// pruning statements whose window passed before `now`.
    #[tracing::instrument(skip_all, fields(request_id = %id, role = %role.arn))]
    pub async fn revoke(
        &self,
        role: &RoleInfo,
        id: RequestId,
        window_end: Timestamp,
        now: Timestamp,
    ) -> Result<RevocationOutcome, AwsError> {
        let iam = &self.accounts.iam_for(&role.arn).await?;
        let role_name = role.arn.name();
        let userid = format!("{}{SESSION_PREFIX}{id}", role.role_id);
        let mut last = RevocationOutcome::Individual;
        for _ in 0..WRITE_ATTEMPTS {
            let others = other_policies_size(iam, role_name).await?;
            let mut state = read(iam, role_name).await?.unwrap_or_default();
            state.prune(now.unix());
            if !state.covers(&userid, window_end.unix()) {
                state.add(userid.clone(), window_end.unix());
            }
            let (doc, outcome) =
                state.render_within(&role.role_id, self.budget.saturating_sub(others));
            if outcome == RevocationOutcome::AllSessions {
                tracing::warn!(
                    role = %role.arn,
                    request_id = %id,
                    "revocation policy budget full: denying every Tollgate session on the role until the latest window end"
                );
            }
            write(iam, role_name, doc).await?;
            last = outcome;
            let written = read(iam, role_name).await?.unwrap_or_default();
            if written.covers(&userid, window_end.unix()) {
                return Ok(outcome);
            }
            tracing::info!("revocation policy changed concurrently; writing again");
        }
        Err(AwsError::Corrupt(format!(
            "revocation of {id} did not persist after {WRITE_ATTEMPTS} attempts ({last:?})"
        )))
    }

    /// Removes revocations whose window ended before `now`; returns how many
    /// session ids (or all-session denials) were removed. Deletes the policy
    /// when nothing is left.
    #[tracing::instrument(skip_all, fields(role = %role))]
    pub async fn prune(&self, role: &RoleArn, now: Timestamp) -> Result<usize, AwsError> {
        let iam = &self.accounts.iam_for(role).await?;
        let Some(mut state) = read(iam, role.name()).await? else {
            return Ok(0);
        };
        let removed = state.prune(now.unix());
        if removed > 0 {
            let role_id = state.role_id_hint().unwrap_or_default();
            let (doc, _) = state.render_within(&role_id, usize::MAX);
            write(iam, role.name(), doc).await?;
        }
        Ok(removed)
    }

    /// The policy document as stored, if any (decoded JSON).
    pub async fn policy_document(&self, role: &RoleArn) -> Result<Option<Value>, AwsError> {
        let iam = self.accounts.iam_for(role).await?;
        get_policy(&iam, role.name(), POLICY_NAME).await
    }
}

async fn read(iam: &Client, role_name: &str) -> Result<Option<Revocations>, AwsError> {
    Ok(get_policy(iam, role_name, POLICY_NAME)
        .await?
        .map(|doc| Revocations::parse(&doc)))
}

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

/// Characters used by the role's other inline policies.
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

async fn write(iam: &Client, role_name: &str, doc: Option<String>) -> Result<(), AwsError> {
    match doc {
        Some(doc) => iam
            .put_role_policy()
            .role_name(role_name)
            .policy_name(POLICY_NAME)
            .policy_document(doc)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_failure("PutRolePolicy", e)),
        None => match iam
            .delete_role_policy()
            .role_name(role_name)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx))
                if matches!(ctx.err(), DeleteRolePolicyError::NoSuchEntityException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_failure("DeleteRolePolicy", e)),
        },
    }
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

    /// Drops revocations whose window ended before `now`; returns how many.
    fn prune(&mut self, now: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, until| *until >= now);
        let mut removed = before - self.entries.len();
        if self.all_sessions.as_ref().is_some_and(|(_, u)| *u < now) {
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

    /// The role id the stored session ids were written for.
    fn role_id_hint(&self) -> Option<String> {
        self.entries
            .keys()
            .next()
            .map(String::as_str)
            .or(self.all_sessions.as_ref().map(|(p, _)| p.as_str()))
            .and_then(|u| u.split_once(SESSION_PREFIX))
            .map(|(role_id, _)| role_id.to_owned())
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
}
