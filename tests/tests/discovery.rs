//! Discovery end to end, through the real local broker and the emulator's
//! three accounts: the catalogue the sweep keeps (roles added, retagged and
//! deleted picked up by the next refresh), `GET /roles` with its filters
//! and sealed pages and no AWS call on the request path, and — the check
//! that matters — the terms it shows agree with what `POST /requests` then
//! decides, for every example user and role at a fixed development clock
//! (office hours on a Wednesday), and late at night for the case whose
//! terms depend on the time of day.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tollgate::aws::testing::unique_name;
use tollgate::aws::{EXAMPLE_ROLES, LOCAL_PRODUCTION_ACCOUNT, LOCAL_STAGING_ACCOUNT, create_role};
use tollgate::domain::{MIN_DURATION_SECONDS, Timestamp};
use tollgate_tests::aws_proxy::AwsProxy;
use tollgate_tests::broker::{Auth, Broker, BrokerOptions, User, role_arn};

fn server() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate-test-server"))
}

/// The example users of `scripts/local-broker`.
const USERS: [User; 4] = [
    User {
        sub: "alice",
        groups: &["developers", "oncall"],
        mfa: false,
        claims: &[("department", "platform")],
    },
    User {
        sub: "bob",
        groups: &["sre"],
        mfa: true,
        claims: &[],
    },
    User {
        sub: "carol",
        groups: &["sre"],
        mfa: true,
        claims: &[],
    },
    User {
        sub: "dana",
        groups: &["data-engineers"],
        mfa: true,
        claims: &[("department", "data")],
    },
];

