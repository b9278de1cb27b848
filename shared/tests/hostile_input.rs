//! Hostile input, bounded: proptest feeds the parsers at Tollgate's edges
//! generated strings full of control characters, bidi overrides, look-alikes,
//! combining marks, wildcards, `..`, NUL and huge lengths, and checks the same
//! postconditions the cargo-fuzz targets in `fuzz/` check (`oracles`). The
//! fuzz targets run for millions of inputs by hand (`make fuzz`); these run a
//! fixed number of cases in `make test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod oracles;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tollgate::audit::chain;
use tollgate::domain::{
    AccessRequest, Actor, Command, DEFAULT_MAX_DURATION_SECONDS, Event, GrantDuration, NewRequest,
    Reason, RequestId, RoleArn, SessionName, Ticket, Timestamp, UserId,
};

/// Characters that have broken parsers elsewhere: C0/C1 controls, DEL, bidi
/// controls, zero-width and odd spaces, look-alikes of ASCII letters, digits
/// and separators, combining marks, astral and private-use characters, and
/// the ASCII characters that carry meaning here (`*`, `?`, `#`, `/`, `:`, `.`).
const NASTY: &[char] = &[
    '\0',
    '\t',
    '\n',
    '\r',
    '\x1b',
    '\x7f',
    '\u{85}',
    '\u{9b}',
    '\u{061C}',
    '\u{200E}',
    '\u{200F}',
    '\u{202A}',
    '\u{202B}',
    '\u{202C}',
    '\u{202D}',
    '\u{202E}',
    '\u{2066}',
    '\u{2067}',
    '\u{2068}',
    '\u{2069}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{2060}',
    '\u{FEFF}',
    '\u{00A0}',
    '\u{1680}',
    '\u{2028}',
    '\u{2029}',
    '\u{3000}',
    '\u{0430}',
    '\u{0435}',
    '\u{03BF}',
    '\u{0391}',
    '\u{FF11}',
    '\u{0661}',
    '\u{FF1A}',
    '\u{FF0F}',
    '\u{FF0A}',
    '\u{2215}',
    '\u{0301}',
    '\u{0345}',
    '\u{093F}',
    '\u{0903}',
    '\u{2160}',
    '\u{00B2}',
    'é',
    'ß',
    'İ',
    'ǅ',
    '😀',
    '\u{E000}',
    '\u{FFFD}',
    '\u{10FFFF}',
    '*',
    '?',
    '#',
    '/',
    ':',
    '.',
    '@',
    '_',
    '-',
    '+',
    '=',
    ',',
    ' ',
    '"',
    '\\',
];

/// Fragments that mean something to one parser or another.
const FRAGMENTS: &[&str] = &[
    "..",
    "../",
    "/..",
    "//",
    "*",
    "?",
    "\0",
    "arn:",
    "aws",
    "aws-cn",
    ":iam::",
    "123456789012",
    ":role/",
    "role",
    "tollgate/",
    "Admin",
    "01KA0000000000000000000000",
    "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "1h",
    "30m",
    "99999999999999999999",
    "2d",
    "INC-42",
    "\u{202E}",
    "\u{061C}",
    "\r\n",
    "%00",
    "${jndi:x}",
    "\"}",
    "\\u0000",
];

fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        3 => select(NASTY),
        1 => proptest::char::range('\0', '\u{9f}'),
        1 => any::<char>(),
    ]
}

/// Mostly short strings of hostile characters and meaningful fragments, now
/// and then one far longer than any limit.
fn hostile_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => hostile_char().prop_map(String::from),
        1 => select(FRAGMENTS).prop_map(str::to_owned),
    ];
    prop_oneof![
        8 => proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat()),
        1 => (hostile_char(), 60usize..3000).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => (select(FRAGMENTS), 1usize..400).prop_map(|(f, n)| f.repeat(n)),
    ]
}

/// Role ARNs close to valid: each part either right or subtly wrong.
fn near_arn() -> impl Strategy<Value = String> {
    let partition = prop_oneof![
        select(&["aws", "aws-cn", "aws-us-gov", "aws-iso-b", "aws-eusc"][..])
            .prop_map(str::to_owned),
        hostile_string(),
    ];
    let account = prop_oneof![
        3 => "[0-9]{12}",
        1 => "[0-9\u{FF10}-\u{FF19}\u{0660}-\u{0669}]{10,13}",
        1 => hostile_string(),
    ];
    let path = prop_oneof![
        2 => Just(String::new()),
        2 => "([A-Za-z0-9_.-]{1,12}/){1,4}",
        1 => proptest::collection::vec(prop_oneof![select(&["..", ".", "*", "", "a"][..]).prop_map(str::to_owned), hostile_string()], 1..5)
            .prop_map(|parts| parts.into_iter().map(|p| p + "/").collect::<String>()),
        1 => Just("x/".repeat(300)),
    ];
    let name = prop_oneof![
        3 => "[A-Za-z0-9_+=,.@-]{1,64}",
        1 => "[A-Za-z0-9]{65,70}",
        2 => hostile_string(),
    ];
    let region = prop_oneof![4 => Just(String::new()), 1 => hostile_string()];
    let service = prop_oneof![4 => Just("iam".to_owned()), 1 => select(&["IAM", "sts", "iam\0", "іam"][..]).prop_map(str::to_owned)];
    (partition, service, region, account, path, name)
        .prop_map(|(p, s, r, a, path, n)| format!("arn:{p}:{s}:{r}:{a}:role/{path}{n}"))
}

