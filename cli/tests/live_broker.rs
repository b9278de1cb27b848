//! The `tollgate` binary against a real local broker, as people use it: the
//! AWS emulator (moto, single-threaded), `tollgate local provision`,
//! `tollgate serve` with the example policies, tokens from `tollgate dev
//! token`, then every client command, the AWS CLI and boto3 through
//! `credential_process`.

// Helpers outside #[test] functions fail loudly too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tollgate::aws::testing::{Emulator, repo_root, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
const SECRET: &str = "cli-live-test-secret-0123456789abcdef";
const STAGING: &str = "arn:aws:iam::111122223333:role/tollgate/StagingDeveloper";
const PRODUCTION: &str = "arn:aws:iam::444455556666:role/tollgate/ProductionOperator";
const DATA: &str = "arn:aws:iam::444455556666:role/tollgate/DataAnalyst";

/// A running `tollgate serve` on its own table, with a private home
/// directory (config, cache) for the CLI processes of one test.
struct Broker {
    server: Child,
    url: String,
    endpoint: String,
    table: String,
    home: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn venv_bin(name: &str) -> PathBuf {
    let venv =
        std::env::var_os("TOLLGATE_VENV").map_or_else(|| repo_root().join(".venv"), PathBuf::from);
    venv.join("bin").join(name)
}

fn aws_env(c: &mut Command, endpoint: &str) {
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1");
}

impl Broker {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// A broker with further `TOLLGATE_*` settings in its environment.
    fn start_with(env: &[(&str, &str)]) -> Self {
        let emulator = Emulator::shared().expect("the AWS emulator starts");
        let endpoint = emulator.endpoint().to_owned();
        let table = unique_name("cli");
        let home = tempfile::tempdir().unwrap();

        let mut provision = Command::new(BIN);
        provision
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        aws_env(&mut provision, &endpoint);
        let out = provision
            .args(["local", "provision", "--table", &table])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "provision failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let port = free_port();
        let log = std::fs::File::create(home.path().join("server.log")).unwrap();
        // A shell between us and the server stops it when our end of its
        // standard input closes: when the test ends, however it ends.
        let mut serve = Command::new("sh");
        serve
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TOLLGATE_DEV_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .envs(tollgate::aws::local_environment())
            .envs(env.iter().copied());
        aws_env(&mut serve, &endpoint);
        let server = serve
            .args([
                "-c",
                r#""$@" <&- & server=$!; read -r _; kill "$server"; (sleep 5; kill -9 "$server" 2>/dev/null) & wait "$server""#,
                "serve-wrapper",
                BIN,
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--policies",
                repo_root().join("infra/policies").to_str().unwrap(),
                "--table",
                &table,
                "--sweep-interval",
                "1s",
            ])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let broker = Self {
            server,
            url: format!("http://127.0.0.1:{port}"),
            endpoint,
            table,
            home,
        };
        broker.wait_healthy();
        broker
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(self.url.trim_start_matches("http://"))
            {
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the broker did not become healthy:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("server.log")).unwrap_or_default()
    }