fn options(extra: &[(&str, &str)]) -> BrokerOptions {
    let mut env = vec![
        (
            "TOLLGATE_CATALOGUE_REFRESH_SECONDS".to_owned(),
            "1".to_owned(),
        ),
        (
            "TOLLGATE_ACCOUNT_ALIASES".to_owned(),
            format!("staging={LOCAL_STAGING_ACCOUNT},prod={LOCAL_PRODUCTION_ACCOUNT}"),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    BrokerOptions {
        extra_env: env,
        ..BrokerOptions::default()
    }
}

/// Every role `user` may request, by ARN, following every page.
async fn roles(b: &Broker, user: &User, query: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let token = next
            .as_ref()
            .map(|t| format!("&next_token={t}"))
            .unwrap_or_default();
        let r = b
            .call(
                Method::GET,
                &format!("/roles?{query}{token}"),
                Auth::As(user),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        for item in r.body["items"].as_array().unwrap() {
            out.insert(item["role_arn"].as_str().unwrap().to_owned(), item.clone());
        }
        match r.body["next_token"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// Waits until `check` holds for what `user` discovers.
async fn until(
    b: &Broker,
    user: &User,
    what: &str,
    check: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = roles(b, user, "").await;
        if check(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Seconds from now to the next Wednesday at `hour`:00 UTC.
fn offset_to_wednesday(hour: i64) -> i64 {
    let now = Timestamp::now();
    let t = now.to_offset_date_time();
    // Monday is 0: Wednesday is 2.
    let days = (2 - i64::from(t.weekday().number_days_from_monday())).rem_euclid(7);
    let midnight = now.unix()
        - i64::from(t.hour()) * 3600
        - i64::from(t.minute()) * 60
        - i64::from(t.second());
    let mut target = midnight + days * 86_400 + hour * 3600;
    if target <= now.unix() {
        target += 7 * 86_400;
    }
    target - now.unix()
}

#[tokio::test]
async fn the_catalogue_spans_the_target_accounts_and_follows_roles_added_retagged_and_deleted() {
    let b = Broker::start(server(), options(&[("TOLLGATE_CATALOGUE_REREADS", "1000")])).await;
    let alice = &USERS[0];
    let seen = until(&b, alice, "the example roles", |r| {
        r.contains_key(&role_arn("StagingDeveloper"))
            && r.contains_key(&role_arn("ProductionOperator"))
    })
    .await;
    let staging = &seen[&role_arn("StagingDeveloper")];
    assert_eq!(staging["account"], LOCAL_STAGING_ACCOUNT);
    assert_eq!(staging["account_alias"], "staging");
    assert_eq!(staging["name"], "StagingDeveloper");
    assert_eq!(staging["path"], "/tollgate/");
    assert_eq!(staging["tags"]["environment"], "staging");
    assert_eq!(
        seen[&role_arn("ProductionOperator")]["account_alias"],
        "prod"
    );
    // Not hers to discover: the data team's role.
    assert!(!seen.contains_key(&role_arn("DataAnalyst")));

    // A new staging role appears, then moves to production by its tags
    // alone, then goes.
    let iam = b.iam_in(LOCAL_STAGING_ACCOUNT).await;
    let name = unique_name("Sandbox");
    let arn = create_role(
        &iam,
        "/tollgate/",
        &name,
        3600,
        &[("environment", "staging"), ("tollgate:managed", "true")],
    )
    .await
    .unwrap()
    .to_string();
    let seen = until(&b, alice, "the new role", |r| r.contains_key(&arn)).await;
    assert_eq!(seen[&arn]["terms"]["ticket_required"], false);
    assert_eq!(
        seen[&arn]["terms"]["auto_approve"]["max_duration_seconds"],
        14_400
    );
    iam.tag_role()
        .role_name(&name)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("environment")
                .value("production")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let seen = until(&b, alice, "the retag", |r| {
        r.get(&arn)
            .is_some_and(|v| v["tags"]["environment"] == "production")
    })
    .await;
    assert_eq!(seen[&arn]["terms"]["ticket_required"], true);
    assert_eq!(seen[&arn]["terms"]["auto_approve"], Value::Null);
    iam.delete_role().role_name(&name).send().await.unwrap();
    until(&b, alice, "the deletion", |r| !r.contains_key(&arn)).await;
}

#[tokio::test]
async fn the_terms_shown_agree_with_what_post_requests_decides_for_every_example_user_and_role() {
    let b = Broker::start(server(), options(&[])).await;
    until(&b, &USERS[1], "the catalogue", |r| {
        r.contains_key(&role_arn("ProductionOperator"))
    })
    .await;
    let mut depends_shown = 0;
    for (clock, hour) in [("office hours", 10), ("night", 22)] {
        b.set_clock_offset(offset_to_wednesday(hour));
        for user in &USERS {
            let shown = roles(&b, user, "").await;
            for role in EXAMPLE_ROLES {
                let arn = role.arn();
                let ctx = format!("{} on {} at {clock}", user.sub, role.name);
                let terms = shown.get(&arn).map(|v| v["terms"].clone());
                if terms
                    .as_ref()
                    .is_some_and(|t| !t["depends_on"].as_array().unwrap().is_empty())
                {
                    depends_shown += 1;
                }
                check_agreement(&b, user, &arn, terms.as_ref(), &ctx).await;
            }
        }
    }
    // The SREs are not on call: production depends on the time for them.
    assert!(depends_shown >= 4, "{depends_shown}");
    let bob = roles(&b, &USERS[1], "").await;
    let prod = &bob[&role_arn("ProductionOperator")]["terms"];
    assert_eq!(prod["available_now"], false, "bob at night: {prod}");
    assert_eq!(prod["depends_on"], json!(["time_of_day", "day_of_week"]));
}

/// What `POST /requests` decides for what `terms` describe (or, for a role
/// not shown or not available now, that it refuses).
async fn check_agreement(b: &Broker, user: &User, arn: &str, terms: Option<&Value>, ctx: &str) {
    let ask = |duration: u64, ticket: bool, dry_run: bool| {
        let mut body = json!({
            "role_arn": arn,
            "duration_seconds": duration,
            "reason": "discovery agreement",
        });
        if ticket {
            body["ticket"] = json!("CHG-1042");
        }
        let path = if dry_run {
            "/requests?dry_run=true"
        } else {
            "/requests"
        };
        async move {
            b.call(Method::POST, path, Auth::As(user), Some(&body))
                .await
        }
    };
    let available = terms.filter(|t| t["available_now"] == true);
    let Some(t) = available else {
        for ticket in [false, true] {
            let r = ask(u64::from(MIN_DURATION_SECONDS), ticket, false).await;
            assert_eq!(
                (r.status, r.code()),
                (403, "policy_denied"),
                "{ctx}: {}",
                r.body
            );
        }
        return;
    };
    let max = t["max_duration_seconds"].as_u64().unwrap();
    let ticket = t["ticket_required"] == true;
    let created = ask(max, ticket, false).await;
    assert_eq!(created.status, 201, "{ctx}: {}", created.body);
    let auto = t["auto_approve"]["max_duration_seconds"].as_u64();
    let want = if auto.is_some_and(|a| a >= max) {
        "active"
    } else {
        "pending"
    };
    assert_eq!(created.body["status"], want, "{ctx}: {t}");
    if want == "pending" {
        assert_eq!(
            created.body["approvals_required"], t["approvals_required"],
            "{ctx}"
        );
        let id = created.body["id"].as_str().unwrap();
        let cancel = b
            .call(
                Method::POST,
                &format!("/requests/{id}/cancel"),
                Auth::As(user),
                Some(&json!({})),
            )
            .await;
        assert_eq!(cancel.status, 200, "{ctx}: {}", cancel.body);
    }
    // One second longer is refused, by a hard limit or by policy.
    let longer = ask(max + 1, ticket, true).await;
    assert!(
        longer.status == 400 || longer.body["allowed"] == false,
        "{ctx}: {}",
        longer.body
    );
    if ticket {
        let without = ask(max, false, true).await;
        assert_eq!(without.body["allowed"], false, "{ctx}: {}", without.body);
    }
    if let Some(a) = auto.filter(|a| *a < max) {
        let over = ask(
            a + 1,
            t["auto_approve"]["ticket_required"] == true || ticket,
            true,
        )
        .await;
        assert_eq!(over.body["outcome"], "pending", "{ctx}: {}", over.body);
    }
}

#[tokio::test]
async fn listing_roles_is_paged_filtered_and_calls_no_aws_service_but_the_table() {
    let emulator = tollgate::aws::testing::Emulator::shared().unwrap();
    let proxy = AwsProxy::start(emulator.endpoint()).await;
    let mut o = options(&[("TOLLGATE_CATALOGUE_REFRESH_SECONDS", "3600")]);
    o.aws_endpoint = Some(proxy.endpoint());
    let b = Broker::start(server(), o).await;
    let bob = &USERS[1];
    until(&b, bob, "the catalogue", |r| {
        r.contains_key(&role_arn("ProductionBreakGlass"))
    })
    .await;
    proxy.take();
    let all = roles(&b, bob, "").await;
    let paged = roles(&b, bob, "limit=1").await;
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        paged.keys().collect::<Vec<_>>()
    );
    let calls = proxy.take();
    assert!(
        calls.keys().all(|op| op.starts_with("dynamodb:")),
        "only the table is read: {calls:?}"
    );

    // Filters: an alias or an id, a role name in any case.
    let prod = roles(&b, bob, "account=prod").await;
    assert!(
        prod.values()
            .all(|r| r["account"] == LOCAL_PRODUCTION_ACCOUNT)
    );
    assert_eq!(
        prod,
        roles(&b, bob, &format!("account={LOCAL_PRODUCTION_ACCOUNT}")).await
    );
    let by_name = roles(&b, bob, "name=productionoperator").await;
    assert_eq!(
        by_name.keys().collect::<Vec<_>>(),
        [&role_arn("ProductionOperator")]
    );
    assert!(
        roles(&b, bob, "account=staging").await.is_empty(),
        "SREs do not request staging"
    );

    // A page token is bound to its caller and filters.
    let first = b
        .call(Method::GET, "/roles?limit=1", Auth::As(bob), None)
        .await;
    let token = first.body["next_token"].as_str().unwrap();
    for (who, query) in [(&USERS[2], "limit=1"), (bob, "limit=1&account=prod")] {
        let r = b
            .call(
                Method::GET,
                &format!("/roles?{query}&next_token={token}"),
                Auth::As(who),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_page_token"),
            "{}",
            r.body
        );
    }
    for (query, code) in [
        ("account=nowhere", "unknown_account"),
        ("account=123456789012", "unknown_account"),
        ("limit=0", "invalid_input"),
        ("limit=101", "invalid_input"),
        ("name=a*b", "invalid_input"),
        ("role=x", "unknown_parameter"),
    ] {
        let r = b
            .call(Method::GET, &format!("/roles?{query}"), Auth::As(bob), None)
            .await;
        assert_eq!((r.status, r.code()), (400, code), "{query}: {}", r.body);
    }
    let r = b.call(Method::GET, "/roles", Auth::None, None).await;
    assert_eq!(r.status, 401);
}
