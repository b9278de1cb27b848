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
    /// KMS (the audit key).
    pub kms: aws_sdk_kms::Client,
    /// Every call the clients sent.
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
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .build(),
            ),
            calls,
        }
    }

    /// A signer with the emulator's audit key (`alias/tollgate-audit`,
    /// created on first use, as `tollgate local provision` does).
    pub async fn audit_signer(&self) -> Result<crate::aws::AuditSigner, crate::aws::AwsError> {
        let arn = crate::aws::ensure_audit_key(&self.kms, crate::aws::DEFAULT_AUDIT_KEY).await?;
        Ok(crate::aws::AuditSigner::new(self.kms.clone(), arn))
    }

    /// A store over `table` that signs with the emulator's audit key.
    pub async fn store(
        &self,
        table: impl Into<String>,
        retention_seconds: i64,
    ) -> Result<crate::aws::Store, crate::aws::AwsError> {
        Ok(
            crate::aws::Store::new(self.dynamodb.clone(), table, retention_seconds)
                .with_signer(self.audit_signer().await?),
        )
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

/// One IAM document to lint with parliament (`scripts/iam-lint`).
#[derive(Debug, Clone)]
pub struct IamDocument {
    /// What it is, for the report.
    pub name: String,
    /// The role whose trust policy it is; `None` for identity and session
    /// policies.
    pub trust_of: Option<String>,
    /// The document.
    pub document: serde_json::Value,
}

/// A role's trust policy and inline policies as IAM holds them (through
/// `iam`, acting in the role's account), named `<role> trust` and
/// `<role> <policy name>`.
pub async fn role_documents(
    iam: &aws_sdk_iam::Client,
    role: &RoleArn,
) -> Result<Vec<IamDocument>, String> {
    let decode = |raw: &str| -> Result<serde_json::Value, String> {
        let text = if raw.trim_start().starts_with('{') {
            raw.to_owned()
        } else {
            crate::aws::percent_decode(raw)
        };
        serde_json::from_str(&text)
            .map_err(|e| format!("{role}: {e}: {}", &text[..text.len().min(300)]))
    };
    let got = iam
        .get_role()
        .role_name(role.name())
        .send()
        .await
        .map_err(|e| format!("GetRole {role}: {e}"))?;
    let trust = got
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .ok_or_else(|| format!("{role} has no trust policy"))?;
    let mut docs = vec![IamDocument {
        name: format!("{} trust", role.name()),
        trust_of: Some(role.to_string()),
        document: decode(trust)?,
    }];
    let names = iam
        .list_role_policies()
        .role_name(role.name())
        .send()
        .await
        .map_err(|e| format!("ListRolePolicies {role}: {e}"))?;
    for name in names.policy_names() {
        let got = iam
            .get_role_policy()
            .role_name(role.name())
            .policy_name(name)
            .send()
            .await
            .map_err(|e| format!("GetRolePolicy {role} {name}: {e}"))?;
        docs.push(IamDocument {
            name: format!("{} {name}", role.name()),
            trust_of: None,
            document: decode(got.policy_document())?,
        });
    }
    Ok(docs)
}

/// Lints `docs` with parliament through `scripts/iam-lint` and returns the
/// findings that `scripts/iam-lint-accepted.json` does not list (with its
/// reason) for that document: `(document name, finding)`.
pub fn iam_lint(docs: &[IamDocument]) -> Result<Vec<(String, serde_json::Value)>, String> {
    let input: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| match &d.trust_of {
            Some(role) => serde_json::json!({"name": d.name, "kind": "trust", "role_arn": role, "document": d.document}),
            None => serde_json::json!({"name": d.name, "kind": "identity", "document": d.document}),
        })
        .collect();
    let script = repo_root().join("scripts").join("iam-lint");
    let mut child = Command::new(python()?)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(serde_json::Value::Array(input).to_string().as_bytes())
            .map_err(|e| format!("iam-lint stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("iam-lint: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iam-lint failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let found: BTreeMap<String, Vec<serde_json::Value>> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("iam-lint output: {e}"))?;
    let accepted: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("scripts").join("iam-lint-accepted.json"))
            .map_err(|e| format!("iam-lint-accepted.json: {e}"))?,
    )
    .map_err(|e| format!("iam-lint-accepted.json: {e}"))?;
    // An accepted finding names its issue, the text its detail contains,
    // optionally the documents it applies to (a name prefix), and why.
    let is_accepted = |name: &str, finding: &serde_json::Value| {
        accepted.iter().any(|a| {
            let detail = finding["detail"].as_str().unwrap_or_default();
            a["issue"] == finding["issue"]
                && a["detail_contains"]
                    .as_str()
                    .is_some_and(|d| detail.contains(d))
                && a["document"].as_str().is_none_or(|d| name.starts_with(d))
                && a["reason"].as_str().is_some_and(|r| !r.trim().is_empty())
        })
    };
    let mut open = Vec::new();
    for (name, findings) in found {
        for f in findings {
            if !is_accepted(&name, &f) {
                open.push((name.clone(), f));
            }
        }
    }
    Ok(open)
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

/// An audit key held in memory, signing exactly as KMS signs with
/// `ECDSA_SHA_256` over a `RAW` message: for offline tests of verification
/// (the CLI's report), never for the broker.
pub struct LocalAuditKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl std::fmt::Debug for LocalAuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalAuditKey")
    }
}

impl LocalAuditKey {
    /// A fresh P-256 key pair.
    pub fn generate() -> Result<Self, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map(|pair| Self { pair })
            .map_err(|e| e.to_string())
    }

    /// The public key as `SubjectPublicKeyInfo` DER, as KMS returns it.
    pub fn public_der(&self) -> Result<Vec<u8>, String> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        self.pair
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| e.to_string())
    }

    /// `event` with this key's signature over its hash.
    pub fn sign(&self, event: &crate::domain::Event) -> Result<crate::domain::Event, String> {
        use base64::Engine as _;
        let message = crate::audit::chain::signed_message(&event.hash)
            .ok_or_else(|| "not an event hash".to_owned())?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, &message).map_err(|e| e.to_string())?;
        Ok(crate::domain::Event {
            signature: Some(crate::domain::EventSignature {
                key_id: "local".into(),
                algorithm: crate::audit::chain::SIGNING_ALGORITHM.into(),
                value: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
            }),
            ..event.clone()
        })
    }
}
