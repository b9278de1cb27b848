//! `make bench`: measured speed of the broker against the local emulator.
//!
//! 1. Load: N request → approve → credentials flows (default 1,000) from C
//!    concurrent clients (default 16) against the real broker process
//!    (`tollgate serve`): throughput,
//!    p50/p99 per step and per flow, and the share of the broker's time
//!    spent waiting on the emulator. Method: the broker's AWS endpoint is a
//!    timing proxy ([`tollgate_tests::aws_proxy`]) that sums how long the
//!    emulator took to answer each call; the broker's own time is the sum
//!    of the `Latency` metric lines it writes per HTTP request. Broker-only
//!    time is the difference (it includes the proxy hop, a few tens of
//!    microseconds per call, so it slightly overstates the broker).
//! 2. AWS calls per operation, counted on the wire by the same proxy
//!    (retries included) for one flow at a time, against the minimum.
//! 3. The expiry sweep of S due grants (default 10,000), stored directly
//!    through the store, then swept in-process by
//!    `tollgate::api::sweep::sweep` with a `now` past their windows until
//!    nothing is left: time and AWS calls.
//!
//!    Then the broker's CPU time (user + system from `/proc`) per complete
//!    flow, beside the CPU time boto3 spends making the same AWS calls per
//!    flow against the same emulator (`tests/bench/boto3_flow.py`).
//! 4. Function binaries: init time (exec → first Runtime API poll, median
//!    of 20) against `import boto3` and four clients, sizes, peak RSS.
//! 5. Revocations at once on one role (default 50), each grant with
//!    credentials issued, against the same number revoked one at a time on
//!    another role: statuses, wall time, p50/p95 per revoke, AWS calls per
//!    revocation, lease waits and renders, and whether every session ended
//!    up denied.
//!
//! Options: `--flows N --clients C --sweep S --revocations R --skip-load
//! --skip-sweep --skip-revocations --invocations N --binaries DIR`. `--binaries` is where the `tollgate`
//! CLI and the function binaries to measure are: by default beside this
//! program (`target/debug`); `target/release` after `cargo build --release
//! -p tollgate-cli -p tollgate-requests ...` measures what ships. Writes the
//! report to stdout; exits non-zero if the load saw a 5xx.

// A measuring tool: it reports on stdout and stops loudly when the
// environment it measures is broken.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::api::auth::Authenticator;
use tollgate::api::clock::Clock;
use tollgate::api::settings::Settings;
use tollgate::api::state::{AppState, RouteSet, StateOptions};
use tollgate::audit::log::AuditLog;
use tollgate::aws::testing::{Emulator, new_request, unique_name};
use tollgate::domain::{AccessRequest, RoleArn, Timestamp};
use tollgate_tests::aws_proxy::{AwsProxy, OpStats, total};
use tollgate_tests::broker::{ALICE, Auth, BOB, Broker, BrokerOptions, program_dir, role_arn};
use tollgate_tests::load::{self, STEPS, broker_latencies, ms, percentile};

struct Args {
    flows: usize,
    clients: usize,
    sweep: usize,
    skip_sweep: bool,
    skip_load: bool,
    binaries: PathBuf,
    invocations: usize,
    revocations: usize,
    skip_revocations: bool,
}

