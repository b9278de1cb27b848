//! IAM and STS against the local emulator through the real SDK: role
//! descriptions, credentials, revocation policies and provisioning. Each test
//! makes its own roles and tables; one emulator serves the whole binary.

// Helpers outside #[test] functions unwrap too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_dynamodb::types::{BillingMode, KeyType, ProjectionType, StreamViewType};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tollgate::audit::AuditLog;
use tollgate::aws::testing::{Clients, Emulator, new_request, unique_name};
use tollgate::aws::{
    CredentialPlan, EXAMPLE_ROLES, Issuer, LOCAL_BROKER_ACCOUNT, LOCAL_PRODUCTION_ACCOUNT,
    LOCAL_STAGING_ACCOUNT, Revoker, RoleDirectory, Store, create_role, create_table,
    mint_credentials, provision, schema,
};
use tollgate::domain::{AccessRequest, Actor, Command, RoleArn, RoleInfo, Timestamp, UserId};

async fn clients() -> Clients {
    Emulator::shared().unwrap().clients().await
}

/// An IAM client in the local production account, where these tests make
/// their roles.
async fn prod_iam(c: &Clients) -> aws_sdk_iam::Client {
    c.iam_in(LOCAL_PRODUCTION_ACCOUNT).await.unwrap()
}

async fn role(c: &Clients, tags: &[(&str, &str)]) -> RoleInfo {
    let arn = create_role(
        &prod_iam(c).await,
        "/tollgate/",
        &unique_name("Role"),
        3600,
        tags,
    )
    .await
    .unwrap();
    let info = RoleDirectory::new(c.accounts(), Duration::ZERO)
        .describe(&arn)
        .await
        .unwrap()
        .unwrap();
    c.calls.clear();
    info
}

fn active(role: &RoleInfo, requester: &str) -> AccessRequest {
    let new = new_request(&role.arn, requester, 3600, 1).unwrap();
    AccessRequest::create(new, true, vec!["auto".into()], Timestamp::now()).0
}

#[tokio::test]
async fn role_descriptions_come_from_one_get_role_and_are_cached() {
    let c = clients().await;
    let arn = create_role(
        &prod_iam(&c).await,
        "/tollgate/",
        &unique_name("Cached"),
        7200,
        &[("environment", "staging"), ("tollgate:approvals", "2")],
    )
    .await
    .unwrap();
    let dir = RoleDirectory::new(c.accounts(), Duration::from_secs(60));
    c.calls.clear();
    let info = dir.describe(&arn).await.unwrap().unwrap();
    // The first call into the account assumes its control role.
    assert_eq!(c.calls.take(), ["AssumeRole", "GetRole"]);
    assert_eq!(info.arn, arn);
    assert!(info.role_id.starts_with("AROA"), "{}", info.role_id);
    assert_eq!(info.max_session_seconds, 7200);
    assert_eq!(info.tags["environment"], "staging");
    assert_eq!(info.approvals_required(), Ok(2));

    assert_eq!(dir.describe(&arn).await.unwrap(), Some(info.clone()));
    assert!(c.calls.take().is_empty(), "served from the cache");
    dir.clear_cache();
    dir.describe(&arn).await.unwrap();
    assert_eq!(c.calls.take(), ["GetRole"]);

    let uncached = RoleDirectory::new(dir.accounts().clone(), Duration::ZERO);
    uncached.describe(&arn).await.unwrap();
    uncached.describe(&arn).await.unwrap();
    assert_eq!(c.calls.take(), ["GetRole", "GetRole"]);
    assert_eq!(dir.accounts().assume_role_calls(), 1);
}

