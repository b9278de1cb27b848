//! Postconditions of Tollgate's input boundaries, shared by the proptest
//! suite (`hostile_input.rs`) and the cargo-fuzz targets (`fuzz/`, which
//! include this file by path). Each `check_*` feeds one input to a parser and
//! panics, naming the broken rule, if the result breaks what the parser
//! documents. Expectations are computed independently of the code under test
//! (regular expressions over the documented grammar) wherever that is
//! practical, so a check can fail when the parser is wrong, not only when it
//! panics.

// Oracles panic on purpose: a broken postcondition is a test failure.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc
)]

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use regex::Regex;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use tollgate::BrokerError;
use tollgate::api::ApiError;
use tollgate::api::auth::{
    DEFAULT_AUDIENCE, DEFAULT_ISSUER, LEEWAY_SECONDS, TokenVerifier, VerifierSettings,
    bearer_token, identity_from_claims,
};
use tollgate::api::handlers::ReasonInput;
use tollgate::api::handlers::requests::CreateInput;
use tollgate::api::handlers::reviews::ApproveInput;
use tollgate::api::input::{JsonObject, query_pairs};
use tollgate::audit::chain;
use tollgate::aws::CredentialPlan;
use tollgate::domain::{
    AccessRequest, Actor, Command, DEFAULT_MAX_DURATION_SECONDS, Event, GrantDuration,
    IdempotencyKey, Identity, NewRequest, Reason, RequestId, RoleArn, RoleInfo, SessionName,
    SessionPolicy, Ticket, Timestamp, UserId, ValidationError, sanitize_source_identity,
    sanitize_tag_value,
};
use tollgate::policy::{Action, PolicyEngine, Query, QueryContext};

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap()
}

/// IAM role ARN grammar (DESIGN.md, IAM's rules): partition list, no region,
/// 12 ASCII digits, a path `/` or `/x/.../`, a 1-64 character name.
static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc):iam::[0-9]{12}:role(/|/[\x21-\x7e]*/)([A-Za-z0-9_+=,.@-]{1,64})$",
    )
});
/// One character STS accepts in a session tag value.
static TAG_VALUE_CHAR: LazyLock<Regex> = LazyLock::new(|| re(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]$"));
/// STS `SourceIdentity` / `RoleSessionName`: ASCII `[\w+=,.@-]{2,64}`.
static STS_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_+=,.@-]{2,64}$"));
/// Crockford base32, as a canonical ULID (the first digit carries 3 bits).
static ULID: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"));
static TICKET: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9._#/:-]{1,64}$"));
static IDEMPOTENCY_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_.:-]{8,128}$"));
static DURATION_UNITS: LazyLock<Regex> = LazyLock::new(|| re(r"^([0-9]+[dhms])+$"));
static DURATION_PART: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)([dhms])"));

/// Unicode's `Bidi_Control` characters: they can make text read differently
/// from how it is stored.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Grant ceilings every duration is checked against.
pub const CEILINGS: [u32; 4] = [60, 3600, DEFAULT_MAX_DURATION_SECONDS, u32::MAX];

/// An error message is for people and may reach a log line or a terminal:
/// it names its field, is not empty, carries no control or bidi character
/// (user input is escaped by `quote`) and stays short whatever the input.
pub fn check_error(err: &ValidationError, field: &str) {
    assert_eq!(err.field, field, "error for the wrong field: {err:?}");
    assert!(!err.message.is_empty(), "empty message for {field}");
    assert!(
        !err.message
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c)),
        "raw control or bidi character in a {field} message: {:?}",
        err.message
    );
    let n = err.message.chars().count();
    assert!(n <= 1024, "{field} message is {n} characters long");
}

