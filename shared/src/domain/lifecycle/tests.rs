//! Lifecycle tests: every transition, every refusal, and properties over
//! random command sequences.

use super::*;
use crate::audit::chain;
use crate::domain::DEFAULT_MAX_DURATION_SECONDS;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

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

fn new_request_for(required: u8, duration: u32) -> NewRequest {
    NewRequest {
        duration: GrantDuration::new(u64::from(duration), DEFAULT_MAX_DURATION_SECONDS).unwrap(),
        ..new_request(required)
    }
}

fn starts(offset: i64) -> StartsAt {
    StartsAt::new(at(offset), at(0)).unwrap()
}

fn scheduled(required: u8, start: i64, auto: bool) -> AccessRequest {
    let opening = if auto {
        Opening::AutoApproved(Some(starts(start)))
    } else {
        Opening::Review(Some(starts(start)))
    };
    AccessRequest::open(new_request(required), opening, vec![], at(0)).0
}

fn issue(r: &AccessRequest, now: Timestamp) -> Command {
    Command::IssueCredentials {
        session_name: SessionName::for_request(r.id),
        expires_at: now.plus(900),
    }
}

fn console(r: &AccessRequest, now: Timestamp) -> Command {
    Command::IssueConsole {
        session_name: SessionName::for_request(r.id),
        expires_at: now.plus(900),
    }
}

fn extend(seconds: u32, max_total_seconds: u32, auto_approved: bool) -> Command {
    Command::Extend {
        by: GrantDuration::new(u64::from(seconds), DEFAULT_MAX_DURATION_SECONDS).unwrap(),
        reason: reason("need more time"),
        max_total_seconds,
        auto_approved,
        policies: vec!["p-extend".into()],
    }
}

fn approve_digest(digest: &str) -> Command {
    Command::Approve {
        digest: digest.to_owned(),
        comment: None,
        policies: vec![],
    }
}

fn review(outcome: ReviewOutcome) -> Command {
    Command::Review {
        outcome,
        comment: reason("looked at the incident"),
        policies: vec!["p-review".into()],
    }
}

fn active_grant(required: u8) -> AccessRequest {
    let (req, _) = pending(required);
    let mut r = req;
    for (i, who) in ["bob", "carol", "dave"]
        .iter()
        .take(usize::from(required))
        .enumerate()
    {
        r = r
            .apply(approve(&r), &user(who), at(i64::try_from(i).unwrap()))
            .unwrap()
            .0;
    }
    assert_eq!(r.effective_status(at(10)), Status::Active);
    r
}

#[test]
fn a_schedule_must_be_ahead_and_at_most_thirty_days_away() {
    assert_eq!(StartsAt::new(at(0), at(0)).unwrap_err().field, "starts_at");
    assert!(StartsAt::new(at(-5), at(0)).is_err());
    assert!(StartsAt::new(at(1), at(0)).is_ok());
    assert!(StartsAt::new(at(MAX_SCHEDULE_LEAD_SECONDS), at(0)).is_ok());
    assert!(StartsAt::new(at(MAX_SCHEDULE_LEAD_SECONDS + 1), at(0)).is_err());
    let parsed = StartsAt::parse("2027-01-20T09:00:00+01:00", at(0)).unwrap();
    assert_eq!(parsed.at().to_rfc3339(), "2027-01-20T08:00:00Z");
    let err = StartsAt::parse("tomorrow", at(0)).unwrap_err();
    assert!(err.message.contains("RFC 3339"), "{}", err.message);
}

#[test]
fn a_scheduled_request_approved_early_starts_at_its_start() {
    let req = scheduled(1, 7200, false);
    assert_eq!(req.status, Status::Pending);
    assert_eq!(req.starts_at, Some(at(7200)));
    // An unapproved scheduled request lapses at its start.
    assert_eq!(req.pending_deadline, at(7200));
    let (approved, ev) = req.apply(approve(&req), &user("bob"), at(600)).unwrap();
    assert_eq!(approved.status, Status::Active);
    assert_eq!(approved.window_start, Some(at(7200)));
    assert_eq!(approved.window_end, Some(at(7200 + 3600)));
    assert!(
        matches!(ev.kind, EventKind::Approved { window_end: Some(end), .. } if end == at(10_800))
    );
    assert_eq!(approved.effective_status(at(600)), Status::Scheduled);
    assert_eq!(approved.effective_status(at(7199)), Status::Scheduled);
    assert_eq!(approved.effective_status(at(7200)), Status::Active);
    assert_eq!(approved.effective_status(at(10_800)), Status::Expired);
}

