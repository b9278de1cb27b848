//! The policy store end to end: `tollgate serve` reading its policies from
//! the emulator's S3 (checked before every request here), the `tollgate`
//! CLI publishing, reporting status and replaying past requests with the
//! operator's AWS credentials.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tollgate::aws::testing::{repo_root, sdk_config_for, unique_name};
use tollgate_tests::broker::{
    ALICE, Auth, BOB, Broker, BrokerOptions, CAROL, DAVE, ERIN, User, program_dir, role_arn,
};

/// Every example role.
const ROLES: &[&str] = &[
    "StagingDeveloper",
    "ProductionOperator",
    "ProductionBreakGlass",
    "DataAnalyst",
];

/// Every example user of the end-to-end tests, and the local broker's dana
/// (the data engineer).
const DANA: User = User {
    sub: "dana",
    groups: &["data-engineers"],
    mfa: true,
    claims: &[("department", "data")],
};
const USERS: &[&User] = &[&ALICE, &BOB, &CAROL, &DAVE, &ERIN, &DANA];

/// A change that moves some outcomes both ways: staging grants over 30
/// minutes now need an approval, and developers who are not on call may no
/// longer ask for production operators.
const CHANGE: &str = r#"
@id("staging-auto-approve-30m")
@description("Staging grants over 30 minutes need an SRE's approval")
forbid (principal, action == Tollgate::Action::"auto_approve", resource)
when {
  resource.hasTag("environment") && resource.getTag("environment") == "staging" &&
  context.duration_seconds > 1800
};

@id("operators-on-call-only")
@description("Only people on call may ask for ProductionOperator")
forbid (principal, action == Tollgate::Action::"request", resource)
when { resource.name == "ProductionOperator" }
unless { principal in Tollgate::Group::"oncall" };
"#;

/// Where cargo puts the workspace's binaries (`target/debug`): `make test`
/// builds `tollgate` there before the tests run (`cargo build -p
/// tollgate-cli` when running this test alone).
fn bin_dir() -> PathBuf {
    let dir = program_dir();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir
    }
}

