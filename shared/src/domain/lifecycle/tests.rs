//! Lifecycle tests: every transition, every refusal, and properties over
//! random command sequences.

use super::*;
use crate::audit::chain;
use crate::domain::DEFAULT_MAX_DURATION_SECONDS;
use proptest::prelude::*;

const T0: i64 = 1_800_000_000;

fn user(name: &str) -> Actor {
    Actor::User(UserId::parse(name).unwrap())
}

fn new_request(required: u8) -> NewRequest {
    NewRequest {
        id: RequestId::generate(Timestamp::from_unix(T0)),
        requester: Identity {
            sub: UserId::parse("alice").unwrap(),
            groups: vec!["developers".into()],
            tags: Default::default(),
            mfa: false,
        },
        role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/Prod").unwrap(),
        duration: GrantDuration::new(3600, DEFAULT_MAX_DURATION_SECONDS).unwrap(),
        reason: Reason::parse("fix INC-1").unwrap(),
        ticket: Some(Ticket::parse("INC-1").unwrap()),
        session_policy: None,
        approvals_required: required,
        pending_ttl_seconds: DEFAULT_PENDING_TTL_SECONDS,
    }
}

fn pending(required: u8) -> (AccessRequest, Event) {
    AccessRequest::create(
        new_request(required),
        false,
        vec!["p1".into()],
        Timestamp::from_unix(T0),
    )
}

fn approve(req: &AccessRequest) -> Command {
    Command::Approve {
        digest: req.digest.clone(),
        comment: None,
        policies: vec![],
    }
}

fn reason(s: &str) -> Reason {
    Reason::parse(s).unwrap()
}

fn at(offset: i64) -> Timestamp {
    Timestamp::from_unix(T0 + offset)
}

#[test]
fn create_pending_starts_at_version_one_with_a_genesis_event() {
    let (req, ev) = pending(1);
    assert_eq!(req.status, Status::Pending);
    assert_eq!(req.version, 1);
    assert_eq!(ev.seq, 1);
    assert_eq!(ev.prev_hash, chain::GENESIS);
    assert_eq!(req.chain_head, ev.hash);
    assert_eq!(
        req.pending_deadline,
        at(i64::from(DEFAULT_PENDING_TTL_SECONDS))
    );
    assert!(req.window_start.is_none());
    assert_eq!(req.digest.len(), 64);
}

#[test]
fn auto_approved_request_is_active_with_window_from_creation() {
    let (req, ev) = AccessRequest::create(new_request(1), true, vec![], at(0));
    assert_eq!(req.status, Status::Active);
    assert_eq!(req.window_start, Some(at(0)));
    assert_eq!(req.window_end, Some(at(3600)));
    assert!(matches!(
        ev.kind,
        EventKind::Created {
            auto_approved: true,
            window_end: Some(_),
            ..
        }
    ));
}

#[test]
fn single_approval_activates_and_window_starts_at_approval() {
    let (req, _) = pending(1);
    let (next, ev) = req.apply(approve(&req), &user("bob"), at(600)).unwrap();
    assert_eq!(next.status, Status::Active);
    assert_eq!(next.version, 2);
    assert_eq!(next.window_start, Some(at(600)));
    assert_eq!(next.window_end, Some(at(4200)));
    assert_eq!(ev.seq, 2);
    assert_eq!(ev.prev_hash, req.chain_head);
    assert!(matches!(
        ev.kind,
        EventKind::Approved {
            approvals: 1,
            required: 1,
            ..
        }
    ));
}

#[test]
fn two_approver_role_needs_two_distinct_approvers() {
    let (req, _) = pending(2);
    let (one, _) = req.apply(approve(&req), &user("bob"), at(10)).unwrap();
    assert_eq!(one.status, Status::Pending);
    assert_eq!(one.approvals.len(), 1);
    assert_eq!(
        one.apply(approve(&one), &user("bob"), at(20)).unwrap_err(),
        Refusal::AlreadyApproved
    );
    let (two, _) = one.apply(approve(&one), &user("carol"), at(30)).unwrap();
    assert_eq!(two.status, Status::Active);
    assert_eq!(two.window_start, Some(at(30)));
    assert_eq!(two.version, 3);
}

