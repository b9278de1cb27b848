//! Counts and latencies as CloudWatch Embedded Metric Format lines: one JSON
//! object per line on the same sink as the audit log, which CloudWatch Logs
//! turns into metrics in namespace [`NAMESPACE`], dimension `Operation`.

use super::log::{Sink, Stdout};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The CloudWatch namespace.
pub const NAMESPACE: &str = "Tollgate";
/// Requests stored.
pub const REQUESTS_CREATED: &str = "RequestsCreated";
/// Approvals counted.
pub const APPROVALS: &str = "Approvals";
/// Requests denied (by an approver or by policy).
pub const DENIALS: &str = "Denials";
/// Credentials minted.
pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";
/// Grants revoked.
pub const REVOCATIONS: &str = "Revocations";
/// Revocation statements that could not be written (the revoke is
/// recorded and new credentials are refused; the sweep writes the statement).
pub const REVOCATION_FAILURES: &str = "RevocationFailures";
/// Grants expired or requests lapsed by the sweep.
pub const EXPIRIES: &str = "Expiries";
/// Errors returned to callers.
pub const ERRORS: &str = "Errors";
/// Answers of status 500 or more, per route (the API's 5xx alarms).
pub const SERVER_ERRORS: &str = "ServerErrors";
/// Sweeps that completed: a missing datapoint means the sweep is not running.
pub const SWEEP_RUNS: &str = "SweepRuns";
/// Credential issues that failed at STS after their event was recorded.
pub const CREDENTIAL_FAILURES: &str = "CredentialFailures";
/// Stored policy sets that could not be loaded (invalid, unreadable store,
/// or the object gone), operation `policy`: the last good set is served.
pub const POLICY_LOAD_FAILURES: &str = "PolicyLoadFailures";
/// Operation latency, milliseconds.
pub const LATENCY: &str = "Latency";

/// Writes EMF lines. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Arc::new(Stdout))
    }
}

impl Metrics {
    /// Metrics to `sink` (share the audit log's: `Metrics::new(log.sink())`).
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self { sink }
    }

    /// Adds `n` to the count `metric` for `operation`.
    pub fn count(&self, metric: &str, operation: &str, n: u64) {
        self.emit(metric, "Count", operation, json!(n));
    }

    /// Records how long `operation` took.
    pub fn latency(&self, operation: &str, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.emit(
            LATENCY,
            "Milliseconds",
            operation,
            json!((ms * 1000.0).round() / 1000.0),
        );
    }

    fn emit(&self, metric: &str, unit: &str, operation: &str, value: serde_json::Value) {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let line = json!({
            "_aws": {
                "Timestamp": millis,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Operation"]],
                    "Metrics": [{"Name": metric, "Unit": unit}],
                }],
            },
            "Operation": operation,
            metric: value,
        });
        self.sink.write_line(&line.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Capture;

    #[test]
    fn counts_and_latencies_are_emf_lines_in_the_tollgate_namespace() {
        let capture = Capture::default();
        let metrics = Metrics::new(Arc::new(capture.clone()));
        metrics.count(APPROVALS, "approve", 1);
        metrics.latency("approve", Duration::from_micros(12_345));
        let lines = capture.json();
        assert_eq!(lines.len(), 2);
        let spec = &lines[0]["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "Tollgate");
        assert_eq!(spec["Dimensions"][0][0], "Operation");
        assert_eq!(spec["Metrics"][0]["Name"], "Approvals");
        assert_eq!(lines[0]["Approvals"], 1);
        assert_eq!(lines[0]["Operation"], "approve");
        assert!(lines[0]["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(lines[1]["Latency"], 12.345);
    }
}