struct World {
    broker: Broker,
    bucket: String,
    s3: aws_sdk_s3::Client,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        let emulator = tollgate::aws::testing::Emulator::shared().unwrap();
        let s3 = tollgate::aws::s3_client(&sdk_config_for(emulator.endpoint()).await);
        let bucket = unique_name("policies").to_lowercase();
        tollgate::aws::ensure_bucket(&s3, &bucket).await.unwrap();
        let broker = Broker::start_cli(
            &bin_dir(),
            BrokerOptions {
                extra_env: vec![
                    ("TOLLGATE_POLICY_BUCKET".into(), bucket.clone()),
                    ("TOLLGATE_POLICY_REFRESH_SECONDS".into(), "0".into()),
                ],
                ..BrokerOptions::default()
            },
        )
        .await;
        // Inside office hours, so the production policies' clock rules
        // decide the same way at create and at replay.
        broker.set_clock_offset(office_hours_offset());
        Self {
            broker,
            bucket,
            s3,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A copy of the example policies with `extra` files added.
    fn policies(&self, name: &str, extra: &[(&str, &str)]) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(repo_root().join("infra/policies")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        for (file, text) in extra {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    /// Runs the `tollgate` CLI with the operator's (emulator) credentials.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin_dir().join("tollgate"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", &self.broker.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("TOLLGATE_POLICY_BUCKET", &self.bucket)
            .env("TOLLGATE_TABLE", &self.broker.table)
            .output()
            .unwrap()
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "tollgate {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn publish(&self, dir: &Path) -> String {
        let v = self.cli_json(&["policy", "publish", dir.to_str().unwrap()]);
        assert_eq!(v["published"], true, "{v}");
        v["version"].as_str().unwrap().to_owned()
    }

    async fn dry_run(&self, who: &User, body: &Value) -> Value {
        let r = self
            .broker
            .call(
                Method::POST,
                "/requests?dry_run=true",
                Auth::As(who),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    fn local_status(&self) -> Value {
        let v = self.cli_json(&["policy", "status"]);
        v["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["function"] == "local")
            .cloned()
            .unwrap_or_else(|| panic!("no status of the local server: {v}"))
    }
}

/// Seconds from now to the next weekday 10:00 UTC.
fn office_hours_offset() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    let mut target = now.replace_time(time::macros::time!(10:00));
    while target <= now
        || matches!(
            target.weekday(),
            time::Weekday::Saturday | time::Weekday::Sunday
        )
    {
        target += time::Duration::days(1);
    }
    (target - now).whole_seconds()
}

fn ask(role: &str, seconds: u64) -> Value {
    json!({
        "role_arn": role_arn(role),
        "duration_seconds": seconds,
        "reason": "policy store end-to-end test",
        "ticket": "CHG-2024",
    })
}

#[tokio::test]
async fn a_published_set_decides_the_next_request_and_an_invalid_one_is_refused_and_ignored() {
    let w = World::start().await;
    let staging = ask("StagingDeveloper", 3600);

    // Nothing published: the bundled set decides, and says so.
    let before = w.dry_run(&ALICE, &staging).await;
    assert_eq!(before["outcome"], "active", "{before}");
    let bundled = before["policy_version"].as_str().unwrap().to_owned();
    assert!(bundled.starts_with("bundled-"), "{bundled}");
    assert_eq!(w.local_status()["version"], bundled);

    // Publish a change: the very next request is decided by it.
    let changed = w.policies("changed", &[("change.cedar", CHANGE)]);
    let version = w.publish(&changed);
    let after = w.dry_run(&ALICE, &staging).await;
    assert_eq!(after["outcome"], "pending", "{after}");
    assert_eq!(after["policy_version"], version.as_str());
    let status = w.local_status();
    assert_eq!(
        (status["version"].as_str(), status["origin"].as_str()),
        (Some(version.as_str()), Some("store"))
    );
    assert_eq!(status["state"], "current");
    // Decision lines name the set that decided.
    let decisions: Vec<Value> = w
        .broker
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "decision")
        .collect();
    assert!(
        decisions
            .iter()
            .any(|d| d["policy_version"] == bundled.as_str())
    );
    assert_eq!(
        decisions.last().unwrap()["policy_version"],
        version.as_str()
    );

    // Publishing the same set again changes nothing.
    let again = w.cli_json(&["policy", "publish", changed.to_str().unwrap()]);
    assert_eq!(
        (again["published"].clone(), again["version"].clone()),
        (json!(false), json!(version))
    );

    // An invalid set: publish refuses it with `policy validate`'s own report.
    let invalid = w.policies(
        "invalid",
        &[(
            "zz-bad.cedar",
            "permit (principal, action, resource) when { context.nope };\n",
        )],
    );
    let refused = w.cli(&["policy", "publish", invalid.to_str().unwrap()]);
    let validated = w.cli(&["policy", "validate", invalid.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(refused.stdout, validated.stdout);
    let report = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert!(report.contains("zz-bad.cedar:1:"), "{report}");
    let head =
        tollgate::aws::PolicyObject::new(w.s3.clone(), w.bucket.clone(), "policies.json".into())
            .head()
            .await
            .unwrap()
            .unwrap();
    assert_eq!(head.version_id, version);

    // Written behind publish's back, the running broker ignores it, keeps
    // the last good set, counts the failure and says why.
    let bad = w
        .s3
        .put_object()
        .bucket(&w.bucket)
        .key("policies.json")
        .body(
            serde_json::to_vec(&json!({
                "format": "tollgate-policies/1",
                "files": {"bad.cedar": "permit (principal, action, resource) when { context.nope };"}
            }))
            .unwrap()
            .into(),
        )
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let still = w.dry_run(&ALICE, &staging).await;
    assert_eq!(still["outcome"], "pending", "{still}");
    assert_eq!(still["policy_version"], version.as_str());
    let stderr = w.broker.stderr();
    assert!(
        stderr.contains("the stored policy set is invalid") && stderr.contains("bad.cedar:1:"),
        "{stderr}"
    );
    assert!(w.broker.stdout().contains("\"PolicyLoadFailures\""));
    let status = w.local_status();
    assert_eq!(status["version"], version.as_str());
    assert_eq!(status["rejected"]["version"], bad.as_str());
    assert_eq!(status["state"], "behind");
}

#[tokio::test]
async fn diff_agrees_with_what_the_published_set_then_decides_for_every_user_and_role() {
    let w = World::start().await;
    let base = w.policies("base", &[]);
    let base_version = w.publish(&base);

    // Every example user asks for every example role, for an hour; what
    // the policies permit is stored (with what it was decided over).
    let mut created: Vec<(&User, &str, String, String)> = Vec::new();
    for user in USERS {
        for role in ROLES {
            let r = w
                .broker
                .call(
                    Method::POST,
                    "/requests",
                    Auth::As(user),
                    Some(&ask(role, 3600)),
                )
                .await;
            match r.status {
                201 => created.push((
                    user,
                    role,
                    r.body["id"].as_str().unwrap().to_owned(),
                    r.body["status"].as_str().unwrap().to_owned(),
                )),
                403 => {}
                other => panic!("{} asking for {role}: {other} {}", user.sub, r.body),
            }
        }
    }
    assert!(created.len() >= 5, "{created:?}");

    let changed = w.policies("changed", &[("change.cedar", CHANGE)]);
    let diff = w.cli_json(&["policy", "diff", changed.to_str().unwrap(), "--days", "1"]);
    assert_eq!(diff["current"], format!("version {base_version}"));
    assert_eq!(diff["replayed"], created.len(), "{diff}");
    assert_eq!(diff["not_replayable"], 0);
    let changes: Vec<&Value> = diff["changed"].as_array().unwrap().iter().collect();

    let version = w.publish(&changed);
    let mut seen_changes = 0;
    for (user, role, id, status) in &created {
        let now = w.dry_run(user, &ask(role, 3600)).await;
        assert_eq!(now["policy_version"], version.as_str());
        let was = match status.as_str() {
            "active" => "active",
            _ => "pending",
        };
        match changes.iter().find(|c| c["request_id"] == id.as_str()) {
            Some(c) => {
                seen_changes += 1;
                assert_eq!(c["current"]["outcome"], was, "{c}");
                assert_eq!(
                    c["proposed"]["outcome"], now["outcome"],
                    "{} {role}: {c}",
                    user.sub
                );
                assert_ne!(c["proposed"]["outcome"], was);
                assert_eq!(c["decided_by"], base_version.as_str());
            }
            None => assert_eq!(now["outcome"], was, "{} {role}: not in the diff", user.sub),
        }
    }
    assert_eq!(seen_changes, changes.len());
    // Both directions of the change show, with the policies responsible.
    let explained: Vec<String> = changes
        .iter()
        .map(|c| c["proposed"]["explanation"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        explained
            .iter()
            .any(|e| e.contains("forbidden by operators-on-call-only")),
        "{explained:?}"
    );
    assert!(
        explained
            .iter()
            .any(|e| e.contains("staging-auto-approve-30m")),
        "{explained:?}"
    );
    // The table form lists the same requests.
    let text = w.cli(&[
        "policy",
        "diff",
        changed.to_str().unwrap(),
        "--days",
        "1",
        "--against",
        base.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    for c in &changes {
        assert!(text.contains(c["request_id"].as_str().unwrap()), "{text}");
    }
    assert!(
        text.contains(&format!("{} of {} requests", changes.len(), created.len())),
        "{text}"
    );
}
