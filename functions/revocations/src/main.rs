//! Lambda function `revocations`: `POST /requests/{id}/revoke`, behind API
//! Gateway's JWT authorizer. With `expiry`, the only function that may
//! write target roles' inline policies (`TollgateRevocations`).

use tollgate::api::{RouteSet, lambda, router};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let state = lambda::cold_start(RouteSet::Revocations).await?;
    lambda_http::run(router(state, RouteSet::Revocations)).await
}
