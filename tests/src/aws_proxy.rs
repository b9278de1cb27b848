//! A timing reverse proxy in front of the emulator. The broker's AWS
//! endpoint points here; every call is forwarded unchanged, and the proxy
//! records per operation (`dynamodb:TransactWriteItems`, `sts:AssumeRole`,
//! ...) how many calls went through and how long the emulator took to
//! answer them (from sending the request to having the whole body). That is
//! how the benchmarks count AWS calls per broker operation on the wire
//! (retries included) and split the broker's time into "inside the broker"
//! and "waiting on the emulator".
//!
//! It can also fail chosen operations on demand ([`AwsProxy::fail`]): a
//! failing IAM endpoint for the end-to-end tests of what the broker does
//! when a revocation statement cannot be written.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Calls and emulator time for one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Calls forwarded.
    pub calls: u64,
    /// Sum of the emulator's answer times.
    pub time: Duration,
}

type Table = Arc<Mutex<BTreeMap<String, OpStats>>>;
/// Operations answered with an error instead of forwarded: status, code,
/// and how many more times (none: until healed).
type Faults = Arc<Mutex<BTreeMap<String, (u16, String, Option<u32>)>>>;

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    stats: Table,
    faults: Faults,
}

/// The proxy; stops when dropped.
pub struct AwsProxy {
    addr: SocketAddr,
    stats: Table,
    faults: Faults,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AwsProxy {
    /// Starts a proxy forwarding everything to `upstream` (the emulator).
    pub async fn start(upstream: &str) -> Self {
        let stats = Table::default();
        let faults = Faults::default();
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("http client"),
            stats: stats.clone(),
            faults: faults.clone(),
        };
        let app = Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the AWS proxy");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            stats,
            faults,
            server,
        }
    }

    /// From now on answers every call of `op` (`iam:PutRolePolicy`) with
    /// `status` and an error of `code` in the query protocol's XML (IAM,
    /// STS), without forwarding it. Still counted.
    pub fn fail(&self, op: &str, status: u16, code: &str) {
        self.faults
            .lock()
            .expect("lock")
            .insert(op.to_owned(), (status, code.to_owned(), None));
    }

    /// Like [`AwsProxy::fail`], for the next `times` calls of `op` only.
    pub fn fail_times(&self, op: &str, status: u16, code: &str, times: u32) {
        self.faults
            .lock()
            .expect("lock")
            .insert(op.to_owned(), (status, code.to_owned(), Some(times)));
    }

    /// Forwards every call again.
    pub fn heal(&self) {
        self.faults.lock().expect("lock").clear();
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was recorded since the last [`AwsProxy::take`].
    pub fn snapshot(&self) -> BTreeMap<String, OpStats> {
        self.stats.lock().expect("lock").clone()
    }

    /// What was recorded, and forgets it.
    pub fn take(&self) -> BTreeMap<String, OpStats> {
        std::mem::take(&mut *self.stats.lock().expect("lock"))
    }
}

/// Sum over operations.
pub fn total(stats: &BTreeMap<String, OpStats>) -> OpStats {
    stats.values().fold(OpStats::default(), |a, s| OpStats {
        calls: a.calls + s.calls,
        time: a.time + s.time,
    })
}

/// `service:Operation` for a request: the service from the SigV4 credential
/// scope, the operation from `X-Amz-Target` (JSON protocols), the form's
/// `Action` (query protocols), or for S3 (REST) the method: `s3:GET`.
fn operation(method: &Method, headers: &HeaderMap, body: &[u8]) -> String {
    let service = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .map(str::to_owned)
        .or_else(|| {
            tollgate::aws::testing::form_params(&String::from_utf8_lossy(body)).remove("Action")
        })
        .unwrap_or_else(|| {
            if service == "s3" {
                method.to_string()
            } else {
                "unknown".into()
            }
        });
    format!("{service}:{op}")
}

struct Record {
    stats: Table,
    op: Option<String>,
    started: Instant,
}

impl Drop for Record {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        if let (Ok(mut stats), Some(op)) = (self.stats.lock(), self.op.take()) {
            let entry = stats.entry(op).or_default();
            entry.calls += 1;
            entry.time += elapsed;
        }
    }
}

async fn forward(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = operation(&method, &headers, &body);
    let fault = s.faults.lock().ok().and_then(|mut faults| {
        let (status, code, left) = faults.get_mut(&op)?;
        let fault = (*status, code.clone());
        match left {
            Some(0) => {
                faults.remove(&op);
                return None;
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(fault)
    });
    if let Some((status, code)) = fault {
        // Counted like a forwarded call when dropped.
        let _record = Record {
            stats: s.stats.clone(),
            op: Some(op),
            started: Instant::now(),
        };
        let body = format!(
            "<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>injected by the test proxy</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        );
        let mut out = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response();
        out.headers_mut()
            .insert("content-type", "text/xml".parse().expect("a header value"));
        return out;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = s
        .client
        .request(method, format!("{}{path}", s.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    // Recorded when dropped: also when the broker gives up on the call (its
    // operation timeout) and the handler is cancelled mid-wait, so the time
    // it spent waiting still counts.
    let record = Record {
        stats: s.stats.clone(),
        op: Some(op),
        started: Instant::now(),
    };
    let result = match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            Ok((status, headers, bytes))
        }
        Err(e) => Err(e),
    };
    drop(record);
    match result {
        Ok((status, headers, bytes)) => {
            let mut out = (status, bytes).into_response();
            // Every header but those of the hop (S3 answers in headers:
            // version ids, ETags).
            for (name, value) in &headers {
                let hop = [
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "content-encoding",
                ];
                if !hop.contains(&name.as_str()) {
                    out.headers_mut().insert(name, value.clone());
                }
            }
            out
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
