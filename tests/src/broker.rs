//! A real local broker for end-to-end tests: the emulator (one per test
//! binary), a fresh table with the example roles, and the broker binary
//! serving HTTP on a free port with a development secret, the example
//! policies, a fast sweep and a controllable clock. Tests talk to it over
//! HTTP with `reqwest`, as a client would.

use crate::sts_proxy::StsProxy;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tollgate::api::auth::{DevTokenSpec, mint_dev_token};
use tollgate::aws::testing::{Clients, Emulator, repo_root, sdk_config_for, unique_name};
use tollgate::domain::Timestamp;

/// The ARN of an example role (`StagingDeveloper`, `ProductionOperator`,
/// ...) in its local target account.
pub fn role_arn(name: &str) -> String {
    tollgate::aws::example_role(name)
        .unwrap_or_else(|| panic!("`{name}` is not an example role"))
        .arn()
}

/// The account of an example role.
pub fn account_of(name: &str) -> &'static str {
    tollgate::aws::example_role(name)
        .unwrap_or_else(|| panic!("`{name}` is not an example role"))
        .account
}

/// A person with a token: subject, groups, claims and whether they used MFA.
#[derive(Debug, Clone)]
pub struct User {
    /// Subject.
    pub sub: &'static str,
    /// Groups.
    pub groups: &'static [&'static str],
    /// Whether `amr` shows MFA.
    pub mfa: bool,
    /// Further claims (department, ...).
    pub claims: &'static [(&'static str, &'static str)],
}

/// The requester: a developer who is also on call, so production requests
/// are allowed at any hour (the example policies forbid them outside office
/// hours and at weekends for everyone else).
pub const ALICE: User = User {
    sub: "alice",
    groups: &["developers", "oncall"],
    mfa: true,
    claims: &[("department", "data")],
};
/// An eligible approver: SRE, signed in with MFA.
pub const BOB: User = User {
    sub: "bob",
    groups: &["sre"],
    mfa: true,
    claims: &[],
};
/// A second eligible approver.
pub const CAROL: User = User {
    sub: "carol",
    groups: &["sre"],
    mfa: true,
    claims: &[],
};
/// An SRE without MFA: may see production requests, may not approve.
pub const DAVE: User = User {
    sub: "dave",
    groups: &["sre"],
    mfa: false,
    claims: &[],
};
/// An ineligible user: a developer who is neither requester nor approver.
pub const ERIN: User = User {
    sub: "erin",
    groups: &["developers"],
    mfa: true,
    claims: &[],
};

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No `Authorization` header.
    None,
    /// A valid development token for this user.
    As(&'a User),
    /// This exact header value's token.
    Token(&'a str),
}

/// A response: status, headers and JSON body (or the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Value,
}

impl Reply {
    /// The stable error code, when the body is an error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Options for [`Broker::start`].
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// `TOLLGATE_PENDING_TTL` (seconds); default the broker's (24 h).
    pub pending_ttl_seconds: Option<u32>,
    /// Webhook URLs.
    pub webhook_urls: Vec<String>,
    /// Webhook signing secret.
    pub webhook_secret: Option<String>,
    /// Seconds between sweeps.
    pub sweep_interval_seconds: u64,
    /// Policies (default: the repository's `infra/policies`).
    pub policy_dir: Option<PathBuf>,
    /// The AWS endpoint for the broker and the checking clients instead of
    /// the shared emulator: a timing proxy, or an emulator the test owns
    /// (to kill and restart it).
    pub aws_endpoint: Option<String>,
    /// Further environment variables, set after (and so overriding) the
    /// defaults, e.g. `TOLLGATE_ROLE_CACHE_SECONDS`.
    pub extra_env: Vec<(String, String)>,
    /// Arguments for the binary (`serve` for the `tollgate` CLI).
    pub args: Vec<String>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            pending_ttl_seconds: None,
            webhook_urls: Vec::new(),
            webhook_secret: None,
            sweep_interval_seconds: 1,
            policy_dir: None,
            aws_endpoint: None,
            extra_env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// The directory of the running program: `target/debug` for the bench and
/// soak drivers, where the workspace's other binaries are built too.
pub fn program_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("a directory").to_path_buf()
}