#[test]
fn no_credentials_before_a_scheduled_start() {
    let req = scheduled(1, 7200, true);
    assert_eq!(req.status, Status::Active);
    assert_eq!(req.window_start, Some(at(7200)));
    for cmd in [issue(&req, at(7199)), console(&req, at(7199))] {
        assert_eq!(
            req.apply(cmd, &user("alice"), at(7199)).unwrap_err(),
            Refusal::NotStarted(at(7200))
        );
    }
    assert_eq!(Refusal::NotStarted(at(7200)).code(), "not_started");
    let (issued, _) = req
        .apply(issue(&req, at(7200)), &user("alice"), at(7200))
        .unwrap();
    assert_eq!(issued.credentials_issued, 1);
}

#[test]
fn an_unapproved_scheduled_request_lapses_at_its_start() {
    let req = scheduled(2, 3000, false);
    let (one, _) = req.apply(approve(&req), &user("bob"), at(100)).unwrap();
    assert_eq!(one.effective_status(at(2999)), Status::Pending);
    assert_eq!(one.effective_status(at(3000)), Status::Lapsed);
    assert_eq!(
        one.apply(approve(&one), &user("carol"), at(3000))
            .unwrap_err(),
        Refusal::NotPending(Status::Lapsed)
    );
    let (lapsed, _) = one.apply(Command::Lapse, &Actor::System, at(3000)).unwrap();
    assert_eq!(lapsed.status, Status::Lapsed);
}

#[test]
fn a_scheduled_grant_can_be_revoked_before_it_starts() {
    let req = scheduled(1, 7200, true);
    let (revoked, _) = req
        .apply(
            Command::Revoke {
                reason: reason("plans changed"),
            },
            &user("alice"),
            at(10),
        )
        .unwrap();
    assert_eq!(revoked.status, Status::Revoked);
    assert_eq!(
        revoked.revocation_until(),
        None,
        "no credentials were issued"
    );
}

#[test]
fn the_digest_covers_the_schedule_and_is_unchanged_without_one() {
    let n = new_request(1);
    let d = |opening: Opening| {
        AccessRequest::open(n.clone(), opening, vec![], at(0))
            .0
            .digest
    };
    let plain = d(Opening::Review(None));
    assert_eq!(d(Opening::AutoApproved(None)), plain);
    assert_ne!(d(Opening::Review(Some(starts(3600)))), plain);
    assert_ne!(
        d(Opening::Review(Some(starts(3600)))),
        d(Opening::Review(Some(starts(3601))))
    );
    assert_ne!(d(Opening::BreakGlass), plain);
    // The digest of a request without a schedule is the one every earlier
    // version computed: the seven fields, in order.
    let canonical = serde_json::json!([
        n.id.to_string(),
        "alice",
        n.role_arn.as_str(),
        3600,
        "fix INC-1",
        "INC-1",
        null
    ]);
    assert_eq!(
        plain,
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    );
}

#[test]
fn an_extension_waits_for_approval_of_its_own_digest_and_moves_the_end() {
    let grant = active_grant(1);
    let end = grant.window_end.unwrap();
    let (asked, ev) = grant
        .apply(extend(1800, 7200, false), &user("alice"), at(100))
        .unwrap();
    assert_eq!(asked.window_end, Some(end), "nothing moves before approval");
    let ext = asked.pending_extension.clone().unwrap();
    assert_eq!(
        (ext.number, ext.seconds, ext.total_seconds),
        (1, 1800, 5400)
    );
    assert_ne!(ext.digest, asked.digest);
    assert!(matches!(
        &ev.kind,
        EventKind::ExtensionRequested { auto_approved: false, window_end: None, digest, .. } if *digest == ext.digest
    ));
    assert_eq!(
        asked.under_review(at(100)),
        Some(UnderReview::Extension(&ext))
    );
    assert_eq!(asked.review_digest(at(100)), Some(ext.digest.as_str()));
    // The request's own digest approves nothing now.
    assert_eq!(
        asked
            .apply(approve(&asked), &user("bob"), at(200))
            .unwrap_err(),
        Refusal::DigestMismatch
    );
    // The requester cannot approve their own extension.
    assert_eq!(
        asked
            .apply(approve_digest(&ext.digest), &user("alice"), at(200))
            .unwrap_err(),
        Refusal::SelfReview
    );
    let (extended, ev) = asked
        .apply(approve_digest(&ext.digest), &user("bob"), at(200))
        .unwrap();
    assert_eq!(extended.status, Status::Active);
    assert_eq!(extended.window_end, Some(end.plus(1800)));
    assert_eq!(extended.extended_seconds, 1800);
    assert_eq!(extended.total_seconds(), 5400);
    assert_eq!(extended.pending_extension, None);
    assert_eq!(extended.original_window_end(), Some(end));
    assert!(matches!(
        ev.kind,
        EventKind::ExtensionApproved { previous_window_end: Some(before), window_end: Some(after), .. }
            if before == end && after == end.plus(1800)
    ));
    assert_eq!(extended.under_review(at(300)), None);
}

