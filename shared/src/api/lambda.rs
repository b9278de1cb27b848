//! What the Lambda function binaries share: JSON tracing to stderr (audit
//! and metric lines own stdout), and the expiry function's handler. Each
//! binary is a thin `main`: init tracing, build its state once per cold
//! start, run.

use super::sweep::{SweepReport, sweep};
use super::{AppState, RouteSet};
use serde_json::Value;

/// JSON log lines on stderr at `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default
/// `info`). Safe to call twice.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Builds a function's state once per cold start. A failure is logged (its
/// message only: start-up errors carry no secrets) and returned so that the
/// process exits and Lambda reports the init failure.
pub async fn cold_start(routes: RouteSet) -> Result<AppState, lambda_runtime::Error> {
    AppState::for_lambda(routes).await.map_err(|e| {
        tracing::error!(error = %e, "the function cannot start");
        lambda_runtime::Error::from(StartupFailure(e.to_string()))
    })
}

/// A start-up failure whose `Debug` (printed when `main` returns it) is its
/// plain message.
#[derive(thiserror::Error)]
#[error("{0}")]
struct StartupFailure(String);

impl std::fmt::Debug for StartupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Handles one scheduled invocation of `expiry`: the event is only a
/// trigger (an EventBridge `Scheduled Event`); the sweep runs as of the
/// state's clock and returns what it did.
pub async fn expiry_handler(
    state: &AppState,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<SweepReport, lambda_runtime::Diagnostic> {
    let detail_type = event
        .payload
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if detail_type != "Scheduled Event" {
        tracing::warn!(
            detail_type,
            "expiry invoked by something other than its schedule; sweeping anyway"
        );
    }
    let report = sweep(state, state.clock.now())
        .await
        .map_err(|e| lambda_runtime::Diagnostic {
            // The code and the plain message only: details went to the logs.
            error_type: e.code().to_owned(),
            error_message: e.to_string(),
        })?;
    tracing::info!(?report, request_id = %event.context.request_id, "sweep done");
    Ok(report)
}
