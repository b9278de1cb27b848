//! Revocation policies against the local emulator through the real SDK: the
//! table as the source of truth (role revocation items written with the
//! revoke), renders under the per-role lease, budget handling, foreign
//! statements, lease takeover, races between revocations and a prune, and
//! the sweep's revocation and edge paths, asserted on its report. Each test
//! makes its own table and roles; one emulator serves the whole binary.

// Helpers outside #[test] functions unwrap too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tollgate::api::auth::Authenticator;
use tollgate::api::clock::Clock;
use tollgate::api::settings::Settings;
use tollgate::api::sweep::{SweepLimits, sweep, sweep_requests, sweep_with};
use tollgate::api::{AppState, RouteSet, StateOptions};
use tollgate::audit::{AuditLog, Capture};
use tollgate::aws::testing::{
    Clients, Emulator, local_config, new_request, sdk_config_for, unique_name,
};
use tollgate::aws::{
    FALLBACK_SID_PREFIX, LOCAL_PRODUCTION_ACCOUNT, Lease, POLICY_NAME, PageRequest, Reconciled,
    RevocationError, RevocationOutcome, Revoker, RoleDirectory, Store, StoreError, create_role,
    create_table, schema,
};
use tollgate::domain::{
    AccessRequest, Actor, Command, Reason, RequestId, RoleInfo, SessionName, Timestamp, UserId,
};

const RETENTION: i64 = schema::DEFAULT_RETENTION_SECONDS;

struct Fixture {
    c: Clients,
    /// IAM in the local production account, where these tests make roles.
    prod: aws_sdk_iam::Client,
    store: Store,
    table: String,
    roles: RoleDirectory,
}

async fn fixture() -> Fixture {
    let c = Emulator::shared().unwrap().clients().await;
    let table = unique_name("revocation");
    assert!(create_table(&c.dynamodb, &table).await.unwrap());
    let store = c.store(&table, RETENTION).await.unwrap();
    let roles = RoleDirectory::new(c.accounts(), Duration::from_secs(60));
    let prod = c.iam_in(LOCAL_PRODUCTION_ACCOUNT).await.unwrap();
    c.calls.clear();
    Fixture {
        c,
        prod,
        store,
        table,
        roles,
    }
}

impl Fixture {
    fn revoker(&self) -> Revoker {
        Revoker::new(self.store.clone(), self.roles.clone())
    }

    async fn role(&self) -> RoleInfo {
        let arn = create_role(&self.prod, "/tollgate/", &unique_name("Role"), 3600, &[])
            .await
            .unwrap();
        let info = self.roles.describe_fresh(&arn).await.unwrap().unwrap();
        self.c.calls.clear();
        info
    }

    /// An auto-approved grant created at `at` for `seconds`, stored.
    async fn grant(&self, role: &RoleInfo, seconds: u32, at: Timestamp) -> AccessRequest {
        let mut new = new_request(&role.arn, "alice", seconds, 1).unwrap();
        new.id = RequestId::generate(at);
        let (req, ev) = AccessRequest::create(new, true, vec!["auto".into()], at);
        self.store.create(&req, &ev, None).await.unwrap();
        req
    }

    /// `req` with one credential issue recorded at `at`.
    async fn issue(&self, req: &AccessRequest, at: Timestamp) -> AccessRequest {
        let (next, ev) = req
            .apply(
                Command::IssueCredentials {
                    session_name: SessionName::for_request(req.id),
                    expires_at: at.plus(900),
                },
                &alice(),
                at,
            )
            .unwrap();
        self.store
            .transition(req.version, &next, &ev)
            .await
            .unwrap();
        next
    }

    /// `req` revoked at `at`.
    async fn revoke(
        &self,
        req: &AccessRequest,
        at: Timestamp,
    ) -> Result<AccessRequest, StoreError> {
        let (next, ev) = req
            .apply(
                Command::Revoke {
                    reason: Reason::parse("done").unwrap(),
                },
                &alice(),
                at,
            )
            .unwrap();
        self.store.transition(req.version, &next, &ev).await?;
        Ok(next)
    }

