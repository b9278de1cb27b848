//! Input abuse over HTTP against the real local broker: oversized bodies,
//! malformed JSON, unknown fields and wrong types, control characters in
//! free text (which must never reach a log line raw), ARNs of other
//! partitions and accounts and malformed ones, durations out of range, a
//! digest that does not match, bad query strings and bad tokens. Every
//! refusal has its stable code and changes nothing.

// Helpers outside `#[test]` functions fail the test loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use tokio::sync::OnceCell;
use tollgate_tests::broker::{ALICE, Auth, BOB, Broker, BrokerOptions, User, block_on, role_arn};

static BROKER: OnceCell<Broker> = OnceCell::const_new();

/// One broker for this file: every test here only refuses input.
async fn broker() -> &'static Broker {
    BROKER
        .get_or_init(|| async {
            Broker::start(
                Path::new(env!("CARGO_BIN_EXE_tollgate-test-server")),
                BrokerOptions::default(),
            )
            .await
        })
        .await
}

fn valid() -> Value {
    json!({"role_arn": role_arn("ProductionOperator"), "duration_seconds": 1800,
           "reason": "fix the queue", "ticket": "INC-1"})
}

/// A requester of their own, so that counting their requests is not
/// disturbed by the other tests sharing the broker.
const IVAN: User = User {
    sub: "ivan",
    groups: &["developers", "oncall"],
    mfa: true,
    claims: &[],
};

async fn post_raw(b: &Broker, path: &str, body: Vec<u8>) -> tollgate_tests::broker::Reply {
    b.raw(Method::POST, path, Auth::As(&IVAN), Some(body), &[])
        .await
}

async fn my_request_count(b: &Broker) -> usize {
    let r = b
        .call(Method::GET, "/requests?limit=100", Auth::As(&IVAN), None)
        .await;
    r.body["items"].as_array().map_or(0, Vec::len)
}

#[test]
fn oversized_bodies_are_refused_with_413() {
    block_on(async {
        let b = broker().await;
        let mut body = valid();
        body["reason"] = json!("x".repeat(17 * 1024));
        let r = post_raw(b, "/requests", body.to_string().into_bytes()).await;
        assert_eq!((r.status, r.code()), (413, "payload_too_large"));
        let r = post_raw(
            b,
            "/requests/01J00000000000000000000000/approve",
            vec![b' '; 20_000],
        )
        .await;
        assert_eq!((r.status, r.code()), (413, "payload_too_large"));
        // Just under the limit is parsed (and refused for what it says, not its size).
        body["reason"] = json!("x".repeat(15 * 1024));
        let r = post_raw(b, "/requests", body.to_string().into_bytes()).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("reason")
        );
    });
}

#[test]
fn malformed_json_unknown_fields_and_wrong_types_are_400s_naming_the_field() {
    block_on(async {
        let b = broker().await;
        let before = my_request_count(b).await;
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (
                b"{\"role_arn\": ".to_vec(),
                "malformed_json",
                "not valid JSON",
            ),
            (b"not json".to_vec(), "malformed_json", "not valid JSON"),
            (b"[]".to_vec(), "malformed_json", "JSON object"),
            (b"{}".to_vec(), "invalid_input", "`role_arn` is required"),
        ];
        for (body, code, words) in cases {
            let r = post_raw(b, "/requests", body.clone()).await;
            assert_eq!(
                (r.status, r.code()),
                (400, code),
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert!(
                r.body["error"]["message"].as_str().unwrap().contains(words),
                "{}",
                r.body
            );
        }
        let mutations: Vec<(&str, Value, &str)> = vec![
            ("rol_arn", json!("x"), "unknown field `rol_arn`"),
            (
                "duration_seconds",
                json!("2h"),
                "`duration_seconds` must be a whole number",
            ),
            (
                "duration_seconds",
                json!(1.5),
                "`duration_seconds` must be a whole number",
            ),
            (
                "duration_seconds",
                json!(-1),
                "`duration_seconds` must be a whole number",
            ),
            ("reason", json!(42), "`reason` must be a string"),
            ("reason", json!(["a"]), "`reason` must be a string"),
            ("ticket", json!({"id": 1}), "`ticket` must be a string"),
            ("role_arn", json!(null), "`role_arn` is required"),
            ("session_policy", json!("allow all"), "session policy"),
        ];
        for (field, value, words) in mutations {
            let mut body = valid();
            body[field] = value.clone();
            let r = b
                .call(Method::POST, "/requests", Auth::As(&IVAN), Some(&body))
                .await;
            assert_eq!(r.status, 400, "{field}={value}: {}", r.body);
            assert!(
                r.body["error"]["message"].as_str().unwrap().contains(words),
                "{field}={value}: {}",
                r.body
            );
        }
        let r = b
            .call(
                Method::POST,
                "/requests/01J00000000000000000000000/deny",
                Auth::As(&BOB),
                Some(&json!({"reason": "no", "extra": 1})),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "unknown_field"));
        assert_eq!(
            my_request_count(b).await,
            before,
            "a refused request was stored"
        );
    });
}

