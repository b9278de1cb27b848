//! The load used by `tollgate-bench` and `tollgate-soak`: many
//! request → approve → credentials flows from concurrent clients against a
//! real broker over HTTP, with every call's status, code and latency kept,
//! and the checks afterwards (every request's audit chain verifies, the
//! table holds what the flows did).

use crate::broker::{ALICE, Auth, BOB, Broker, role_arn};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tollgate::aws::Store;
use tollgate::domain::{RequestId, Status};

/// The steps of one flow.
pub const STEPS: [&str; 3] = ["create", "approve", "credentials"];

/// One HTTP call made by the load.
#[derive(Debug, Clone)]
pub struct Call {
    /// Index into [`STEPS`].
    pub step: usize,
    /// When it was sent, from the start of the load.
    pub at: Duration,
    /// How long the answer took.
    pub elapsed: Duration,
    /// Status code.
    pub status: u16,
    /// The error code, if any.
    pub code: String,
}

/// One flow's outcome.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The request id, once created.
    pub id: Option<String>,
    /// When the flow started, from the start of the load.
    pub started: Duration,
    /// Whether all three steps succeeded.
    pub complete: bool,
    /// Its calls.
    pub calls: Vec<Call>,
    /// Time for the whole flow.
    pub elapsed: Duration,
}

/// What a load run did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Every flow, in start order.
    pub flows: Vec<Flow>,
    /// Wall-clock time of the run.
    pub wall: Duration,
}

impl LoadReport {
    /// Every call.
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.flows.iter().flat_map(|f| f.calls.iter())
    }

    /// Flows that completed.
    pub fn complete(&self) -> usize {
        self.flows.iter().filter(|f| f.complete).count()
    }

    /// Calls answered with a 5xx.
    pub fn server_errors(&self) -> Vec<&Call> {
        self.calls().filter(|c| c.status >= 500).collect()
    }

    /// Calls per (status, code).
    pub fn statuses(&self) -> BTreeMap<(u16, String), usize> {
        let mut m = BTreeMap::new();
        for c in self.calls() {
            *m.entry((c.status, c.code.clone())).or_insert(0) += 1;
        }
        m
    }
}

/// The body of a production request (one approval needed).
pub fn production_request() -> Value {
    json!({
        "role_arn": role_arn("ProductionOperator"),
        "duration_seconds": 3600,
        "reason": "load test of the broker",
        "ticket": "LOAD-1",
    })
}

/// Lets a controller pause the load: every call holds a read guard while it
/// is in flight; the controller's write guard waits for those to finish and
/// keeps new calls from starting until it is dropped.
pub type Gate = Arc<tokio::sync::RwLock<()>>;

#[allow(clippy::too_many_arguments)]
async fn timed(
    b: &Broker,
    gate: &Gate,
    started: Instant,
    step: usize,
    path: &str,
    who: Auth<'_>,
    body: &Value,
) -> (Call, Value) {
    let _open = gate.read().await;
    let at = started.elapsed();
    let t = Instant::now();
    let r = b.call(Method::POST, path, who, Some(body)).await;
    let call = Call {
        step,
        at,
        elapsed: t.elapsed(),
        status: r.status,
        code: r.code().to_owned(),
    };
    (call, r.body)
}

async fn one_flow(b: &Broker, gate: &Gate, started: Instant) -> Flow {
    let t0 = Instant::now();
    let at = started.elapsed();
    let mut flow = Flow {
        id: None,
        started: at,
        complete: false,
        calls: Vec::with_capacity(3),
        elapsed: Duration::ZERO,
    };
    let (call, body) = timed(
        b,
        gate,
        started,
        0,
        "/requests",
        Auth::As(&ALICE),
        &production_request(),
    )
    .await;
    let ok = call.status == 201;
    flow.calls.push(call);
    if ok {
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        flow.id = Some(id.clone());
        let (call, _) = timed(
            b,
            gate,
            started,
            1,
            &format!("/requests/{id}/approve"),
            Auth::As(&BOB),
            &json!({"digest": body["digest"], "comment": "load"}),
        )
        .await;
        let ok = call.status == 200;
        flow.calls.push(call);
        if ok {
            let (call, _) = timed(
                b,
                gate,
                started,
                2,
                &format!("/requests/{id}/credentials"),
                Auth::As(&ALICE),
                &json!({}),
            )
            .await;
            flow.complete = call.status == 200;
            flow.calls.push(call);
        }
    }
    flow.elapsed = t0.elapsed();
    flow
}

/// Runs `flows` flows from `clients` concurrent clients.
pub async fn run(b: &Arc<Broker>, flows: usize, clients: usize) -> LoadReport {
    run_gated(b, flows, clients, Gate::default()).await
}

