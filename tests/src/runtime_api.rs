//! A local Lambda Runtime API, so the compiled function binaries run exactly
//! as Lambda runs them: the runtime polls `GET /2018-06-01/runtime/invocation/next`,
//! answers on `.../invocation/{id}/response` or `.../error`, and reports
//! start-up failures on `/runtime/init/error`. The harness queues events,
//! waits for the answers and records when the first poll arrived (the
//! function's init time).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};

/// How an invocation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The function's response payload.
    Response(Value),
    /// The function reported an error.
    Error {
        /// `Lambda-Runtime-Function-Error-Type`, if sent.
        error_type: Option<String>,
        /// The error document.
        body: Value,
    },
}

impl Outcome {
    /// The response payload; panics (in tests) on an error outcome.
    pub fn response(self) -> Value {
        match self {
            Self::Response(v) => v,
            Self::Error { error_type, body } => {
                panic!("the function failed: {error_type:?} {body}")
            }
        }
    }
}

struct Pending {
    id: String,
    event: Value,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    polls: Mutex<Vec<Instant>>,
    polled: Notify,
    init_error: Mutex<Option<Value>>,
}

/// The Runtime API server, listening on 127.0.0.1.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts the server on a free port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the runtime API");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event`, and waits for the function's answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Outcome {
        let id = format!("{:032x}", rand::random::<u128>());
        let (tx, rx) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .expect("lock")
            .insert(id.clone(), tx);
        self.shared
            .queue
            .lock()
            .expect("lock")
            .push_back(Pending { id, event });
        self.shared.queued.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => panic!("the runtime API dropped the invocation"),
            Err(_) => panic!(
                "no answer from the function within {timeout:?}{}",
                self.init_error()
                    .map(|e| format!("; init error: {e}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// Waits until the function has polled for work `n` times in all, and
    /// returns when the first poll came.
    pub async fn wait_for_polls(&self, n: usize, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.polled.notified();
            {
                let polls = self.shared.polls.lock().expect("lock");
                if polls.len() >= n {
                    return polls.first().copied();
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// What the function reported on `/runtime/init/error`, if anything.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().expect("lock").clone()
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.polls.lock().expect("lock").push(Instant::now());
    s.polled.notify_waiters();
    let job = loop {
        let notified = s.queued.notified();
        if let Some(job) = s.queue.lock().expect("lock").pop_front() {
            break job;
        }
        notified.await;
    };
    let deadline_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    };
    put("lambda-runtime-aws-request-id", job.id.clone());
    put("lambda-runtime-deadline-ms", deadline_ms.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:tollgate-test".into(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-6744a1b2-0123456789abcdef01234567;Sampled=0".into(),
    );
    put("content-type", "application/json".into());
    (StatusCode::OK, headers, job.event.to_string()).into_response()
}

fn finish(s: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match s.waiting.lock().expect("lock").remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    finish(&s, &id, Outcome::Response(value))
}

async fn error(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&s, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *s.init_error.lock().expect("lock") =
        Some(serde_json::from_slice(&body).unwrap_or(Value::Null));
    StatusCode::ACCEPTED
}

/// A function binary running against a [`RuntimeApi`]; killed on drop.
pub struct FunctionProcess {
    child: tokio::process::Child,
    /// When the process was spawned.
    pub started: Instant,
    /// Where its stdout (log lines) goes.
    pub stdout_path: PathBuf,
}

impl FunctionProcess {
    /// Spawns `binary` as Lambda would: `AWS_LAMBDA_RUNTIME_API` pointing at
    /// `runtime`, the usual function variables, plus `env`. Stdout is
    /// written to `log_dir/<name>.stdout` so tests can read log lines.
    pub fn spawn(
        binary: &FsPath,
        runtime: &RuntimeApi,
        env: &[(String, String)],
        log_dir: &FsPath,
    ) -> Self {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("function")
            .to_owned();
        let stdout_path = log_dir.join(format!("{name}.stdout"));
        let stdout = std::fs::File::create(&stdout_path).expect("create the stdout file");
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2025/11/24/[$LATEST]0123456789abcdef",
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("_HANDLER", "bootstrap")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("TZ", ":UTC")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Self {
            child,
            started,
            stdout_path,
        }
    }

    /// The log lines the function wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The directory holding the workspace's built binaries (`target/debug`),
/// found from the running test executable (`target/debug/deps/<test>`).
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// A built binary of this workspace, or a clear failure saying how to build
/// it. `TOLLGATE_FUNCTIONS_DIR` points elsewhere (say `target/release`, to
/// measure release binaries).
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let dir = std::env::var_os("TOLLGATE_FUNCTIONS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(binary_dir);
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} was not built; run `cargo build -p {package}` (or `make build`) first",
        path.display()
    );
    path
}
