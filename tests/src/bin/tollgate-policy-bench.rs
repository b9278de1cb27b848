//! `make bench-policy`: what the policy store costs a function, measured
//! in-process against the local emulator's S3 and DynamoDB through the
//! timing proxy ([`tollgate_tests::aws_proxy`]), which counts the AWS calls
//! on the wire.
//!
//! The set is the example policies (`infra/policies`). Measured, each as a
//! mean over many runs, with one `decide` on the set served as the baseline:
//! - a check that is not due (what every request pays between checks);
//! - a due check of an unchanged set (one conditional GET answered 304);
//! - a reload of a newly published version (GET, parse, strict validation,
//!   the status item for `tollgate policy status`), and of that the parse
//!   and validation alone;
//! - the cold-start read (`Policies::start`).
//!
//! Options: `--checks N` (due checks, default 200), `--reloads N` (default 30).

// A measuring tool: it reports on stdout and stops loudly when the
// environment it measures is broken.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tollgate::api::clock::Clock;
use tollgate::api::policies::{Policies, StoreSource};
use tollgate::audit::{AuditLog, Metrics};
use tollgate::aws::testing::{Emulator, repo_root, sdk_config_for, unique_name};
use tollgate::aws::{PolicyObject, Store, create_table, ensure_bucket, s3_client};
use tollgate::domain::{Identity, RoleArn, RoleInfo, Timestamp, UserId};
use tollgate::policy::{Action, ActivePolicies, PolicyDocument, Query, QueryContext};
use tollgate_tests::aws_proxy::{AwsProxy, OpStats};

struct Args {
    checks: u32,
    reloads: u32,
}

fn args() -> Args {
    let mut a = Args {
        checks: 200,
        reloads: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} takes a positive number"))
        };
        match flag.as_str() {
            "--checks" => a.checks = value(),
            "--reloads" => a.reloads = value(),
            other => panic!("unknown option {other} (--checks N, --reloads N)"),
        }
    }
    a
}

fn main() {
    let args = args();
    tollgate_tests::broker::block_on(run(args));
}

