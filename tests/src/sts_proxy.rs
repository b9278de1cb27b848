//! A recording reverse proxy in front of the emulator's STS endpoint. The
//! emulator neither echoes session tags nor `SourceIdentity`, so the
//! end-to-end tests point the broker's STS client here
//! (`AWS_ENDPOINT_URL_STS`) and assert what the real binary sent on the
//! wire, while the emulator still answers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Vec<String>>>,
}

/// The proxy; stops when dropped.
pub struct StsProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StsProxy {
    /// Starts a proxy forwarding everything to `upstream` (the emulator).
    pub async fn start(upstream: &str) -> Self {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            seen: seen.clone(),
        };
        let app = Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the STS proxy");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen, server }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The form fields of every `AssumeRole` call for credentials (target
    /// roles) seen so far.
    pub fn assume_role_calls(&self) -> Vec<BTreeMap<String, String>> {
        self.all_assume_role_calls()
            .into_iter()
            .filter(|form| !is_control_session(form))
            .collect()
    }

    /// The form fields of every `AssumeRole` call into a control role.
    pub fn control_session_calls(&self) -> Vec<BTreeMap<String, String>> {
        self.all_assume_role_calls()
            .into_iter()
            .filter(is_control_session)
            .collect()
    }

    fn all_assume_role_calls(&self) -> Vec<BTreeMap<String, String>> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|body| tollgate::aws::testing::form_params(body))
            .filter(|form| form.get("Action").map(String::as_str) == Some("AssumeRole"))
            .collect()
    }
}

fn is_control_session(form: &BTreeMap<String, String>) -> bool {
    form.get("RoleSessionName").map(String::as_str)
        == Some(tollgate::aws::accounts::CONTROL_SESSION_NAME)
}

async fn forward(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.seen
        .lock()
        .expect("lock")
        .push(String::from_utf8_lossy(&body).into_owned());
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
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let content_type = resp.headers().get("content-type").cloned();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut out = (status, bytes).into_response();
            if let Some(ct) = content_type {
                out.headers_mut().insert("content-type", ct);
            }
            out
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