#[test]
fn an_extension_needs_as_many_approvals_as_the_request_did() {
    let grant = active_grant(2);
    let (asked, _) = grant
        .apply(extend(600, 7200, false), &user("alice"), at(100))
        .unwrap();
    let digest = asked.pending_extension.clone().unwrap().digest;
    let (one, ev) = asked
        .apply(approve_digest(&digest), &user("bob"), at(110))
        .unwrap();
    assert_eq!(one.window_end, grant.window_end);
    assert!(matches!(
        ev.kind,
        EventKind::ExtensionApproved {
            approvals: 1,
            required: 2,
            window_end: None,
            ..
        }
    ));
    assert_eq!(
        one.apply(approve_digest(&digest), &user("bob"), at(120))
            .unwrap_err(),
        Refusal::AlreadyApproved
    );
    let (two, _) = one
        .apply(approve_digest(&digest), &user("carol"), at(130))
        .unwrap();
    assert_eq!(two.window_end, grant.window_end.map(|e| e.plus(600)));
}

#[test]
fn an_auto_approved_extension_applies_at_once() {
    let grant = active_grant(1);
    let (extended, ev) = grant
        .apply(extend(900, 7200, true), &user("alice"), at(100))
        .unwrap();
    assert_eq!(extended.window_end, grant.window_end.map(|e| e.plus(900)));
    assert_eq!(extended.pending_extension, None);
    assert!(matches!(
        ev.kind,
        EventKind::ExtensionRequested {
            auto_approved: true,
            window_end: Some(_),
            previous_window_end: Some(_),
            ..
        }
    ));
}

#[test]
fn no_extension_goes_past_the_roles_limit_over_the_whole_grant() {
    let grant = active_grant(1);
    let err = grant
        .apply(extend(3601, 7200, true), &user("alice"), at(100))
        .unwrap_err();
    assert_eq!(err.code(), "extension_too_long");
    assert_eq!(
        err.to_string(),
        "with this extension the grant would last 2h1s, over the 2h the role allows"
    );
    let (once, _) = grant
        .apply(extend(1800, 7200, true), &user("alice"), at(100))
        .unwrap();
    assert!(
        once.apply(extend(1801, 7200, true), &user("alice"), at(200))
            .is_err()
    );
    let (twice, _) = once
        .apply(extend(1800, 7200, true), &user("alice"), at(200))
        .unwrap();
    assert_eq!(twice.total_seconds(), 7200);
    assert!(
        twice
            .apply(extend(60, 7200, true), &user("alice"), at(300))
            .is_err()
    );
}

#[test]
fn denying_an_extension_leaves_the_grant_active() {
    let grant = active_grant(1);
    let (asked, _) = grant
        .apply(extend(600, 7200, false), &user("alice"), at(100))
        .unwrap();
    let (denied, ev) = asked
        .apply(
            Command::Deny {
                reason: reason("finish tomorrow"),
            },
            &user("bob"),
            at(200),
        )
        .unwrap();
    assert_eq!(denied.status, Status::Active);
    assert_eq!(denied.window_end, grant.window_end);
    assert_eq!(denied.pending_extension, None);
    assert_eq!(denied.closed_by, None);
    assert!(matches!(
        ev.kind,
        EventKind::ExtensionDenied { number: 1, .. }
    ));
    // Nothing is under review any more.
    assert_eq!(
        denied
            .apply(
                Command::Deny {
                    reason: reason("again")
                },
                &user("bob"),
                at(300)
            )
            .unwrap_err(),
        Refusal::NotPending(Status::Active)
    );
}

