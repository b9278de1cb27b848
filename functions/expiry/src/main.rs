//! Lambda function `expiry`: on its EventBridge schedule, marks due grants
//! expired, lapses stale pending requests and drops stale revocation
//! statements (`tollgate::api::sweep`).

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tollgate::api::{RouteSet, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let state = lambda::cold_start(RouteSet::Expiry).await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        lambda::expiry_handler(state, event).await
    }))
    .await
}