#[test]
fn approver_cannot_approve_own_request() {
    let (req, _) = pending(1);
    assert_eq!(
        req.apply(approve(&req), &user("alice"), at(1)).unwrap_err(),
        Refusal::SelfReview
    );
    let deny = Command::Deny {
        reason: reason("no"),
    };
    assert_eq!(
        req.apply(deny, &user("alice"), at(1)).unwrap_err(),
        Refusal::SelfReview
    );
}

#[test]
fn approve_with_wrong_digest_is_refused() {
    let (req, _) = pending(1);
    let cmd = Command::Approve {
        digest: "0".repeat(64),
        comment: None,
        policies: vec![],
    };
    assert_eq!(
        req.apply(cmd, &user("bob"), at(1)).unwrap_err(),
        Refusal::DigestMismatch
    );
    let short = Command::Approve {
        digest: "abc".into(),
        comment: None,
        policies: vec![],
    };
    assert_eq!(
        req.apply(short, &user("bob"), at(1)).unwrap_err(),
        Refusal::DigestMismatch
    );
}

#[test]
fn digest_covers_every_requested_field() {
    let base = new_request(1);
    let digest = |n: NewRequest| AccessRequest::create(n, false, vec![], at(0)).0.digest;
    let d0 = digest(base.clone());
    let mut changed = vec![];
    let mut n = base.clone();
    n.reason = reason("other");
    changed.push(n);
    let mut n = base.clone();
    n.ticket = None;
    changed.push(n);
    let mut n = base.clone();
    n.duration = GrantDuration::new(7200, DEFAULT_MAX_DURATION_SECONDS).unwrap();
    changed.push(n);
    let mut n = base.clone();
    n.role_arn = RoleArn::parse("arn:aws:iam::123456789012:role/Other").unwrap();
    changed.push(n);
    let mut n = base.clone();
    n.session_policy = Some(SessionPolicy::parse(&serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})).unwrap());
    changed.push(n);
    for n in changed {
        assert_ne!(digest(n), d0);
    }
    assert_eq!(digest(base), d0);
}

#[test]
fn deny_closes_with_reason_and_reviewer() {
    let (req, _) = pending(1);
    let (next, ev) = req
        .apply(
            Command::Deny {
                reason: reason("not now"),
            },
            &user("bob"),
            at(5),
        )
        .unwrap();
    assert_eq!(next.status, Status::Denied);
    assert_eq!(next.closed_by, Some(user("bob")));
    assert_eq!(next.closed_reason, Some(reason("not now")));
    assert_eq!(next.closed_at, Some(at(5)));
    assert!(matches!(ev.kind, EventKind::Denied { .. }));
}

#[test]
fn only_the_requester_cancels_and_only_while_pending() {
    let (req, _) = pending(1);
    assert_eq!(
        req.apply(Command::Cancel, &user("bob"), at(1)).unwrap_err(),
        Refusal::NotRequester
    );
    let (cancelled, _) = req.apply(Command::Cancel, &user("alice"), at(1)).unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    let (active, _) = req.apply(approve(&req), &user("bob"), at(1)).unwrap();
    assert_eq!(
        active
            .apply(Command::Cancel, &user("alice"), at(2))
            .unwrap_err(),
        Refusal::NotPending(Status::Active)
    );
}

#[test]
fn revoke_ends_an_active_grant_only() {
    let (req, _) = pending(1);
    let revoke = || Command::Revoke {
        reason: reason("done"),
    };
    assert_eq!(
        req.apply(revoke(), &user("alice"), at(1)).unwrap_err(),
        Refusal::NotActive(Status::Pending)
    );
    let (active, _) = req.apply(approve(&req), &user("bob"), at(1)).unwrap();
    let (revoked, ev) = active.apply(revoke(), &user("alice"), at(100)).unwrap();
    assert_eq!(revoked.status, Status::Revoked);
    assert!(matches!(ev.kind, EventKind::Revoked { .. }));
    assert_eq!(
        active.apply(revoke(), &Actor::System, at(100)).unwrap_err(),
        Refusal::NotPermitted
    );
    assert_eq!(
        active
            .apply(revoke(), &user("alice"), at(3601))
            .unwrap_err(),
        Refusal::NotActive(Status::Expired)
    );
}