/// `Reason`, `Ticket`, `UserId` and `IdempotencyKey` accept exactly their
/// documented language, keep what they accept, and their serde form agrees
/// with `parse`.
pub fn check_text_newtypes(input: &str) {
    let json = serde_json::to_string(input).unwrap();

    // Reason: trimmed, 1-1024 characters, no control or bidi characters.
    let trimmed = input.trim();
    let want = !trimmed.is_empty()
        && trimmed.chars().count() <= Reason::MAX_CHARS
        && !trimmed
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c));
    match Reason::parse(input) {
        Ok(r) => {
            assert!(want, "reason {input:?} accepted");
            assert_eq!(r.as_str(), trimmed);
            assert_eq!(r.as_str().trim(), r.as_str());
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), r);
            let again = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Reason>(&again).unwrap(), r);
        }
        Err(e) => {
            assert!(!want, "reason {input:?} refused: {e}");
            check_error(&e, "reason");
            assert!(serde_json::from_str::<Reason>(&json).is_err());
        }
    }

    // Ticket: 1-64 of A-Z a-z 0-9 . _ # / : -.
    match Ticket::parse(input) {
        Ok(t) => {
            assert!(TICKET.is_match(input), "ticket {input:?} accepted");
            assert_eq!(t.as_str(), input);
            assert_eq!(serde_json::from_str::<Ticket>(&json).unwrap(), t);
        }
        Err(e) => {
            assert!(!TICKET.is_match(input), "ticket {input:?} refused: {e}");
            check_error(&e, "ticket");
            assert!(serde_json::from_str::<Ticket>(&json).is_err());
        }
    }

    // UserId: 1-256 characters, no surrounding white space, no control
    // characters, no `#` (it separates DynamoDB key parts).
    let want = !input.is_empty()
        && input.chars().count() <= 256
        && input.trim() == input
        && !input.chars().any(char::is_control)
        && !input.contains('#');
    match UserId::parse(input) {
        Ok(u) => {
            assert!(want, "user id {input:?} accepted");
            assert_eq!(u.as_str(), input);
            assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), u);
        }
        Err(e) => {
            assert!(!want, "user id {input:?} refused: {e}");
            check_error(&e, "sub");
        }
    }

    // IdempotencyKey: 8-128 of A-Z a-z 0-9 _ . : -.
    match IdempotencyKey::parse(input) {
        Ok(k) => {
            assert!(
                IDEMPOTENCY_KEY.is_match(input),
                "idempotency key {input:?} accepted"
            );
            assert_eq!(k.as_str(), input);
        }
        Err(e) => {
            assert!(
                !IDEMPOTENCY_KEY.is_match(input),
                "idempotency key {input:?} refused: {e}"
            );
            check_error(&e, "idempotency_key");
        }
    }
}

/// `RoleArn::parse` accepts exactly the IAM role ARN grammar, with no
/// wildcard, and its accessors take the ARN apart without panicking and put
/// it back together exactly.
pub fn check_role_arn(input: &str) {
    let want = ROLE_ARN.captures(input).is_some_and(|c| {
        let path = &c[2];
        path.len() <= 512 && !path.contains("//")
    }) && !input.contains(['*', '?']);
    match RoleArn::parse(input) {
        Ok(arn) => {
            assert!(want, "role ARN {input:?} accepted");
            assert_eq!(arn.as_str(), input);
            assert_eq!(arn.to_string(), input);
            let (partition, account, path, name) =
                (arn.partition(), arn.account(), arn.path(), arn.name());
            assert_eq!(
                format!("arn:{partition}:iam::{account}:role{path}{name}"),
                input
            );
            assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
            assert!(
                path.starts_with('/') && path.ends_with('/'),
                "path {path:?}"
            );
            assert!(!name.is_empty() && !name.contains('/'));
            let json = serde_json::to_string(&arn).unwrap();
            assert_eq!(serde_json::from_str::<RoleArn>(&json).unwrap(), arn);
            assert_eq!(RoleArn::parse(arn.as_str()).unwrap(), arn);
        }
        Err(e) => {
            assert!(!want, "role ARN {input:?} refused: {e}");
            check_error(&e, "role_arn");
            let json = serde_json::to_string(input).unwrap();
            assert!(serde_json::from_str::<RoleArn>(&json).is_err());
        }
    }
}

/// `RequestId::parse` accepts a canonical ULID in either case and nothing
/// else; the id prints upper-case, parses back to itself, and always makes a
/// valid STS session name.
pub fn check_request_id(input: &str) {
    let want = ULID.is_match(&input.to_ascii_uppercase()) && input.is_ascii();
    match RequestId::parse(input) {
        Ok(id) => {
            assert!(want, "request id {input:?} accepted");
            let s = id.to_string();
            assert_eq!(s, input.to_ascii_uppercase());
            assert_eq!(RequestId::parse(&s).unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<RequestId>(&json).unwrap(), id);
            let name = SessionName::for_request(id);
            assert!(SessionName::is_valid(name.as_str()));
            assert!(STS_NAME.is_match(name.as_str()));
        }
        Err(e) => {
            assert!(!want, "request id {input:?} refused: {e}");
            check_error(&e, "request_id");
        }
    }
}