#[tokio::test]
async fn unknown_roles_and_arns_for_another_account_or_path_are_none() {
    let c = clients().await;
    let name = unique_name("Known");
    create_role(&prod_iam(&c).await, "/tollgate/", &name, 3600, &[])
        .await
        .unwrap();
    let dir = RoleDirectory::new(c.accounts(), Duration::from_secs(60));
    for arn in [
        format!(
            "arn:aws:iam::{LOCAL_PRODUCTION_ACCOUNT}:role/tollgate/{}",
            unique_name("Absent")
        ),
        format!("arn:aws:iam::{LOCAL_STAGING_ACCOUNT}:role/tollgate/{name}"),
        format!("arn:aws:iam::{LOCAL_PRODUCTION_ACCOUNT}:role/other/{name}"),
    ] {
        let arn = RoleArn::parse(&arn).unwrap();
        assert_eq!(dir.describe(&arn).await.unwrap(), None, "{arn}");
    }
    // Accounts that are not brokered are unknown without any AWS call.
    c.calls.clear();
    for account in ["210987654321", LOCAL_BROKER_ACCOUNT] {
        let arn = RoleArn::parse(&format!("arn:aws:iam::{account}:role/tollgate/{name}")).unwrap();
        assert_eq!(dir.describe(&arn).await.unwrap(), None, "{arn}");
    }
    assert!(c.calls.take().is_empty());
}

#[tokio::test]
async fn issued_credentials_work_and_carry_the_session_name() {
    let c = clients().await;
    let role = role(&c, &[]).await;
    let req = active(&role, "alice@example.com");
    let plan = CredentialPlan::new(&req, Timestamp::now()).unwrap();
    let creds = Issuer::new(c.sts.clone()).issue(&plan).await.unwrap();
    assert_eq!(c.calls.take(), ["AssumeRole"]);
    assert!(
        creds
            .assumed_role_arn
            .ends_with(&format!("/tollgate-{}", req.id))
    );
    assert!(creds.expiration > Timestamp::now());

    // Use them: GetCallerIdentity signed with the issued credentials.
    let config = Emulator::shared().unwrap().sdk_config().await;
    let as_session = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.expose_secret().to_owned(),
                Some(creds.session_token.expose_secret().to_owned()),
                None,
                "issued",
            ))
            .build(),
    );
    let me = as_session.get_caller_identity().send().await.unwrap();
    let arn = me.arn().unwrap();
    assert!(arn.contains(":assumed-role/"), "{arn}");
    assert!(
        arn.ends_with(&format!("{}/tollgate-{}", role.arn.name(), req.id)),
        "{arn}"
    );
    assert_eq!(me.account(), Some(LOCAL_PRODUCTION_ACCOUNT));
}

#[tokio::test]
async fn assume_role_sends_the_planned_name_identity_tags_duration_and_cut_off() {
    let c = clients().await;
    let role = role(&c, &[]).await;
    let new = new_request(&role.arn, "auth0|alice", 7200, 1).unwrap();
    let (pending, _) = AccessRequest::create(new, false, vec![], Timestamp::now());
    let bob = Actor::User(UserId::parse("bob").unwrap());
    let (req, _) = pending
        .apply(
            Command::Approve {
                digest: pending.digest.clone(),
                comment: None,
                policies: vec![],
            },
            &bob,
            Timestamp::now(),
        )
        .unwrap();
    let plan = CredentialPlan::new(&req, Timestamp::now()).unwrap();
    Issuer::new(c.sts.clone()).issue(&plan).await.unwrap();
    let sent = c.calls.calls();
    assert_eq!(sent.len(), 1);
    let form = sent[0].form();
    assert_eq!(form["Action"], "AssumeRole");
    assert_eq!(form["RoleArn"], role.arn.as_str());
    assert_eq!(form["RoleSessionName"], format!("tollgate-{}", req.id));
    assert_eq!(form["DurationSeconds"], "3600");
    // Changed to fit STS, so it carries a hash of the subject.
    assert_eq!(
        form["SourceIdentity"],
        tollgate::domain::sanitize_source_identity("auth0|alice")
    );
    assert!(form["SourceIdentity"].starts_with("auth0-alice="));
    let tags: BTreeMap<&str, &str> = (1..=3)
        .map(|i| {
            (
                form[&format!("Tags.member.{i}.Key")].as_str(),
                form[&format!("Tags.member.{i}.Value")].as_str(),
            )
        })
        .collect();
    let id = req.id.to_string();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("tollgate:request", id.as_str()),
            ("tollgate:approver", "bob"),
            ("tollgate:ticket", "TEST-1"),
        ])
    );
    let policy: Value = serde_json::from_str(&form["Policy"]).unwrap();
    let cutoff = req.window_end.unwrap().to_rfc3339();
    assert_eq!(
        policy["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"],
        json!(cutoff)
    );
    assert_eq!(policy["Statement"][1]["Effect"], "Deny");
    assert_eq!(
        policy["Statement"][1]["Condition"]["DateGreaterThan"]["aws:CurrentTime"],
        json!(cutoff)
    );
    assert!(form["Policy"].len() <= 2048);
}

