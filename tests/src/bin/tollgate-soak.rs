//! `make soak`: the load and the faults, exiting non-zero on any failure.
//!
//! 1. The load (default 1,000 flows, 16 clients) against the real broker
//!    and the shared emulator: zero 5xx, every request's audit chain
//!    verifies, every completed flow is stored active with one approval and
//!    one credential issue, and the table's request and event counts equal
//!    what the flows' successful calls wrote.
//! 2. The emulator killed in the middle of a load and restarted on the same
//!    port: every 5xx during the outage is 503 `aws_unavailable` and comes
//!    back within a bound (no hang, no 500); the broker, never restarted,
//!    completes flows afterwards. moto loses its state on restart, so the
//!    table and roles are provisioned again; the load is paused (in-flight
//!    calls drain first) only from the restart until that provisioning is
//!    done, and the table checks count only flows started after recovery.
//! 3. Webhooks: a receiver that refuses connections and one that answers
//!    after 30 s; requests still succeed within their budget.
//!
//! Options: `--flows N --clients C --outage-flows N` (defaults 1,000, 16 and
//! 1,000: the outage happens in the middle of a load as large as the first).

// A test driver: it reports on stdout and stops loudly when the
// environment it drives is broken.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::aws::testing::{Clients, repo_root, sdk_config_for};
use tollgate_tests::broker::{ALICE, Auth, Broker, BrokerOptions, free_port, program_dir};
use tollgate_tests::load::{self, Flow, Gate, LoadReport, ms, percentile};

/// How long an answer during the outage may take.
const OUTAGE_BOUND: Duration = Duration::from_secs(15);

struct Args {
    flows: usize,
    clients: usize,
    outage_flows: usize,
}

fn args() -> Args {
    let mut a = Args {
        flows: 1000,
        clients: 16,
        outage_flows: 1000,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let n: usize = pair
            .get(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{} needs a number", pair[0]));
        match pair[0].as_str() {
            "--flows" => a.flows = n,
            "--clients" => a.clients = n,
            "--outage-flows" => a.outage_flows = n,
            other => panic!("unknown option {other}"),
        }
    }
    a
}

struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failures.push(what);
        }
    }
}

fn main() -> ExitCode {
    let args = args();
    tollgate_tests::broker::block_on(async move {
        let mut c = Checks {
            failures: Vec::new(),
        };
        steady_load(&args, &mut c).await;
        outage(&args, &mut c).await;
        webhooks(&mut c).await;
        if c.failures.is_empty() {
            println!("\nsoak: all checks passed");
            ExitCode::SUCCESS
        } else {
            println!("\nsoak: {} checks failed", c.failures.len());
            ExitCode::FAILURE
        }
    })
}

fn summary(report: &LoadReport) {
    let v: Vec<Duration> = report.calls().map(|c| c.elapsed).collect();
    println!(
        "{} flows, {} complete, {} calls in {:.1} s; p50 {} ms, p99 {} ms; statuses {:?}",
        report.flows.len(),
        report.complete(),
        v.len(),
        report.wall.as_secs_f64(),
        ms(percentile(&v, 50.0)),
        ms(percentile(&v, 99.0)),
        report.statuses()
    );
}

async fn table_checks(b: &Broker, flows: &[&Flow], c: &mut Checks) {
    let verified = load::verify(b, flows).await;
    for p in verified.problems.iter().take(10) {
        println!("  {p}");
    }
    c.check(
        verified.problems.is_empty(),
        format!(
            "{} requests read back: chains verify, versions match events, completed flows stored whole",
            verified.checked
        ),
    );
    let want = load::expected_counts(flows);
    let got = load::table_counts(b).await;
    c.check(
        want == got,
        format!("table counts match the flows: want {want:?}, got {got:?}"),
    );
}

async fn steady_load(args: &Args, c: &mut Checks) {
    println!(
        "\n## Load: {} flows from {} clients",
        args.flows, args.clients
    );
    let b = Arc::new(Broker::start_cli(&program_dir(), default_cache()).await);
    let report = load::run(&b, args.flows, args.clients).await;
    summary(&report);
    c.check(report.server_errors().is_empty(), "zero 5xx");
    c.check(
        report.complete() == args.flows,
        format!("{}/{} flows complete", report.complete(), args.flows),
    );
    let flows: Vec<&Flow> = report.flows.iter().collect();
    table_checks(&b, &flows, c).await;
}

/// Broker options with the broker's default role cache, as `tollgate serve`
/// runs (the test brokers turn it off).
fn default_cache() -> BrokerOptions {
    BrokerOptions {
        extra_env: vec![("TOLLGATE_ROLE_CACHE_SECONDS".into(), "60".into())],
        ..BrokerOptions::default()
    }
}

/// An emulator on a port of our choosing, so that it can be restarted there.
struct OwnEmulator {
    child: Child,
    port: u16,
}