#[test]
fn credentials_only_for_the_requester_inside_the_window() {
    let (req, _) = pending(1);
    let issue = |r: &AccessRequest| Command::IssueCredentials {
        session_name: SessionName::for_request(r.id),
        expires_at: at(1000),
    };
    assert_eq!(
        req.apply(issue(&req), &user("alice"), at(1)).unwrap_err(),
        Refusal::NotActive(Status::Pending)
    );
    let (active, _) = req.apply(approve(&req), &user("bob"), at(0)).unwrap();
    assert_eq!(
        active
            .apply(issue(&active), &user("bob"), at(1))
            .unwrap_err(),
        Refusal::NotRequester
    );
    let (issued, ev) = active.apply(issue(&active), &user("alice"), at(1)).unwrap();
    assert_eq!(issued.credentials_issued, 1);
    assert_eq!(issued.status, Status::Active);
    assert!(matches!(ev.kind, EventKind::CredentialsIssued { .. }));
    assert_eq!(
        active
            .apply(issue(&active), &user("alice"), at(3599))
            .map(|r| r.0.status),
        Ok(Status::Active)
    );
    assert_eq!(
        active
            .apply(issue(&active), &user("alice"), at(3600))
            .unwrap_err(),
        Refusal::NotActive(Status::Expired)
    );
}

#[test]
fn expiry_is_for_the_system_after_the_window() {
    let (req, _) = pending(1);
    let (active, _) = req.apply(approve(&req), &user("bob"), at(0)).unwrap();
    assert_eq!(
        active
            .apply(Command::Expire, &Actor::System, at(3599))
            .unwrap_err(),
        Refusal::NotDue
    );
    assert_eq!(
        active
            .apply(Command::Expire, &user("bob"), at(3600))
            .unwrap_err(),
        Refusal::NotPermitted
    );
    let (expired, ev) = active
        .apply(Command::Expire, &Actor::System, at(3600))
        .unwrap();
    assert_eq!(expired.status, Status::Expired);
    assert_eq!(ev.actor, Actor::System);
    assert_eq!(
        req.apply(Command::Expire, &Actor::System, at(99_999))
            .unwrap_err(),
        Refusal::NotActive(Status::Pending)
    );
}

#[test]
fn pending_requests_lapse_after_the_pending_ttl() {
    let (req, _) = pending(1);
    let deadline = i64::from(DEFAULT_PENDING_TTL_SECONDS);
    assert_eq!(req.effective_status(at(deadline - 1)), Status::Pending);
    assert_eq!(req.effective_status(at(deadline)), Status::Lapsed);
    assert_eq!(
        req.apply(Command::Lapse, &Actor::System, at(deadline - 1))
            .unwrap_err(),
        Refusal::NotDue
    );
    assert_eq!(
        req.apply(approve(&req), &user("bob"), at(deadline))
            .unwrap_err(),
        Refusal::NotPending(Status::Lapsed)
    );
    let (lapsed, _) = req
        .apply(Command::Lapse, &Actor::System, at(deadline))
        .unwrap();
    assert_eq!(lapsed.status, Status::Lapsed);
    assert_eq!(
        req.apply(Command::Lapse, &user("bob"), at(deadline))
            .unwrap_err(),
        Refusal::NotPermitted
    );
}

#[test]
fn nothing_leaves_a_terminal_state() {
    let (req, _) = pending(1);
    let (denied, _) = req
        .apply(
            Command::Deny {
                reason: reason("no"),
            },
            &user("bob"),
            at(1),
        )
        .unwrap();
    let cmds = [
        approve(&denied),
        Command::Deny {
            reason: reason("x"),
        },
        Command::Cancel,
        Command::Revoke {
            reason: reason("x"),
        },
        Command::Expire,
        Command::Lapse,
    ];
    for cmd in cmds {
        for actor in [user("alice"), user("carol"), Actor::System] {
            assert!(
                denied.apply(cmd.clone(), &actor, at(2)).is_err(),
                "{cmd:?} by {actor}"
            );
        }
    }
}

#[test]
fn events_chain_and_verify() {
    let (req, e1) = pending(2);
    let (r2, e2) = req.apply(approve(&req), &user("bob"), at(1)).unwrap();
    let (r3, e3) = r2.apply(approve(&r2), &user("carol"), at(2)).unwrap();
    let events = vec![e1, e2, e3];
    assert_eq!(chain::verify(&events, &r3.chain_head, r3.version), Ok(()));

    let mut edited = events.clone();
    edited[1].at = at(99);
    assert_eq!(
        chain::verify(&edited, &r3.chain_head, 3),
        Err(chain::ChainError::Altered { seq: 2 })
    );
    let mut deleted = events.clone();
    deleted.remove(1);
    assert!(chain::verify(&deleted, &r3.chain_head, 3).is_err());
    let mut reordered = events.clone();
    reordered.swap(1, 2);
    assert!(chain::verify(&reordered, &r3.chain_head, 3).is_err());
    let truncated = &events[..2];
    assert_eq!(
        chain::verify(truncated, &r3.chain_head, 3),
        Err(chain::ChainError::Head { last_seq: 2 })
    );
    assert_eq!(
        chain::verify(&[], &r3.chain_head, 3),
        Err(chain::ChainError::Empty)
    );
}