/// A table of its own holding an auto-approved grant of a new role to alice.
async fn stored_grant(c: &Clients) -> (Store, RoleInfo, AccessRequest) {
    let table = unique_name("mint");
    create_table(&c.dynamodb, &table).await.unwrap();
    let store = c
        .store(&table, schema::DEFAULT_RETENTION_SECONDS)
        .await
        .unwrap();
    let role = role(c, &[]).await;
    let (req, ev) = AccessRequest::create(
        new_request(&role.arn, "alice", 3600, 1).unwrap(),
        true,
        vec![],
        Timestamp::now(),
    );
    store.create(&req, &ev, None).await.unwrap();
    (store, role, req)
}

#[tokio::test]
async fn minting_records_the_issue_before_calling_sts_and_logs_no_secret() {
    let c = clients().await;
    let (store, role, req) = stored_grant(&c).await;
    let (log, lines) = AuditLog::capture();
    let issuer = Issuer::new(c.sts.clone());
    let alice = Actor::User(UserId::parse("alice").unwrap());
    c.calls.clear();

    let (after, creds) = mint_credentials(&store, &issuer, &log, &req, &alice, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(c.calls.take(), ["Sign", "TransactWriteItems", "AssumeRole"]);
    assert_eq!(after.credentials_issued, 1);
    let (stored, events) = store.get_with_events(req.id).await.unwrap().unwrap();
    assert_eq!(stored, after);
    assert_eq!(events.len(), 2);
    assert!(matches!(
        events[1].kind,
        tollgate::domain::EventKind::CredentialsIssued { .. }
    ));

    let logged = lines.lines();
    assert_eq!(logged.len(), 2, "{logged:?}");
    let parsed = lines.json();
    assert_eq!(parsed[0]["type"], "transition");
    assert_eq!(parsed[1]["type"], "credentials");
    assert_eq!(parsed[1]["outcome"], "issued");
    for line in &parsed {
        assert_eq!(line["request_id"], json!(req.id.to_string()));
        assert_eq!(line["actor"], "alice");
        assert_eq!(line["role"], json!(role.arn.as_str()));
    }
    for line in &logged {
        assert!(!line.contains(creds.secret_access_key.expose_secret()));
        assert!(!line.contains(creds.session_token.expose_secret()));
        assert!(!line.contains(&creds.access_key_id));
    }

    // The grant is revoked meanwhile; minting from the stale copy fails to
    // write the event, reads the request again, finds it revoked, and
    // never asks STS.
    let (revoked, ev) = after
        .apply(
            Command::Revoke {
                reason: tollgate::domain::Reason::parse("done").unwrap(),
            },
            &alice,
            Timestamp::now(),
        )
        .unwrap();
    store
        .transition(after.version, &revoked, &ev)
        .await
        .unwrap();
    let lines_before = lines.lines().len();
    c.calls.clear();
    let err = mint_credentials(&store, &issuer, &log, &req, &alice, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (409, "not_active"));
    assert_eq!(c.calls.take(), ["Sign", "TransactWriteItems", "GetItem"]);
    assert_eq!(lines.lines().len(), lines_before, "nothing more logged");

    // Someone else: refused before any call.
    let mallory = Actor::User(UserId::parse("mallory").unwrap());
    let err = mint_credentials(&store, &issuer, &log, &after, &mallory, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_requester");
    assert!(c.calls.take().is_empty());
}

#[tokio::test]
async fn an_sts_failure_after_the_recorded_issue_is_logged_and_counted_for_its_alarm() {
    let c = clients().await;
    let (store, _, req) = stored_grant(&c).await;
    // STS that cannot be reached (nothing listens on port 9), once.
    let sdk = tollgate::aws::testing::sdk_config_for("http://127.0.0.1:9").await;
    let dead_sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&sdk)
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build(),
    );
    let (log, lines) = AuditLog::capture();
    let alice = Actor::User(UserId::parse("alice").unwrap());

    let err = mint_credentials(
        &store,
        &Issuer::new(dead_sts),
        &log,
        &req,
        &alice,
        Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    // The attempt is on record; the log says it failed; the alarm's metric
    // counts it once.
    let stored = store.get(req.id).await.unwrap().unwrap();
    assert_eq!(stored.credentials_issued, 1);
    let parsed = lines.json();
    assert_eq!(parsed.len(), 3, "{parsed:?}");
    assert_eq!(parsed[1]["type"], "credentials");
    assert_eq!(parsed[1]["outcome"], "failed");
    assert_eq!(parsed[2]["CredentialFailures"], 1);
    assert_eq!(parsed[2]["Operation"], "credentials");
    assert_eq!(
        parsed[2]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        tollgate::audit::metrics::NAMESPACE
    );
}

#[tokio::test]
async fn provisioning_creates_the_table_as_designed_and_the_example_roles() {
    let c = clients().await;
    let table = unique_name("provisioned");
    let first = provision(&c.dynamodb, &c.iam, &c.sts, &table)
        .await
        .unwrap();
    assert!(first.table_created);
    let names: Vec<&str> = first.roles.iter().map(RoleArn::name).collect();
    assert_eq!(
        names,
        [
            "StagingDeveloper",
            "ProductionOperator",
            "ProductionBreakGlass",
            "DataAnalyst"
        ]
    );
    let again = provision(&c.dynamodb, &c.iam, &c.sts, &table)
        .await
        .unwrap();
    assert!(!again.table_created);
    assert_eq!(again.roles, first.roles);

    let t = c
        .dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<(String, KeyType)> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("pk".to_owned(), KeyType::Hash),
            ("sk".to_owned(), KeyType::Range)
        ]
    );
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let stream = t.stream_specification().unwrap();
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    assert_eq!(
        t.sse_description()
            .and_then(|s| s.status())
            .map(|s| s.as_str()),
        Some("ENABLED")
    );
    let mut gsis: Vec<(String, String, String)> = t
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            assert_eq!(
                g.projection().and_then(|p| p.projection_type()),
                Some(&ProjectionType::All)
            );
            let ks = g.key_schema();
            (
                g.index_name().unwrap().to_owned(),
                ks[0].attribute_name().to_owned(),
                ks[1].attribute_name().to_owned(),
            )
        })
        .collect();
    gsis.sort();
    assert_eq!(
        gsis,
        [
            ("by-requester".into(), "gsi1pk".into(), "gsi1sk".into()),
            ("open-by-due".into(), "gsi3pk".into(), "gsi3sk".into()),
            ("pending-by-role".into(), "gsi2pk".into(), "gsi2sk".into()),
        ]
    );
    let ttl = c
        .dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );
    let backups = c
        .dynamodb
        .describe_continuous_backups()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let pitr = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_owned());
    assert_eq!(pitr.as_deref(), Some("ENABLED"));

    // Every document the local world's roles hold lints clean.
    let mut docs = Vec::new();
    for arn in first.control_roles.iter().chain(&first.roles) {
        let iam = c.iam_in(arn.account()).await.unwrap();
        docs.extend(
            tollgate::aws::testing::role_documents(&iam, arn)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        docs.len(),
        2 * 2 + EXAMPLE_ROLES.len(),
        "trust and policies"
    );
    assert_eq!(tollgate::aws::testing::iam_lint(&docs).unwrap(), vec![]);

    let control: Vec<&str> = first.control_roles.iter().map(RoleArn::as_str).collect();
    assert_eq!(
        control,
        [
            format!("arn:aws:iam::{LOCAL_STAGING_ACCOUNT}:role/tollgate/TollgateControl"),
            format!("arn:aws:iam::{LOCAL_PRODUCTION_ACCOUNT}:role/tollgate/TollgateControl"),
        ]
    );
    // Each role lives in its target account, and none in the broker's.
    let dir = RoleDirectory::new(c.accounts(), Duration::ZERO);
    for (example, arn) in EXAMPLE_ROLES.iter().zip(&first.roles) {
        assert_eq!(arn.as_str(), example.arn());
        assert_ne!(arn.account(), LOCAL_BROKER_ACCOUNT);
        let in_broker_account = c.iam.get_role().role_name(example.name).send().await;
        assert!(
            in_broker_account.is_err(),
            "{} in the broker account",
            example.name
        );
        let info = dir.describe(arn).await.unwrap().unwrap();
        for (k, v) in example.tags {
            assert_eq!(info.tags.get(*k).map(String::as_str), Some(*v), "{arn} {k}");
        }
        assert!(info.max_session_seconds >= 3600);
    }
}