#[test]
fn a_new_extension_replaces_a_pending_one_and_its_digest() {
    let grant = active_grant(1);
    let (first, _) = grant
        .apply(extend(600, 7200, false), &user("alice"), at(100))
        .unwrap();
    let old = first.pending_extension.clone().unwrap().digest;
    let (second, ev) = first
        .apply(extend(600, 7200, false), &user("alice"), at(110))
        .unwrap();
    let new = second.pending_extension.clone().unwrap();
    assert_eq!(new.number, 2);
    assert_ne!(
        new.digest, old,
        "the same extension asked again has a new digest"
    );
    assert!(matches!(
        ev.kind,
        EventKind::ExtensionRequested {
            replaces: Some(1),
            ..
        }
    ));
    assert_eq!(
        second
            .apply(approve_digest(&old), &user("bob"), at(120))
            .unwrap_err(),
        Refusal::DigestMismatch
    );
    assert_eq!(
        second.check_review_digest(&old, at(120)),
        Err(Refusal::DigestMismatch)
    );
    assert_eq!(second.check_review_digest(&new.digest, at(120)), Ok(()));
}

#[test]
fn only_the_requester_extends_and_only_an_open_grant() {
    let (req, _) = pending(1);
    assert_eq!(
        req.apply(extend(600, 7200, false), &user("alice"), at(1))
            .unwrap_err(),
        Refusal::NotActive(Status::Pending)
    );
    let grant = active_grant(1);
    assert_eq!(
        grant
            .apply(extend(600, 7200, false), &user("bob"), at(5))
            .unwrap_err(),
        Refusal::NotRequester
    );
    let end = grant.window_end.unwrap();
    assert_eq!(
        grant
            .apply(extend(600, 7200, false), &user("alice"), end)
            .unwrap_err(),
        Refusal::NotActive(Status::Expired)
    );
    // A pending extension lapses with its grant: nothing approves it after the end.
    let (asked, _) = grant
        .apply(extend(600, 7200, false), &user("alice"), at(5))
        .unwrap();
    let digest = asked.pending_extension.clone().unwrap().digest;
    assert_eq!(
        asked
            .apply(approve_digest(&digest), &user("bob"), end)
            .unwrap_err(),
        Refusal::NotPending(Status::Expired)
    );
    let (expired, _) = asked.apply(Command::Expire, &Actor::System, end).unwrap();
    assert_eq!(expired.pending_extension, None);
    // A scheduled grant can be extended before it starts.
    let later = scheduled(1, 7200, true);
    let (ext, _) = later
        .apply(extend(600, 7200, true), &user("alice"), at(10))
        .unwrap();
    assert_eq!(ext.window_start, Some(at(7200)));
    assert_eq!(ext.window_end, Some(at(7200 + 4200)));
}

#[test]
fn a_break_glass_grant_is_active_at_once_and_waits_for_its_review() {
    let (bg, ev) = AccessRequest::open(
        new_request(2),
        Opening::BreakGlass,
        vec!["bg".into()],
        at(0),
    );
    assert_eq!(bg.status, Status::Active);
    assert!(bg.approvals.is_empty());
    assert_eq!(bg.window_start, Some(at(0)));
    assert!(bg.awaits_break_glass_review());
    assert!(matches!(
        ev.kind,
        EventKind::Created {
            break_glass: true,
            auto_approved: false,
            ..
        }
    ));
    let (issued, _) = bg.apply(issue(&bg, at(1)), &user("alice"), at(1)).unwrap();
    assert_eq!(
        issued
            .apply(review(ReviewOutcome::Justified), &user("alice"), at(2))
            .unwrap_err(),
        Refusal::SelfReview
    );
    assert_eq!(
        issued
            .apply(review(ReviewOutcome::Justified), &Actor::System, at(2))
            .unwrap_err(),
        Refusal::NotPermitted
    );
    // Still under review after the grant ended.
    let (expired, _) = issued
        .apply(Command::Expire, &Actor::System, at(3600))
        .unwrap();
    assert!(expired.awaits_break_glass_review());
    let (reviewed, ev) = expired
        .apply(review(ReviewOutcome::Unjustified), &user("bob"), at(4000))
        .unwrap();
    assert_eq!(
        reviewed.status,
        Status::Expired,
        "a review leaves the status alone"
    );
    let record = reviewed.break_glass.clone().unwrap();
    assert_eq!(record.review, ReviewState::Unjustified);
    assert_eq!(record.reviewed_by, Some(UserId::parse("bob").unwrap()));
    assert_eq!(record.reviewed_at, Some(at(4000)));
    assert!(!reviewed.awaits_break_glass_review());
    assert_eq!(ev.status, Status::Expired);
    assert!(matches!(
        ev.kind,
        EventKind::Reviewed {
            outcome: ReviewOutcome::Unjustified,
            ..
        }
    ));
    assert_eq!(
        reviewed
            .apply(review(ReviewOutcome::Justified), &user("carol"), at(4001))
            .unwrap_err(),
        Refusal::AlreadyReviewed
    );
    let plain = active_grant(1);
    assert_eq!(
        plain
            .apply(review(ReviewOutcome::Justified), &user("bob"), at(20))
            .unwrap_err(),
        Refusal::NotBreakGlass
    );
}