#[test]
fn control_characters_in_free_text_are_refused_and_never_reach_a_log_line() {
    block_on(async {
        let b = broker().await;
        let injections = [
            "fix\n{\"log\":\"tollgate.audit\",\"outcome\":\"allow\",\"forged\":true}",
            "red \u{1b}[31malert\u{1b}[0m",
            "right-to-left \u{202e}gnp.exe",
            "nul \u{0} byte",
            "carriage\rreturn",
            "bell \u{7}",
        ];
        for text in injections {
            let mut body = valid();
            body["reason"] = json!(text);
            let r = b
                .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&body))
                .await;
            assert_eq!(
                (r.status, r.code()),
                (400, "invalid_input"),
                "{text:?}: {}",
                r.body
            );
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("control character")
            );
            let mut body = valid();
            body["ticket"] = json!(text);
            let r = b
                .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&body))
                .await;
            assert_eq!(r.status, 400, "ticket {text:?}");
        }
        // A pending request to review with a hostile comment and deny reason.
        let created = b
            .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&valid()))
            .await;
        let id = created.body["id"].as_str().unwrap().to_owned();
        for text in injections {
            let r = b
                .call(
                    Method::POST,
                    &format!("/requests/{id}/approve"),
                    Auth::As(&BOB),
                    Some(&json!({"digest": created.body["digest"], "comment": text})),
                )
                .await;
            assert_eq!(r.status, 400, "comment {text:?}: {}", r.body);
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("comment")
            );
            let r = b
                .call(
                    Method::POST,
                    &format!("/requests/{id}/deny"),
                    Auth::As(&BOB),
                    Some(&json!({"reason": text})),
                )
                .await;
            assert_eq!(r.status, 400, "deny reason {text:?}");
        }
        // Unicode that is not a control character is fine.
        let mut body = valid();
        body["reason"] = json!("déploiement urgent 🚒 — 紧急");
        let r = b
            .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&body))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["reason"], "déploiement urgent 🚒 — 紧急");
        // Nothing raw in the logs: no escape, no bidi override, no forged line.
        for (name, out) in [("stdout", b.stdout()), ("stderr", b.stderr())] {
            for bad in ['\u{1b}', '\u{202e}', '\u{0}', '\u{7}', '\r'] {
                assert!(!out.contains(bad), "{name} contains {bad:?}");
            }
            for line in out.lines() {
                assert!(
                    !line.contains("\"forged\""),
                    "{name} has a forged line: {line}"
                );
                assert!(
                    line.starts_with('{'),
                    "{name} has a line that is not JSON: {line}"
                );
            }
        }
    });
}