/// The documented duration grammar, computed independently: bare seconds or
/// `<n><d|h|m|s>` parts, at most 32 characters after trimming; `None` when
/// it is not a duration or overflows.
fn expected_seconds(input: &str) -> Option<u64> {
    let s = input.trim();
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    if !DURATION_UNITS.is_match(s) {
        return None;
    }
    let mut total: u64 = 0;
    for part in DURATION_PART.captures_iter(s) {
        let n: u64 = part[1].parse().ok()?;
        let unit = match &part[2] {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            _ => 1,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// `GrantDuration::parse` gives the documented number of seconds when it is
/// within `[60, ceiling]` and refuses everything else; its display form
/// parses back to the same duration.
pub fn check_duration(input: &str, ceiling: u32) {
    let want = expected_seconds(input)
        .filter(|s| (60..=u64::from(ceiling)).contains(s))
        .and_then(|s| u32::try_from(s).ok());
    match GrantDuration::parse(input, ceiling) {
        Ok(d) => {
            assert_eq!(Some(d.seconds()), want, "duration {input:?}");
            assert!(d.seconds() >= 60 && d.seconds() <= ceiling);
            assert_eq!(GrantDuration::parse(&d.to_string(), ceiling).unwrap(), d);
            assert_eq!(
                GrantDuration::parse(&d.seconds().to_string(), ceiling).unwrap(),
                d
            );
        }
        Err(e) => {
            assert_eq!(want, None, "duration {input:?} refused: {e}");
            check_error(&e, "duration_seconds");
        }
    }
}

/// The session tag and source identity sanitisers always produce what STS
/// accepts, change only what they must, and are idempotent.
pub fn check_sanitizers(input: &str) {
    let tag = sanitize_tag_value(input);
    let n = tag.chars().count();
    assert!(n <= 256, "tag value of {n} characters");
    assert_eq!(n, input.chars().count().min(256));
    for (out, orig) in tag.chars().zip(input.chars()) {
        assert!(
            TAG_VALUE_CHAR.is_match(out.encode_utf8(&mut [0; 4])),
            "tag value keeps {out:?} (U+{:04X}), which STS refuses",
            u32::from(out)
        );
        assert!(out == orig || out == '_', "{orig:?} became {out:?}");
        if TAG_VALUE_CHAR.is_match(orig.encode_utf8(&mut [0; 4])) {
            assert_eq!(out, orig, "{orig:?} was replaced although STS accepts it");
        }
    }
    assert_eq!(sanitize_tag_value(&tag), tag, "not idempotent");

    let sid = sanitize_source_identity(input);
    assert!(STS_NAME.is_match(&sid), "source identity {sid:?}");
    assert!(!sid.to_ascii_lowercase().starts_with("aws:"));
    assert!(SessionName::is_valid(&sid));
    // Injective: a value kept as it is never looks like a changed one, and
    // a changed one carries a hash of the whole input.
    let changed = sid != input;
    let hash = &hex::encode(<Sha256 as sha2::Digest>::digest(input.as_bytes()))
        [..tollgate::domain::SOURCE_IDENTITY_HASH_CHARS];
    if changed {
        assert!(
            sid.ends_with(&format!("={hash}")),
            "{input:?} became {sid:?}"
        );
    } else {
        assert_ne!(
            sanitize_source_identity(&format!("{sid}|")),
            sid,
            "a kept value collides with a changed one"
        );
    }
    let mapped_shape = sid.len() > 17 && sid.as_bytes()[sid.len() - 17] == b'=';
    if STS_NAME.is_match(input) && !input.to_ascii_lowercase().starts_with("aws:") && !mapped_shape
    {
        assert_eq!(sid, input, "a valid identity was changed");
    }
}

/// `SessionPolicy::parse`: what it accepts has statements that are objects
/// with `Effect` `Allow`/`Deny`, an action, no principal, fits STS's limit
/// with room for the cut-off statement, and survives a serde round trip.
/// Every accepted policy can be planned into credentials under 2,048 characters.
pub fn check_session_policy(doc: &Value) {
    match SessionPolicy::parse(doc) {
        Ok(p) => {
            assert!(!p.statements().is_empty());
            for st in p.statements() {
                let st = st.as_object().expect("statement is an object");
                assert!(matches!(
                    st.get("Effect").and_then(Value::as_str),
                    Some("Allow" | "Deny")
                ));
                assert!(!st.contains_key("Principal") && !st.contains_key("NotPrincipal"));
                assert!(st.contains_key("Action") || st.contains_key("NotAction"));
            }
            let compact = p.as_compact_json();
            assert_eq!(compact, serde_json::to_string(p.statements()).unwrap());
            assert!(
                compact.len() <= SessionPolicy::STS_LIMIT_CHARS - SessionPolicy::RESERVED_CHARS
            );
            let value = serde_json::to_value(&p).unwrap();
            let back = SessionPolicy::parse(&value).unwrap();
            assert_eq!(back.as_compact_json(), compact);
            let plan = plan_for(Some(p), "alice", &["bob"]);
            assert!(plan.policy.chars().count() <= SessionPolicy::STS_LIMIT_CHARS);
        }
        Err(e) => check_error(&e, "session_policy"),
    }
}

/// Credentials planned for an active grant for `requester`, approved by
/// `approvers`, with `policy` as its narrowing. Panics if planning refuses:
/// every valid request must be mintable.
pub fn plan_for(
    policy: Option<SessionPolicy>,
    requester: &str,
    approvers: &[&str],
) -> CredentialPlan {
    let role = role_info(BTreeMap::new());
    let now = Timestamp::from_unix(1_795_000_000);
    let new = NewRequest {
        id: RequestId::parse("01KA0000000000000000000000").unwrap(),
        requester: identity(requester),
        role_arn: role.arn.clone(),
        duration: GrantDuration::new(7200, DEFAULT_MAX_DURATION_SECONDS).unwrap(),
        reason: Reason::parse("fuzzing").unwrap(),
        ticket: Some(Ticket::parse("INC-1").unwrap()),
        session_policy: policy,
        approvals_required: u8::try_from(approvers.len().clamp(1, 5)).unwrap(),
        pending_ttl_seconds: 3600,
    };
    let (mut req, _) = AccessRequest::create(new, approvers.is_empty(), Vec::new(), now);
    for approver in approvers {
        let digest = req.digest.clone();
        let actor = Actor::User(UserId::parse(approver).unwrap());
        let cmd = Command::Approve {
            digest,
            comment: None,
            policies: Vec::new(),
        };
        (req, _) = req.apply(cmd, &actor, now).unwrap();
    }
    CredentialPlan::new(&req, now.plus(60)).expect("a valid active grant is mintable")
}

/// A verified identity with no groups or claims.
pub fn identity(sub: &str) -> Identity {
    Identity {
        sub: UserId::parse(sub).unwrap(),
        groups: vec!["developers".to_owned(), "sre".to_owned()],
        tags: BTreeMap::new(),
        mfa: true,
    }
}

/// A production role with `tags`.
pub fn role_info(tags: BTreeMap<String, String>) -> RoleInfo {
    RoleInfo {
        arn: RoleArn::parse("arn:aws:iam::123456789012:role/tollgate/Prod").unwrap(),
        role_id: "AROAEXAMPLEEXAMPLE".to_owned(),
        max_session_seconds: 3600,
        tags,
    }
}

/// User ids taken from hostile text (as a token subject would be) still give
/// session tags and a source identity STS accepts.
pub fn check_user_id_in_credentials(input: &str) {
    let Ok(user) = UserId::parse(input) else {
        return;
    };
    if user.as_str() == "alice" {
        return;
    }
    let plan = plan_for(None, "alice", &[user.as_str()]);
    for tag in &plan.tags {
        assert!(tag.value.chars().count() <= 256);
        assert!(
            tag.value
                .chars()
                .all(|c| TAG_VALUE_CHAR.is_match(c.encode_utf8(&mut [0; 4]))),
            "tag {} = {:?}",
            tag.key,
            tag.value
        );
    }
    let approver = if user.as_str() == "bob" {
        "carol"
    } else {
        "bob"
    };
    let plan = plan_for(None, user.as_str(), &[approver]);
    assert!(STS_NAME.is_match(&plan.source_identity));
}

/// One event decoded from untrusted bytes: encoding is deterministic
/// (encode → decode → encode gives the same bytes, and the canonical form
/// does not change), hashing and `chain::verify` never panic, a resealed
/// event verifies, and any edit to it is detected.
pub fn check_event(event: &Event) {
    let bytes = serde_json::to_vec(event).unwrap();
    let again: Event = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "an encoded event does not decode: {e}: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(&again, event, "decode(encode(event)) differs");
    assert_eq!(
        serde_json::to_vec(&again).unwrap(),
        bytes,
        "encoding is not stable"
    );
    let canonical = chain::canonical(event);
    assert_eq!(chain::canonical(&again), canonical);
    let parsed: Value = serde_json::from_slice(&canonical).expect("canonical form is JSON");
    assert!(parsed.get("hash").is_none(), "canonical form covers `hash`");
    assert_eq!(chain::hash_event(event), chain::hash_event(&again));

    let _ = chain::verify(std::slice::from_ref(event), &event.hash, event.seq);

    // Sealed as the first event of a chain, it verifies; edited, it does not.
    let mut sealed = event.clone();
    sealed.seq = 1;
    sealed.prev_hash = chain::GENESIS.to_owned();
    sealed.hash = chain::hash_event(&sealed);
    let head = sealed.hash.clone();
    assert_eq!(
        chain::verify(std::slice::from_ref(&sealed), &head, 1),
        Ok(())
    );
    let mut edited = sealed.clone();
    edited.at = edited.at.plus(1);
    assert!(chain::verify(std::slice::from_ref(&edited), &head, 1).is_err());
    let mut edited = sealed.clone();
    edited.actor = match &sealed.actor {
        Actor::System => Actor::User(UserId::parse("mallory").unwrap()),
        Actor::User(_) => Actor::System,
    };
    assert!(chain::verify(std::slice::from_ref(&edited), &head, 1).is_err());
}

/// A list of events decoded from untrusted bytes: `verify` never panics on
/// it; rechained in order it verifies, and dropping, swapping or
/// truncating events is detected.
pub fn check_event_list(events: &[Event]) {
    for e in events {
        check_event(e);
    }
    let head = events.last().map_or(chain::GENESIS, |e| e.hash.as_str());
    let _ = chain::verify(events, head, events.len() as u64);
    let _ = chain::verify(events, "", 0);
    let _ = chain::verify(events, head, u64::MAX);

    let Some(first) = events.first() else {
        assert!(chain::verify(events, head, 0).is_err());
        return;
    };
    let mut chained: Vec<Event> = Vec::with_capacity(events.len());
    let mut prev = chain::GENESIS.to_owned();
    for (i, e) in events.iter().enumerate() {
        let mut e = e.clone();
        e.request_id = first.request_id;
        e.seq = i as u64 + 1;
        e.prev_hash = prev;
        e.hash = chain::hash_event(&e);
        prev = e.hash.clone();
        chained.push(e);
    }
    let n = chained.len() as u64;
    assert_eq!(chain::verify(&chained, &prev, n), Ok(()));
    if chained.len() > 1 {
        let mut dropped = chained.clone();
        dropped.remove(0);
        assert!(chain::verify(&dropped, &prev, n - 1).is_err());
        let mut swapped = chained.clone();
        swapped.swap(0, 1);
        assert!(chain::verify(&swapped, &prev, n).is_err());
        let truncated = &chained[..chained.len() - 1];
        assert!(chain::verify(truncated, &prev, n - 1).is_err());
    }
}

/// Untrusted bytes decoded as an event, a list of events and a stored
/// request: never a panic, and whatever decodes meets the checks above.
pub fn check_audit_bytes(bytes: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<Event>(bytes) {
        check_event(&event);
    }
    if let Ok(events) = serde_json::from_slice::<Vec<Event>>(bytes) {
        check_event_list(&events);
    }
    if let Ok(req) = serde_json::from_slice::<AccessRequest>(bytes) {
        let bytes = serde_json::to_vec(&req).unwrap();
        let again: AccessRequest = serde_json::from_slice(&bytes).expect("a request round-trips");
        assert_eq!(again, req);
        let now = Timestamp::from_unix(1_795_000_000);
        let _ = req.effective_status(now);
        let _ = req.remaining_seconds(now);
    }
}

/// The sliced engine's decision against Cedar's own `is_authorized` over
/// the whole, unsliced policy set with the same request and entities: the
/// same answer, except that the engine denies when any `forbid` errored
/// (Cedar skips a policy that errors, which would let a broken forbid
/// allow). On an allow, the permitting policies are exactly Cedar's.
pub fn check_against_raw_cedar(
    engine: &PolicyEngine,
    q: &Query<'_>,
    d: &tollgate::policy::Decision,
) {
    let Ok((request, entities)) = engine.cedar_inputs(q) else {
        assert!(!d.allowed, "input Cedar cannot take was allowed");
        return;
    };
    let raw =
        cedar_policy::Authorizer::new().is_authorized(&request, engine.policy_set(), &entities);
    let forbid_errored = raw.diagnostics().errors().any(|e| {
        let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
        engine
            .policy_set()
            .policy(e.policy_id())
            .is_some_and(|p| p.effect() == cedar_policy::Effect::Forbid)
    });
    let expected = raw.decision() == cedar_policy::Decision::Allow && !forbid_errored;
    assert_eq!(
        d.allowed,
        expected,
        "the engine decided {} for `{}`, raw Cedar {:?} (forbid errored: {forbid_errored})",
        d.allowed,
        q.action,
        raw.decision()
    );
    if d.allowed {
        let mut cedar: Vec<String> = raw
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        cedar.sort();
        let mut ours: Vec<String> = d.permitted_by.iter().map(|p| p.id.clone()).collect();
        ours.sort();
        assert_eq!(ours, cedar, "permitting policies of `{}`", q.action);
    }
}

/// Policy text from anywhere loads or is refused with located, one-line
/// problems; it never panics, and a loaded set decides without panicking,
/// denying unless some policy permits and none forbids.
pub fn check_policy_sources(sources: &[(&str, &str)]) {
    match PolicyEngine::from_sources(sources) {
        Ok(engine) => {
            for p in engine.policies() {
                assert!(!p.id.is_empty() && p.id.trim() == p.id);
                assert!(
                    !p.id.chars().any(|c| c.is_control() || is_bidi_control(c)),
                    "policy id {:?}",
                    p.id
                );
            }
            let alice = identity("alice");
            let bob = identity("bob");
            let mut tags = BTreeMap::new();
            tags.insert("environment".to_owned(), "production".to_owned());
            let role = role_info(tags);
            for action in Action::ALL {
                let q = Query {
                    principal: &bob,
                    action,
                    role: &role,
                    context: QueryContext {
                        duration_seconds: 3600,
                        reason: "fuzzing",
                        ticket: Some("INC-1"),
                        source_ip: Some("10.0.0.1"),
                        now: Timestamp::from_unix(1_795_000_000),
                        requester: Some(&alice),
                        approvals_so_far: 0,
                    },
                };
                let d = engine.decide(&q);
                check_against_raw_cedar(&engine, &q, &d);
                let _ = d.explain();
                let _ = d.to_json();
            }
        }
        Err(e) => {
            assert_eq!(e.code(), "policy_invalid", "{e}");
            assert!(!e.problems().is_empty());
            for p in e.problems() {
                let text = sources
                    .iter()
                    .find(|(n, _)| *n == p.file)
                    .map(|(_, t)| *t)
                    .unwrap_or_else(|| panic!("problem in unknown file {:?}", p.file));
                assert!(p.line >= 1 && p.column >= 1);
                assert!(p.line <= text.matches('\n').count() + 1, "{p}");
                assert!(!p.message.is_empty() && !p.message.contains('\n'), "{p}");
            }
        }
    }
}

/// The `newtypes` fuzz target: one input through every string parser and
/// sanitiser, and through the session policy parser when it is JSON.
pub fn run_newtypes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_text_newtypes(&text);
    check_role_arn(&text);
    check_request_id(&text);
    for ceiling in CEILINGS {
        check_duration(&text, ceiling);
    }
    check_sanitizers(&text);
    check_user_id_in_credentials(&text);
    if let Ok(doc) = serde_json::from_slice::<Value>(data) {
        check_session_policy(&doc);
    }
}

/// The `audit_event` fuzz target.
pub fn run_audit_event(data: &[u8]) {
    check_audit_bytes(data);
}

/// The `policy` fuzz target: a NUL splits the input into two files, so
/// duplicate ids across files and per-file locations are exercised.
pub fn run_policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match text.split_once('\0') {
        Some((a, b)) => check_policy_sources(&[("a.cedar", a), ("b.cedar", b)]),
        None => check_policy_sources(&[("policies.cedar", &text)]),
    }
}

/// A refusal of bad input on its way to the caller: a 400 (or 413/401 where
/// named), a stable snake_case code, and a body whose message carries no raw
/// control or bidi character and stays short.
pub fn check_refusal(err: BrokerError, status: u16, codes: &[&str]) {
    assert_eq!(err.status(), status, "{err:?}");
    let code = err.code();
    assert!(codes.contains(&code), "unexpected code {code}: {err:?}");
    let body = ApiError(err).body();
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(!message.is_empty());
    assert!(
        !message
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c)),
        "raw control or bidi character in {message:?}"
    );
    assert!(
        message.chars().count() <= 1024,
        "message of {} characters",
        message.chars().count()
    );
}