#[test]
fn a_console_sign_in_follows_the_credential_rules_with_its_own_event() {
    let (req, _) = pending(1);
    assert_eq!(
        req.apply(console(&req, at(1)), &user("alice"), at(1))
            .unwrap_err(),
        Refusal::NotActive(Status::Pending)
    );
    let grant = active_grant(1);
    assert_eq!(
        grant
            .apply(console(&grant, at(10)), &user("bob"), at(10))
            .unwrap_err(),
        Refusal::NotRequester
    );
    let (issued, ev) = grant
        .apply(console(&grant, at(10)), &user("alice"), at(10))
        .unwrap();
    assert_eq!(issued.credentials_issued, 1);
    assert!(matches!(ev.kind, EventKind::ConsoleIssued { .. }));
    let end = grant.window_end.unwrap();
    assert_eq!(
        grant
            .apply(console(&grant, end), &user("alice"), end)
            .unwrap_err(),
        Refusal::NotActive(Status::Expired)
    );
}

#[derive(Debug, Clone)]
enum Opened {
    Now,
    Scheduled(u32),
    AutoScheduled(u32),
    BreakGlass,
}

fn opened() -> impl Strategy<Value = Opened> {
    prop_oneof![
        3 => Just(Opened::Now),
        1 => (1u32..20_000).prop_map(Opened::Scheduled),
        1 => (1u32..20_000).prop_map(Opened::AutoScheduled),
        1 => Just(Opened::BreakGlass),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Approve(u8),
    ApproveUnderReview(u8),
    BadDigest(u8),
    Deny(u8),
    Cancel(u8),
    Revoke(u8),
    Issue(u8),
    Console(u8),
    Extend(u8, u32, bool),
    Review(u8, bool),
    Expire,
    Lapse,
    Wait(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..4).prop_map(Step::Approve),
        2 => (0u8..4).prop_map(Step::ApproveUnderReview),
        1 => (0u8..4).prop_map(Step::BadDigest),
        1 => (0u8..4).prop_map(Step::Deny),
        1 => (0u8..4).prop_map(Step::Cancel),
        1 => (0u8..4).prop_map(Step::Revoke),
        2 => (0u8..4).prop_map(Step::Issue),
        1 => (0u8..4).prop_map(Step::Console),
        2 => ((0u8..4), (60u32..8000), any::<bool>()).prop_map(|(u, s, a)| Step::Extend(u, s, a)),
        1 => ((0u8..4), any::<bool>()).prop_map(|(u, j)| Step::Review(u, j)),
        1 => Just(Step::Expire),
        1 => Just(Step::Lapse),
        2 => (0u32..50_000).prop_map(Step::Wait),
    ]
}

// Users 0..4: user 0 is the requester.
fn actor(n: u8) -> Actor {
    user(["alice", "bob", "carol", "dave"][usize::from(n % 4)])
}

/// The role's limit in the property test: every extension is checked against it.
const CAP: u32 = 3 * 3600;

