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
    #![proptest_config(config(256))]

    #[test]
    fn session_policies_that_parse_fit_sts_with_the_cutoff(doc in near_policy_doc()) {
        oracles::check_session_policy(&doc);
    }

    #[test]
    fn hostile_subjects_still_mint_credentials_sts_accepts(input in hostile_string()) {
        oracles::check_user_id_in_credentials(&input);
    }
}

proptest! {
    // Each case builds, encodes and re-verifies a whole chain.
    #![proptest_config(config(64))]

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
    #![proptest_config(config(32))]

    #[test]
    fn policy_text_loads_or_is_refused_with_located_problems(a in policy_text(), b in policy_text()) {
        oracles::check_policy_sources(&[("a.cedar", &a)]);
        oracles::check_policy_sources(&[("a.cedar", &a), ("b.cedar", &b)]);
    }
}

/// Request bodies: well-formed ones with hostile values, near-misses in
/// shape (unknown, missing, mistyped fields) and mangled JSON.
fn request_body() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        2 => hostile_string().prop_map(Value::String),
        1 => near_arn().prop_map(Value::String),
        1 => select(&["INC-42", "fix it", " padded ", "arn:aws:iam::123456789012:role/tollgate/Prod"][..])
            .prop_map(|s| Value::String(s.to_owned())),
        1 => prop_oneof![any::<i64>().prop_map(Value::from), any::<f64>().prop_map(Value::from), Just(Value::Null), Just(json!([])), Just(json!({}))],
    ];
    let duration = prop_oneof![
        3 => (0u64..100_000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => near_duration().prop_map(Value::String),
    ];
    let field = select(
        &[
            "role_arn",
            "duration_seconds",
            "reason",
            "ticket",
            "session_policy",
            "digest",
            "comment",
            "Reason",
            "role_arn\u{0}",
            "__proto__",
            "",
        ][..],
    );
    let object = (
        proptest::collection::btree_map(field, text, 0..6),
        proptest::option::of(duration),
        proptest::option::of(near_policy_doc()),
    )
        .prop_map(|(fields, duration, policy)| {
            let mut o: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(d) = duration {
                o.insert("duration_seconds".into(), d);
            }
            if let Some(p) = policy {
                o.insert("session_policy".into(), p);
            }
            serde_json::to_vec(&Value::Object(o)).unwrap()
        });
    let valid_create = (
        near_arn(),
        0u64..50_000,
        valid_reason(),
        proptest::option::of("[A-Z]{2,5}-[0-9]{1,5}"),
    )
        .prop_map(|(arn, d, r, t)| {
            serde_json::to_vec(
                &json!({"role_arn": arn, "duration_seconds": d, "reason": r.as_str(), "ticket": t}),
            )
            .unwrap()
        });
    let valid_review = (valid_reason(), "[0-9a-f]{64}").prop_map(|(r, digest)| {
        serde_json::to_vec(&json!({"digest": digest, "comment": r.as_str(), "reason": r.as_str()}))
            .unwrap()
    });
    prop_oneof![
        3 => object,
        2 => valid_create,
        1 => valid_review,
        1 => hostile_string().prop_map(String::into_bytes),
        1 => (valid_reason(), any::<prop::sample::Index>(), hostile_string()).prop_map(|(r, at, junk)| {
            let body = serde_json::to_vec(&json!({"reason": r.as_str()})).unwrap();
            let at = at.index(body.len() + 1);
            [&body[..at], junk.as_bytes(), &body[at..]].concat()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// JWT-shaped input: header and claims JSON with hostile values.
fn token_parts() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let far = 4_102_444_800i64; // 2100-01-01
    let header = prop_oneof![
        select(
            &[
                r#"{"alg":"HS256","typ":"JWT"}"#,
                r#"{"alg":"none"}"#,
                r#"{"alg":"RS256","kid":"k1"}"#,
                r#"{"alg":"ES256","kid":"k1"}"#,
                r#"{"alg":"HS256","kid":"k1"}"#,
                r#"{"alg":"hs256"}"#,
                r#"{"alg":"HS512"}"#,
                r#"{"alg":"ES256"}"#,
                r#"{"alg":"HS256","crit":["x"],"x":1}"#,
                "[]",
                "",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        hostile_string().prop_map(String::into_bytes),
    ];
    let value = prop_oneof![
        hostile_string().prop_map(Value::String),
        select(&["tollgate", "tollgate-local", "alice", "mfa"][..])
            .prop_map(|s| Value::String(s.to_owned())),
        any::<i64>().prop_map(Value::from),
        (far - 10..far + 10).prop_map(Value::from),
        Just(json!(["tollgate", "other"])),
        Just(json!(["developers", "sre", "sre", "", "a\nb"])),
        Just(Value::Null),
        any::<f64>().prop_map(Value::from),
    ];
    let claims = (
        proptest::collection::btree_map(
            select(
                &[
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "nbf",
                    "iat",
                    "groups",
                    "amr",
                    "department",
                ][..],
            ),
            value,
            0..9,
        ),
        any::<bool>(),
        0i64..100,
    )
        .prop_map(move |(m, base, back)| {
            let mut o = serde_json::Map::new();
            if base {
                o.insert("sub".into(), json!("alice"));
                o.insert("iss".into(), json!("tollgate-local"));
                o.insert("aud".into(), json!("tollgate"));
                o.insert("exp".into(), json!(far));
                o.insert("nbf".into(), json!(Timestamp::now().unix() - back));
            }
            for (k, v) in m {
                o.insert(k.to_owned(), v);
            }
            serde_json::to_vec(&Value::Object(o)).unwrap()
        });
    (header, claims)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn request_bodies_parse_to_what_they_say_or_are_refused_with_a_clean_400(body in request_body()) {
        oracles::check_request_bodies(&body);
    }

    #[test]
    fn query_strings_never_accept_unknown_or_repeated_names(raw in prop_oneof![
        hostile_string(),
        proptest::collection::vec(prop_oneof![
            select(&["scope=mine", "status=active", "next_token=a%2Bb", "dry_run=true", "dry_run=1", "%", "%f", "%ff%fe", "scope=%E2%80%AE", "+", "=", "&&"][..]).prop_map(str::to_owned),
            hostile_string(),
        ], 0..6).prop_map(|v| v.join("&")),
    ]) {
        oracles::check_query(&raw);
    }

    #[test]
    fn arbitrary_bearer_tokens_are_never_accepted(raw in prop_oneof![
        hostile_string().prop_map(String::into_bytes),
        hostile_string().prop_map(|s| format!("Bearer {s}").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..200),
        (token_parts(), hostile_string()).prop_map(|((h, c), s)| format!("Bearer {}.{}.{s}", String::from_utf8_lossy(&h), String::from_utf8_lossy(&c)).into_bytes()),
    ]) {
        oracles::check_raw_token(&raw);
    }

    #[test]
    fn tokens_not_signed_with_the_secret_are_never_accepted(
        (header, claims) in token_parts(),
        how in 0u8..5,
        sig in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        oracles::check_forged_token(&header, &claims, how, &sig);
    }

    #[test]
    fn signed_tokens_are_accepted_only_with_valid_claims((header, claims) in token_parts()) {
        oracles::check_signed_token(&header, &claims);
    }
}

/// The oracles' accepting branches are reachable: a good body and a good
/// token pass, and the same with one thing wrong does not.
#[test]
fn the_checks_accept_well_formed_bodies_and_tokens() {
    let create = br#"{"role_arn":"arn:aws:iam::123456789012:role/tollgate/Prod","duration_seconds":3600,"reason":" fix INC-42 ","ticket":"INC-42","session_policy":{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}}"#;
    assert_eq!(oracles::check_request_bodies(create), [true, false, false]);
    let review = br#"{"digest":"00ff","comment":"ok"}"#;
    assert_eq!(oracles::check_request_bodies(review), [false, true, false]);
    assert_eq!(
        oracles::check_request_bodies(br#"{"reason":"done"}"#),
        [false, false, true]
    );
    assert_eq!(
        oracles::check_request_bodies(br#"{"reason":"a\u202eb"}"#),
        [false, false, false]
    );

    let header = br#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = |exp: i64| {
        serde_json::to_vec(&json!({"sub": "alice", "iss": "tollgate-local", "aud": ["x", "tollgate"], "exp": exp, "groups": ["sre"]})).unwrap()
    };
    let now = Timestamp::now().unix();
    assert!(oracles::check_signed_token(header, &claims(now + 600)));
    assert!(!oracles::check_signed_token(header, &claims(now - 600)));
    assert!(!oracles::check_signed_token(
        br#"{"alg":"none"}"#,
        &claims(now + 600)
    ));
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// A fixed request and the events it produced, for seeding the
/// `audit_event` corpus.
fn seed_events() -> (AccessRequest, Vec<Event>) {
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
    let (req, revoked) = req.apply(revoke, &bob, now.plus(200)).unwrap();
    (req, vec![created, approved, issued, revoked])
}

/// With `TOLLGATE_WRITE_SEEDS=1`, (re)writes the generated seeds; always
/// checks that every committed seed still decodes as its target expects, so
/// a change to the event format cannot leave the fuzzer seeded with junk.
#[test]
fn committed_audit_event_seeds_decode_and_verify() {
    let (req, events) = seed_events();
    let dir = corpus_dir("audit_event");
    if std::env::var_os("TOLLGATE_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("chain.json"),
            serde_json::to_vec_pretty(&events).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("request.json"), serde_json::to_vec(&req).unwrap()).unwrap();
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
    let stored_req: AccessRequest =
        serde_json::from_slice(&std::fs::read(dir.join("request.json")).unwrap()).unwrap();
    assert_eq!(stored_req.chain_head, head);
    assert_eq!(stored_req.version, stored.len() as u64);
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
        ("request_body", oracles::run_request_body),
        ("token", oracles::run_token),
    ] {
        let seeds = files(target);
        assert!(!seeds.is_empty(), "no {target} seeds");
        for data in &seeds {
            run(data);
        }
    }
}