const BODY_CODES: &[&str] = &["malformed_json", "unknown_field", "invalid_input"];

/// The body as the parsers should read it: whitespace is an empty object,
/// otherwise a JSON object or nothing.
fn body_object(body: &[u8]) -> Option<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn str_field<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    o.get(name).and_then(Value::as_str)
}

/// The create, approve, deny/revoke and empty-body parsers on one body:
/// never a panic; what they accept is exactly what the JSON says, with only
/// the route's fields; what they refuse is a clean 400. Returns which of
/// create, approve and deny/revoke accepted it.
pub fn check_request_bodies(body: &[u8]) -> [bool; 3] {
    let mut accepted = [false; 3];
    let object = body_object(body);
    let only = |o: &Map<String, Value>, allowed: &[&str]| {
        assert!(
            o.keys().all(|k| allowed.contains(&k.as_str())),
            "unknown field accepted"
        );
    };

    match CreateInput::parse(body) {
        Ok(c) => {
            let o = object.as_ref().expect("an accepted body is a JSON object");
            only(
                o,
                &[
                    "role_arn",
                    "duration_seconds",
                    "reason",
                    "ticket",
                    "session_policy",
                ],
            );
            assert_eq!(Some(c.role_arn.as_str()), str_field(o, "role_arn"));
            assert_eq!(
                Some(c.duration_seconds),
                o.get("duration_seconds").and_then(Value::as_u64)
            );
            assert_eq!(
                Some(c.reason.as_str()),
                str_field(o, "reason").map(str::trim)
            );
            assert_eq!(
                c.ticket.as_ref().map(|t| t.as_str()),
                str_field(o, "ticket")
            );
            match o.get("session_policy").filter(|v| !v.is_null()) {
                None => assert!(c.session_policy.is_none()),
                Some(doc) => assert_eq!(
                    c.session_policy
                        .as_ref()
                        .map(SessionPolicy::as_compact_json),
                    Some(SessionPolicy::parse(doc).unwrap().as_compact_json())
                ),
            }
            let fingerprint = c.fingerprint();
            assert!(fingerprint.len() == 64 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(CreateInput::parse(body).unwrap().fingerprint(), fingerprint);
            accepted[0] = true;
        }
        Err(e) => check_refusal(e, 400, BODY_CODES),
    }

    match ApproveInput::parse(body) {
        Ok(a) => {
            let o = object.as_ref().expect("an accepted body is a JSON object");
            only(o, &["digest", "comment"]);
            assert_eq!(Some(a.digest.as_str()), str_field(o, "digest"));
            assert!((1..=128).contains(&a.digest.len()));
            assert_eq!(
                a.comment.as_ref().map(Reason::as_str),
                str_field(o, "comment").map(str::trim)
            );
            accepted[1] = true;
        }
        Err(e) => check_refusal(e, 400, BODY_CODES),
    }

    match ReasonInput::parse(body) {
        Ok(r) => {
            let o = object.as_ref().expect("an accepted body is a JSON object");
            only(o, &["reason"]);
            assert_eq!(
                Some(r.reason.as_str()),
                str_field(o, "reason").map(str::trim)
            );
            accepted[2] = true;
        }
        Err(e) => check_refusal(e, 400, BODY_CODES),
    }

    // Cancel and credentials take no fields: whitespace or `{}` only.
    match JsonObject::parse(body, &[]) {
        Ok(_) => assert!(object.is_some_and(|o| o.is_empty()), "a field was accepted"),
        Err(e) => check_refusal(e, 400, BODY_CODES),
    }
    accepted
}

/// Query strings: never a panic; accepted names are known and unique.
pub fn check_query(raw: &str) {
    let allowed = ["scope", "status", "next_token", "dry_run"];
    match query_pairs(Some(raw), &allowed) {
        Ok(pairs) => {
            for (i, (k, _)) in pairs.iter().enumerate() {
                assert!(allowed.contains(&k.as_str()));
                assert!(pairs[..i].iter().all(|(seen, _)| seen != k), "{k} twice");
            }
        }
        Err(e) => check_refusal(e, 400, &["unknown_parameter", "invalid_input"]),
    }
}

/// The development secret the token checks' verifier trusts.
const DEV_SECRET: &str = "fuzzing-secret-not-for-anything-else";
/// A P-256 public key the verifier also trusts (for ES256, kid `k1`): its
/// material must never work as an HMAC secret.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256","x":"THjupzliRi8y9G7IvdiljRkdzxfj1eB2lSMuuK-zXQU","y":"fEsmwjub5VPufLrM3qHaxJaQ_aQyL7_QKaC69yf066I"}]}"#;

static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| {
    let path =
        std::env::temp_dir().join(format!("tollgate-oracle-jwks-{}.json", std::process::id()));
    std::fs::write(&path, JWKS).unwrap();
    let verifier = TokenVerifier::new(&VerifierSettings {
        dev_secret: Some(DEV_SECRET.to_owned().into()),
        jwks_file: Some(path.clone()),
        issuer: None,
        audience: None,
    })
    .unwrap();
    let _ = std::fs::remove_file(path);
    verifier
});

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hs256(key: &[u8], signing_input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Whether `token`'s signature is the development secret's HMAC of its
/// header and claims: a genuine token, which only a seed can supply.
fn is_genuine(token: &str) -> bool {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let Some((signing_input, signature)) = token.trim().rsplit_once('.') else {
        return false;
    };
    lenient
        .decode(signature)
        .is_ok_and(|sig| sig == hs256(DEV_SECRET.as_bytes(), signing_input))
}

fn refused(token: &str) {
    match VERIFIER.verify(token) {
        Err(e) => check_refusal(e, 401, &["unauthenticated"]),
        Ok(claims) => assert!(
            is_genuine(token),
            "token {token:?} accepted with claims {claims:?}"
        ),
    }
}

/// Arbitrary bytes as an `Authorization` header and as a bearer token:
/// never a panic, never accepted unless signed with the secret.
pub fn check_raw_token(data: &[u8]) {
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        match bearer_token(Some(&value)) {
            Ok(token) => refused(token),
            Err(e) => check_refusal(e, 401, &["unauthenticated"]),
        }
    }
    refused(&String::from_utf8_lossy(data));
}