proptest! {
    #[test]
    fn random_command_sequences_keep_the_invariants(
        required in 1u8..4,
        how in opened(),
        duration in 60u32..CAP,
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        let new = new_request_for(required, duration);
        let opening = match how {
            Opened::Now => Opening::Review(None),
            Opened::Scheduled(s) => Opening::Review(Some(starts(i64::from(s)))),
            Opened::AutoScheduled(s) => Opening::AutoApproved(Some(starts(i64::from(s)))),
            Opened::BreakGlass => Opening::BreakGlass,
        };
        let (mut req, first) = AccessRequest::open(new, opening, vec![], at(0));
        let break_glass = req.break_glass.is_some();
        let mut events = vec![first];
        let mut now = at(0);
        for s in steps {
            let (cmd, who) = match s {
                Step::Wait(secs) => { now = now.plus(i64::from(secs)); continue; }
                Step::Approve(u) => (approve(&req), actor(u)),
                Step::ApproveUnderReview(u) => (approve_digest(req.review_digest(now).unwrap_or("none")), actor(u)),
                Step::BadDigest(u) => (approve_digest(&"f".repeat(64)), actor(u)),
                Step::Deny(u) => (Command::Deny { reason: reason("no") }, actor(u)),
                Step::Cancel(u) => (Command::Cancel, actor(u)),
                Step::Revoke(u) => (Command::Revoke { reason: reason("stop") }, actor(u)),
                Step::Issue(u) => (issue(&req, now), actor(u)),
                Step::Console(u) => (console(&req, now), actor(u)),
                Step::Extend(u, secs, auto) => (extend(secs, CAP, auto), actor(u)),
                Step::Review(u, ok) => (review(if ok { ReviewOutcome::Justified } else { ReviewOutcome::Unjustified }), actor(u)),
                Step::Expire => (Command::Expire, Actor::System),
                Step::Lapse => (Command::Lapse, Actor::System),
            };
            let before = req.clone();
            match before.apply(cmd, &who, now) {
                Ok((next, ev)) => {
                    let reviewed = matches!(ev.kind, EventKind::Reviewed { .. });
                    if before.status.is_terminal() {
                        prop_assert!(reviewed, "left terminal state {:?} with {:?}", before.status, ev.kind);
                        prop_assert_eq!(next.status, before.status);
                    }
                    prop_assert_eq!(next.version, before.version + 1);
                    prop_assert_eq!(ev.seq, next.version);
                    prop_assert_eq!(&ev.prev_hash, &before.chain_head);
                    if next.status == Status::Active && !break_glass {
                        let approvers: std::collections::BTreeSet<_> = next.approvals.iter().map(|a| a.approver.clone()).collect();
                        prop_assert_eq!(approvers.len(), next.approvals.len(), "double approval counted");
                        prop_assert!(!approvers.contains(next.requester_id()), "self approval counted");
                        prop_assert!(
                            approvers.len() >= usize::from(required) || matches!(how, Opened::AutoScheduled(_)),
                            "activated without enough approvals"
                        );
                    }
                    // Never credentials outside the window, before it or after it.
                    if matches!(ev.kind, EventKind::CredentialsIssued { .. } | EventKind::ConsoleIssued { .. }) {
                        prop_assert!(next.window_start.is_some_and(|s| s <= now), "credentials before the start");
                        prop_assert!(next.window_end.is_some_and(|e| now < e), "credentials after the end");
                        prop_assert_eq!(who.user(), Some(next.requester_id()));
                    }
                    // The window moves only by an approved extension, and never past the cap.
                    if before.window_end.is_some() && next.window_end != before.window_end {
                        let applied = matches!(ev.kind,
                            EventKind::ExtensionRequested { window_end: Some(_), .. }
                            | EventKind::ExtensionApproved { window_end: Some(_), .. });
                        prop_assert!(applied, "window moved by {:?}", ev.kind);
                        prop_assert!(next.window_end > before.window_end, "window shortened");
                    }
                    if let (Some(start), Some(end)) = (next.window_start, next.window_end) {
                        prop_assert!(end.seconds_since(start) <= i64::from(CAP.max(duration)), "grant beyond the cap");
                        prop_assert_eq!(end.seconds_since(start), i64::from(next.total_seconds()));
                    }
                    if let Some(ext) = &next.pending_extension {
                        prop_assert!(ext.total_seconds <= CAP);
                        prop_assert!(next.status == Status::Active);
                    }
                    // A break-glass grant leaves review_pending only by a review,
                    // and never by the requester.
                    if before.awaits_break_glass_review() && !next.awaits_break_glass_review() {
                        prop_assert!(reviewed, "review ended by {:?}", ev.kind);
                        prop_assert_ne!(who.user(), Some(next.requester_id()));
                    }
                    prop_assert_eq!(next.break_glass.is_some(), break_glass);
                    if let Some(start) = next.starts_at {
                        prop_assert!(next.window_start.is_none_or(|s| s >= start), "window before the schedule");
                    }
                    req = next;
                    events.push(ev);
                }
                Err(_) => prop_assert_eq!(&before, &req),
            }
        }
        prop_assert_eq!(chain::verify(&events, &req.chain_head, req.version), Ok(()));
        let back: Vec<Event> = serde_json::from_str(&serde_json::to_string(&events).unwrap()).unwrap();
        prop_assert_eq!(chain::verify(&back, &req.chain_head, req.version), Ok(()));
        let stored: AccessRequest = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        prop_assert_eq!(stored, req);
    }
}