/// A running broker over its own table.
pub struct Broker {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its table.
    pub table: String,
    /// Clients for the emulator, for checks behind the broker's back.
    pub clients: Clients,
    /// The recording STS proxy the broker's STS client goes through.
    pub sts: StsProxy,
    /// The emulator's endpoint.
    pub endpoint: String,
    http: reqwest::Client,
    secret: SecretString,
    dir: tempfile::TempDir,
    child: tokio::process::Child,
    // The broker exits when this closes: when the test process ends, even
    // if the broker lives in a static that is never dropped.
    _stdin: Option<tokio::process::ChildStdin>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The development secret the test brokers use.
pub const DEV_SECRET: &str = "end-to-end-development-secret-0123456789";

impl Broker {
    /// Starts `binary` (a program that runs `tollgate::api::local::serve`
    /// with options from the environment) against the shared emulator.
    pub async fn start(binary: &Path, options: BrokerOptions) -> Self {
        let (endpoint, clients) = match &options.aws_endpoint {
            Some(endpoint) => (
                endpoint.clone(),
                Clients::new(&sdk_config_for(endpoint).await),
            ),
            None => {
                let emulator = Emulator::shared().unwrap_or_else(|e| panic!("emulator: {e}"));
                (emulator.endpoint().to_owned(), emulator.clients().await)
            }
        };
        let table = unique_name("e2e");
        tollgate::aws::provision(&clients.dynamodb, &clients.iam, &clients.sts, &table)
            .await
            .unwrap_or_else(|e| panic!("provisioning {table}: {e}"));
        // The audit key the broker signs with (its default alias).
        clients
            .audit_signer()
            .await
            .unwrap_or_else(|e| panic!("the audit key: {e}"));
        let sts = StsProxy::start(&endpoint).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let policy_dir = options
            .policy_dir
            .clone()
            .unwrap_or_else(|| repo_root().join("infra").join("policies"));
        let mut env: Vec<(String, String)> = vec![
            ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
            ("AWS_ENDPOINT_URL_STS".into(), sts.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("TOLLGATE_TABLE".into(), table.clone()),
            (
                "TOLLGATE_POLICY_DIR".into(),
                policy_dir.display().to_string(),
            ),
            ("TOLLGATE_DEV_SECRET".into(), DEV_SECRET.into()),
            ("TOLLGATE_ADDR".into(), format!("127.0.0.1:{port}")),
            (
                "TOLLGATE_SWEEP_INTERVAL".into(),
                options.sweep_interval_seconds.to_string(),
            ),
            (
                "TOLLGATE_DEV_CLOCK_FILE".into(),
                dir.path().join("clock-offset").display().to_string(),
            ),
            ("TOLLGATE_ROLE_CACHE_SECONDS".into(), "0".into()),
            // Tests act as a few users many times a minute; the caps have
            // tests of their own (`extra_env` lowers them).
            ("TOLLGATE_MAX_OPEN_REQUESTS".into(), "10000".into()),
            ("TOLLGATE_MAX_CREATES_PER_MINUTE".into(), "10000".into()),
            // No role catalogue refreshes in the sweep: tests count the AWS
            // calls an operation makes. The discovery tests turn them on
            // (`extra_env`).
            ("TOLLGATE_CATALOGUE_REFRESH_SECONDS".into(), "0".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        env.extend(
            tollgate::aws::local_environment()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
        if let Some(ttl) = options.pending_ttl_seconds {
            env.push(("TOLLGATE_PENDING_TTL".into(), ttl.to_string()));
        }
        if !options.webhook_urls.is_empty() {
            env.push((
                "TOLLGATE_WEBHOOK_URLS".into(),
                options.webhook_urls.join(","),
            ));
        }
        if let Some(s) = &options.webhook_secret {
            env.push(("TOLLGATE_WEBHOOK_SECRET".into(), s.clone()));
        }
        env.extend(options.extra_env.iter().cloned());
        let stdout = std::fs::File::create(dir.path().join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut child = tokio::process::Command::new(binary)
            .args(&options.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let broker = Self {
            url,
            table,
            clients,
            sts,
            endpoint,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            secret: SecretString::from(DEV_SECRET),
            dir,
            _stdin: child.stdin.take(),
            child,
        };
        broker.wait_until_healthy().await;
        broker
    }

    /// Runs `tollgate serve` from `dir` (say [`program_dir`], or
    /// `target/release` to measure a release build). Unlike
    /// `tollgate-test-server` it does not exit when its standard input
    /// closes; it is killed when the broker is dropped.
    pub async fn start_cli(dir: &Path, options: BrokerOptions) -> Self {
        let cli = dir.join("tollgate");
        assert!(
            cli.is_file(),
            "{} was not built; run `cargo build -p tollgate-cli` first",
            cli.display()
        );
        let options = BrokerOptions {
            args: vec!["serve".into()],
            ..options
        };
        Self::start(&cli, options).await
    }

    async fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/health", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the broker did not become healthy; its stderr:\n{}",
            self.stderr()
        );
    }

    /// An IAM client acting in the local target `account`, for checks of
    /// what the broker wrote there.
    pub async fn iam_in(&self, account: &str) -> aws_sdk_iam::Client {
        self.clients
            .iam_in(account)
            .await
            .unwrap_or_else(|e| panic!("account {account}: {e}"))
    }

    /// A valid development token for `user`.
    pub fn token(&self, user: &User) -> String {
        let spec = DevTokenSpec {
            sub: user.sub.into(),
            groups: user.groups.iter().map(|g| (*g).to_owned()).collect(),
            claims: user
                .claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            mfa: user.mfa,
            ttl_seconds: 3600,
            ..DevTokenSpec::default()
        };
        mint_dev_token(&self.secret, &spec, Timestamp::now()).expect("mint")
    }

    /// Moves the broker's clock `seconds` ahead of the system clock.
    pub fn set_clock_offset(&self, seconds: i64) {
        std::fs::write(self.dir.path().join("clock-offset"), seconds.to_string())
            .expect("write the clock offset");
    }

    /// A JSON call.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, auth, bytes, &[]).await
    }

    /// A call with a raw body and extra headers.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        match auth {
            Auth::None => {}
            Auth::As(user) => req = req.bearer_auth(self.token(user)),
            Auth::Token(t) => req = req.header("authorization", format!("Bearer {t}")),
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("the broker answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// What the broker wrote to stdout (audit and metric lines).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// What the broker wrote to stderr (tracing).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Waits until `check` holds for the request `id` as `user` sees it.
    pub async fn wait_for(
        &self,
        id: &str,
        user: &User,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .call(
                    Method::GET,
                    &format!("/requests/{id}"),
                    Auth::As(user),
                    None,
                )
                .await;
            if r.status == 200 && check(&r.body) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs `f` to completion on one multi-threaded runtime shared by every
/// test of the process, so that a broker kept in a `static` (and its
/// background tasks) outlives each single test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime")
        })
        .block_on(f)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