#[tokio::test]
async fn aws_calls_per_operation_are_as_designed() {
    let c = clients().await;
    let table = unique_name("calls");
    create_table(&c.dynamodb, &table).await.unwrap();
    let store = c
        .store(&table, schema::DEFAULT_RETENTION_SECONDS)
        .await
        .unwrap();
    let role = role(&c, &[]).await;
    let accounts = c.accounts();
    let dir = RoleDirectory::new(accounts.clone(), Duration::from_secs(60));
    let issuer = Issuer::new(c.sts.clone());
    let revoker = Revoker::new(store.clone(), dir.clone());
    let now = Timestamp::now();
    let mut report = Vec::new();
    c.calls.clear();

    dir.describe(&role.arn).await.unwrap();
    report.push(("describe (cold)", c.calls.take()));
    dir.describe(&role.arn).await.unwrap();
    report.push(("describe (cached)", c.calls.take()));
    RoleDirectory::new(accounts.clone(), Duration::ZERO)
        .describe(&role.arn)
        .await
        .unwrap();
    report.push(("describe (session cached)", c.calls.take()));
    let (req, ev) = AccessRequest::create(
        new_request(&role.arn, "alice", 3600, 1).unwrap(),
        false,
        vec![],
        now,
    );
    store.create(&req, &ev, None).await.unwrap();
    report.push(("create", c.calls.take()));
    store.get(req.id).await.unwrap();
    report.push(("get", c.calls.take()));
    store.get_with_events(req.id).await.unwrap();
    report.push(("get_with_events", c.calls.take()));
    let bob = Actor::User(UserId::parse("bob").unwrap());
    let (next, ev) = req
        .apply(
            Command::Approve {
                digest: req.digest.clone(),
                comment: None,
                policies: vec![],
            },
            &bob,
            now,
        )
        .unwrap();
    store.transition(1, &next, &ev).await.unwrap();
    report.push(("transition", c.calls.take()));
    let plan = CredentialPlan::new(&next, now).unwrap();
    issuer.issue(&plan).await.unwrap();
    report.push(("issue", c.calls.take()));
    let alice = Actor::User(UserId::parse("alice").unwrap());
    let (issued, ev) = next
        .apply(
            Command::IssueCredentials {
                session_name: plan.session_name.clone(),
                expires_at: plan.expires_at,
            },
            &alice,
            now,
        )
        .unwrap();
    store.transition(2, &issued, &ev).await.unwrap();
    c.calls.clear();
    let (revoked, ev) = issued
        .apply(
            Command::Revoke {
                reason: tollgate::domain::Reason::parse("done").unwrap(),
            },
            &alice,
            now,
        )
        .unwrap();
    store.transition(3, &revoked, &ev).await.unwrap();
    report.push(("revoke", c.calls.take()));
    let until = revoked.window_end.unwrap();
    revoker
        .confirm(
            &role.arn,
            revoked.id,
            until,
            now,
            std::time::Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap();
    report.push(("revocation statement", c.calls.take()));
    revoker.reconcile(&role.arn, until).await.unwrap();
    report.push(("prune", c.calls.take()));

    for (op, calls) in &report {
        println!("aws calls: {op:<18} {} {calls:?}", calls.len());
    }
    let counts: Vec<(&str, usize)> = report.iter().map(|(op, c)| (*op, c.len())).collect();
    assert_eq!(
        counts,
        [
            ("describe (cold)", 2),
            ("describe (cached)", 0),
            ("describe (session cached)", 1),
            // One KMS Sign per event, then the transaction.
            ("create", 2),
            ("get", 1),
            ("get_with_events", 1),
            ("transition", 2),
            ("issue", 1),
            ("revoke", 2),
            ("revocation statement", 7),
            ("prune", 7),
        ]
    );
}

fn process_alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie's state is `Z`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

#[tokio::test]
async fn an_owned_emulator_answers_on_its_own_port_and_stops_when_dropped() {
    let shared = Emulator::shared().unwrap();
    let own = Emulator::start().unwrap();
    assert_ne!(own.endpoint(), shared.endpoint());
    assert!(own.endpoint().starts_with("http://127.0.0.1:"));
    let pid = own.pid().unwrap();
    assert!(process_alive(pid));
    // State is per emulator: a table made here does not exist in the shared one.
    let clients = own.clients().await;
    let table = unique_name("own");
    create_table(&clients.dynamodb, &table).await.unwrap();
    let elsewhere = shared.clients().await;
    let listed = elsewhere.dynamodb.list_tables().send().await.unwrap();
    assert!(!listed.table_names().contains(&table));
    drop(own);
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn the_aws_local_script_starts_prints_exports_and_stops_by_pid() {
    let state = tempfile::tempdir().unwrap();
    let script = tollgate::aws::testing::repo_root().join("scripts/aws-local");
    let run = |arg: &str| {
        std::process::Command::new(&script)
            .arg(arg)
            .env("TOLLGATE_STATE_DIR", state.path())
            .output()
            .unwrap()
    };
    let status = run("status");
    assert!(!status.status.success());
    let started = run("start");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let exports = String::from_utf8(started.stdout).unwrap();
    let endpoint = exports
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL="))
        .unwrap()
        .to_owned();
    assert!(exports.contains("export AWS_REGION=us-east-1"));
    assert!(exports.contains("export AWS_ACCESS_KEY_ID="));
    let pid: u32 = std::fs::read_to_string(state.path().join("aws-local.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(process_alive(pid));
    assert!(run("status").status.success());
    assert_eq!(String::from_utf8(run("env").stdout).unwrap(), exports);

    let clients = Clients::new(&tollgate::aws::testing::sdk_config_for(&endpoint).await);
    clients.dynamodb.list_tables().send().await.unwrap();

    assert!(run("stop").status.success());
    let mut gone = false;
    for _ in 0..50 {
        if !process_alive(pid) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "the emulator process {pid} still runs");
    assert!(!run("status").status.success());
}