    /// `tollgate dev token` for a user.
    fn token(&self, sub: &str, groups: &[&str], mfa: bool, claims: &[&str]) -> String {
        let mut c = Command::new(BIN);
        c.env_clear().env("TOLLGATE_DEV_SECRET", SECRET);
        c.args(["dev", "token", "--sub", sub]);
        for g in groups {
            c.args(["--group", g]);
        }
        for kv in claims {
            c.args(["--claim", kv]);
        }
        if mfa {
            c.arg("--mfa");
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The CLI as `token`'s user, with this test's home, cache and broker.
    fn cli(&self, token: &str) -> Command {
        self.command(Path::new(BIN), token)
    }

    /// `program` with the environment `cli` gives the CLI.
    fn command(&self, program: &Path, token: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("TOLLGATE_URL", &self.url)
            .env("TOLLGATE_TOKEN", token)
            .stdin(Stdio::null());
        c
    }

    fn cache_dir(&self) -> PathBuf {
        self.home.path().join("cache/tollgate/credentials")
    }
}

impl Broker {
    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it.
    fn stop(&mut self) {
        drop(self.server.stdin.take());
        let _ = self.server.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Ran {
    code: i32,
    out: String,
    err: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n{}", self.out, self.err))
    }
}

fn ran(o: Output) -> Ran {
    Ran {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8(o.stdout).unwrap(),
        err: String::from_utf8(o.stderr).unwrap(),
    }
}

fn run(c: &mut Command, args: &[&str]) -> Ran {
    ran(c.args(args).output().unwrap())
}

/// Runs with `input` on standard input.
fn run_with_input(c: &mut Command, args: &[&str], input: &str) -> Ran {
    let mut child = c
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    ran(child.wait_with_output().unwrap())
}

fn request(b: &Broker, token: &str, role: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "request",
        "--role",
        role,
        "--reason",
        "investigate the failed deploy",
        "--output",
        "json",
    ];
    if !extra.contains(&"--duration") {
        args.extend_from_slice(&["--duration", "1h"]);
    }
    args.extend_from_slice(extra);
    let r = run(&mut b.cli(token), &args);
    assert_eq!(r.code, 0, "request failed: {}", r.err);
    r.json()
}

/// Waits until `sub`'s `--pending` listing holds `id`.
fn wait_until_listed(b: &Broker, approver: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let r = run(
            &mut b.cli(approver),
            &["list", "--pending", "--output", "json"],
        );
        if r.code == 0 && r.json().as_array().unwrap().iter().any(|x| x["id"] == id) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("request {id} never showed up as pending");
}

/// Waits until the user's own list shows a pending request, returning its id.
fn wait_for_own_pending(b: &Broker, token: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let r = run(
            &mut b.cli(token),
            &["list", "--status", "pending", "--output", "json"],
        );
        if r.code == 0
            && let Some(first) = r.json().as_array().unwrap().first()
        {
            return first["id"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no pending request appeared");
}

fn write_aws_config(b: &Broker, role: &str) -> PathBuf {
    let path = b.home.path().join("aws-config");
    std::fs::write(
        &path,
        format!(
            "[profile tollgate]\nregion = us-east-1\ncredential_process = {BIN} credentials --role {role} --format credential-process\n"
        ),
    )
    .unwrap();
    path
}

/// The AWS CLI or Python with only the credential_process profile to go on
/// (and what `tollgate` needs to run as the credential process).
fn aws_client(b: &Broker, token: &str, program: &Path, config: &Path) -> Command {
    let mut c = b.command(program, token);
    c.env("AWS_CONFIG_FILE", config)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            b.home.path().join("no-credentials"),
        )
        .env("AWS_PROFILE", "tollgate")
        .env("AWS_ENDPOINT_URL", &b.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

#[test]
fn a_staging_grant_works_through_credential_process_for_the_aws_cli_and_boto3() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers"], false, &[]);
    let req = request(&b, &alice, STAGING, &[]);
    assert_eq!(
        req["status"], "active",
        "staging requests are auto-approved"
    );
    let id = req["id"].as_str().unwrap().to_owned();
    let want_arn = format!("arn:aws:sts::111122223333:assumed-role/StagingDeveloper/tollgate-{id}");

    let config = write_aws_config(&b, STAGING);
    let r = ran(aws_client(&b, &alice, &venv_bin("aws"), &config)
        .args(["sts", "get-caller-identity", "--output", "json"])
        .output()
        .unwrap());
    assert_eq!(r.code, 0, "aws cli failed: {}", r.err);
    assert_eq!(r.json()["Arn"], want_arn.as_str());

    let r = ran(aws_client(&b, &alice, &venv_bin("python"), &config)
        .args([
            "-c",
            "import boto3; print(boto3.Session(profile_name='tollgate').client('sts').get_caller_identity()['Arn'])",
        ])
        .output()
        .unwrap());
    assert_eq!(r.code, 0, "boto3 failed: {}", r.err);
    assert_eq!(r.out.trim(), want_arn);

    // The second client reused the cached credentials: one issue, one 0600 file.
    let shown = run(&mut b.cli(&alice), &["show", &id, "--output", "json"]).json();
    assert_eq!(shown["credentials_issued"], 1);
    let files: Vec<_> = std::fs::read_dir(b.cache_dir())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(b.cache_dir())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn cached_credentials_are_served_only_when_the_broker_cannot_be_reached() {
    let mut b = Broker::start();
    let alice = b.token("alice", &["developers"], false, &[]);
    // Ten minutes: STS's 15-minute floor outlives the grant.
    let req = request(&b, &alice, STAGING, &["--duration", "10m"]);
    let id = req["id"].as_str().unwrap().to_owned();
    let first = run(
        &mut b.cli(&alice),
        &["credentials", &id, "--format", "credential-process"],
    );
    assert_eq!(first.code, 0, "{}", first.err);
    let doc: Value = serde_json::from_str(&first.out).unwrap();
    assert_eq!(doc["Version"], 1);
    assert!(doc["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    assert!(!doc["SecretAccessKey"].as_str().unwrap().is_empty());
    assert!(!doc["SessionToken"].as_str().unwrap().is_empty());
    assert_eq!(
        doc["Expiration"], req["window_end"],
        "clients are told the grant's end, not STS's"
    );

    b.stop();
    let again = run(
        &mut b.cli(&alice),
        &[
            "credentials",
            "--role",
            STAGING,
            "--format",
            "credential-process",
        ],
    );
    assert_eq!(again.code, 0, "{}", again.err);
    assert_eq!(again.out, first.out, "served from the cache");
    let fresh = run(
        &mut b.cli(&alice),
        &["credentials", &id, "--no-cache", "--format", "json"],
    );
    assert_eq!(fresh.code, 6, "{}", fresh.err);
    assert!(
        again.err.contains("using cached credentials"),
        "{}",
        again.err
    );

    // Something answers at the broker's address, and it is not a "yes":
    // nothing is served from the cache, whatever the answer.
    let impostor = Impostor::bind(&b.url);
    let cached = || {
        run(
            &mut b.cli(&alice),
            &[
                "credentials",
                "--role",
                STAGING,
                "--format",
                "credential-process",
            ],
        )
    };
    for (status, exit) in [(401, 7), (403, 3), (429, 6), (500, 1), (502, 6), (503, 6)] {
        impostor.answer(Some(status));
        let r = cached();
        assert_eq!(r.code, exit, "HTTP {status}: {}", r.err);
        assert!(r.out.is_empty(), "HTTP {status} served: {}", r.out);
        assert!(
            r.err
                .contains(&format!("cached credentials for grant {id} were not used"))
                && r.err
                    .contains("only used when the broker cannot be reached at all"),
            "HTTP {status}: {}",
            r.err
        );
    }
    // No answer at all within the confirmation timeout: an outage, served.
    impostor.answer(None);
    let r = cached();
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out, first.out);
    assert!(r.err.contains("no answer within 3 s"), "{}", r.err);
    // 404: the grant is unknown there; dropped from the cache, not served.
    impostor.answer(Some(404));
    let r = cached();
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(r.out.is_empty());
    assert_eq!(std::fs::read_dir(b.cache_dir()).unwrap().count(), 0);
}

/// Something listening at a broker's address that is not the broker: it
/// answers every request with one HTTP status and a broker-style error
/// body, or accepts connections and never answers.
struct Impostor {
    status: std::sync::Arc<std::sync::Mutex<Option<u16>>>,
}

impl Impostor {
    fn bind(url: &str) -> Self {
        let listener = std::net::TcpListener::bind(url.trim_start_matches("http://")).unwrap();
        let status = std::sync::Arc::new(std::sync::Mutex::new(None));
        let shared = status.clone();
        std::thread::spawn(move || {
            let mut silent = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(code) = *shared.lock().unwrap() else {
                    silent.push(stream);
                    continue;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let body = format!(
                    r#"{{"error":{{"code":"impostor_{code}","message":"answered {code}"}}}}"#
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { status }
    }

    fn answer(&self, status: Option<u16>) {
        *self.status.lock().unwrap() = status;
    }
}

#[test]
fn a_production_request_waits_for_an_sre_approval_and_then_prints_credentials() {
    let b = Broker::start();
    // On call, so the office-hours guardrail does not depend on when this runs.
    let alice = b.token("alice", &["developers", "oncall"], true, &[]);
    let bob = b.token("bob", &["sre"], true, &[]);
    let carol = b.token("carol", &["developers"], true, &[]);

    let waiter = b
        .cli(&alice)
        .args([
            "request",
            "--role",
            PRODUCTION,
            "--duration",
            "1h",
            "--reason",
            "rotate the TLS certificate",
            "--ticket",
            "CHG-1234",
            "--wait",
            "--timeout",
            "60s",
            "--credentials",
            "--format",
            "env",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = wait_for_own_pending(&b, &alice);
    wait_until_listed(&b, &bob, &id);

    let table = run(&mut b.cli(&bob), &["list", "--pending"]);
    assert_eq!(table.code, 0);
    let header = table.out.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("REQUESTER"),
        "{}",
        table.out
    );
    assert!(table.out.contains(&id) && table.out.contains("alice"));

    // Others cannot see it; the requester cannot approve it.
    assert_eq!(run(&mut b.cli(&carol), &["approve", &id, "--yes"]).code, 4);
    let own = run(&mut b.cli(&alice), &["approve", &id, "--yes"]);
    assert_eq!(own.code, 3, "{}", own.err);

    // Answering no changes nothing; yes approves exactly what was shown.
    let no = run_with_input(&mut b.cli(&bob), &["approve", &id], "n\n");
    assert_eq!(no.code, 1, "{}", no.err);
    assert!(no.err.contains("not_confirmed"));
    let yes = run_with_input(
        &mut b.cli(&bob),
        &["approve", &id, "--comment", "ok for CHG-1234"],
        "y\n",
    );
    assert_eq!(yes.code, 0, "{}", yes.err);
    let shown = run(&mut b.cli(&bob), &["show", &id, "--output", "json"]).json();
    for want in [
        "You are approving:",
        PRODUCTION,
        "rotate the TLS certificate",
        "CHG-1234",
        "alice (groups: developers, oncall; mfa)",
        shown["digest"].as_str().unwrap(),
    ] {
        assert!(
            yes.err.contains(want),
            "the prompt lacks {want:?}:\n{}",
            yes.err
        );
    }
    assert!(
        yes.out
            .starts_with(&format!("approved: request {id} is active until "))
    );

    let done = ran(waiter.wait_with_output().unwrap());
    assert_eq!(done.code, 0, "{}", done.err);
    assert!(
        done.out.starts_with("export AWS_ACCESS_KEY_ID='ASIA"),
        "{}",
        done.out
    );
    assert!(done.out.contains("export AWS_SESSION_TOKEN='"));
    assert!(
        !done.err.contains('\r') && !done.err.contains('\u{1b}'),
        "no spinner when stderr is not a terminal: {:?}",
        done.err
    );

    // The trail verifies through the broker, its signatures against the
    // audit key's public key (fetched from KMS: AWS credentials needed).
    let mut auditor = b.cli(&alice);
    aws_env(&mut auditor, &b.endpoint);
    let v = run(&mut auditor, &["audit", "verify", &id]);
    assert_eq!(v.code, 0, "{}", v.err);
    assert!(v.out.contains("verified: 3 events"), "{}", v.out);
}

#[test]
fn a_denial_ends_the_wait_with_exit_3_and_the_approvers_reason() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers", "oncall"], true, &[]);
    let bob = b.token("bob", &["sre"], true, &[]);
    let waiter = b
        .cli(&alice)
        .args([
            "request",
            "--role",
            PRODUCTION,
            "-d",
            "30m",
            "-r",
            "look at prod",
            "-t",
            "INC-7",
            "--wait",
            "--timeout",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = wait_for_own_pending(&b, &alice);
    let denied = run(
        &mut b.cli(&bob),
        &["deny", &id, "--reason", "use the read-only role"],
    );
    assert_eq!(denied.code, 0, "{}", denied.err);
    assert!(denied.out.contains("denied by bob"), "{}", denied.out);
    let done = ran(waiter.wait_with_output().unwrap());
    assert_eq!(done.code, 3, "{}", done.err);
    assert!(
        done.err.contains(&format!(
            "request {id} was denied by bob: use the read-only role"
        )),
        "{}",
        done.err
    );
}

#[test]
fn ctrl_c_stops_waiting_with_exit_130_and_a_timeout_with_exit_8() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers", "oncall"], true, &[]);
    let args = [
        "request",
        "--role",
        PRODUCTION,
        "-d",
        "30m",
        "-r",
        "check the queue",
        "-t",
        "INC-8",
        "--wait",
    ];
    let waiter = b
        .cli(&alice)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = wait_for_own_pending(&b, &alice);
    let kill = Command::new("kill")
        .args(["-INT", &waiter.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let done = ran(waiter.wait_with_output().unwrap());
    assert_eq!(done.code, 130, "{}", done.err);
    assert!(
        done.err.contains(&format!("request {id} stays pending")),
        "{}",
        done.err
    );
    let shown = run(&mut b.cli(&alice), &["show", &id, "--output", "json"]).json();
    assert_eq!(shown["status"], "pending");

    let start = Instant::now();
    let mut timed = args.to_vec();
    timed.extend_from_slice(&["--timeout", "2s"]);
    let r = run(&mut b.cli(&alice), &timed);
    assert_eq!(r.code, 8, "{}", r.err);
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(r.err.contains("stays pending"), "{}", r.err);

    // On a terminal, waiting shows a spinner with the elapsed time.
    let command = format!(
        "{BIN} request --role {PRODUCTION} -d 30m -r on-a-terminal -t INC-9 --wait --timeout 3s"
    );
    let r = run(
        &mut b.command(Path::new("script"), &alice),
        &["-q", "-e", "-c", &command, "/dev/null"],
    );
    assert_eq!(r.code, 8, "{}{}", r.out, r.err);
    assert!(
        r.out.contains("elapsed, Ctrl-C to stop waiting"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("\u{1b}[2K"),
        "the line is redrawn in place: {:?}",
        r.out
    );

    // Withdrawing it is the requester's call.
    let c = run(&mut b.cli(&alice), &["cancel", &id]);
    assert_eq!(c.code, 0, "{}", c.err);
    assert!(c.out.contains("cancelled"), "{}", c.out);
}

#[test]
fn refusals_exit_with_distinct_codes_and_print_the_servers_message() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers"], false, &[]);

    // 403: no policy lets a developer outside the data team ask for data roles.
    let r = run(
        &mut b.cli(&alice),
        &["request", "--role", DATA, "-d", "1h", "-r", "peek"],
    );
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(r.err.contains("(policy_denied)"), "{}", r.err);
    assert!(
        r.err.contains("DENY"),
        "the explanation is shown: {}",
        r.err
    );

    // The online dry run says the same, and allows what is allowed.
    let r = run(
        &mut b.cli(&alice),
        &["explain", "--role", DATA, "-d", "1h", "-r", "x"],
    );
    assert_eq!(r.code, 3, "{}", r.err);
    let r = run(
        &mut b.cli(&alice),
        &["explain", "--role", STAGING, "-d", "1h", "-r", "x"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("allowed: the grant would be active at once"),
        "{}",
        r.out
    );

    // 404: unknown request.
    let r = run(&mut b.cli(&alice), &["show", "01KAQ3Z7V1W0000000000000AB"]);
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(r.err.contains("(not_found)"), "{}", r.err);

    // 409: cancelling an active grant.
    let id = request(&b, &alice, STAGING, &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(&mut b.cli(&alice), &["cancel", &id]);
    assert_eq!(r.code, 5, "{}", r.err);
    assert!(r.err.contains("(not_pending)"), "{}", r.err);

    // 401: a token signed with another secret.
    let forged_token = {
        let out = Command::new(BIN)
            .env_clear()
            .env("TOLLGATE_DEV_SECRET", "another-secret-0123456789abcdef")
            .args(["dev", "token", "--sub", "alice", "--group", "developers"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let r = run(&mut b.cli(&forged_token), &["list"]);
    assert_eq!(r.code, 7, "{}", r.err);
    assert!(!r.err.contains(&forged_token));

    // No grant for a role: exit 4 and the request command to run.
    let bob = b.token("bob", &["developers"], false, &[]);
    let r = run(
        &mut b.cli(&bob),
        &[
            "credentials",
            "--role",
            STAGING,
            "--format",
            "credential-process",
        ],
    );
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(r.out.is_empty());
    // Built from a dry run: staging is active at once and needs no ticket.
    assert!(
        r.err.contains(&format!(
            "hint: request one with: tollgate request --role {STAGING} --duration 1h --reason '<why>'\n"
        )),
        "{}",
        r.err
    );
    // Production needs a ticket and an approval: the hint says so.
    let olga = b.token("olga", &["developers", "oncall"], false, &[]);
    let r = run(&mut b.cli(&olga), &["credentials", "--role", PRODUCTION]);
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(
        r.err.contains(&format!(
            "tollgate request --role {PRODUCTION} --duration 1h --reason '<why>' --ticket '<ticket>' --wait"
        )),
        "{}",
        r.err
    );

    // A bare number is not a duration; an unknown role is not found.
    let r = run(
        &mut b.cli(&olga),
        &["request", "--role", STAGING, "-d", "90", "-r", "x"],
    );
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("`90` has no unit: write `90m`"), "{}", r.err);
    let r = run(
        &mut b.cli(&olga),
        &[
            "request",
            "--role",
            "arn:aws:iam::444455556666:role/tollgate/NoSuchRole",
            "-d",
            "1h",
            "-r",
            "x",
        ],
    );
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(r.err.contains("(unknown_role)"), "{}", r.err);

    // Limits are named with what sets them.
    let break_glass = "arn:aws:iam::444455556666:role/tollgate/ProductionBreakGlass";
    let r = run(
        &mut b.cli(&olga),
        &[
            "request",
            "--role",
            break_glass,
            "-d",
            "3h",
            "-r",
            "x",
            "-t",
            "INC-1",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(
        r.err.starts_with(
            "error: duration `3h` exceeds the 2h allowed by policy `production-two-hour-cap` (policy_denied)"
        ),
        "{}",
        r.err
    );
    let r = run(
        &mut b.cli(&olga),
        &["explain", "--role", PRODUCTION, "-d", "3h", "-t", "INC-1"],
    );
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err
            .contains("exceeds the 2h allowed by the role's `tollgate:max-duration` tag"),
        "{}",
        r.err
    );
    let r = run(
        &mut b.cli(&olga),
        &["explain", "--role", break_glass, "-d", "1h", "-t", "INC-1"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .contains("longest grant: 2h allowed by policy production-two-hour-cap\n"),
        "{}",
        r.out
    );
}

#[test]
fn revoking_ends_the_grant_and_forgets_its_cached_credentials() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers"], false, &[]);
    let id = request(&b, &alice, STAGING, &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(&mut b.cli(&alice), &["credentials", "--role", STAGING]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.starts_with("export AWS_ACCESS_KEY_ID="),
        "env is the default"
    );
    assert_eq!(std::fs::read_dir(b.cache_dir()).unwrap().count(), 1);

    let r = run(
        &mut b.cli(&alice),
        &["revoke", &id, "--reason", "done early"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("revoked by alice"), "{}", r.out);
    assert_eq!(std::fs::read_dir(b.cache_dir()).unwrap().count(), 0);
    let r = run(
        &mut b.cli(&alice),
        &[
            "credentials",
            "--role",
            STAGING,
            "--format",
            "credential-process",
        ],
    );
    assert_eq!(r.code, 4, "{}", r.err);

    let list = run(&mut b.cli(&alice), &["list"]);
    assert_eq!(list.code, 0);
    let row = list.out.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("revoked"), "{row}");
}

#[test]
fn a_grant_revoked_by_someone_else_is_not_served_from_the_cache_and_a_new_one_is() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers"], false, &[]);
    let sam = b.token("sam", &["security"], true, &[]);
    let json = |b: &Broker| {
        let r = run(
            &mut b.cli(&alice),
            &["credentials", "--role", STAGING, "--format", "json"],
        );
        (r.code, serde_json::from_str::<Value>(&r.out).ok(), r.err)
    };
    let first = request(&b, &alice, STAGING, &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, minted, err) = json(&b);
    assert_eq!(code, 0, "{err}");
    let minted = minted.unwrap();
    assert_eq!(minted["request_id"], first.as_str());
    let (_, cached, _) = json(&b);
    assert_eq!(
        cached.unwrap(),
        minted,
        "served from the cache while active"
    );

    // Revoked by the security team, not by alice: her cache still holds
    // the credentials, and they must not be handed out again.
    let r = run(
        &mut b.cli(&sam),
        &["revoke", &first, "--reason", "incident"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let (code, _, err) = json(&b);
    assert_eq!(code, 4, "no active grant: {err}");
    assert!(err.contains("no_active_grant"), "{err}");
    assert_eq!(std::fs::read_dir(b.cache_dir()).unwrap().count(), 0);

    // A new grant for the role is found and minted, not hidden by the old.
    let second = request(&b, &alice, STAGING, &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, fresh, err) = json(&b);
    assert_eq!(code, 0, "{err}");
    let fresh = fresh.unwrap();
    assert_eq!(fresh["request_id"], second.as_str());
    assert_ne!(fresh["access_key_id"], minted["access_key_id"]);
}

#[test]
fn audit_verify_names_the_first_tampered_event_through_the_broker_and_the_table() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers"], false, &[]);
    let id = request(&b, &alice, STAGING, &[])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(run(&mut b.cli(&alice), &["credentials", &id]).code, 0);
    let mut auditor = b.cli(&alice);
    aws_env(&mut auditor, &b.endpoint);
    let ok = run(&mut auditor, &["audit", "verify", &id, "--output", "json"]);
    assert_eq!(ok.code, 0, "{}", ok.err);
    assert_eq!(ok.json()["verified"], true);
    assert_eq!(ok.json()["events"], 2);

    // Edit the first event's reason directly in DynamoDB.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use aws_sdk_dynamodb::types::AttributeValue;
        let clients = Emulator::shared().unwrap().clients().await;
        use tollgate::aws::schema;
        let key = |sk: String| {
            [
                (
                    schema::PK.to_owned(),
                    AttributeValue::S(schema::request_pk(
                        id.parse::<tollgate::domain::RequestId>().unwrap(),
                    )),
                ),
                (schema::SK.to_owned(), AttributeValue::S(sk)),
            ]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
        };
        let sk = schema::event_sk(1);
        let item = clients
            .dynamodb
            .get_item()
            .table_name(&b.table)
            .set_key(Some(key(sk)))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let event = item[schema::EVENT].as_s().unwrap();
        let edited = event.replace("investigate the failed deploy", "routine check");
        assert_ne!(&edited, event);
        clients
            .dynamodb
            .put_item()
            .table_name(&b.table)
            .set_item(Some({
                let mut i = item.clone();
                i.insert(schema::EVENT.into(), AttributeValue::S(edited));
                i
            }))
            .send()
            .await
            .unwrap();
    });

    let mut auditor = b.cli(&alice);
    aws_env(&mut auditor, &b.endpoint);
    let bad = run(&mut auditor, &["audit", "verify", &id]);
    assert_eq!(bad.code, 1, "{}", bad.out);
    assert!(bad.err.contains("event 1 was altered"), "{}", bad.err);
    let mut direct = b.cli(&alice);
    aws_env(&mut direct, &b.endpoint);
    let bad = run(&mut direct, &["audit", "verify", &id, "--table", &b.table]);
    assert_eq!(bad.code, 1, "{}", bad.err);
    assert!(bad.err.contains("(first bad event: 1)"), "{}", bad.err);
}

/// The value of `label:` in `tollgate show` output.
fn field<'a>(shown: &'a str, label: &str) -> &'a str {
    shown
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label} in\n{shown}"))
        .trim()
}

#[test]
fn a_pending_request_is_reused_waited_for_and_approved_by_its_digest() {
    let b = Broker::start();
    // On call, so the office-hours guardrail does not depend on when this runs.
    let alice = b.token("alice", &["developers", "oncall"], true, &[]);
    let bob = b.token("bob", &["sre"], true, &[]);
    let dave = b.token("dave", &["sre"], false, &[]);
    let ask = [
        "request",
        "--role",
        PRODUCTION,
        "--duration",
        "2h",
        "--reason",
        "rotate the TLS certificate",
        "--ticket",
        "CHG-77",
    ];

    // A short wait gives up and names the way to wait again.
    let mut args = ask.to_vec();
    args.extend_from_slice(&["--wait", "--timeout", "2s"]);
    let r = run(&mut b.cli(&alice), &args);
    assert_eq!(r.code, 8, "{}", r.err);
    let id = wait_for_own_pending(&b, &alice);
    assert!(
        r.err.contains(&format!("`tollgate wait {id}`")),
        "{}",
        r.err
    );

    // Asking again for the same thing reuses it; --new asks again.
    let mut args = ask.to_vec();
    args.extend_from_slice(&["--output", "json"]);
    let again = run(&mut b.cli(&alice), &args);
    assert_eq!(again.code, 0, "{}", again.err);
    assert_eq!(again.json()["id"], id.as_str());
    assert!(again.err.contains("already pending"), "{}", again.err);
    args.push("--new");
    let other = run(&mut b.cli(&alice), &args);
    assert_eq!(other.code, 0, "{}", other.err);
    let other = other.json()["id"].as_str().unwrap().to_owned();
    assert_ne!(other, id);

    // No grant yet: credentials name the pending request, not a new one.
    let r = run(&mut b.cli(&alice), &["credentials", "--role", PRODUCTION]);
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(r.err.contains("(grant_pending)"), "{}", r.err);
    assert!(r.err.contains(" --credentials`"), "{}", r.err);
    assert!(
        r.err.contains(&format!("tollgate wait {id}"))
            || r.err.contains(&format!("tollgate wait {other}")),
        "{}",
        r.err
    );

    // An approver without MFA is told requests wait for an MFA sign-in.
    let r = run(&mut b.cli(&dave), &["list", "--pending"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.is_empty(), "{}", r.out);
    assert!(
        r.err
            .contains("2 pending requests need an approver signed in with multi-factor"),
        "{}",
        r.err
    );

    // show explains the digest; approve --digest approves only that.
    let shown = run(&mut b.cli(&bob), &["show", &id]);
    assert_eq!(shown.code, 0, "{}", shown.err);
    let digest = field(&shown.out, "digest").to_owned();
    assert!(
        shown.out.contains("an approval approves exactly these"),
        "{}",
        shown.out
    );
    let wrong = run(
        &mut b.cli(&bob),
        &["approve", &id, "--digest", &"0".repeat(16)],
    );
    assert_eq!(wrong.code, 5, "{}", wrong.err);
    assert!(wrong.err.contains("nothing was approved"), "{}", wrong.err);
    let ok = run(
        &mut b.cli(&bob),
        &["approve", &id, "--digest", &digest[..16]],
    );
    assert_eq!(ok.code, 0, "{}", ok.err);
    assert!(
        ok.out
            .starts_with(&format!("approved: request {id} is active"))
    );
    assert!(!ok.err.contains("You approved"), "{}", ok.err);

    // tollgate wait picks the decision up; a 2h grant gets 1h credentials, and says so.
    let r = run(
        &mut b.cli(&alice),
        &["wait", &id, "--credentials", "--format", "env"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.starts_with("export AWS_ACCESS_KEY_ID='ASIA"),
        "{}",
        r.out
    );
    assert!(
        r.err.contains("note: these credentials expire in ")
            && r.err.contains(", before your grant ends in "),
        "{}",
        r.err
    );

    // The other request: its requester now holds a grant for the role.
    let pending = run(&mut b.cli(&bob), &["list", "--pending"]);
    let header = pending.out.lines().next().unwrap();
    let row = pending.out.lines().find(|l| l.starts_with(&other)).unwrap();
    for (column, value) in [
        ("TICKET", "CHG-77"),
        ("POLICY", "-"),
        ("HAS GRANT", "yes, ends in "),
    ] {
        let at = header.find(column).unwrap();
        assert!(row[at..].starts_with(value), "{column}:\n{}", pending.out);
    }
    // --yes without --digest says what was approved.
    let yes = run(&mut b.cli(&bob), &["approve", &other, "--yes"]);
    assert_eq!(yes.code, 0, "{}", yes.err);
    assert!(
        yes.err.starts_with("You approved, without --digest:\n"),
        "{}",
        yes.err
    );
    assert!(yes.err.contains("rotate the TLS certificate") && yes.err.contains("CHG-77"));

    // Grants an approver may revoke.
    let active = run(&mut b.cli(&bob), &["list", "--active"]);
    assert_eq!(active.code, 0, "{}", active.err);
    assert!(active.out.starts_with("ID "), "{}", active.out);
    assert!(
        active.out.contains(&id) && active.out.contains(&other),
        "{}",
        active.out
    );
    // Any SRE may revoke production grants; a developer only their own.
    assert!(
        run(&mut b.cli(&dave), &["list", "--active"])
            .out
            .contains(&id)
    );
    let erin = b.token("erin", &["developers"], true, &[]);
    let none = run(&mut b.cli(&erin), &["list", "--active"]);
    assert_eq!(none.code, 0, "{}", none.err);
    assert!(none.out.is_empty(), "{}", none.out);
    assert!(
        none.err.contains("no active grants you may revoke"),
        "{}",
        none.err
    );
}

/// A stand-in for the AWS federation endpoint: answers every request with a
/// fixed sign-in token and counts them. Returns its endpoint.
fn federation_stand_in() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/federation", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 8192];
            let n = stream.read(&mut head).unwrap_or(0);
            let line = String::from_utf8_lossy(&head[..n]);
            let body = if line.starts_with("GET /federation?Action=getSigninToken&Session=") {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r#"{"SigninToken":"cli-test-signin-token"}"#
            } else {
                "{}"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (endpoint, asked)
}

#[test]
fn scheduled_extended_and_break_glass_grants_and_a_console_url_from_the_command_line() {
    let (federation, asked) = federation_stand_in();
    let b = Broker::start_with(&[("TOLLGATE_FEDERATION_ENDPOINT", &federation)]);
    let alice = b.token("alice", &["developers", "oncall"], true, &[]);
    let bob = b.token("bob", &["sre"], true, &[]);

    // Scheduled: approved early, no credentials before the start.
    let scheduled = request(
        &b,
        &alice,
        PRODUCTION,
        &["--in", "30m", "--ticket", "INC-1", "--duration", "30m"],
    );
    assert_eq!(scheduled["status"], "pending");
    assert!(scheduled["starts_at"].is_string(), "{scheduled}");
    let id = scheduled["id"].as_str().unwrap();
    let approved = run(&mut b.cli(&bob), &["approve", id, "--yes"]);
    assert_eq!(approved.code, 0, "{}", approved.err);
    let early = run(&mut b.cli(&alice), &["credentials", id, "--no-cache"]);
    assert_eq!(early.code, 5, "{}", early.err);
    assert!(early.err.contains("not_started"), "{}", early.err);
    let shown = run(&mut b.cli(&alice), &["show", id]);
    assert!(shown.out.contains("scheduled: starts"), "{}", shown.out);
    let bad = run(
        &mut b.cli(&alice),
        &[
            "request",
            "--role",
            STAGING,
            "--duration",
            "1h",
            "--reason",
            "x",
            "--starts-at",
            "2020-01-01T09:00Z",
        ],
    );
    assert_eq!(bad.code, 2, "{}", bad.err);

    // Extension of an auto-approved staging grant: applied at once.
    let staging = request(&b, &alice, STAGING, &[]);
    let sid = staging["id"].as_str().unwrap();
    let extended = run(
        &mut b.cli(&alice),
        &[
            "extend",
            sid,
            "--by",
            "30m",
            "--reason",
            "the load test runs long",
        ],
    );
    assert_eq!(extended.code, 0, "{}", extended.err);
    assert!(extended.out.contains("now ends"), "{}", extended.out);

    // Extension of a production grant: an SRE approves it by its digest.
    let prod = request(
        &b,
        &alice,
        PRODUCTION,
        &["--ticket", "INC-2", "--duration", "30m"],
    );
    let pid = prod["id"].as_str().unwrap();
    assert_eq!(run(&mut b.cli(&bob), &["approve", pid, "--yes"]).code, 0);
    let asked_ext = run(
        &mut b.cli(&alice),
        &[
            "extend",
            pid,
            "--by",
            "30m",
            "--reason",
            "the migration is slow",
        ],
    );
    assert_eq!(asked_ext.code, 0, "{}", asked_ext.err);
    assert!(
        asked_ext.out.contains("waits for 1 approval"),
        "{}",
        asked_ext.out
    );
    wait_until_listed(&b, &bob, pid);
    let ext_ok = run(&mut b.cli(&bob), &["approve", pid, "--yes"]);
    assert_eq!(ext_ok.code, 0, "{}", ext_ok.err);
    assert!(ext_ok.out.contains("extension approved"), "{}", ext_ok.out);
    let after = run(&mut b.cli(&alice), &["show", pid, "--output", "json"]).json();
    assert_eq!(after["extended_seconds"], 1800);

    // Break-glass: active at once, reviewed by someone else.
    let glass = request(
        &b,
        &alice,
        "arn:aws:iam::444455556666:role/tollgate/ProductionBreakGlass",
        &["--break-glass", "--duration", "30m"],
    );
    assert_eq!(glass["status"], "active");
    let gid = glass["id"].as_str().unwrap();
    let listed = run(
        &mut b.cli(&bob),
        &["list", "--unreviewed", "--output", "json"],
    )
    .json();
    assert!(
        listed.as_array().unwrap().iter().any(|r| r["id"] == gid),
        "{listed}"
    );
    let own = run(
        &mut b.cli(&alice),
        &["review", gid, "--outcome", "justified", "--comment", "mine"],
    );
    assert_eq!(own.code, 3, "{}", own.err);
    let reviewed = run(
        &mut b.cli(&bob),
        &[
            "review",
            gid,
            "--outcome",
            "justified",
            "--comment",
            "INC-3 confirmed",
        ],
    );
    assert_eq!(reviewed.code, 0, "{}", reviewed.err);
    assert!(reviewed.out.contains("justified"), "{}", reviewed.out);

    // Console: the URL printed, never cached.
    let console = run(&mut b.cli(&alice), &["console", sid, "--print"]);
    assert_eq!(console.code, 0, "{}", console.err);
    let url = console.out.trim();
    assert!(
        url.starts_with(&format!("{federation}?Action=login")),
        "{url}"
    );
    assert!(url.contains("SigninToken=cli-test-signin-token"), "{url}");
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    let by_role = run(
        &mut b.cli(&alice),
        &["console", "--role", STAGING, "--print"],
    );
    assert_eq!(by_role.code, 0, "{}", by_role.err);
    let cached = walk(&b.home.path().join("cache"));
    assert!(
        cached.iter().all(|f| !std::fs::read_to_string(f)
            .unwrap_or_default()
            .contains("cli-test-signin-token")),
        "the sign-in URL was written to disk"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files.extend(walk(&p));
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn roles_lists_what_a_user_may_ask_for_and_short_names_stand_for_arns() {
    let b = Broker::start();
    let alice = b.token("alice", &["developers"], false, &[]);
    // The sweep fills the catalogue within its first runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = loop {
        let r = run(&mut b.cli(&alice), &["roles", "--names"]);
        assert_eq!(r.code, 0, "roles --names failed: {}", r.err);
        if !r.out.is_empty() {
            break r.out;
        }
        assert!(
            Instant::now() < deadline,
            "the catalogue stayed empty: {}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let names: Vec<&str> = names.lines().collect();
    assert!(names.contains(&"staging/StagingDeveloper"), "{names:?}");
    assert!(!names.contains(&"prod/DataAnalyst"), "{names:?}");

    // bash completes --role from the same list, asking the broker on Tab.
    let dir = Path::new(BIN).parent().unwrap();
    let r = run(
        b.command(Path::new("bash"), &alice)
            .env("PATH", format!("{}:/usr/bin:/bin", dir.display())),
        &[
            "-c",
            r#"source <(tollgate completions bash)
COMP_WORDS=(tollgate request --role stag); COMP_CWORD=3; _tollgate tollgate stag --role
printf '%s\n' "${COMPREPLY[@]}""#,
        ],
    );
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "staging/StagingDeveloper\n"),
        "{}",
        r.err
    );

    let table = run(&mut b.cli(&alice), &["roles"]);
    assert_eq!(table.code, 0, "{}", table.err);
    assert!(table.out.starts_with("ROLE "), "{}", table.out);
    let staging = table
        .out
        .lines()
        .find(|l| l.starts_with("staging/StagingDeveloper "))
        .unwrap_or_else(|| panic!("{}", table.out));
    assert!(staging.contains("automatic"), "{staging}");

    let prod = run(
        &mut b.cli(&alice),
        &["roles", "--account", "prod", "--output", "json"],
    )
    .json();
    let prod = prod.as_array().unwrap();
    assert!(!prod.is_empty());
    assert!(
        prod.iter().all(|r| r["account"] == "444455556666"),
        "{prod:?}"
    );
    let r = run(&mut b.cli(&alice), &["roles", "--account", "nowhere"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("unknown_account"), "{}", r.err);

    // A short form, and the name alone, stand for the role's ARN.
    let req = request(&b, &alice, "staging/StagingDeveloper", &[]);
    assert_eq!(
        (req["status"].as_str(), req["role_arn"].as_str()),
        (Some("active"), Some(STAGING))
    );
    let r = run(
        &mut b.cli(&alice),
        &[
            "credentials",
            "--role",
            "StagingDeveloper",
            "--format",
            "json",
            "--no-cache",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.json()["role_arn"], STAGING);
    let r = run(
        &mut b.cli(&alice),
        &["explain", "--role", "staging/StagingDeveloper", "-d", "1h"],
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);

    // A role she may not ask for is unknown to her; a malformed one is
    // refused before anything is sent.
    let r = run(
        &mut b.cli(&alice),
        &[
            "request",
            "--role",
            "prod/DataAnalyst",
            "-d",
            "1h",
            "-r",
            "look",
        ],
    );
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(
        r.err.contains("unknown_role") && r.err.contains("tollgate roles"),
        "{}",
        r.err
    );
    let r = run(
        &mut b.cli(&alice),
        &["request", "--role", "a/b/c", "-d", "1h", "-r", "look"],
    );
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("ACCOUNT/NAME"), "{}", r.err);
}