/// ULID-shaped strings: right length and alphabet, or one character off.
fn near_ulid() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}",
        "[0-9A-Z]{26}",
        ("[0-7][0-9A-HJKMNP-TV-Z]{24}", hostile_char()).prop_map(|(s, c)| format!("{s}{c}")),
        "[0-7][0-9A-HJKMNP-TV-Z]{24,27}",
    ]
}

/// Duration-shaped strings.
fn near_duration() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,22}",
        "([0-9]{1,6}[dhms]){1,5}",
        "[ \t\u{3000}]?([0-9\u{FF11}]{1,4}[dhmsHx\u{0301}]?){1,4}[ \n]?",
        "-?[0-9]{1,3}(\\.[0-9])?[hm]",
        hostile_string(),
    ]
}

/// JSON values shaped like policy documents, with hostile leaves.
fn near_policy_doc() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        hostile_string().prop_map(Value::String),
        select(&["Allow", "Deny", "allow", "*", "s3:GetObject", "2012-10-17"][..])
            .prop_map(|s| Value::String(s.to_owned())),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(hostile_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let key = select(
        &[
            "Effect",
            "Action",
            "NotAction",
            "Resource",
            "Principal",
            "NotPrincipal",
            "Condition",
            "Sid",
        ][..],
    );
    let statement = proptest::collection::btree_map(key, value.clone(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let plain = (
        select(&["Allow", "Deny"][..]),
        "[a-z0-9]{1,8}:[A-Za-z*]{1,12}",
        0usize..160,
    )
        .prop_map(|(e, a, n)| json!({"Effect": e, "Action": a, "Resource": "x".repeat(n * 12)}));
    prop_oneof![
        2 => proptest::collection::vec(prop_oneof![statement, plain], 0..4)
            .prop_map(|st| json!({"Version": "2012-10-17", "Statement": st})),
        1 => (value.clone(), value.clone()).prop_map(|(v, s)| json!({"Version": v, "Statement": s})),
        1 => value,
    ]
}

/// Hostile strings that pass as a reason (trimmed, no controls), for events.
fn valid_reason() -> impl Strategy<Value = Reason> {
    hostile_string().prop_filter_map("not a reason", |s| Reason::parse(&s).ok())
}

fn valid_user() -> impl Strategy<Value = UserId> {
    prop_oneof![
        hostile_string().prop_filter_map("not a user id", |s| UserId::parse(&s).ok()),
        "[a-z]{1,12}".prop_map(|s| UserId::parse(&s).unwrap()),
    ]
}

/// A real request's events: created, approved by up to two approvers with
/// hostile comments, then one closing command.
fn event_chain() -> impl Strategy<Value = Vec<Event>> {
    (
        valid_user(),
        proptest::collection::vec((valid_user(), proptest::option::of(valid_reason())), 0..3),
        valid_reason(),
        0u8..4,
        0i64..2_000_000_000,
    )
        .prop_map(|(requester, approvals, reason, closing, t0)| {
            let now = Timestamp::from_unix(t0);
            let new = NewRequest {
                id: RequestId::generate(now),
                requester: oracles::identity("someone"),
                role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/Prod").unwrap(),
                duration: GrantDuration::new(3600, DEFAULT_MAX_DURATION_SECONDS).unwrap(),
                reason: reason.clone(),
                ticket: Some(Ticket::parse("INC-1").unwrap()),
                session_policy: None,
                approvals_required: 2,
                pending_ttl_seconds: 3600,
            };
            let mut new = new;
            new.requester.sub = requester.clone();
            let (mut req, first) = AccessRequest::create(new, false, vec!["p:0".into()], now);
            let mut events = vec![first];
            let mut at = now;
            for (user, comment) in approvals {
                at = at.plus(1);
                let cmd = Command::Approve {
                    digest: req.digest.clone(),
                    comment,
                    policies: vec!["approve".into()],
                };
                if let Ok((next, e)) = req.apply(cmd, &Actor::User(user), at) {
                    req = next;
                    events.push(e);
                }
            }
            let (cmd, actor) = match closing {
                0 => (
                    Command::Deny {
                        reason: reason.clone(),
                    },
                    Actor::User(UserId::parse("carol").unwrap()),
                ),
                1 => (Command::Revoke { reason }, Actor::User(requester.clone())),
                2 => (Command::Cancel, Actor::User(requester)),
                _ => (Command::Lapse, Actor::System),
            };
            if let Ok((_, e)) = req.apply(cmd, &actor, at.plus(7200)) {
                events.push(e);
            }
            events
        })
}

/// RFC 3339 strings at and past the edges of what a `Timestamp` prints.
fn edge_time() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0u32..=9999,
            1u32..=12,
            1u32..=31,
            0u32..=23,
            0u32..=60,
            prop_oneof![
                Just("Z".to_owned()),
                (select(&["+", "-"][..]), 0u32..=23, 0u32..=59)
                    .prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}"))
            ]
        )
            .prop_map(|(y, mo, d, h, mi, off)| format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00{off}"
            )),
        select(
            &[
                "9999-12-31T23:59:59-23:59",
                "0000-01-01T00:00:00+23:59",
                "9999-12-31T23:59:60Z",
                "2026-02-30T00:00:00Z",
                "2026-11-18T11:06:40.123456789Z",
                "2026-11-18t11:06:40z",
            ][..]
        )
        .prop_map(str::to_owned),
        hostile_string(),
    ]
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn text_fields_accept_exactly_their_documented_language(input in hostile_string()) {
        oracles::check_text_newtypes(&input);
    }

    #[test]
    fn role_arns_accept_exactly_concrete_iam_roles_and_round_trip(input in prop_oneof![near_arn(), hostile_string()]) {
        oracles::check_role_arn(&input);
    }

    #[test]
    fn request_ids_accept_only_canonical_ulids(input in prop_oneof![near_ulid(), hostile_string()]) {
        oracles::check_request_id(&input);
    }

    #[test]
    fn durations_parse_to_the_documented_seconds_within_the_ceiling(
        input in near_duration(),
        ceiling in select(&oracles::CEILINGS[..]),
    ) {
        oracles::check_duration(&input, ceiling);
    }

    #[test]
    fn sanitised_tag_values_and_source_identities_are_what_sts_accepts(input in hostile_string()) {
        oracles::check_sanitizers(&input);
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn session_policies_that_parse_fit_sts_with_the_cutoff(doc in near_policy_doc()) {
        oracles::check_session_policy(&doc);
    }

    #[test]
    fn hostile_subjects_still_mint_credentials_sts_accepts(input in hostile_string()) {
        oracles::check_user_id_in_credentials(&input);
    }

    #[test]
    fn event_chains_round_trip_and_detect_edits(events in event_chain()) {
        oracles::check_event_list(&events);
        let bytes = serde_json::to_vec(&events).unwrap();
        oracles::check_audit_bytes(&bytes);
    }

    #[test]
    fn events_with_edge_timestamps_round_trip_or_are_refused(events in event_chain(), at in edge_time()) {
        let mut value = serde_json::to_value(&events[0]).unwrap();
        value["at"] = Value::String(at);
        oracles::check_audit_bytes(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn mangled_event_bytes_never_panic(events in event_chain(), cut in any::<prop::sample::Index>(), junk in hostile_string()) {
        let bytes = serde_json::to_vec(&events).unwrap();
        let at = cut.index(bytes.len() + 1);
        let mut mangled = bytes[..at].to_vec();
        mangled.extend_from_slice(junk.as_bytes());
        mangled.extend_from_slice(&bytes[at..]);
        oracles::check_audit_bytes(&mangled);
    }
}

/// Cedar-ish text: keywords, scopes and hostile literals.
fn policy_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => select(&[
            "permit", "forbid", "(", ")", "{", "}", ";", ",", "principal", "action", "resource",
            "when", "unless", "context", "==", "in", "has", "like", "&&", "||", "!",
            "Tollgate::User", "Tollgate::Group", "Tollgate::Role", "Tollgate::Action::\"request\"",
            "::", "\"", "@id(\"x\")", "@id(\"\u{202E}\")", "@id(\" \")", "?principal",
            "context.duration_seconds <= 7200", "resource.getTag(\"environment\")",
            "principal in Tollgate::Group::\"sre\"", "ip(\"10.0.0.1\").isInRange(ip(\"10.0.0.0/8\"))",
            "datetime(\"2026-01-01\")", "\n", " ", "// comment\n", "1", "-9223372036854775808",
        ][..]).prop_map(str::to_owned),
        1 => hostile_string(),
    ];
    let valid = select(
        &[
            "permit (principal, action == Tollgate::Action::\"request\", resource);",
            "@id(\"a\") forbid (principal, action, resource) when { context.mfa == false };",
            "@id(\"a\") permit (principal in Tollgate::Group::\"sre\", action == Tollgate::Action::\"approve\", resource == Tollgate::Role::\"arn:aws:iam::123456789012:role/tollgate/Prod\");",
        ][..],
    );
    prop_oneof![
        2 => proptest::collection::vec(piece, 0..30).prop_map(|v| v.join(" ")),
        1 => (valid.clone(), hostile_string()).prop_map(|(v, h)| format!("{v}\n{h}")),
        1 => (valid.clone(), valid).prop_map(|(a, b)| format!("{a}\n{b}")),
    ]
}

