//! Test support (feature `testing`): starts the local AWS emulator the way
//! `scripts/aws-local` does (moto, single-threaded, on a free 127.0.0.1
//! port), builds SDK clients for it, and records every AWS call they make.
//!
//! Each test binary shares one emulator ([`Emulator::shared`]); tests isolate
//! themselves with unique table and role names ([`unique_name`]). The
//! emulator stops when the test process exits (its standard input closes),
//! or when an owned [`Emulator`] is dropped.
//!
//! The Python environment is `$TOLLGATE_VENV` or `<repo>/.venv`; when neither
//! has a Python, `scripts/aws-local venv` creates `<repo>/.venv` first.

use crate::aws::sdk_config_loader;
use crate::domain::{
    DEFAULT_MAX_DURATION_SECONDS, GrantDuration, Identity, NewRequest, Reason, RequestId, RoleArn,
    Ticket, Timestamp, UserId, ValidationError,
};
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Intercept};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long the emulator may take to start (importing moto is slow on a
/// loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running emulator. Dropping it stops the process.
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    child: Mutex<Option<(Child, ChildStdin)>>,
    log: PathBuf,
}

impl Emulator {
    /// Starts an emulator of its own on a free port and waits until it answers.
    pub fn start() -> Result<Self, String> {
        let python = python()?;
        let launcher = repo_root().join("scripts").join("moto_launcher.py");
        static N: AtomicU64 = AtomicU64::new(0);
        let log = std::env::temp_dir().join(format!(
            "tollgate-moto-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(&python)
            .arg(&launcher)
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("emulator pipes were not opened".into());
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let port = rx.recv_timeout(START_TIMEOUT).ok().and_then(|l| {
            l.trim()
                .strip_prefix("PORT ")
                .and_then(|p| p.parse::<u16>().ok())
        });
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the emulator did not report a port; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        };
        let emulator = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Mutex::new(Some((child, stdin))),
            log,
        };
        emulator.wait_until_answering(port)?;
        Ok(emulator)
    }

    /// The emulator shared by every test in this process, started on first use.
    pub fn shared() -> Result<&'static Self, String> {
        static SHARED: OnceLock<Result<Emulator, String>> = OnceLock::new();
        SHARED
            .get_or_init(Self::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The emulator's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|(child, _)| child.id()))
    }

    /// SDK configuration for this emulator (see [`sdk_config_for`]).
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// Clients for every service the broker uses, all recording their calls
    /// in one [`CallLog`].
    pub async fn clients(&self) -> Clients {
        Clients::new(&self.sdk_config().await)
    }

    fn wait_until_answering(&self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if answers(port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the emulator on port {port} did not answer; its log: {}",
            self.log.display()
        ))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock()
            && let Some((mut child, stdin)) = guard.take()
        {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/")
}

/// The repository root (the workspace above `shared/`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The Python of `$TOLLGATE_VENV` or `<repo>/.venv`, creating the latter
/// with `scripts/aws-local venv` when neither exists.
fn python() -> Result<PathBuf, String> {
    if let Some(venv) = std::env::var_os("TOLLGATE_VENV") {
        let py = Path::new(&venv).join("bin").join("python");
        return if py.exists() {
            Ok(py)
        } else {
            Err(format!("TOLLGATE_VENV has no {}", py.display()))
        };
    }
    let root = repo_root();
    let py = root.join(".venv").join("bin").join("python");
    if !py.exists() {
        let status = Command::new(root.join("scripts").join("aws-local"))
            .arg("venv")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run scripts/aws-local venv: {e}"))?;
        if !status.success() || !py.exists() {
            return Err(format!("scripts/aws-local venv failed ({status})"));
        }
    }
    Ok(py)
}

/// SDK configuration for an emulator at `endpoint`: Tollgate's usual loader
/// with the endpoint, dummy credentials, `us-east-1`, and a longer operation
/// timeout (the single-threaded emulator queues concurrent calls).
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "tollgate-testing",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await
}

/// SDK clients that record each attempt they send.
#[derive(Clone, Debug)]
pub struct Clients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// STS.
    pub sts: aws_sdk_sts::Client,
    /// Every call the three clients sent.
    pub calls: CallLog,
}