/// A token with the given header and claims bytes whose signature is not the
/// development secret's: arbitrary bytes, another secret, or (the classic
/// algorithm confusion) HMAC keyed with the trusted public key's material.
/// Never accepted.
pub fn check_forged_token(header: &[u8], claims: &[u8], how: u8, sig: &[u8]) {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let signature = match how % 5 {
        0 => sig.to_vec(),
        1 => hs256(b"not-the-development-secret", &signing_input),
        2 => hs256(JWKS.as_bytes(), &signing_input),
        3 => {
            let key = &serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0];
            let x = key["x"].as_str().unwrap();
            let y = key["y"].as_str().unwrap();
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut point = vec![4u8];
            point.extend(engine.decode(x).unwrap());
            point.extend(engine.decode(y).unwrap());
            hs256(&point, &signing_input)
        }
        _ => Vec::new(),
    };
    if signature == hs256(DEV_SECRET.as_bytes(), &signing_input) {
        return; // not a forgery
    }
    refused(&format!("{signing_input}.{}", b64(&signature)));
}

/// A token properly signed with the development secret, with arbitrary
/// header and claims: accepted only when the header says HS256 and the
/// claims carry the expected issuer and audience, a subject, an unexpired
/// `exp` and no future `nbf`; the identity built from it is clean. Returns
/// whether it was accepted.
pub fn check_signed_token(header: &[u8], claims: &[u8]) -> bool {
    let header_bytes = match serde_json::from_slice::<Value>(header) {
        Ok(Value::Object(_)) => header.to_vec(),
        _ => serde_json::to_vec(&json!({"alg": "HS256", "typ": "JWT"})).unwrap(),
    };
    let signing_input = format!("{}.{}", b64(&header_bytes), b64(claims));
    let token = format!(
        "{signing_input}.{}",
        b64(&hs256(DEV_SECRET.as_bytes(), &signing_input))
    );
    let verdict = VERIFIER.verify(&token);
    let Ok(claims) = verdict else {
        if let Err(e) = verdict {
            check_refusal(e, 401, &["unauthenticated"]);
        }
        return false;
    };
    let header: Value = serde_json::from_slice(&header_bytes).unwrap();
    assert_eq!(header["alg"], "HS256", "accepted with header {header}");
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some(DEFAULT_ISSUER),
        "{claims:?}"
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == DEFAULT_AUDIENCE,
        Some(Value::Array(items)) => items.iter().any(|a| a == DEFAULT_AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "audience {:?} accepted", claims.get("aud"));
    assert!(claims.contains_key("sub"), "no subject");
    let now = Timestamp::now().unix() as f64;
    let leeway = LEEWAY_SECONDS as f64;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .expect("a numeric exp");
    assert!(exp + leeway >= now, "expired token accepted: exp {exp}");
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().expect("a numeric nbf");
        assert!(
            nbf - leeway <= now,
            "token not yet valid accepted: nbf {nbf}"
        );
    }

    let config = tollgate::Config::default();
    match identity_from_claims(&claims, &config) {
        Ok(identity) => {
            assert_eq!(
                Some(identity.sub.as_str()),
                claims.get("sub").and_then(Value::as_str)
            );
            assert!(identity.groups.len() <= 100);
            assert!(
                identity.groups.windows(2).all(|w| w[0] < w[1]),
                "groups not sorted and unique"
            );
            for value in identity.groups.iter().chain(identity.tags.values()) {
                assert!(!value.is_empty() && value.chars().count() <= 256);
                assert!(!value.chars().any(char::is_control), "{value:?}");
            }
        }
        Err(e) => check_refusal(e, 401, &["unauthenticated"]),
    }
    true
}

/// The `request_body` fuzz target: the bytes as every route's body and as a
/// query string.
pub fn run_request_body(data: &[u8]) {
    let _ = check_request_bodies(data);
    check_query(&String::from_utf8_lossy(data));
}

/// The `token` fuzz target. The first byte picks raw, forged or signed;
/// the rest splits at the first `0xFF` (never in UTF-8) into header and
/// claims, and the forged signature's bytes follow a second `0xFF`.
pub fn run_token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return check_raw_token(data);
    };
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let header = parts.next().unwrap_or_default();
    let claims = parts.next().unwrap_or_default();
    let sig = parts.next().unwrap_or_default();
    match mode % 3 {
        0 => check_raw_token(rest),
        1 => check_forged_token(header, claims, mode / 3, sig),
        _ => {
            check_signed_token(header, claims);
        }
    }
}
