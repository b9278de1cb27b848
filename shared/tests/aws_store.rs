//! The DynamoDB store against the local emulator through the real SDK: one
//! table per test, on one emulator per test binary.

// Helpers outside #[test] functions unwrap too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashSet;
use std::time::Duration;
use tollgate::audit::chain::{self, ChainError};
use tollgate::aws::schema;
use tollgate::aws::testing::{Clients, Emulator, new_request, unique_name};
use tollgate::aws::{Created, PageRequest, Store, StoreError, create_table};
use tollgate::domain::{
    AccessRequest, Actor, Command, Event, IdempotencyKey, Reason, RoleArn, Status, Timestamp,
    UserId,
};

const RETENTION: i64 = schema::DEFAULT_RETENTION_SECONDS;

struct Fixture {
    clients: Clients,
    store: Store,
    table: String,
}

async fn fixture() -> Fixture {
    let emulator = Emulator::shared().unwrap();
    let clients = emulator.clients().await;
    let table = unique_name("store");
    assert!(create_table(&clients.dynamodb, &table).await.unwrap());
    let store = clients.store(&table, RETENTION).await.unwrap();
    clients.calls.clear();
    Fixture {
        clients,
        store,
        table,
    }
}

fn role(name: &str) -> RoleArn {
    RoleArn::parse(&format!("arn:aws:iam::123456789012:role/tollgate/{name}")).unwrap()
}

fn user(name: &str) -> Actor {
    Actor::User(UserId::parse(name).unwrap())
}

fn pending_at(
    role: &RoleArn,
    requester: &str,
    approvals: u8,
    now: Timestamp,
) -> (AccessRequest, Event) {
    let mut new = new_request(role, requester, 3600, approvals).unwrap();
    new.id = tollgate::domain::RequestId::generate(now);
    AccessRequest::create(new, false, vec!["p".into()], now)
}

fn pending(role: &RoleArn, requester: &str) -> (AccessRequest, Event) {
    pending_at(role, requester, 1, Timestamp::now())
}

fn approve(req: &AccessRequest, approver: &str, now: Timestamp) -> (AccessRequest, Event) {
    req.apply(
        Command::Approve {
            digest: req.digest.clone(),
            comment: None,
            policies: vec![],
        },
        &user(approver),
        now,
    )
    .unwrap()
}