impl OwnEmulator {
    fn start(port: u16) -> Self {
        let python = match std::env::var_os("TOLLGATE_VENV") {
            Some(v) => PathBuf::from(v).join("bin").join("python"),
            None => repo_root().join(".venv").join("bin").join("python"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = Command::new(&python)
                .arg(repo_root().join("scripts").join("moto_launcher.py"))
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .arg("--exit-on-stdin-eof")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the emulator");
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
            if line.trim() == format!("PORT {port}") {
                return Self { child, port };
            }
            // The port may still be held by the process just killed.
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "the emulator cannot bind {port}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

async fn provision(clients: &Clients, table: &str) {
    tollgate::aws::provision(&clients.dynamodb, &clients.iam, &clients.sts, table)
        .await
        .unwrap_or_else(|e| panic!("provisioning {table}: {e}"));
}

async fn outage(args: &Args, c: &mut Checks) {
    println!(
        "\n## Emulator killed and restarted on the same port during a load of {} flows",
        args.outage_flows
    );
    let emulator = OwnEmulator::start(free_port());
    let endpoint = format!("http://127.0.0.1:{}", emulator.port);
    let b = Arc::new(
        Broker::start_cli(
            &program_dir(),
            BrokerOptions {
                aws_endpoint: Some(endpoint.clone()),
                sweep_interval_seconds: 3600,
                ..default_cache()
            },
        )
        .await,
    );
    let broker_pid = b.pid();
    let gate = Gate::default();
    let t0 = Instant::now();
    let load = {
        let (b, gate, flows, clients) = (b.clone(), gate.clone(), args.outage_flows, args.clients);
        tokio::spawn(async move { load::run_gated(&b, flows, clients, gate).await })
    };
    // Let the load get going, then pull the plug.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let killed_at = t0.elapsed();
    let port = emulator.kill();
    println!("emulator killed at {:.1} s", killed_at.as_secs_f64());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let paused = gate.write().await;
    let restart_at = t0.elapsed();
    let emulator = OwnEmulator::start(port);
    let clients = Clients::new(&sdk_config_for(&endpoint).await);
    provision(&clients, &b.table).await;
    let recovered_at = t0.elapsed();
    drop(paused);
    println!(
        "load paused at {:.1} s; emulator restarted and provisioned again by {:.1} s",
        restart_at.as_secs_f64(),
        recovered_at.as_secs_f64()
    );
    let report = load.await.expect("the load");
    summary(&report);
    let outage: Vec<_> = report
        .calls()
        .filter(|call| call.at >= killed_at && call.at < restart_at)
        .collect();
    let unavailable = outage.iter().filter(|c| c.status == 503).count();
    let slowest = outage.iter().map(|c| c.elapsed).max().unwrap_or_default();
    println!(
        "{} calls sent during the outage: {unavailable} answered 503; slowest answer {} ms",
        outage.len(),
        ms(slowest)
    );
    c.check(!outage.is_empty(), "calls were made during the outage");
    c.check(
        report
            .calls()
            .filter(|c| c.status >= 500)
            .all(|c| c.status == 503 && c.code == "aws_unavailable"),
        "every 5xx is 503 aws_unavailable (no 500, no other code)",
    );
    c.check(
        outage
            .iter()
            .all(|c| c.status == 503 && c.code == "aws_unavailable"),
        "every call sent during the outage got 503 aws_unavailable",
    );
    c.check(
        slowest <= OUTAGE_BOUND,
        format!("every outage answer within {} s", OUTAGE_BOUND.as_secs()),
    );
    // The same broker, never restarted, takes another load after recovery.
    let again = load::run(&b, args.outage_flows, args.clients).await;
    print!("after recovery: ");
    summary(&again);
    c.check(again.server_errors().is_empty(), "zero 5xx after recovery");
    let after: Vec<&Flow> = report
        .flows
        .iter()
        .filter(|f| f.started >= recovered_at)
        .chain(again.flows.iter())
        .collect();
    let complete_after = after.iter().filter(|f| f.complete).count();
    c.check(
        !after.is_empty() && complete_after == after.len(),
        format!(
            "the broker recovered without a restart: {complete_after}/{} flows started after recovery complete",
            after.len()
        ),
    );
    c.check(
        b.pid() == broker_pid,
        "the broker process is the one started before the outage",
    );
    table_checks(&b, &after, c).await;
    drop(b);
    drop(emulator);
}

async fn webhooks(c: &mut Checks) {
    println!("\n## Webhook receivers down and slow");
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let slow_url = format!("http://{}/hook", slow.local_addr().expect("addr"));
    tokio::spawn(async move {
        // Accepts, reads, and answers only after 30 s.
        while let Ok((mut sock, _)) = slow.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let down_url = format!("http://127.0.0.1:{}/hook", free_port());
    let b = Broker::start_cli(
        &program_dir(),
        BrokerOptions {
            webhook_urls: vec![down_url, slow_url],
            webhook_secret: Some("soak-webhook-secret-0123456789abcdef".into()),
            ..BrokerOptions::default()
        },
    )
    .await;
    let mut worst = Duration::ZERO;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = b
            .call(
                reqwest::Method::POST,
                "/requests",
                Auth::As(&ALICE),
                Some(&load::production_request()),
            )
            .await;
        worst = worst.max(t.elapsed());
        statuses.push(r.status);
    }
    println!(
        "5 creates that notify: statuses {statuses:?}, slowest {} ms",
        ms(worst)
    );
    c.check(
        statuses.iter().all(|s| *s == 201),
        "every request succeeded",
    );
    c.check(
        worst < Duration::from_secs(10),
        "every request answered within 10 s although a receiver takes 30 s",
    );
}
