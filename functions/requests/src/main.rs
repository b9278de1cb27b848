//! Lambda function `requests`: `POST /requests` (and `?dry_run=true`),
//! `GET /requests`, `GET /requests/{id}`, `POST /requests/{id}/cancel` and
//! `GET /health`, behind API Gateway's JWT authorizer. It reads and writes
//! the table and describes roles (`iam:GetRole`); it cannot assume target
//! roles or write role policies.

use tollgate::api::{RouteSet, lambda, router};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda::init_tracing();
    let state = lambda::cold_start(RouteSet::Requests).await?;
    lambda_http::run(router(state, RouteSet::Requests)).await
}