    /// A grant with credentials issued, revoked at `at`, window `seconds`.
    async fn revoked(&self, role: &RoleInfo, seconds: u32, at: Timestamp) -> AccessRequest {
        let req = self.grant(role, seconds, at).await;
        let issued = self.issue(&req, at).await;
        self.revoke(&issued, at).await.unwrap()
    }

    async fn document(&self, role: &RoleInfo) -> Option<Value> {
        self.revoker().policy_document(&role.arn).await.unwrap()
    }

    /// A sweep-only state over this fixture's table on the shared emulator.
    async fn sweeper(&self) -> AppState {
        let sdk = sdk_config_for(Emulator::shared().unwrap().endpoint()).await;
        self.state(&sdk, self.revoker()).0
    }

    /// A sweep-only state over this fixture's table, its audit lines captured.
    fn state(&self, sdk: &aws_config::SdkConfig, revoker: Revoker) -> (AppState, Capture) {
        let (audit, capture) = AuditLog::capture();
        let mut state = AppState::build(
            sdk,
            StateOptions {
                config: local_config(&self.table),
                routes: RouteSet::Expiry,
                auth: Authenticator::Nobody,
                settings: Settings::default(),
                clock: Clock::system(),
                audit,
            },
        )
        .unwrap();
        state.revoker = Some(revoker);
        (state, capture)
    }
}

/// A deadline no test reaches unless something hangs.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn alice() -> Actor {
    Actor::User(UserId::parse("alice").unwrap())
}

fn statements(doc: &Value) -> Vec<Value> {
    doc["Statement"].as_array().cloned().unwrap_or_default()
}

fn deny(sid: String, userids: Value) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringLike": {"aws:userid": userids}},
    })
}

fn individual(role: &RoleInfo, req: &AccessRequest) -> Value {
    let until = req.window_end.unwrap().unix();
    deny(
        format!("Revoke{}Until{until}", req.id),
        json!(format!("{}:tollgate-{}", role.role_id, req.id)),
    )
}

/// Parliament (`scripts/iam-lint`) finds nothing in `document`.
fn assert_lints_clean(name: &str, document: Value) {
    let doc = tollgate::aws::testing::IamDocument {
        name: name.to_owned(),
        trust_of: None,
        document,
    };
    assert_eq!(tollgate::aws::testing::iam_lint(&[doc]).unwrap(), vec![]);
}

