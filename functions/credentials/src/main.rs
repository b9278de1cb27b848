//! Lambda function `credentials`: `POST /requests/{id}/credentials`, behind
//! API Gateway's JWT authorizer. The only function that may assume target
//! roles (`sts:AssumeRole`, `sts:TagSession`, `sts:SetSourceIdentity`).

use tollgate::api::{RouteSet, lambda, router};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let state = lambda::cold_start(RouteSet::Credentials).await?;
    lambda_http::run(router(state, RouteSet::Credentials)).await
}