proptest! {
    // Each case parses the schema and validates: keep it few in debug builds.
    #![proptest_config(config(48))]

    #[test]
    fn policy_text_loads_or_is_refused_with_located_problems(a in policy_text(), b in policy_text()) {
        oracles::check_policy_sources(&[("a.cedar", &a)]);
        oracles::check_policy_sources(&[("a.cedar", &a), ("b.cedar", &b)]);
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The events a fixed request produces, for seeding the `audit_event` corpus.
fn seed_events() -> Vec<Event> {
    let now = Timestamp::from_unix(1_795_000_000);
    let mut requester = oracles::identity("alice@example.com");
    requester.tags.insert("department".into(), "data".into());
    let new = NewRequest {
        id: RequestId::parse("01KA0000000000000000000000").unwrap(),
        requester,
        role_arn: RoleArn::parse("arn:aws:iam::123456789012:role/tollgate/Prod").unwrap(),
        duration: GrantDuration::new(3600, DEFAULT_MAX_DURATION_SECONDS).unwrap(),
        reason: Reason::parse("déploiement urgent 🚒 INC-42").unwrap(),
        ticket: Some(Ticket::parse("INC-42").unwrap()),
        session_policy: None,
        approvals_required: 1,
        pending_ttl_seconds: 3600,
    };
    let (req, created) = AccessRequest::create(new, false, vec!["production-request".into()], now);
    let approve = Command::Approve {
        digest: req.digest.clone(),
        comment: Some(Reason::parse("ok").unwrap()),
        policies: vec!["production-approve".into()],
    };
    let bob = Actor::User(UserId::parse("bob").unwrap());
    let (req, approved) = req.apply(approve, &bob, now.plus(60)).unwrap();
    let issue = Command::IssueCredentials {
        session_name: SessionName::for_request(req.id),
        expires_at: now.plus(1000),
    };
    let alice = Actor::User(req.requester_id().clone());
    let (req, issued) = req.apply(issue, &alice, now.plus(100)).unwrap();
    let revoke = Command::Revoke {
        reason: Reason::parse("done").unwrap(),
    };
    let (_, revoked) = req.apply(revoke, &bob, now.plus(200)).unwrap();
    vec![created, approved, issued, revoked]
}

/// With `TOLLGATE_WRITE_SEEDS=1`, (re)writes the generated seeds; always
/// checks that every committed seed still decodes as its target expects, so
/// a change to the event format cannot leave the fuzzer seeded with junk.
#[test]
fn committed_audit_event_seeds_decode_and_verify() {
    let events = seed_events();
    let dir = corpus_dir("audit_event");
    if std::env::var_os("TOLLGATE_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("chain.json"),
            serde_json::to_vec_pretty(&events).unwrap(),
        )
        .unwrap();
        for (i, e) in events.iter().enumerate() {
            std::fs::write(
                dir.join(format!("event-{}.json", i + 1)),
                serde_json::to_vec(e).unwrap(),
            )
            .unwrap();
        }
    }
    let chain_bytes = std::fs::read(dir.join("chain.json")).unwrap();
    let stored: Vec<Event> = serde_json::from_slice(&chain_bytes).unwrap();
    let head = stored.last().unwrap().hash.clone();
    assert_eq!(chain::verify(&stored, &head, stored.len() as u64), Ok(()));
    oracles::check_event_list(&stored);
    for i in 1..=stored.len() {
        let bytes = std::fs::read(dir.join(format!("event-{i}.json"))).unwrap();
        let e: Event = serde_json::from_slice(&bytes).unwrap();
        oracles::check_event(&e);
    }
}

/// Every committed seed of every target goes through its target's checks:
/// the corpora are inputs the postconditions hold for, crash reproducers
/// included, so a regression in a fixed bug fails here in `make test`.
#[test]
fn committed_seed_corpora_pass_their_targets_checks() {
    let files = |target: &str| -> Vec<Vec<u8>> {
        let Ok(dir) = std::fs::read_dir(corpus_dir(target)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    for (target, run) in [
        ("newtypes", oracles::run_newtypes as fn(&[u8])),
        ("audit_event", oracles::run_audit_event),
        ("policy", oracles::run_policy),
    ] {
        let seeds = files(target);
        assert!(!seeds.is_empty(), "no {target} seeds");
        for data in &seeds {
            run(data);
        }
    }
}
