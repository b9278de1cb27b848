//! Lambda function `reviews`: `POST /requests/{id}/approve` and `/deny`,
//! behind API Gateway's JWT authorizer. It reads and writes the table and
//! describes roles (`iam:GetRole`, for the approve policies' role tags).

use tollgate::api::{RouteSet, lambda, router};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let state = lambda::cold_start(RouteSet::Reviews).await?;
    lambda_http::run(router(state, RouteSet::Reviews)).await
}