/// [`run`], pausable through `gate`.
pub async fn run_gated(b: &Arc<Broker>, flows: usize, clients: usize, gate: Gate) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let b = b.clone();
        let next = next.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < flows {
                mine.push(one_flow(&b, &gate, started).await);
            }
            mine
        }));
    }
    let mut all = Vec::with_capacity(flows);
    for t in tasks {
        all.extend(t.await.expect("a load client"));
    }
    let wall = started.elapsed();
    all.sort_by_key(|f| f.started);
    LoadReport { flows: all, wall }
}

/// The `p`-th percentile (0–100) of `values`, nearest rank.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut v = values.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Per operation, the number of `Latency` metric lines the broker wrote to
/// stdout and their sum: time spent handling the HTTP request inside the
/// broker process, measured by the broker itself.
pub fn broker_latencies(stdout: &str) -> BTreeMap<String, (u64, Duration)> {
    let mut m: BTreeMap<String, (u64, Duration)> = BTreeMap::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(op), Some(latency)) = (v["Operation"].as_str(), v["Latency"].as_f64()) {
            let e = m.entry(op.to_owned()).or_default();
            e.0 += 1;
            e.1 += Duration::from_secs_f64(latency / 1000.0);
        }
    }
    m
}

/// What the checks after a load found wrong (empty: all well).
#[derive(Debug, Default)]
pub struct Verification {
    /// Requests read back.
    pub checked: usize,
    /// Problems, one line each.
    pub problems: Vec<String>,
}

/// Reads every request the `flows` created straight from the table and
/// checks that its audit chain verifies against its head and version, that
/// a completed flow is active with one approval, one credential issue and
/// exactly the events created, approved, credentials_issued, and that an
/// incomplete one holds no transition without its event.
pub async fn verify(b: &Broker, flows: &[&Flow]) -> Verification {
    let store = Store::new(b.clients.dynamodb.clone(), b.table.clone(), 86_400);
    let mut out = Verification::default();
    for flow in flows {
        let Some(id) = &flow.id else { continue };
        let Ok(rid) = RequestId::parse(id) else {
            out.problems.push(format!("{id}: not a request id"));
            continue;
        };
        let (req, events) = match store.get_with_events(rid).await {
            Ok(Some(x)) => x,
            Ok(None) => {
                out.problems.push(format!("{id}: created but not stored"));
                continue;
            }
            Err(e) => {
                out.problems.push(format!("{id}: cannot read: {e}"));
                continue;
            }
        };
        out.checked += 1;
        if let Err(e) = tollgate::audit::chain::verify(&events, &req.chain_head, req.version) {
            out.problems
                .push(format!("{id}: chain does not verify: {e}"));
        }
        if u64::try_from(events.len()).ok() != Some(req.version) {
            out.problems.push(format!(
                "{id}: version {} with {} events",
                req.version,
                events.len()
            ));
        }
        if flow.complete {
            let kinds: Vec<String> = events
                .iter()
                .map(|e| {
                    serde_json::to_value(e).map_or_else(
                        |_| String::new(),
                        |v| v["type"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            if req.status != Status::Active
                || req.approvals.len() != 1
                || req.credentials_issued != 1
                || kinds != ["created", "approved", "credentials_issued"]
            {
                out.problems.push(format!(
                    "{id}: completed flow stored as {:?}, {} approvals, {} issues, events {kinds:?}",
                    req.status,
                    req.approvals.len(),
                    req.credentials_issued
                ));
            }
        }
    }
    out
}

/// What the table holds: requests by stored status, and events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Request items per status (`pending`, `active`, ...).
    pub requests: BTreeMap<String, u64>,
    /// Event items.
    pub events: u64,
}

/// What the table should hold after `flows` (only their successful calls
/// wrote anything).
pub fn expected_counts(flows: &[&Flow]) -> TableCounts {
    let mut c = TableCounts::default();
    for f in flows {
        let ok = |step: usize| {
            f.calls
                .iter()
                .any(|c| c.step == step && (c.status == 200 || c.status == 201))
        };
        if !ok(0) {
            continue;
        }
        let status = if ok(1) { "active" } else { "pending" };
        *c.requests.entry(status.to_owned()).or_insert(0) += 1;
        c.events += 1 + u64::from(ok(1)) + u64::from(ok(2));
    }
    c
}

/// Scans the broker's table and counts request and event items.
pub async fn table_counts(b: &Broker) -> TableCounts {
    use tollgate::aws::schema::{EVENT, META, SK, STATUS};
    let mut c = TableCounts::default();
    let mut start = None;
    loop {
        let out = b
            .clients
            .dynamodb
            .scan()
            .table_name(&b.table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan the table");
        for item in out.items() {
            let sk = item.get(SK).and_then(|v| v.as_s().ok());
            if item.contains_key(EVENT) {
                c.events += 1;
            } else if sk.map(String::as_str) == Some(META)
                && let Some(status) = item.get(STATUS).and_then(|v| v.as_s().ok())
            {
                *c.requests.entry(status.to_lowercase()).or_insert(0) += 1;
            }
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    c
}