#[test]
fn events_round_trip_through_json_and_still_verify() {
    let (req, e1) = pending(1);
    let (r2, e2) = req.apply(approve(&req), &user("bob"), at(1)).unwrap();
    let json = serde_json::to_string(&vec![e1, e2]).unwrap();
    let back: Vec<Event> = serde_json::from_str(&json).unwrap();
    assert_eq!(chain::verify(&back, &r2.chain_head, r2.version), Ok(()));
    let req_json = serde_json::to_string(&r2).unwrap();
    assert_eq!(
        serde_json::from_str::<AccessRequest>(&req_json).unwrap(),
        r2
    );
}

#[derive(Debug, Clone)]
enum Step {
    Approve(u8),
    BadDigest(u8),
    Deny(u8),
    Cancel(u8),
    Revoke(u8),
    Issue(u8),
    Expire,
    Lapse,
    Wait(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..4).prop_map(Step::Approve),
        1 => (0u8..4).prop_map(Step::BadDigest),
        1 => (0u8..4).prop_map(Step::Deny),
        1 => (0u8..4).prop_map(Step::Cancel),
        1 => (0u8..4).prop_map(Step::Revoke),
        2 => (0u8..4).prop_map(Step::Issue),
        1 => Just(Step::Expire),
        1 => Just(Step::Lapse),
        2 => (0u32..50_000).prop_map(Step::Wait),
    ]
}

// Users 0..4: user 0 is the requester.
fn actor(n: u8) -> Actor {
    user(["alice", "bob", "carol", "dave"][usize::from(n % 4)])
}

proptest! {
    #[test]
    fn random_command_sequences_keep_the_invariants(required in 1u8..4, steps in proptest::collection::vec(step(), 0..40)) {
        let (mut req, first) = pending(required);
        let mut events = vec![first];
        let mut now = at(0);
        for s in steps {
            let (cmd, who) = match s {
                Step::Wait(secs) => { now = now.plus(i64::from(secs)); continue; }
                Step::Approve(u) => (approve(&req), actor(u)),
                Step::BadDigest(u) => (Command::Approve { digest: "f".repeat(64), comment: None, policies: vec![] }, actor(u)),
                Step::Deny(u) => (Command::Deny { reason: reason("no") }, actor(u)),
                Step::Cancel(u) => (Command::Cancel, actor(u)),
                Step::Revoke(u) => (Command::Revoke { reason: reason("stop") }, actor(u)),
                Step::Issue(u) => (Command::IssueCredentials { session_name: SessionName::for_request(req.id), expires_at: now.plus(900) }, actor(u)),
                Step::Expire => (Command::Expire, Actor::System),
                Step::Lapse => (Command::Lapse, Actor::System),
            };
            let before = req.clone();
            match before.apply(cmd, &who, now) {
                Ok((next, ev)) => {
                    prop_assert!(!before.status.is_terminal(), "left terminal state {:?}", before.status);
                    prop_assert_eq!(next.version, before.version + 1);
                    prop_assert_eq!(ev.seq, next.version);
                    prop_assert_eq!(&ev.prev_hash, &before.chain_head);
                    if next.status == Status::Active {
                        let approvers: std::collections::BTreeSet<_> = next.approvals.iter().map(|a| a.approver.clone()).collect();
                        prop_assert_eq!(approvers.len(), next.approvals.len(), "double approval counted");
                        prop_assert!(!approvers.contains(next.requester_id()), "self approval counted");
                        prop_assert!(approvers.len() >= usize::from(required));
                    }
                    if before.status == Status::Active && next.status == Status::Active {
                        prop_assert_eq!(next.window_end, before.window_end, "window moved");
                    }
                    req = next;
                    events.push(ev);
                }
                Err(_) => prop_assert_eq!(&before, &req),
            }
        }
        prop_assert_eq!(chain::verify(&events, &req.chain_head, req.version), Ok(()));
    }
}