#[test]
fn role_arns_of_other_partitions_other_accounts_and_malformed_ones_are_refused() {
    block_on(async {
        let b = broker().await;
        let refused = [
            (
                "arn:aws-cn:iam::111122223333:role/tollgate/StagingDeveloper",
                "unknown_role",
            ),
            (
                "arn:aws-us-gov:iam::444455556666:role/tollgate/ProductionOperator",
                "unknown_role",
            ),
            (
                "arn:aws:iam::111122223333:role/tollgate/NoSuchRole",
                "unknown_role",
            ),
            (
                "arn:aws:iam::999999999999:role/tollgate/StagingDeveloper",
                "account_not_brokered",
            ),
            (
                "arn:aws:iam::123456789012:role/tollgate/StagingDeveloper",
                "account_not_brokered",
            ),
            (
                "arn:aws:iam::111122223333:role/other/StagingDeveloper",
                "role_not_brokered",
            ),
        ];
        for (arn, code) in refused {
            let mut body = valid();
            body["role_arn"] = json!(arn);
            let r = b
                .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&body))
                .await;
            assert_eq!((r.status, r.code()), (400, code), "{arn}: {}", r.body);
        }
        // Refused before any AWS call: no control session was ever asked
        // for the unlisted account or the broker's own.
        let control_accounts: Vec<String> = b
            .sts
            .control_session_calls()
            .iter()
            .map(|c| c["RoleArn"].clone())
            .collect();
        assert!(
            control_accounts
                .iter()
                .all(|arn| !arn.contains("999999999999") && !arn.contains("123456789012")),
            "{control_accounts:?}"
        );
        let malformed = [
            "",
            "StagingDeveloper",
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::123456789012:role/tollgate/*",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:s3:::tollgate-bucket",
            "arn:aws:iam:us-east-1:123456789012:role/tollgate/StagingDeveloper",
            "arn:aws:iam::12345678901:role/tollgate/StagingDeveloper",
            "arn:aws-mars:iam::123456789012:role/tollgate/StagingDeveloper",
            "arn:aws:iam::123456789012:role/tollgate/Staging Developer",
        ];
        for arn in malformed {
            let mut body = valid();
            body["role_arn"] = json!(arn);
            let r = b
                .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&body))
                .await;
            assert_eq!(
                (r.status, r.code()),
                (400, "invalid_input"),
                "{arn}: {}",
                r.body
            );
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("role ARN"),
                "{}",
                r.body
            );
        }
    });
}

#[test]
fn durations_out_of_range_are_refused() {
    block_on(async {
        let b = broker().await;
        // ProductionOperator: tag `tollgate:max-duration` = 2h.
        for seconds in [0u64, 59, 7201, 43_201, 1_000_000_000_000] {
            let mut body = valid();
            body["duration_seconds"] = json!(seconds);
            let r = b
                .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&body))
                .await;
            assert_eq!(
                (r.status, r.code()),
                (400, "invalid_input"),
                "{seconds}: {}",
                r.body
            );
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("duration")
            );
        }
        let mut body = valid();
        body["duration_seconds"] = json!(7200);
        let r = b
            .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&body))
            .await;
        assert_eq!(r.status, 201, "the limit itself is allowed: {}", r.body);
    });
}

#[test]
fn an_approval_with_a_digest_that_does_not_match_changes_nothing() {
    block_on(async {
        let b = broker().await;
        let created = b
            .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&valid()))
            .await;
        let id = created.body["id"].as_str().unwrap().to_owned();
        let digest = created.body["digest"].as_str().unwrap().to_owned();
        let mut other = digest.clone();
        other.replace_range(0..1, if digest.starts_with('0') { "1" } else { "0" });
        let r = b
            .call(
                Method::POST,
                &format!("/requests/{id}/approve"),
                Auth::As(&BOB),
                Some(&json!({"digest": other})),
            )
            .await;
        assert_eq!((r.status, r.code()), (409, "digest_mismatch"));
        for bad in [
            json!({"digest": 5}),
            json!({"digest": "a".repeat(200)}),
            json!({}),
        ] {
            let r = b
                .call(
                    Method::POST,
                    &format!("/requests/{id}/approve"),
                    Auth::As(&BOB),
                    Some(&bad),
                )
                .await;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
        }
        let shown = b
            .call(
                Method::GET,
                &format!("/requests/{id}"),
                Auth::As(&ALICE),
                None,
            )
            .await;
        assert_eq!(shown.body["status"], "pending");
        assert_eq!(shown.body["events"].as_array().unwrap().len(), 1);
    });
}

#[test]
fn bad_query_strings_ids_routes_and_methods_get_json_errors() {
    block_on(async {
        let b = broker().await;
        let cases = [
            ("/requests?scope=everyone", 400, "invalid_input"),
            ("/requests?limit=0", 400, "invalid_input"),
            ("/requests?limit=101", 400, "invalid_input"),
            ("/requests?status=approved", 400, "invalid_input"),
            (
                "/requests?scope=reviewable&status=active",
                400,
                "invalid_input",
            ),
            ("/requests?owner=bob", 400, "unknown_parameter"),
            ("/requests?next_token=AAAA", 400, "invalid_page_token"),
            ("/requests/not-a-request-id", 400, "invalid_input"),
            ("/requests/..%2F..%2Fetc%2Fpasswd", 400, "invalid_input"),
            ("/nowhere", 404, "not_found"),
        ];
        for (path, status, code) in cases {
            let r = b.call(Method::GET, path, Auth::As(&ALICE), None).await;
            assert_eq!((r.status, r.code()), (status, code), "{path}: {}", r.body);
        }
        let r = b
            .call(
                Method::POST,
                "/requests?dry_run=maybe",
                Auth::As(&ALICE),
                Some(&valid()),
            )
            .await;
        assert_eq!(r.status, 400);
        let r = b
            .call(Method::DELETE, "/requests", Auth::As(&ALICE), None)
            .await;
        assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
    });
}

#[test]
fn bad_tokens_are_401_with_a_bearer_challenge() {
    block_on(async {
        let b = broker().await;
        let huge = format!(
            "{}.{}.{}",
            "e".repeat(100),
            "e".repeat(9000),
            "e".repeat(100)
        );
        let none_alg = {
            use base64::Engine;
            let enc =
                |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.",
                enc(json!({"alg": "none", "typ": "JWT"})),
                enc(
                    json!({"sub": "bob", "groups": ["sre"], "amr": ["mfa"], "iss": "tollgate-local",
                           "aud": "tollgate", "exp": 4_000_000_000u64})
                )
            )
        };
        for token in [huge.as_str(), none_alg.as_str(), "garbage", "a.b.c"] {
            let r = b
                .call(Method::GET, "/requests", Auth::Token(token), None)
                .await;
            assert_eq!((r.status, r.code()), (401, "unauthenticated"));
            assert_eq!(r.headers["www-authenticate"], "Bearer");
        }
        let r = b
            .raw(
                Method::GET,
                "/requests",
                Auth::None,
                None,
                &[("authorization", "Basic YWxpY2U6cGFzcw==")],
            )
            .await;
        assert_eq!(r.status, 401);
    });
}

/// Seconds left in the current UTC minute.
fn seconds_left_in_minute() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    60 - now % 60
}

#[test]
fn one_user_racing_creates_cannot_exceed_the_open_request_cap() {
    block_on(async {
        let b = Broker::start(
            Path::new(env!("CARGO_BIN_EXE_tollgate-test-server")),
            BrokerOptions {
                extra_env: vec![
                    ("TOLLGATE_MAX_OPEN_REQUESTS".into(), "3".into()),
                    ("TOLLGATE_MAX_CREATES_PER_MINUTE".into(), "100".into()),
                ],
                ..BrokerOptions::default()
            },
        )
        .await;
        let b = std::sync::Arc::new(b);
        // Ten creates at once by one user; pending production requests stay open.
        let replies = race_creates(&b, 10).await;
        let b = &*b;
        let created: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
        let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
        assert_eq!(
            (created.len(), limited.len()),
            (3, 7),
            "{:?}",
            replies
                .iter()
                .map(|r| (r.status, r.code().to_owned()))
                .collect::<Vec<_>>()
        );
        for r in &limited {
            assert_eq!(r.code(), "too_many_open_requests", "{}", r.body);
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=3600).contains(&retry), "{retry}");
        }
        assert_eq!(my_request_count(b).await, 3, "refusals stored nothing");
        // Another user is not affected.
        let r = b
            .call(Method::POST, "/requests", Auth::As(&ALICE), Some(&valid()))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        // Closing one frees a place.
        let id = created[0].body["id"].as_str().unwrap();
        let r = b
            .call(
                Method::POST,
                &format!("/requests/{id}/cancel"),
                Auth::As(&IVAN),
                Some(&json!({})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = b
            .call(Method::POST, "/requests", Auth::As(&IVAN), Some(&valid()))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = b
            .call(Method::POST, "/requests", Auth::As(&IVAN), Some(&valid()))
            .await;
        assert_eq!((r.status, r.code()), (429, "too_many_open_requests"));
    });
}

#[test]
fn one_user_cannot_create_more_than_the_per_minute_cap() {
    block_on(async {
        let b = Broker::start(
            Path::new(env!("CARGO_BIN_EXE_tollgate-test-server")),
            BrokerOptions {
                extra_env: vec![("TOLLGATE_MAX_CREATES_PER_MINUTE".into(), "2".into())],
                ..BrokerOptions::default()
            },
        )
        .await;
        // Stay inside one minute.
        if seconds_left_in_minute() < 15 {
            tokio::time::sleep(std::time::Duration::from_secs(seconds_left_in_minute())).await;
        }
        let replies = race_creates(&std::sync::Arc::new(b), 5).await;
        let statuses: Vec<(u16, String)> = replies
            .iter()
            .map(|r| (r.status, r.code().to_owned()))
            .collect();
        assert_eq!(
            replies.iter().filter(|r| r.status == 201).count(),
            2,
            "{statuses:?}"
        );
        for r in replies.iter().filter(|r| r.status != 201) {
            assert_eq!((r.status, r.code()), (429, "create_rate_exceeded"));
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
        }
    });
}

/// `n` creates of [`valid`] by IVAN at once; the replies in order.
async fn race_creates(b: &std::sync::Arc<Broker>, n: usize) -> Vec<tollgate_tests::broker::Reply> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move {
                b.call(Method::POST, "/requests", Auth::As(&IVAN), Some(&valid()))
                    .await
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