async fn raw_item(
    f: &Fixture,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    f.clients
        .dynamodb
        .get_item()
        .table_name(&f.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_created_request_reads_back_with_its_first_event_in_one_call_each() {
    let f = fixture().await;
    let (req, event) = pending(&role("Dev"), "alice");
    assert_eq!(
        f.store.create(&req, &event, None).await.unwrap(),
        Created::New
    );
    assert_eq!(f.clients.calls.take(), ["Sign", "TransactWriteItems"]);

    assert_eq!(f.store.get(req.id).await.unwrap(), Some(req.clone()));
    assert_eq!(f.clients.calls.take(), ["GetItem"]);

    let (read, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
    assert_eq!(f.clients.calls.take(), ["Query"]);
    assert_eq!(read, req);
    assert!(events[0].signature.is_some(), "stored events are signed");
    let unsigned: Vec<_> = events
        .iter()
        .cloned()
        .map(|e| tollgate::domain::Event {
            signature: None,
            ..e
        })
        .collect();
    assert_eq!(unsigned, vec![event]);
    chain::verify(&events, &read.chain_head, read.version).unwrap();

    let unknown = tollgate::domain::RequestId::generate(Timestamp::now());
    assert_eq!(f.store.get(unknown).await.unwrap(), None);
    assert!(f.store.get_with_events(unknown).await.unwrap().is_none());
}

#[tokio::test]
async fn a_transition_is_one_transaction_and_a_stale_version_writes_nothing() {
    let f = fixture().await;
    let (req, event) = pending(&role("Dev"), "alice");
    f.store.create(&req, &event, None).await.unwrap();
    let (approved, approval) = approve(&req, "bob", Timestamp::now());
    f.clients.calls.clear();
    f.store.transition(1, &approved, &approval).await.unwrap();
    assert_eq!(f.clients.calls.take(), ["Sign", "TransactWriteItems"]);

    // A second writer that read version 1 loses, and leaves no trace.
    let (revoked, revocation) = req
        .apply(
            Command::Deny {
                reason: Reason::parse("no").unwrap(),
            },
            &user("carol"),
            Timestamp::now(),
        )
        .unwrap();
    let err = f
        .store
        .transition(1, &revoked, &revocation)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");

    let (stored, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
    assert_eq!(stored, approved);
    assert_eq!(stored.status, Status::Active);
    assert_eq!(events.len(), 2);
    chain::verify(&events, &stored.chain_head, stored.version).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_approvals_of_one_version_have_exactly_one_winner() {
    let f = fixture().await;
    let (req, event) = pending(&role("Prod"), "alice");
    f.store.create(&req, &event, None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = f.store.clone();
        let (next, ev) = approve(&req, &format!("approver{i}"), Timestamp::now());
        tasks.push(tokio::spawn(async move {
            store.transition(1, &next, &ev).await.map(|()| next)
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(next) => winners.push(next),
            Err(StoreError::Conflict) => conflicts += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(conflicts, 19);
    let (stored, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
    assert_eq!(stored, winners[0]);
    assert_eq!(
        events.len(),
        2,
        "one created and exactly one approval event"
    );
    chain::verify(&events, &stored.chain_head, stored.version).unwrap();
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_request_and_refuses_another_body() {
    let f = fixture().await;
    let key = IdempotencyKey::parse("retry-key-0001").unwrap();
    let (first, ev) = pending(&role("Dev"), "alice");
    assert_eq!(
        f.store
            .create(&first, &ev, Some((&key, "fp-1")))
            .await
            .unwrap(),
        Created::New
    );

    // The client retries: a new id, the same body fingerprint.
    let (retry, ev2) = pending(&role("Dev"), "alice");
    assert_eq!(
        f.store
            .create(&retry, &ev2, Some((&key, "fp-1")))
            .await
            .unwrap(),
        Created::Existing(first.clone())
    );
    assert_eq!(f.store.get(retry.id).await.unwrap(), None);

    // The same key for something else is refused and writes nothing.
    let (other, ev3) = pending(&role("Prod"), "alice");
    let err = f
        .store
        .create(&other, &ev3, Some((&key, "fp-2")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyMismatch), "{err:?}");
    assert_eq!(f.store.get(other.id).await.unwrap(), None);
    assert!(
        raw_item(&f, &schema::request_pk(other.id), "EVT#0000000001")
            .await
            .is_none()
    );

    // Keys are per requester.
    let (bobs, ev4) = pending(&role("Dev"), "bob");
    assert_eq!(
        f.store
            .create(&bobs, &ev4, Some((&key, "fp-2")))
            .await
            .unwrap(),
        Created::New
    );
}

#[tokio::test]
async fn an_idempotency_key_past_its_ttl_can_be_used_again() {
    let f = fixture().await;
    let key = IdempotencyKey::parse("old-key-0001").unwrap();
    let two_days_ago = Timestamp::now().plus(-2 * 86_400);
    let (old, ev) = pending_at(&role("Dev"), "alice", 1, two_days_ago);
    f.store
        .create(&old, &ev, Some((&key, "fp-old")))
        .await
        .unwrap();
    let (new, ev2) = pending(&role("Dev"), "alice");
    assert_eq!(
        f.store
            .create(&new, &ev2, Some((&key, "fp-new")))
            .await
            .unwrap(),
        Created::New
    );
    let idem = raw_item(&f, &format!("IDEM#alice#{}", key.as_str()), "META")
        .await
        .unwrap();
    assert_eq!(idem["request_id"].as_s().unwrap(), &new.id.to_string());
}

#[tokio::test]
async fn a_duplicate_id_is_a_conflict_and_the_failed_transaction_leaves_nothing() {
    let f = fixture().await;
    let (req, event) = pending(&role("Dev"), "alice");
    f.store.create(&req, &event, None).await.unwrap();
    let key = IdempotencyKey::parse("fresh-key-001").unwrap();
    let err = f
        .store
        .create(&req, &event, Some((&key, "fp")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    // The idempotency item of the cancelled transaction was not written.
    assert!(
        raw_item(&f, "IDEM#alice#fresh-key-001", "META")
            .await
            .is_none()
    );
    let (_, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
    assert_eq!(events.len(), 1);
}

/// The broker's atomicity rests on the emulator cancelling a transaction as
/// DynamoDB does. `scripts/moto_launcher.py` replaces moto's whole-table
/// rollback with one over the items named; this checks that every kind of
/// operation is undone when the last one fails, and applied when none does.
#[tokio::test]
async fn a_cancelled_transaction_restores_every_item_it_named() {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update};
    let f = fixture().await;
    let db = &f.clients.dynamodb;
    let key = |pk: &str| {
        std::collections::HashMap::from([
            ("pk".to_string(), AttributeValue::S(pk.into())),
            ("sk".to_string(), AttributeValue::S("META".into())),
        ])
    };
    let put = |pk: &str, x: &str| {
        let mut item = key(pk);
        item.insert("x".into(), AttributeValue::N(x.into()));
        item
    };
    for pk in ["TX#updated", "TX#deleted", "TX#present"] {
        db.put_item()
            .table_name(&f.table)
            .set_item(Some(put(pk, "1")))
            .send()
            .await
            .unwrap();
    }
    let transaction = |check: &str| {
        let t = &f.table;
        vec![
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(t)
                        .set_key(Some(key("TX#updated")))
                        .update_expression("SET x = :two")
                        .expression_attribute_values(":two", AttributeValue::N("2".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(t)
                        .set_item(Some(put("TX#created", "3")))
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(t)
                        .set_key(Some(key("TX#deleted")))
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(t)
                        .set_key(Some(key(check)))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
        ]
    };

    let unchanged = || async {
        let updated = raw_item(&f, "TX#updated", "META").await.unwrap();
        assert_eq!(number(&updated, "x"), 1);
        assert!(raw_item(&f, "TX#created", "META").await.is_none());
        assert!(raw_item(&f, "TX#deleted", "META").await.is_some());
    };
    // A failed condition on the last item cancels the whole transaction.
    let err = db
        .transact_write_items()
        .set_transact_items(Some(transaction("TX#absent")))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_transaction_canceled_exception()),
        "{err:?}"
    );
    unchanged().await;
    // Naming an item twice is refused only when the second is reached,
    // after the first three were written: they are undone too.
    let err = db
        .transact_write_items()
        .set_transact_items(Some(transaction("TX#updated")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    unchanged().await;

    db.transact_write_items()
        .set_transact_items(Some(transaction("TX#present")))
        .send()
        .await
        .unwrap();
    let updated = raw_item(&f, "TX#updated", "META").await.unwrap();
    assert_eq!(number(&updated, "x"), 2);
    let created = raw_item(&f, "TX#created", "META").await.unwrap();
    assert_eq!(number(&created, "x"), 3);
    assert!(raw_item(&f, "TX#deleted", "META").await.is_none());
}

#[tokio::test]
async fn ttl_attributes_are_window_end_or_deadline_plus_retention() {
    let f = fixture().await;
    let now = Timestamp::now();
    let key = IdempotencyKey::parse("ttl-key-0001").unwrap();
    let (req, event) = pending_at(&role("Dev"), "alice", 1, now);
    f.store
        .create(&req, &event, Some((&key, "fp")))
        .await
        .unwrap();
    let pk = schema::request_pk(req.id);
    let meta = raw_item(&f, &pk, "META").await.unwrap();
    assert_eq!(
        number(&meta, "ttl"),
        req.pending_deadline.unix() + RETENTION
    );
    let first = raw_item(&f, &pk, "EVT#0000000001").await.unwrap();
    assert_eq!(
        number(&first, "ttl"),
        req.pending_deadline.unix() + 3600 + RETENTION,
        "an event outlives any window the request can still reach"
    );
    let idem = raw_item(&f, "IDEM#alice#ttl-key-0001", "META")
        .await
        .unwrap();
    assert_eq!(number(&idem, "ttl"), now.unix() + 86_400);

    let (active, ev) = approve(&req, "bob", now);
    f.store.transition(1, &active, &ev).await.unwrap();
    let end = active.window_end.unwrap();
    let meta = raw_item(&f, &pk, "META").await.unwrap();
    assert_eq!(number(&meta, "ttl"), end.unix() + RETENTION);
    let second = raw_item(&f, &pk, "EVT#0000000002").await.unwrap();
    assert_eq!(number(&second, "ttl"), end.unix() + RETENTION);
    assert!(number(&first, "ttl") >= number(&meta, "ttl"));
    assert_eq!(number(&meta, "version"), 2);
    assert_eq!(meta["status"].as_s().unwrap(), "active");
}

#[tokio::test]
async fn listing_by_requester_pages_newest_first_across_several_pages() {
    let f = fixture().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let at = Timestamp::now().plus(i);
        let (req, ev) = pending_at(&role("Dev"), "dana", 1, at);
        f.store.create(&req, &ev, None).await.unwrap();
        ids.push(req.id);
    }
    let (other, ev) = pending(&role("Dev"), "erin");
    f.store.create(&other, &ev, None).await.unwrap();

    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let got = f
            .store
            .list_by_requester(&UserId::parse("dana").unwrap(), page.clone())
            .await
            .unwrap();
        pages += 1;
        assert!(got.items.len() <= 3);
        seen.extend(got.items.iter().map(|r| r.id));
        match got.next {
            Some(next) => page.start = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert!(pages >= 3, "{pages} pages");
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
}

#[tokio::test]
async fn pending_lists_only_pending_requests_and_filter_by_role() {
    let f = fixture().await;
    let dev = role("Dev");
    let prod = role("Prod");
    let (a, ev) = pending(&dev, "alice");
    f.store.create(&a, &ev, None).await.unwrap();
    let (b, ev) = pending(&prod, "alice");
    f.store.create(&b, &ev, None).await.unwrap();
    let (c, ev) = pending(&prod, "bob");
    f.store.create(&c, &ev, None).await.unwrap();
    let (c2, ev) = approve(&c, "alice", Timestamp::now());
    f.store.transition(1, &c2, &ev).await.unwrap();

    let all = f
        .store
        .list_pending(None, PageRequest::first(100))
        .await
        .unwrap();
    let all: HashSet<_> = all.items.iter().map(|r| r.id).collect();
    assert_eq!(all, HashSet::from([a.id, b.id]));
    let for_prod = f
        .store
        .list_pending(Some(&prod), PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(
        for_prod.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    // A role whose ARN is a prefix of another's does not match it.
    let prefix = role("Pro");
    let none = f
        .store
        .list_pending(Some(&prefix), PageRequest::first(100))
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

#[tokio::test]
async fn due_lists_what_the_sweep_must_handle_until_cleared() {
    let f = fixture().await;
    let dev = role("Dev");
    let long_ago = Timestamp::now().plus(-3 * 86_400);
    // Pending past its deadline.
    let (stale, ev) = pending_at(&dev, "alice", 1, long_ago);
    f.store.create(&stale, &ev, None).await.unwrap();
    // Active past its window.
    let (old, ev) = pending_at(&dev, "bob", 1, long_ago);
    f.store.create(&old, &ev, None).await.unwrap();
    let (old_active, ev) = approve(&old, "carol", long_ago);
    f.store.transition(1, &old_active, &ev).await.unwrap();
    // Active, window still open.
    let (open, ev) = pending(&dev, "dave");
    f.store.create(&open, &ev, None).await.unwrap();
    let (open_active, ev) = approve(&open, "carol", Timestamp::now());
    f.store.transition(1, &open_active, &ev).await.unwrap();
    // Revoked after credentials were issued: due from its revocation (so
    // the sweep confirms its statement) until the sweep has pruned it.
    let (rev, ev) = pending_at(&dev, "erin", 1, long_ago);
    f.store.create(&rev, &ev, None).await.unwrap();
    let (rev_active, ev) = approve(&rev, "carol", long_ago);
    f.store.transition(1, &rev_active, &ev).await.unwrap();
    let (issued, ev) = rev_active
        .apply(
            Command::IssueCredentials {
                session_name: tollgate::domain::SessionName::for_request(rev.id),
                expires_at: long_ago.plus(900),
            },
            &user("erin"),
            long_ago,
        )
        .unwrap();
    f.store.transition(2, &issued, &ev).await.unwrap();
    let revoke = |req: &AccessRequest| {
        req.apply(
            Command::Revoke {
                reason: Reason::parse("leaver").unwrap(),
            },
            &user("carol"),
            long_ago.plus(60),
        )
        .unwrap()
    };
    let (revoked, ev) = revoke(&issued);
    f.store.transition(3, &revoked, &ev).await.unwrap();
    // Revoked without credentials ever issued: no statement, never due.
    let (unused, ev) = pending_at(&dev, "frank", 1, long_ago);
    f.store.create(&unused, &ev, None).await.unwrap();
    let (unused_active, ev) = approve(&unused, "carol", long_ago);
    f.store.transition(1, &unused_active, &ev).await.unwrap();
    let (unused_revoked, ev) = revoke(&unused_active);
    f.store.transition(2, &unused_revoked, &ev).await.unwrap();

    let now = Timestamp::now();
    let due = f
        .store
        .list_due(now, PageRequest::first(100))
        .await
        .unwrap();
    let ids: HashSet<_> = due.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, HashSet::from([stale.id, old.id, rev.id]));
    // Earliest due first.
    let dues: Vec<_> = due
        .items
        .iter()
        .map(|r| match r.status {
            Status::Pending => r.pending_deadline,
            Status::Revoked => r.closed_at.unwrap(),
            _ => r.window_end.unwrap(),
        })
        .collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]));

    // Housekeeping is conditional on the version: moved to its window end
    // (still past), then cleared.
    let end = revoked.window_end.unwrap();
    assert!(matches!(
        f.store.set_due(rev.id, 3, end).await.unwrap_err(),
        StoreError::Conflict
    ));
    f.store.set_due(rev.id, 4, end).await.unwrap();
    let due = f
        .store
        .list_due(end, PageRequest::first(100))
        .await
        .unwrap();
    assert!(due.items.iter().any(|r| r.id == rev.id));
    let due = f
        .store
        .list_due(end.plus(-1), PageRequest::first(100))
        .await
        .unwrap();
    assert!(due.items.iter().all(|r| r.id != rev.id));
    assert!(matches!(
        f.store.clear_due(rev.id, 3).await.unwrap_err(),
        StoreError::Conflict
    ));
    f.store.clear_due(rev.id, 4).await.unwrap();
    let due = f
        .store
        .list_due(now, PageRequest::first(100))
        .await
        .unwrap();
    let ids: HashSet<_> = due.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, HashSet::from([stale.id, old.id]));
    // The window end of the open grant is due once it has passed.
    let later = open_active.window_end.unwrap();
    let due = f
        .store
        .list_due(later, PageRequest::first(100))
        .await
        .unwrap();
    assert!(due.items.iter().any(|r| r.id == open.id));
}

#[tokio::test]
async fn tampering_directly_in_dynamodb_is_caught_by_verify() {
    let f = fixture().await;
    let (req, ev) = pending(&role("Dev"), "alice");
    f.store.create(&req, &ev, None).await.unwrap();
    let (active, ev) = approve(&req, "bob", Timestamp::now());
    f.store.transition(1, &active, &ev).await.unwrap();
    let pk = schema::request_pk(req.id);

    // Rewrite the reason inside the first event, as someone with table access could.
    let item = raw_item(&f, &pk, "EVT#0000000001").await.unwrap();
    let json = item["event"].as_s().unwrap();
    let forged = json.replace("integration test", "routine check");
    assert_ne!(&forged, json);
    f.clients
        .dynamodb
        .update_item()
        .table_name(&f.table)
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S("EVT#0000000001".into()))
        .update_expression("SET #e = :e")
        .expression_attribute_names("#e", "event")
        .expression_attribute_values(":e", AttributeValue::S(forged))
        .send()
        .await
        .unwrap();
    let (stored, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
    assert_eq!(
        chain::verify(&events, &stored.chain_head, stored.version),
        Err(ChainError::Altered { seq: 1 })
    );

    // Deleting the last event is caught too.
    let (req2, ev) = pending(&role("Dev"), "alice");
    f.store.create(&req2, &ev, None).await.unwrap();
    let (active2, ev) = approve(&req2, "bob", Timestamp::now());
    f.store.transition(1, &active2, &ev).await.unwrap();
    f.clients
        .dynamodb
        .delete_item()
        .table_name(&f.table)
        .key("pk", AttributeValue::S(schema::request_pk(req2.id)))
        .key("sk", AttributeValue::S("EVT#0000000002".into()))
        .send()
        .await
        .unwrap();
    let (stored, events) = f.store.get_with_events(req2.id).await.unwrap().unwrap();
    assert_eq!(
        chain::verify(&events, &stored.chain_head, stored.version),
        Err(ChainError::Head { last_seq: 1 })
    );
}

#[tokio::test]
async fn an_item_whose_attributes_disagree_with_its_body_is_corrupt() {
    let f = fixture().await;
    let (req, ev) = pending(&role("Dev"), "alice");
    f.store.create(&req, &ev, None).await.unwrap();
    f.clients
        .dynamodb
        .update_item()
        .table_name(&f.table)
        .key("pk", AttributeValue::S(schema::request_pk(req.id)))
        .key("sk", AttributeValue::S("META".into()))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("active".into()))
        .send()
        .await
        .unwrap();
    let err = f.store.get(req.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert_eq!(tollgate::BrokerError::from(err).status(), 500);
}

#[tokio::test]
async fn bad_page_requests_are_refused_before_any_call() {
    let f = fixture().await;
    let alice = UserId::parse("alice").unwrap();
    for limit in [0, 101] {
        let err = f
            .store
            .list_by_requester(&alice, PageRequest::first(limit))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidPage(_)), "{err:?}");
    }
    // A key from the due index handed to the requester listing.
    let (req, ev) = pending(&role("Dev"), "alice");
    f.store.create(&req, &ev, None).await.unwrap();
    let (req2, ev) = pending(&role("Dev"), "alice");
    f.store.create(&req2, &ev, None).await.unwrap();
    let page = f
        .store
        .list_due(req.pending_deadline, PageRequest::first(1))
        .await
        .unwrap();
    let foreign = page.next.expect("a second page");
    f.clients.calls.clear();
    let err = f
        .store
        .list_by_requester(
            &alice,
            PageRequest {
                limit: 10,
                start: Some(foreign),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidPage(_)), "{err:?}");
    assert_eq!(tollgate::BrokerError::from(err).status(), 400);
    assert!(f.clients.calls.take().is_empty());
}

#[tokio::test]
async fn a_missing_table_is_an_internal_error_not_unavailable() {
    let f = fixture().await;
    let store = Store::new(f.clients.dynamodb.clone(), unique_name("absent"), RETENTION);
    let (req, _) = pending(&role("Dev"), "alice");
    let err = store.get(req.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Aws(_)), "{err:?}");
    assert_eq!(tollgate::BrokerError::from(err).status(), 500);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_after_retries() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = tollgate::aws::testing::sdk_config_for(&format!("http://127.0.0.1:{port}")).await;
    let clients = Clients::new(&config);
    let store = Store::new(clients.dynamodb.clone(), "tollgate", RETENTION);
    let (req, _) = pending(&role("Dev"), "alice");
    let err = store.get(req.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(clients.calls.take().len(), 3, "the SDK retried");
    let broker = tollgate::BrokerError::from(err);
    assert_eq!(broker.status(), 503);
    assert_eq!(broker.code(), "aws_unavailable");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_unavailable() {
    // Accepted by the kernel's backlog, never answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = tollgate::aws::sdk_config_loader()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_millis(800))
                .build(),
        )
        .load()
        .await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&config),
        "tollgate",
        RETENTION,
    );
    let (req, _) = pending(&role("Dev"), "alice");
    let started = std::time::Instant::now();
    let err = store.get(req.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}

/// A DynamoDB client whose every TransactWriteItems attempt gets `status`
/// with `error_type`: faults the emulator cannot produce (throttling, a 500
/// in the middle of a transaction), through the SDK's real parsing and retries.
async fn faulty_store(status: u16, error_type: &'static str) -> (Store, aws_smithy_mocks::Rule) {
    use aws_smithy_mocks::{MockResponseInterceptor, create_mock_http_client, mock};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::body::SdkBody;
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_response(move || {
            let body = format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"injected"}}"#
            );
            HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body))
        })
        .times(3)
        .build();
    let config = tollgate::aws::testing::sdk_config_for("http://127.0.0.1:9").await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .http_client(create_mock_http_client())
            .interceptor(MockResponseInterceptor::new().with_rule(&rule))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build(),
    );
    let signer = Emulator::shared()
        .unwrap()
        .clients()
        .await
        .audit_signer()
        .await
        .unwrap();
    (
        Store::new(client, "tollgate", RETENTION).with_signer(signer),
        rule,
    )
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_then_unavailable() {
    for (status, error_type) in [
        (400, "ThrottlingException"),
        (400, "ProvisionedThroughputExceededException"),
        (500, "InternalServerError"),
    ] {
        let (store, rule) = faulty_store(status, error_type).await;
        let (req, ev) = pending(&role("Dev"), "alice");
        let err = store.create(&req, &ev, None).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(_)),
            "{error_type}: {err:?}"
        );
        assert_eq!(rule.num_calls(), 3, "{error_type}: the SDK retried");
        let broker = tollgate::BrokerError::from(err);
        assert_eq!(broker.status(), 503);
        assert!(
            !broker.to_string().contains("injected"),
            "no SDK text for people"
        );
    }
}

/// Overwrites a request item's body and one event item in place, as someone
/// with write access to the table (and nothing else) can.
async fn overwrite(f: &Fixture, req: &AccessRequest, event: &Event) {
    let pk = format!("REQ#{}", req.id);
    for (sk, attr, json) in [
        (
            "META".to_owned(),
            schema::BODY,
            serde_json::to_string(req).unwrap(),
        ),
        (
            format!("EVT#{:010}", event.seq),
            schema::EVENT,
            serde_json::to_string(event).unwrap(),
        ),
    ] {
        assert!(raw_item(f, &pk, &sk).await.is_some(), "{pk} {sk} exists");
        f.clients
            .dynamodb
            .update_item()
            .table_name(&f.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", AttributeValue::S(json))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_chain_rebuilt_by_someone_who_can_write_the_table_but_not_sign_is_rejected() {
    let f = fixture().await;
    let (req, created) = pending(&role("Prod"), "alice");
    f.store.create(&req, &created, None).await.unwrap();
    let (approved, approval) = approve(&req, "bob", Timestamp::now());
    f.store.transition(1, &approved, &approval).await.unwrap();
    let audit_key =
        tollgate::aws::kms::public_key(&f.clients.kms, tollgate::aws::DEFAULT_AUDIT_KEY)
            .await
            .unwrap();
    let (stored, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
    chain::verify_signed(&events, &stored.chain_head, stored.version, &audit_key).unwrap();

    // Someone with table write rewrites who approved, and rebuilds the hash
    // chain so that it is consistent again.
    let mut forged = events[1].clone();
    forged.actor = user("mallory");
    forged.hash = chain::hash_event(&forged);
    let mut forged_req = stored.clone();
    forged_req.approvals[0].approver = UserId::parse("mallory").unwrap();
    forged_req.chain_head = forged.hash.clone();

    let their_key = tollgate::aws::ensure_audit_key(
        &f.clients.kms,
        &format!("alias/{}", unique_name("mallory")),
    )
    .await
    .unwrap();
    let their_signature = tollgate::aws::AuditSigner::new(f.clients.kms.clone(), their_key)
        .sign(&forged.hash)
        .await
        .unwrap();
    for (what, signature) in [
        ("the old signature kept", events[1].signature.clone()),
        ("the signature removed", None),
        ("signed with another key", Some(their_signature)),
    ] {
        let forged = Event {
            signature,
            ..forged.clone()
        };
        overwrite(&f, &forged_req, &forged).await;
        let (read, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
        assert_eq!(read.approvals[0].approver.as_str(), "mallory");
        // The hash chain alone is consistent again...
        chain::verify(&events, &read.chain_head, read.version).unwrap();
        // ...but not signed by the audit key.
        let err =
            chain::verify_signed(&events, &read.chain_head, read.version, &audit_key).unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::BadSignature { seq: 2 } | ChainError::Unsigned { seq: 2 }
            ),
            "{what}: {err:?}"
        );
    }

    // The same with the public key as a PEM file, offline.
    let der = f
        .clients
        .kms
        .get_public_key()
        .key_id(tollgate::aws::DEFAULT_AUDIT_KEY)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", der.into_inner()));
    let offline = chain::AuditKey::from_pem(&pem).unwrap();
    let (read, events) = f.store.get_with_events(req.id).await.unwrap().unwrap();
    assert!(chain::verify_signed(&events, &read.chain_head, read.version, &offline).is_err());
    chain::verify_signed(&events[..1], &events[0].hash, 1, &offline).unwrap();
}

#[tokio::test]
async fn a_store_without_the_audit_key_writes_nothing() {
    let f = fixture().await;
    let unsigned = Store::new(f.clients.dynamodb.clone(), &f.table, RETENTION);
    let (req, event) = pending(&role("Dev"), "alice");
    let err = unsigned.create(&req, &event, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Signing(_)), "{err:?}");
    assert_eq!(tollgate::BrokerError::from(err).status(), 500);
    assert_eq!(f.store.get(req.id).await.unwrap(), None);
}