/// `s3:GET 1.00, dynamodb:PutItem 1.00` per operation.
fn per_op(stats: &BTreeMap<String, OpStats>, n: u32) -> String {
    if stats.is_empty() {
        return "none".into();
    }
    stats
        .iter()
        .map(|(op, s)| format!("{op} {:.2}", s.calls as f64 / f64::from(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn run(args: Args) {
    let emulator = Emulator::shared().unwrap_or_else(|e| panic!("emulator: {e}"));
    let proxy = AwsProxy::start(emulator.endpoint()).await;
    // Set-up and publishing go straight to the emulator; what a function
    // does goes through the proxy, which counts it.
    let direct = sdk_config_for(emulator.endpoint()).await;
    let sdk = sdk_config_for(&proxy.endpoint()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let bucket = unique_name("policybench").to_lowercase();
    let table = unique_name("policybench");
    ensure_bucket(&s3_client(&direct), &bucket)
        .await
        .expect("bucket");
    create_table(&aws_sdk_dynamodb::Client::new(&direct), &table)
        .await
        .expect("table");
    let key = tollgate::aws::DEFAULT_POLICY_KEY;
    let publisher = PolicyObject::new(s3_client(&direct), bucket.clone(), key.into());
    let object = PolicyObject::new(s3_client(&sdk), bucket, key.into());

    let dir = repo_root().join("infra/policies");
    let doc = PolicyDocument::from_dir(&dir).expect("the example policies");
    let bytes = doc.to_bytes();
    let bundled = ActivePolicies::bundled(&doc, str::to_owned).expect("valid");
    // A second set: the same policies and one more file, so a reload
    // always finds a different version with a different digest.
    let other_dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&dir).expect("policies") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, other_dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        other_dir.path().join("zz-bench.cedar"),
        "@id(\"bench-extra\")\nforbid (principal, action == Tollgate::Action::\"request\", resource)\n\
         when { resource.hasTag(\"bench\") };\n",
    )
    .unwrap();
    let other = PolicyDocument::from_dir(other_dir.path()).expect("valid");
    let sets = [
        (doc.to_bytes(), doc.digest()),
        (other.to_bytes(), other.digest()),
    ];

    println!("# tollgate-policy-bench (debug build unless stated by the caller)");
    println!(
        "machine: {} cores; emulator: moto single-threaded at {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        emulator.endpoint()
    );
    println!(
        "policy set: infra/policies, {} policies in {} files, {} bytes as stored",
        bundled.policy_count(),
        doc.file_names().count(),
        bytes.len()
    );

    let source = |refresh: Duration| StoreSource {
        object: object.clone(),
        refresh,
        status: Store::new(dynamodb.clone(), table.clone(), 86_400),
        function: "bench",
        metrics: Metrics::new(AuditLog::capture().0.sink()),
        clock: Clock::system(),
    };
    publisher
        .publish(sets[0].0.clone(), &sets[0].1)
        .await
        .unwrap();
    proxy.take();

    // Cold start: the first read.
    let started = Instant::now();
    let cached = Policies::with_store(bundled.clone(), source(Duration::from_secs(3600)));
    cached.start().await.expect("start");
    let cold = started.elapsed();
    let cold_calls = proxy.take();

    // Baseline: one decision on the set served.
    let alice = Identity {
        sub: UserId::parse("alice").unwrap(),
        groups: vec!["developers".into(), "oncall".into()],
        tags: BTreeMap::from([("department".into(), "platform".into())]),
        mfa: false,
    };
    let role = RoleInfo {
        arn: RoleArn::parse("arn:aws:iam::111122223333:role/tollgate/StagingDeveloper").unwrap(),
        role_id: "AROAEXAMPLE".into(),
        max_session_seconds: 3600,
        tags: BTreeMap::from([
            ("environment".into(), "staging".into()),
            ("tollgate:managed".into(), "true".into()),
        ]),
    };
    let now = Timestamp::now();
    let query = Query {
        principal: &alice,
        action: Action::Request,
        role: &role,
        context: QueryContext {
            duration_seconds: 3600,
            reason: "bench",
            ticket: None,
            source_ip: Some("10.0.0.1"),
            now,
            requester: None,
            approvals_so_far: 0,
        },
    };
    assert!(cached.current().decide(&query).allowed);
    let decides = 20_000u32;
    let started = Instant::now();
    for _ in 0..decides {
        black_box(cached.current().decide(black_box(&query)));
    }
    let decide = started.elapsed() / decides;

    // A check that is not due: what each request pays between checks.
    let skips = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..skips {
        cached.refresh().await;
    }
    let skip = started.elapsed() / skips;
    let skip_calls = proxy.take();

    // Due checks of an unchanged set: each a conditional GET.
    let every = Policies::with_store(bundled.clone(), source(Duration::ZERO));
    every.start().await.expect("start");
    proxy.take();
    let started = Instant::now();
    for _ in 0..args.checks {
        every.refresh().await;
    }
    let check = started.elapsed() / args.checks;
    let check_calls = proxy.take();

    // Reloads: a new version published (not timed) before each check.
    let mut reload_total = Duration::ZERO;
    let mut reload_calls: BTreeMap<String, OpStats> = BTreeMap::new();
    for i in 0..args.reloads {
        let (body, digest) = &sets[(i as usize + 1) % 2];
        let version = publisher.publish(body.clone(), digest).await.unwrap();
        proxy.take();
        let started = Instant::now();
        every.refresh().await;
        reload_total += started.elapsed();
        for (op, s) in proxy.take() {
            reload_calls.entry(op).or_default().calls += s.calls;
        }
        assert_eq!(every.current().version, version, "reload {i} loaded it");
    }
    let reload = reload_total / args.reloads;

    // Of a reload: parse and strict validation alone.
    let started = Instant::now();
    for i in 0..args.reloads {
        let doc = PolicyDocument::parse(black_box(&sets[(i as usize) % 2].0)).unwrap();
        black_box(ActivePolicies::stored(&doc, "v".into()).unwrap());
    }
    let validate = started.elapsed() / args.reloads;

    let ratio = |d: Duration| d.as_secs_f64() / decide.as_secs_f64();
    println!();
    println!(
        "{:<44} {:>12} {:>10}  AWS calls per operation",
        "operation", "mean µs", "x decide"
    );
    let row = |name: &str, d: Duration, calls: String| {
        println!("{name:<44} {:>12.3} {:>10.4}  {calls}", micros(d), ratio(d));
    };
    row(
        &format!("decide, request on the set served ({decides})"),
        decide,
        "none".into(),
    );
    row(
        &format!("check not due ({skips})"),
        skip,
        per_op(&skip_calls, skips),
    );
    row(
        &format!("due check, set unchanged: 304 ({})", args.checks),
        check,
        per_op(&check_calls, args.checks),
    );
    row(
        &format!("reload of a new version ({})", args.reloads),
        reload,
        per_op(&reload_calls, args.reloads),
    );
    row(
        &format!("  of which parse + validate ({})", args.reloads),
        validate,
        "none".into(),
    );
    row("cold start read (1)", cold, per_op(&cold_calls, 1));
    println!();
    println!(
        "a reload costs {:.0} due checks and {:.0} decisions; a due check {:.0} decisions; \
         at the default TOLLGATE_POLICY_REFRESH_SECONDS=10 a busy function makes at most \
         one S3 GET per 10 s",
        reload.as_secs_f64() / check.as_secs_f64(),
        ratio(reload),
        ratio(check),
    );
}