fn policy(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[tokio::test]
async fn a_revocation_is_rendered_from_the_table_under_the_lease_and_pruned_later() {
    let f = fixture().await;
    let role = f.role().await;
    let revoker = f.revoker();
    let now = Timestamp::now();
    let a = f.revoked(&role, 3600, now).await;
    assert_eq!(
        f.store.role_revocations(&role.arn).await.unwrap(),
        [tollgate::aws::RoleRevocation {
            id: a.id,
            until: a.window_end.unwrap()
        }]
    );
    f.c.calls.clear();

    let done = revoker
        .confirm(&role.arn, a.id, a.window_end.unwrap(), now, soon())
        .await
        .unwrap();
    assert_eq!(done.lease_waits, 0);
    let render = done.render.unwrap();
    assert_eq!(render.outcome, RevocationOutcome::Individual);
    assert!(render.written);
    assert_eq!(render.covered, [a.id]);
    // Lease, Query, then the role and its policies read at once, the
    // write, and the release with what the policy covers.
    let calls = f.c.calls.take();
    assert_eq!(calls.len(), 7, "{calls:?}");
    assert_eq!(calls[..2], ["UpdateItem", "Query"]);
    let mut reads = calls[2..5].to_vec();
    reads.sort();
    assert_eq!(reads, ["GetRole", "GetRolePolicy", "ListRolePolicies"]);
    assert_eq!(calls[5..], ["PutRolePolicy", "UpdateItem"]);
    assert_eq!(
        f.document(&role).await.unwrap(),
        policy(vec![individual(&role, &a)])
    );
    assert!(revoker.is_confirmed(&role.arn, a.id).await.unwrap());

    // A second grant, ending sooner; the statements are sorted by session id.
    let b = f.revoked(&role, 100, now).await;
    assert!(!revoker.is_confirmed(&role.arn, b.id).await.unwrap());
    revoker
        .confirm(&role.arn, b.id, b.window_end.unwrap(), now, soon())
        .await
        .unwrap();
    let mut both = vec![individual(&role, &a), individual(&role, &b)];
    both.sort_by_key(|s| s["Condition"]["StringLike"]["aws:userid"].to_string());
    let individual_form = f.document(&role).await.unwrap();
    assert_eq!(individual_form, policy(both));
    assert_lints_clean(
        "revocation policy, one statement per grant",
        individual_form,
    );

    // Nothing changed: the policy is read and compared, not written.
    f.c.calls.clear();
    let Reconciled::Rendered(render) = revoker.reconcile(&role.arn, now).await.unwrap() else {
        panic!("the lease is free")
    };
    assert!(!render.written);
    assert!(!f.c.calls.take().contains(&"PutRolePolicy".to_owned()));

    // Pruning is rendering at a later time.
    let Reconciled::Rendered(render) = revoker.reconcile(&role.arn, now.plus(300)).await.unwrap()
    else {
        panic!("the lease is free")
    };
    assert_eq!((render.pruned, render.written), (1, true));
    assert_eq!(render.covered, [a.id]);
    assert_eq!(
        f.document(&role).await.unwrap(),
        policy(vec![individual(&role, &a)])
    );
    let Reconciled::Rendered(render) = revoker.reconcile(&role.arn, now.plus(4000)).await.unwrap()
    else {
        panic!("the lease is free")
    };
    assert_eq!((render.pruned, render.written), (1, true));
    assert_eq!(f.document(&role).await, None);
    let Reconciled::Rendered(render) = revoker.reconcile(&role.arn, now.plus(4000)).await.unwrap()
    else {
        panic!("the lease is free")
    };
    assert_eq!((render.pruned, render.written), (0, false));
}

#[tokio::test]
async fn a_grant_without_credentials_needs_no_statement_but_one_issued_before_the_revoke_commits_does()
 {
    let f = fixture().await;
    let role = f.role().await;
    let now = Timestamp::now();

    // Never used: revoked without a role revocation item, and never due.
    let unused = f.grant(&role, 3600, now).await;
    let unused = f.revoke(&unused, now).await.unwrap();
    assert_eq!(unused.revocation_until(), None);
    assert!(
        f.store
            .role_revocations(&role.arn)
            .await
            .unwrap()
            .is_empty()
    );
    let due = f
        .store
        .list_due(now.plus(7200), PageRequest::first(100))
        .await
        .unwrap();
    assert!(due.items.iter().all(|r| r.id != unused.id));

    // Read with no credentials; a credential is issued before the revoke
    // commits: the revoke written from the stale read fails, and the one
    // from the fresh read carries the item.
    let stale = f.grant(&role, 3600, now).await;
    let issued = f.issue(&stale, now).await;
    assert!(matches!(
        f.revoke(&stale, now).await.unwrap_err(),
        StoreError::Conflict
    ));
    assert!(
        f.store
            .role_revocations(&role.arn)
            .await
            .unwrap()
            .is_empty()
    );
    let fresh = f.store.get(stale.id).await.unwrap().unwrap();
    assert_eq!(fresh, issued);
    let revoked = f.revoke(&fresh, now).await.unwrap();
    assert_eq!(revoked.revocation_until(), revoked.window_end);
    let items = f.store.role_revocations(&role.arn).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, revoked.id);
    // Due at once, so that the sweep confirms its statement.
    let due = f
        .store
        .list_due(now, PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(
        due.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        [revoked.id]
    );
}

#[tokio::test]
async fn concurrent_revocations_and_prunes_on_one_role_lose_no_statement() {
    let f = fixture().await;
    let role = f.role().await;
    let revoker = f.revoker();
    let now = Timestamp::now();
    // Three grants revoked an hour ago whose windows have passed, with their
    // statements still on the role.
    let earlier = now.plus(-3600);
    let mut old = Vec::new();
    for _ in 0..3 {
        let r = f.revoked(&role, 900, earlier).await;
        revoker
            .confirm(&role.arn, r.id, r.window_end.unwrap(), earlier, soon())
            .await
            .unwrap();
        old.push(r);
    }
    assert_eq!(statements(&f.document(&role).await.unwrap()).len(), 3);

    // Twelve revocations at once, racing three prunes.
    let mut fresh = Vec::new();
    for _ in 0..12 {
        fresh.push(f.revoked(&role, 3600, now).await);
    }
    let mut tasks = Vec::new();
    for r in &fresh {
        let revoker = revoker.clone();
        let (arn, id, until) = (role.arn.clone(), r.id, r.window_end.unwrap());
        tasks.push(tokio::spawn(async move {
            revoker
                .confirm(&arn, id, until, now, soon())
                .await
                .map(|_| ())
        }));
    }
    let mut prunes = Vec::new();
    for _ in 0..3 {
        let revoker = revoker.clone();
        let arn = role.arn.clone();
        prunes.push(tokio::spawn(async move {
            revoker.reconcile(&arn, now).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for t in prunes {
        t.await.unwrap().unwrap();
    }
    let doc = f.document(&role).await.unwrap();
    let denied: HashSet<String> = statements(&doc)
        .iter()
        .map(|s| {
            s["Condition"]["StringLike"]["aws:userid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: HashSet<String> = fresh
        .iter()
        .map(|r| format!("{}:tollgate-{}", role.role_id, r.id))
        .collect();
    assert_eq!(
        denied, expected,
        "every new revocation in, every passed one out"
    );
}

#[tokio::test]
async fn a_lease_held_by_a_crashed_writer_is_taken_over_after_it_expires() {
    let f = fixture().await;
    let role = f.role().await;
    let now = Timestamp::now();
    let r = f.revoked(&role, 3600, now).await;
    let until = r.window_end.unwrap();
    let epoch_ms = || {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    };

    // A writer took the lease for a minute and crashed: a revocation that
    // may wait one second gives up, and the sweep's render finds it busy.
    let t = epoch_ms();
    assert_eq!(
        f.store
            .acquire_lease(&role.arn, "crashed-writer", t, t + 60_000)
            .await
            .unwrap(),
        Lease::Acquired
    );
    let impatient = f.revoker();
    let err = impatient
        .confirm(
            &role.arn,
            r.id,
            until,
            now,
            Instant::now() + Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RevocationError::NotConfirmed(_)), "{err:?}");
    assert_eq!(
        impatient.reconcile(&role.arn, now).await.unwrap(),
        Reconciled::Busy
    );
    assert_eq!(f.document(&role).await, None);

    // Another crashed writer whose lease lapses in two seconds: the
    // revocation waits, takes the lease over and writes the statement.
    let other = f.role().await;
    let r2 = f.revoked(&other, 3600, now).await;
    let t = epoch_ms();
    f.store
        .acquire_lease(&other.arn, "crashed-writer", t, t + 2_000)
        .await
        .unwrap();
    let started = Instant::now();
    let done = f
        .revoker()
        .confirm(&other.arn, r2.id, r2.window_end.unwrap(), now, soon())
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert!(done.lease_waits > 0);
    assert!(done.render.is_some(), "this revocation took the lease over");
    assert_eq!(
        f.document(&other).await.unwrap(),
        policy(vec![individual(&other, &r2)])
    );
}

#[tokio::test]
async fn a_full_policy_budget_consolidates_then_denies_every_tollgate_session() {
    let f = fixture().await;
    let role = f.role().await;
    let revoker = f.revoker().with_budget(700);
    let now = Timestamp::now();
    let mut outcomes = Vec::new();
    let mut latest = now;
    let mut revoked = Vec::new();
    let mut consolidated_doc = None;
    for i in 0..12 {
        let r = f.revoked(&role, 1000 + i, now).await;
        latest = r.window_end.unwrap();
        let done = revoker
            .confirm(&role.arn, r.id, latest, now, soon())
            .await
            .unwrap();
        revoked.push(r);
        let outcome = done.render.unwrap().outcome;
        outcomes.push(outcome);
        if outcome == RevocationOutcome::Consolidated && consolidated_doc.is_none() {
            consolidated_doc = f.document(&role).await;
        }
        if outcome == RevocationOutcome::AllSessions {
            break;
        }
    }
    assert_eq!(outcomes[0], RevocationOutcome::Individual);
    let consolidated_at = outcomes
        .iter()
        .position(|o| *o == RevocationOutcome::Consolidated)
        .expect("a consolidated render before the fallback");
    assert_eq!(outcomes.last(), Some(&RevocationOutcome::AllSessions));

    // The consolidated form: one statement, every session, the latest end.
    let first: Vec<&AccessRequest> = revoked[..=consolidated_at].iter().collect();
    let mut ids: Vec<String> = first
        .iter()
        .map(|r| format!("{}:tollgate-{}", role.role_id, r.id))
        .collect();
    ids.sort();
    let consolidated_policy = policy(vec![deny(
        format!(
            "RevokeManyUntil{}",
            first.last().unwrap().window_end.unwrap().unix()
        ),
        json!(ids),
    )]);
    assert_eq!(consolidated_doc, Some(consolidated_policy.clone()));
    assert_lints_clean("revocation policy, consolidated", consolidated_policy);

    let doc = f.document(&role).await.unwrap();
    assert_eq!(
        doc,
        policy(vec![deny(
            format!("{FALLBACK_SID_PREFIX}{}", latest.unix()),
            json!(format!("{}:tollgate-*", role.role_id)),
        )])
    );
    assert_lints_clean("revocation policy, every session", doc.clone());

    // A revocation the all-sessions denial already covers changes nothing.
    let covered = f.revoked(&role, 60, now).await;
    let done = revoker
        .confirm(
            &role.arn,
            covered.id,
            covered.window_end.unwrap(),
            now,
            soon(),
        )
        .await
        .unwrap();
    assert!(!done.render.unwrap().written);
    assert_eq!(f.document(&role).await.unwrap(), doc);
    // Once the latest window has passed, rendering removes it.
    let Reconciled::Rendered(render) = revoker.reconcile(&role.arn, latest.plus(1)).await.unwrap()
    else {
        panic!("the lease is free")
    };
    assert!(render.written);
    assert_eq!(f.document(&role).await, None);
}

#[tokio::test]
async fn other_inline_policies_count_against_the_budget_and_foreign_statements_stay() {
    let f = fixture().await;
    let crowded = f.role().await;
    let other = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Team", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::team-bucket/*"}]}).to_string();
    f.prod
        .put_role_policy()
        .role_name(crowded.arn.name())
        .policy_name("TeamAccess")
        .policy_document(&other)
        .send()
        .await
        .unwrap();
    let now = Timestamp::now();
    let r = f.revoked(&crowded, 600, now).await;
    let single = policy(vec![individual(&crowded, &r)]).to_string().len();
    // A budget that fits the statement alone but not beside the other policy.
    let revoker = f.revoker().with_budget(single + other.len() - 1);
    let done = revoker
        .confirm(&crowded.arn, r.id, r.window_end.unwrap(), now, soon())
        .await
        .unwrap();
    assert_eq!(done.render.unwrap().outcome, RevocationOutcome::AllSessions);
    let team = f
        .prod
        .get_role_policy()
        .role_name(crowded.arn.name())
        .policy_name("TeamAccess")
        .send()
        .await;
    assert!(team.is_ok(), "the other policy is untouched");

    // A statement someone added by hand to the revocation policy is kept,
    // and so is a Tollgate-form statement the table does not know (written
    // before the table held revocations, or by another deployment) until
    // its window passes.
    let hand = f.role().await;
    let manual = json!({"Sid": "Manual", "Effect": "Deny", "Action": "iam:*", "Resource": "*"});
    let unknown_id = RequestId::generate(now);
    let unknown = deny(
        format!("Revoke{unknown_id}Until{}", now.plus(300).unix()),
        json!(format!("{}:tollgate-{unknown_id}", hand.role_id)),
    );
    f.prod
        .put_role_policy()
        .role_name(hand.arn.name())
        .policy_name(POLICY_NAME)
        .policy_document(policy(vec![manual.clone(), unknown.clone()]).to_string())
        .send()
        .await
        .unwrap();
    let r = f.revoked(&hand, 600, now).await;
    let revoker = f.revoker();
    revoker
        .confirm(&hand.arn, r.id, r.window_end.unwrap(), now, soon())
        .await
        .unwrap();
    let mut tollgate = vec![unknown, individual(&hand, &r)];
    tollgate.sort_by_key(|s| s["Condition"]["StringLike"]["aws:userid"].to_string());
    let mut expected = vec![manual.clone()];
    expected.extend(tollgate);
    assert_eq!(f.document(&hand).await.unwrap(), policy(expected));
    revoker.reconcile(&hand.arn, now.plus(301)).await.unwrap();
    assert_eq!(
        f.document(&hand).await.unwrap(),
        policy(vec![manual.clone(), individual(&hand, &r)])
    );
    revoker.reconcile(&hand.arn, now.plus(601)).await.unwrap();
    assert_eq!(f.document(&hand).await.unwrap(), policy(vec![manual]));
}

#[tokio::test]
async fn a_role_recreated_under_the_same_name_is_denied_by_its_current_id() {
    let f = fixture().await;
    let role = f.role().await;
    let now = Timestamp::now();
    let r = f.revoked(&role, 3600, now).await;
    // Cached with its first id; then deleted and created again.
    assert_eq!(
        f.roles.describe(&role.arn).await.unwrap().unwrap().role_id,
        role.role_id
    );
    f.prod
        .delete_role()
        .role_name(role.arn.name())
        .send()
        .await
        .unwrap();
    create_role(&f.prod, "/tollgate/", role.arn.name(), 3600, &[])
        .await
        .unwrap();
    let current = f
        .prod
        .get_role()
        .role_name(role.arn.name())
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .role_id()
        .to_owned();
    assert_ne!(current, role.role_id);
    f.revoker()
        .confirm(&role.arn, r.id, r.window_end.unwrap(), now, soon())
        .await
        .unwrap();
    let doc = f.document(&role).await.unwrap();
    assert_eq!(
        statements(&doc)[0]["Condition"]["StringLike"]["aws:userid"],
        json!(format!("{current}:tollgate-{}", r.id))
    );
    // The cache was refreshed on the way.
    assert_eq!(
        f.roles.describe(&role.arn).await.unwrap().unwrap().role_id,
        current
    );
}

#[tokio::test]
async fn the_sweep_confirms_a_revocation_then_prunes_it_and_a_failed_prune_keeps_it_due() {
    let f = fixture().await;
    let state = f.sweeper().await;
    let role = f.role().await;
    let now = Timestamp::now();
    // Revoked, but the revoking process died before writing the statement.
    let r = f.revoked(&role, 3600, now).await;
    let report = sweep(&state, now).await.unwrap();
    assert_eq!(
        (
            report.policies_written,
            report.confirmed,
            report.cleared,
            report.failed
        ),
        (1, 1, 0, 0),
        "{report:?}"
    );
    assert_eq!(
        f.document(&role).await.unwrap(),
        policy(vec![individual(&role, &r)])
    );
    // Now due at its window end; nothing to do before.
    assert_eq!(sweep(&state, now).await.unwrap(), Default::default());

    // After the window, with IAM unreachable: the prune fails, the request
    // stays due, and RevocationFailures is counted.
    let later = r.window_end.unwrap().plus(60);
    let dead = sdk_config_for("http://127.0.0.1:9").await;
    let broken = Revoker::new(
        f.store.clone(),
        RoleDirectory::new(Clients::new(&dead).accounts(), Duration::ZERO),
    );
    let sdk = sdk_config_for(Emulator::shared().unwrap().endpoint()).await;
    let (failing, capture) = f.state(&sdk, broken);
    let report = sweep(&failing, later).await.unwrap();
    assert_eq!(
        (report.failed, report.pruned_statements, report.cleared),
        (1, 0, 0),
        "{report:?}"
    );
    let due = f
        .store
        .list_due(later, PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(due.items.iter().map(|q| q.id).collect::<Vec<_>>(), [r.id]);
    let failures: Vec<Value> = capture
        .json()
        .into_iter()
        .filter(|l| l.get("RevocationFailures").is_some())
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["Operation"], "sweep");
    assert_eq!(failures[0]["RevocationFailures"], 1);
    assert!(f.document(&role).await.is_some());

    // IAM back: the next run prunes and clears it.
    let report = sweep(&state, later).await.unwrap();
    assert_eq!(
        (
            report.pruned_statements,
            report.policies_written,
            report.cleared,
            report.failed
        ),
        (1, 1, 1, 0),
        "{report:?}"
    );
    assert_eq!(f.document(&role).await, None);
    assert!(
        f.store
            .list_due(later, PageRequest::first(100))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn the_sweep_stops_at_its_batch_limit_and_says_more_remain() {
    let f = fixture().await;
    let state = f.sweeper().await;
    let role = f.role().await;
    let long_ago = Timestamp::now().plus(-3 * 86_400);
    for i in 0..5 {
        let mut new = new_request(&role.arn, "alice", 900, 1).unwrap();
        new.id = RequestId::generate(long_ago.plus(i));
        let (req, ev) = AccessRequest::create(new, false, vec![], long_ago.plus(i));
        f.store.create(&req, &ev, None).await.unwrap();
    }
    let limits = SweepLimits {
        batch: 2,
        max_items: 3,
    };
    let now = Timestamp::now();
    // Two pages of two are read before the limit of three is reached.
    let first = sweep_with(&state, now, limits).await.unwrap();
    assert_eq!((first.lapsed, first.more), (4, true), "{first:?}");
    let second = sweep_with(&state, now, limits).await.unwrap();
    assert_eq!((second.lapsed, second.more), (1, false), "{second:?}");
    let third = sweep_with(&state, now, limits).await.unwrap();
    assert_eq!(third, Default::default());
}

#[tokio::test]
async fn the_sweep_skips_requests_someone_else_changed_since_they_were_listed() {
    let f = fixture().await;
    let state = f.sweeper().await;
    let role = f.role().await;
    let now = Timestamp::now();
    let long_ago = now.plus(-3 * 86_400);
    // A grant whose window has passed and a request past its deadline,
    // listed due by one run; another run handles both meanwhile.
    let ended = f.grant(&role, 900, now.plus(-7200)).await;
    let mut new = new_request(&role.arn, "bob", 900, 1).unwrap();
    new.id = RequestId::generate(long_ago);
    let (stale_pending, ev) = AccessRequest::create(new, false, vec![], long_ago);
    f.store.create(&stale_pending, &ev, None).await.unwrap();
    let listed = f
        .store
        .list_due(now, PageRequest::first(100))
        .await
        .unwrap()
        .items;
    let mut ids: Vec<RequestId> = listed.iter().map(|r| r.id).collect();
    ids.sort();
    let mut want = vec![ended.id, stale_pending.id];
    want.sort();
    assert_eq!(ids, want);
    let other = sweep(&state, now).await.unwrap();
    assert_eq!((other.expired, other.lapsed), (1, 1), "{other:?}");

    // The first run goes on with what it listed: both transitions conflict.
    let report = sweep_requests(&state, &listed, now).await;
    assert_eq!(
        report,
        tollgate::api::sweep::SweepReport {
            skipped: 2,
            ..Default::default()
        }
    );
    for id in want {
        let stored = f.store.get(id).await.unwrap().unwrap();
        assert_eq!(stored.version, 2, "one transition each, by the other run");
    }
}