fn args() -> Args {
    let mut a = Args {
        flows: 1000,
        clients: 16,
        sweep: 10_000,
        skip_sweep: false,
        skip_load: false,
        binaries: program_dir(),
        invocations: 1000,
        revocations: 50,
        skip_revocations: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let num = |i: usize| -> usize {
            v.get(i + 1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", v[i]))
        };
        match v[i].as_str() {
            "--flows" => a.flows = num(i),
            "--clients" => a.clients = num(i),
            "--sweep" => a.sweep = num(i),
            "--skip-sweep" => {
                a.skip_sweep = true;
                i += 1;
                continue;
            }
            "--skip-load" => {
                a.skip_load = true;
                i += 1;
                continue;
            }
            "--skip-revocations" => {
                a.skip_revocations = true;
                i += 1;
                continue;
            }
            "--revocations" => a.revocations = num(i),
            "--binaries" => {
                a.binaries = PathBuf::from(v.get(i + 1).expect("--binaries DIR"));
            }
            "--invocations" => a.invocations = num(i),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a
}

fn print_ops(stats: &BTreeMap<String, OpStats>) -> String {
    stats
        .iter()
        .map(|(op, s)| format!("{op}×{}", s.calls))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> ExitCode {
    let args = args();
    tollgate_tests::broker::block_on(async move { run(args).await })
}

async fn run(args: Args) -> ExitCode {
    let emulator = Emulator::shared().unwrap_or_else(|e| panic!("emulator: {e}"));
    println!("# tollgate-bench (debug build unless stated by the caller)");
    println!(
        "machine: {} cores; emulator: moto single-threaded at {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        emulator.endpoint()
    );
    let mut failed = false;

    if !args.skip_load {
        failed |= load_and_calls(emulator, &args).await;
    }
    // 3. Sweep.
    if !args.skip_sweep {
        // An emulator of its own, so the sweep's figures do not depend on
        // what the load left in the first one.
        let own = Emulator::start().unwrap_or_else(|e| panic!("emulator: {e}"));
        sweep(&own, args.sweep).await;
    }
    // 4. Functions.
    functions(emulator, &args).await;
    // 5. Revocations at once.
    if !args.skip_revocations {
        failed |= revocations(emulator, &args).await;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Sections 1 and 2; true if the load failed a check.
async fn load_and_calls(emulator: &Emulator, args: &Args) -> bool {
    let mut failed = false;
    // 1. Load.
    let proxy = AwsProxy::start(emulator.endpoint()).await;
    let broker = Arc::new(
        Broker::start_cli(
            &args.binaries,
            BrokerOptions {
                sweep_interval_seconds: 3600,
                aws_endpoint: Some(proxy.endpoint()),
                // The broker's default role cache, as `tollgate serve` runs
                // (the test brokers turn it off).
                extra_env: vec![("TOLLGATE_ROLE_CACHE_SECONDS".into(), "60".into())],
                ..BrokerOptions::default()
            },
        )
        .await,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = broker_latencies(&broker.stdout());
    proxy.take();
    let cpu_before = cpu_time(broker.pid());
    let report = load::run(&broker, args.flows, args.clients).await;
    let cpu_after = cpu_time(broker.pid());
    let aws = proxy.take();
    let after = broker_latencies(&broker.stdout());
    println!(
        "\n## Load: {} flows (create → approve → credentials), {} concurrent clients",
        args.flows, args.clients
    );
    let complete = report.complete();
    println!(
        "completed flows: {complete}/{}; wall {:.2} s; throughput {:.1} flows/s, {:.1} requests/s",
        args.flows,
        report.wall.as_secs_f64(),
        complete as f64 / report.wall.as_secs_f64(),
        report.calls().count() as f64 / report.wall.as_secs_f64()
    );
    println!("statuses: {:?}", report.statuses());
    let errors = report.server_errors();
    if !errors.is_empty() {
        println!("FAIL: {} 5xx answers", errors.len());
        failed = true;
    }
    println!("| step | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (i, step) in STEPS.iter().enumerate() {
        let v: Vec<Duration> = report
            .calls()
            .filter(|c| c.step == i)
            .map(|c| c.elapsed)
            .collect();
        println!(
            "| {step} | {} | {} | {} | {} |",
            v.len(),
            ms(percentile(&v, 50.0)),
            ms(percentile(&v, 99.0)),
            ms(percentile(&v, 100.0))
        );
    }
    let flows: Vec<Duration> = report
        .flows
        .iter()
        .filter(|f| f.complete)
        .map(|f| f.elapsed)
        .collect();
    println!(
        "| whole flow | {} | {} | {} | {} |",
        flows.len(),
        ms(percentile(&flows, 50.0)),
        ms(percentile(&flows, 99.0)),
        ms(percentile(&flows, 100.0))
    );
    let ops = [
        "POST /requests",
        "POST /requests/{id}/approve",
        "POST /requests/{id}/credentials",
    ];
    let mut inside = Duration::ZERO;
    let mut handled = 0;
    for op in ops {
        let (n1, d1) = after.get(op).copied().unwrap_or_default();
        let (n0, d0) = before.get(op).copied().unwrap_or_default();
        handled += n1 - n0;
        inside += d1.saturating_sub(d0);
    }
    let aws_total = total(&aws);
    let client: Duration = report.calls().map(|c| c.elapsed).sum();
    println!(
        "time: clients waited {:.2} s in total; the broker handled {handled} requests in {:.2} s \
         (its Latency metric); the emulator answered {} calls in {:.2} s (timing proxy)",
        client.as_secs_f64(),
        inside.as_secs_f64(),
        aws_total.calls,
        aws_total.time.as_secs_f64()
    );
    if !inside.is_zero() {
        let share = aws_total.time.as_secs_f64() / inside.as_secs_f64();
        println!(
            "share of broker time waiting on the emulator: {:.1}%; inside the broker: {:.1}% \
             ({} ms per request)",
            100.0 * share,
            100.0 * (1.0 - share),
            ms(inside.saturating_sub(aws_total.time) / u32::try_from(handled.max(1)).unwrap_or(1))
        );
    }
    println!("emulator time per operation:");
    for (op, s) in &aws {
        println!(
            "  {op}: {} calls, mean {} ms",
            s.calls,
            ms(s.time / u32::try_from(s.calls.max(1)).unwrap_or(1))
        );
    }
    let verified = load::verify(
        &broker,
        &report
            .flows
            .iter()
            .filter(|f| f.id.is_some())
            .collect::<Vec<_>>(),
    )
    .await;
    println!(
        "read back {} requests from the table: {} problems",
        verified.checked,
        verified.problems.len()
    );
    for p in verified.problems.iter().take(10) {
        println!("  {p}");
    }
    failed |= !verified.problems.is_empty();
    drop(broker);
    cost_per_flow(
        emulator,
        &aws,
        complete,
        cpu_after.saturating_sub(cpu_before),
    );

    // 2. AWS calls per operation.
    calls_per_operation(emulator, &args.binaries).await;
    failed
}

/// User + system CPU time of a process so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: Option<u32>) -> Duration {
    let ticks_per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(100);
    let stat = pid
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .expect("the broker's /proc/<pid>/stat");
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    let ticks: u64 = fields.iter().sum();
    Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64)
}

/// The broker's CPU time per complete flow over the load, beside the CPU
/// time boto3 spends making the same AWS calls per flow against the same
/// emulator (tests/bench/boto3_flow.py): the least a Python broker spends.
fn cost_per_flow(
    emulator: &Emulator,
    aws: &BTreeMap<String, OpStats>,
    flows: usize,
    broker_cpu: Duration,
) {
    println!("\n## CPU per flow: the broker against boto3 making the same AWS calls");
    if flows == 0 {
        println!("no complete flow");
        return;
    }
    let per_flow: serde_json::Map<String, serde_json::Value> = aws
        .iter()
        .map(|(op, s)| (op.clone(), serde_json::json!(s.calls as f64 / flows as f64)))
        .collect();
    let python = python_path();
    let script = tollgate::aws::testing::repo_root()
        .join("tests")
        .join("bench")
        .join("boto3_flow.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(emulator.endpoint())
        .arg(flows.to_string())
        .arg(serde_json::Value::Object(per_flow.clone()).to_string())
        .output()
        .expect("run the boto3 baseline");
    assert!(
        out.status.success(),
        "boto3 baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let baseline: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the baseline's JSON line");
    let boto = baseline["cpu_seconds"].as_f64().unwrap_or(0.0) / flows as f64;
    let ours = broker_cpu.as_secs_f64() / flows as f64;
    println!(
        "AWS calls per flow: {}",
        per_flow
            .iter()
            .map(|(op, n)| format!("{op} {:.2}", n.as_f64().unwrap_or(0.0)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| | CPU ms per flow | against boto3 |");
    println!("|---|---|---|");
    println!(
        "| tollgate serve (user + system, /proc, {flows} flows) | {:.3} | {:.3} |",
        ours * 1e3,
        ours / boto
    );
    println!(
        "| boto3, the same AWS calls only (process time) | {:.3} | 1 |",
        boto * 1e3
    );
    if let Some(skipped) = baseline["skipped"].as_array().filter(|s| !s.is_empty()) {
        println!("not replayed by the baseline (so it is lower still): {skipped:?}");
    }
}

fn python_path() -> PathBuf {
    match std::env::var_os("TOLLGATE_VENV") {
        Some(v) => PathBuf::from(v).join("bin").join("python"),
        None => tollgate::aws::testing::repo_root()
            .join(".venv")
            .join("bin")
            .join("python"),
    }
}

async fn calls_per_operation(emulator: &Emulator, binaries: &Path) {
    println!("\n## AWS calls per operation (one flow at a time, counted on the wire)");
    let proxy = AwsProxy::start(emulator.endpoint()).await;
    let b = Broker::start_cli(
        binaries,
        BrokerOptions {
            sweep_interval_seconds: 3600,
            aws_endpoint: Some(proxy.endpoint()),
            extra_env: vec![("TOLLGATE_ROLE_CACHE_SECONDS".into(), "300".into())],
            ..BrokerOptions::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.take();
    let body = load::production_request();
    let mut rows = Vec::new();
    let first = b
        .call(
            reqwest::Method::POST,
            "/requests",
            Auth::As(&ALICE),
            Some(&body),
        )
        .await;
    rows.push((
        "create (role not cached)",
        first.status,
        proxy.take(),
        "≤ 1 DynamoDB write + 1 IAM read",
    ));
    let second = b
        .call(
            reqwest::Method::POST,
            "/requests",
            Auth::As(&ALICE),
            Some(&body),
        )
        .await;
    rows.push((
        "create (role cached)",
        second.status,
        proxy.take(),
        "≤ 1 DynamoDB write",
    ));
    let id = second.body["id"].as_str().unwrap_or_default().to_owned();
    let approved = b
        .call(
            reqwest::Method::POST,
            &format!("/requests/{id}/approve"),
            Auth::As(&BOB),
            Some(&serde_json::json!({"digest": second.body["digest"]})),
        )
        .await;
    rows.push((
        "approve",
        approved.status,
        proxy.take(),
        "1 read + 1 transaction",
    ));
    let creds = b
        .call(
            reqwest::Method::POST,
            &format!("/requests/{id}/credentials"),
            Auth::As(&ALICE),
            Some(&serde_json::json!({})),
        )
        .await;
    rows.push((
        "credentials",
        creds.status,
        proxy.take(),
        "1 read + 1 transaction + 1 STS",
    ));
    let revoked = b
        .call(
            reqwest::Method::POST,
            &format!("/requests/{id}/revoke"),
            Auth::As(&ALICE),
            Some(&serde_json::json!({"reason": "bench"})),
        )
        .await;
    rows.push((
        "revoke (credentials issued)",
        revoked.status,
        proxy.take(),
        "1 read + 1 transaction; lease, Query, 3 IAM reads, 1 IAM write, release",
    ));
    let unused = b
        .call(
            reqwest::Method::POST,
            "/requests",
            Auth::As(&ALICE),
            Some(&body),
        )
        .await;
    let unused_id = unused.body["id"].as_str().unwrap_or_default().to_owned();
    b.call(
        reqwest::Method::POST,
        &format!("/requests/{unused_id}/approve"),
        Auth::As(&BOB),
        Some(&serde_json::json!({"digest": unused.body["digest"]})),
    )
    .await;
    proxy.take();
    let revoked = b
        .call(
            reqwest::Method::POST,
            &format!("/requests/{unused_id}/revoke"),
            Auth::As(&ALICE),
            Some(&serde_json::json!({"reason": "bench"})),
        )
        .await;
    rows.push((
        "revoke (never used)",
        revoked.status,
        proxy.take(),
        "1 read + 1 transaction",
    ));
    println!("| operation | status | calls | measured | minimum |");
    println!("|---|---|---|---|---|");
    for (name, status, ops, min) in rows {
        println!(
            "| {name} | {status} | {} | {} | {min} |",
            total(&ops).calls,
            print_ops(&ops)
        );
    }
}

async fn sweep(emulator: &Emulator, count: usize) {
    println!("\n## Expiry sweep of {count} due grants (in-process, tollgate::api::sweep::sweep)");
    let clients = emulator.clients().await;
    let table = unique_name("bench-sweep");
    tollgate::aws::provision(&clients.dynamodb, &clients.iam, &clients.sts, &table)
        .await
        .expect("provision");
    let store = clients
        .store(table.clone(), 86_400)
        .await
        .expect("a store with the audit key");
    let role = RoleArn::parse(&role_arn("StagingDeveloper")).expect("role");
    let seconds = tollgate::domain::MIN_DURATION_SECONDS;
    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let role = role.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let new = new_request(&role, "alice", seconds, 0).expect("request");
                let (req, ev) =
                    AccessRequest::create(new, true, vec!["auto".into()], Timestamp::now());
                store.create(&req, &ev, None).await.expect("store a grant");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer");
    }
    println!(
        "stored {count} active grants of {seconds} s in {:.1} s (setup, not measured)",
        t.elapsed().as_secs_f64()
    );
    let proxy = AwsProxy::start(emulator.endpoint()).await;
    let sdk = tollgate::aws::testing::sdk_config_for(&proxy.endpoint()).await;
    let (audit, _capture) = AuditLog::capture();
    let state = AppState::build(
        &sdk,
        StateOptions {
            config: tollgate::aws::testing::local_config(&table),
            routes: RouteSet::Expiry,
            auth: Authenticator::Nobody,
            settings: Settings::default(),
            clock: Clock::system(),
            audit,
        },
    )
    .expect("state");
    let now = Timestamp::now().plus(i64::from(seconds) + 120);
    let t = Instant::now();
    let mut runs = 0;
    let mut expired = 0u64;
    let mut failed = 0u64;
    loop {
        let r = tollgate::api::sweep::sweep(&state, now)
            .await
            .expect("sweep");
        runs += 1;
        expired += u64::from(r.expired);
        failed += u64::from(r.failed);
        if !r.more || runs > 10 * count {
            break;
        }
    }
    let elapsed = t.elapsed();
    let ops = proxy.take();
    let all = total(&ops);
    println!(
        "swept in {:.2} s over {runs} runs (≤ {} items per run): {expired} expired, {failed} failed; \
         {:.0} grants/s",
        elapsed.as_secs_f64(),
        tollgate::api::sweep::MAX_ITEMS,
        expired as f64 / elapsed.as_secs_f64()
    );
    println!(
        "AWS calls: {} ({:.2} per grant; emulator time {:.2} s = {:.0}% of the sweep): {}",
        all.calls,
        all.calls as f64 / count.max(1) as f64,
        all.time.as_secs_f64(),
        100.0 * all.time.as_secs_f64() / elapsed.as_secs_f64(),
        print_ops(&ops)
    );
}

/// Section 5; true if a revocation failed or a session was left allowed.
async fn revocations(emulator: &Emulator, args: &Args) -> bool {
    use tollgate_tests::revocations::{
        STAGING_TAGS, grants_with_credentials, own_role, revoke_all, revoke_one_by_one,
        serve_defaults, uncovered,
    };
    let n = args.revocations;
    println!(
        "\n## {n} revocations at once on one role, against {n} one at a time on another \
         (each grant with credentials issued; tollgate serve's defaults: role cache 60 s, sweep every 5 s)"
    );
    let proxy = AwsProxy::start(emulator.endpoint()).await;
    let b = Arc::new(Broker::start_cli(&args.binaries, serve_defaults(&proxy)).await);
    let mut failed = false;
    let mut figures = Vec::new();
    for at_once in [false, true] {
        let staging = b.iam_in(tollgate::aws::LOCAL_STAGING_ACCOUNT).await;
        let (arn, role_id) = own_role(&staging, STAGING_TAGS).await;
        let grants = grants_with_credentials(&b, &arn, n).await;
        let burst = if at_once {
            revoke_all(&b, &grants, Some(&proxy)).await
        } else {
            revoke_one_by_one(&b, &grants, Some(&proxy)).await
        };
        println!(
            "\n### {}\n{}",
            if at_once {
                "at once"
            } else {
                "one at a time (baseline)"
            },
            burst.summary()
        );
        let missing = uncovered(&staging, &arn, &role_id, &grants).await;
        if burst.statuses().keys().any(|s| *s != 200) || !missing.is_empty() {
            println!(
                "FAIL: statuses {:?}; {} sessions not denied",
                burst.statuses(),
                missing.len()
            );
            failed = true;
        }
        figures.push(burst);
    }
    if let [one_by_one, at_once] = figures.as_slice() {
        let iam = |b: &tollgate_tests::revocations::Burst| -> f64 {
            b.iam_calls().values().sum::<u64>() as f64
        };
        println!(
            "\nat once / one at a time: wall {:.2}x, p50 per revoke {:.2}x, IAM calls {:.2}x",
            at_once.wall.as_secs_f64() / one_by_one.wall.as_secs_f64(),
            percentile(&at_once.latencies, 50.0).as_secs_f64()
                / percentile(&one_by_one.latencies, 50.0).as_secs_f64(),
            iam(at_once) / iam(one_by_one).max(1.0),
        );
    }
    failed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Init time (process start → first Runtime API poll, median of 5) of each
/// function binary beside `python -c 'import boto3; boto3.client("sts")'`
/// (whole process, median of 5) timed in the same run; stripped sizes; peak
/// RSS (`VmHWM`) of the expiry function over N scheduled invocations.
/// Cold starts measured per function (and boto3 imports), for the median.
const INIT_RUNS: usize = 20;
const MIB: f64 = 1024.0 * 1024.0;

async fn functions(emulator: &Emulator, args: &Args) {
    use tollgate_tests::runtime_api::{FunctionProcess, RuntimeApi};
    let dir = &args.binaries;
    println!("\n## Function binaries in {}", dir.display());
    let python = python_path();
    let mut boto = Vec::new();
    for _ in 0..INIT_RUNS {
        let t = Instant::now();
        let ok = std::process::Command::new(&python)
            .args([
                "-c",
                "import boto3; [boto3.client(s, region_name='us-east-1') \
                 for s in ('dynamodb', 'sts', 'iam', 'kms')]",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "boto3 baseline failed");
        boto.push(t.elapsed());
    }
    let boto = median(boto);
    println!(
        "baseline: python import boto3 + the four clients a broker needs: {} ms (median of {INIT_RUNS})",
        ms(boto)
    );
    let clients = emulator.clients().await;
    let table = unique_name("bench-fn");
    tollgate::aws::provision(&clients.dynamodb, &clients.iam, &clients.sts, &table)
        .await
        .expect("provision");
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", emulator.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("TOLLGATE_TABLE", table.as_str()),
        (
            "TOLLGATE_BROKER_ACCOUNT",
            tollgate::aws::LOCAL_BROKER_ACCOUNT,
        ),
        ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
        // Init fetches nothing from the issuer (its keys come with the
        // first token), so any https issuer measures the same.
        ("TOLLGATE_JWT_ISSUER", "https://idp.example.com"),
        ("TOLLGATE_JWT_AUDIENCE", "tollgate"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain(
        tollgate::aws::local_environment()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    )
    .chain([(
        "TOLLGATE_POLICY_DIR".to_owned(),
        tollgate::aws::testing::repo_root()
            .join("infra")
            .join("policies")
            .display()
            .to_string(),
    )])
    .collect();
    let logs = tempfile::tempdir().expect("temp dir");
    println!(
        "| function | init ms (median of {INIT_RUNS}) | init / boto3 | size MiB | stripped MiB |"
    );
    println!("|---|---|---|---|---|");
    for name in [
        "requests",
        "reviews",
        "credentials",
        "revocations",
        "expiry",
    ] {
        let binary = dir.join(format!("tollgate-{name}"));
        if !binary.is_file() {
            println!("| {name} | not built | | | |");
            continue;
        }
        let mut inits = Vec::new();
        for _ in 0..INIT_RUNS {
            let runtime = RuntimeApi::start().await;
            let process = FunctionProcess::spawn(&binary, &runtime, &env, logs.path());
            match runtime.wait_for_polls(1, Duration::from_secs(60)).await {
                Some(first) => inits.push(first.duration_since(process.started)),
                None => {
                    println!("| {name} | no poll: {:?} | | | |", runtime.init_error());
                    break;
                }
            }
        }
        if inits.len() < INIT_RUNS {
            continue;
        }
        let init = median(inits);
        let size = std::fs::metadata(&binary).map_or(0, |m| m.len());
        let stripped_path = logs.path().join(format!("{name}.stripped"));
        let stripped = std::process::Command::new("strip")
            .arg("-o")
            .arg(&stripped_path)
            .arg(&binary)
            .status()
            .ok()
            .filter(|s| s.success())
            .and_then(|_| std::fs::metadata(&stripped_path).ok())
            .map_or(0, |m| m.len());
        println!(
            "| {name} | {} | 1/{:.0} | {:.1} | {:.1} |",
            ms(init),
            boto.as_secs_f64() / init.as_secs_f64(),
            size as f64 / MIB,
            stripped as f64 / MIB
        );
    }
    let binary = dir.join("tollgate-expiry");
    if !binary.is_file() {
        return;
    }
    let runtime = RuntimeApi::start().await;
    let process = FunctionProcess::spawn(&binary, &runtime, &env, logs.path());
    let event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            tollgate::aws::testing::repo_root()
                .join("tests")
                .join("fixtures")
                .join("eventbridge-scheduled.json"),
        )
        .expect("fixture"),
    )
    .expect("fixture json");
    let hwm = |pid: Option<u32>| -> u64 {
        pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|k| k.parse().ok())
            })
            .unwrap_or(0)
    };
    let _ = runtime.wait_for_polls(1, Duration::from_secs(60)).await;
    let after_init = hwm(process.pid());
    let t = Instant::now();
    let mut errors = 0;
    for _ in 0..args.invocations {
        if let tollgate_tests::runtime_api::Outcome::Error { .. } =
            runtime.invoke(event.clone(), Duration::from_secs(60)).await
        {
            errors += 1;
        }
    }
    let peak = hwm(process.pid());
    println!(
        "expiry: {} scheduled invocations in {:.1} s ({errors} errors); peak RSS {:.1} MB \
         (after init {:.1} MB)",
        args.invocations,
        t.elapsed().as_secs_f64(),
        peak as f64 / 1024.0,
        after_init as f64 / 1024.0
    );
}