impl Clients {
    /// Clients from `config`, each with a [`CallLog`] interceptor.
    pub fn new(config: &SdkConfig) -> Self {
        let calls = CallLog::default();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            calls,
        }
    }
}

impl Clients {
    /// An IAM client acting in the local target `account` (as provisioning
    /// does), recording its calls in the same log: for checks of what the
    /// broker wrote there.
    pub async fn iam_in(&self, account: &str) -> Result<aws_sdk_iam::Client, crate::aws::AwsError> {
        crate::aws::account_admin(&self.iam, &self.sts, account).await
    }

    /// The accounts adapter a local broker builds over these clients, for
    /// the world [`crate::aws::provision`] creates.
    pub fn accounts(&self) -> crate::aws::Accounts {
        let config = local_config("tollgate");
        let settings = crate::aws::AccountSettings {
            broker_account: crate::aws::LOCAL_BROKER_ACCOUNT.to_owned(),
            target_accounts: config.target_accounts.iter().cloned().collect(),
            allow_broker_account: false,
            control_role: config.control_role,
            external_id: config.control_external_id,
            managed_role_path: config.managed_role_path,
            aliases: Default::default(),
        };
        crate::aws::Accounts::new(settings, self.sts.clone(), &self.iam)
    }
}

/// Settings of a broker over `table` in the world [`crate::aws::provision`]
/// creates: its target accounts, their ExternalId and the broker's account.
pub fn local_config(table: &str) -> crate::Config {
    crate::Config {
        table: table.to_owned(),
        target_accounts: vec![
            crate::aws::LOCAL_STAGING_ACCOUNT.to_owned(),
            crate::aws::LOCAL_PRODUCTION_ACCOUNT.to_owned(),
        ],
        broker_account: Some(crate::aws::LOCAL_BROKER_ACCOUNT.to_owned()),
        control_external_id: Some(crate::aws::LOCAL_EXTERNAL_ID.to_owned()),
        ..crate::Config::default()
    }
}

/// One request as sent on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentCall {
    /// Service, as the SDK names it (`dynamodb`, `iam`, `sts`).
    pub service: String,
    /// Operation (`TransactWriteItems`, `AssumeRole`, ...).
    pub operation: String,
    /// The serialized body (JSON for DynamoDB, a form for IAM and STS).
    pub body: String,
}

impl SentCall {
    /// The body's form fields (IAM and STS use the query protocol).
    pub fn form(&self) -> BTreeMap<String, String> {
        form_params(&self.body)
    }
}

/// An SDK interceptor that records every attempt just before it is sent.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<SentCall>>>);

impl CallLog {
    /// Everything recorded so far.
    pub fn calls(&self) -> Vec<SentCall> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Operation names recorded so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.operation).collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }

    /// Operation names recorded since the last call, and forgets them.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut c| c.drain(..).map(|call| call.operation).collect())
            .unwrap_or_default()
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "TollgateCallLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_default();
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        if let Ok(mut calls) = self.0.lock() {
            calls.push(SentCall {
                service,
                operation,
                body,
            });
        }
        Ok(())
    }
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn form_params(body: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b'%' if i + 3 <= bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 3;
                        }
                        Err(_) => {
                            out.push(b'%');
                            i += 1;
                        }
                    }
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A name no other test in any process is using: `<prefix>-<ulid>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        RequestId::generate(Timestamp::now())
            .to_string()
            .to_lowercase()
    )
}

/// A new request by `requester` for `role`, for tests.
pub fn new_request(
    role: &RoleArn,
    requester: &str,
    seconds: u32,
    approvals: u8,
) -> Result<NewRequest, ValidationError> {
    let now = Timestamp::now();
    Ok(NewRequest {
        id: RequestId::generate(now),
        requester: Identity {
            sub: UserId::parse(requester)?,
            groups: vec!["developers".into()],
            tags: BTreeMap::new(),
            mfa: true,
        },
        role_arn: role.clone(),
        duration: GrantDuration::new(u64::from(seconds), DEFAULT_MAX_DURATION_SECONDS)?,
        reason: Reason::parse("integration test")?,
        ticket: Some(Ticket::parse("TEST-1")?),
        session_policy: None,
        approvals_required: approvals,
        pending_ttl_seconds: crate::domain::DEFAULT_PENDING_TTL_SECONDS,
    })
}
