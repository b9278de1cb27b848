//! The router: each Lambda function mounts only its own routes, the local
//! server mounts them all. Unknown routes and methods answer in the same
//! JSON error shape as everything else.

use super::handlers::{credentials, health, requests, reviews, revocations, roles};
use super::web;
use super::{AppState, RouteSet};
use crate::audit::metrics;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::time::Instant;

/// The routes of `set`, over `state`.
pub fn router(state: AppState, set: RouteSet) -> Router {
    let all = set == RouteSet::All;
    let mut r = Router::new();
    if all || set == RouteSet::Requests {
        r = r
            .route("/health", get(health::health))
            .route("/openapi.json", get(super::openapi::serve))
            .route("/requests", post(requests::create).get(requests::list))
            .route("/requests/{id}", get(requests::show))
            .route("/requests/{id}/cancel", post(requests::cancel))
            .route("/requests/{id}/extend", post(requests::extend))
            .route("/roles", get(roles::list))
            .route("/roles/check", post(roles::check))
            .merge(web::router());
    }
    if all || set == RouteSet::Reviews {
        r = r
            .route("/requests/{id}/approve", post(reviews::approve))
            .route("/requests/{id}/deny", post(reviews::deny))
            .route("/requests/{id}/review", post(reviews::review));
    }
    if all || set == RouteSet::Credentials {
        r = r
            .route("/requests/{id}/credentials", post(credentials::credentials))
            .route("/requests/{id}/console", post(credentials::console));
    }
    if all || set == RouteSet::Revocations {
        r = r.route("/requests/{id}/revoke", post(revocations::revoke));
    }
    r.fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn no_route() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn wrong_method() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// The route a path falls under, with the request id replaced by `{id}`,
/// so that logs and metric dimensions do not grow with every request.
fn route_template(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "health"] => "/health".into(),
        ["", "openapi.json"] => "/openapi.json".into(),
        ["", "ui", ..] => "/ui".into(),
        ["", "requests"] => "/requests".into(),
        ["", "roles"] => "/roles".into(),
        ["", "roles", "check"] => "/roles/check".into(),
        ["", "requests", _] => "/requests/{id}".into(),
        ["", "requests", _, action]
            if [
                "approve",
                "deny",
                "cancel",
                "revoke",
                "credentials",
                "console",
                "extend",
                "review",
            ]
            .contains(action) =>
        {
            format!("/requests/{{id}}/{action}")
        }
        _ => "unmatched".into(),
    }
}

/// One log line and a latency metric per HTTP request, and an error count
/// for every refusal or failure. Before the handler runs, the policy store
/// is checked when a check is due, and the set it serves then is the one
/// every decision of this request uses (`api::policies`).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    state.policy.refresh().await;
    let method = request.method().clone();
    let route = route_template(request.uri().path());
    let response = state.policy.scope(next.run(request)).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let operation = format!("{method} {route}");
    state.metrics.latency(&operation, elapsed);
    if status >= 400 {
        state.metrics.count(metrics::ERRORS, &operation, 1);
    }
    if status >= 500 {
        state.metrics.count(metrics::SERVER_ERRORS, &operation, 1);
    }
    tracing::info!(
        method = %method,
        route = %route,
        status,
        ms = elapsed.as_millis() as u64,
        "http request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::route_template;

    #[test]
    fn metric_routes_never_carry_ids_or_arbitrary_paths() {
        let cases = [
            ("/health", "/health"),
            ("/requests", "/requests"),
            ("/requests/01J00000000000000000000000", "/requests/{id}"),
            ("/requests/x/approve", "/requests/{id}/approve"),
            ("/requests/x/credentials", "/requests/{id}/credentials"),
            ("/requests/x/../../etc", "unmatched"),
            ("/requests/x/steal", "unmatched"),
            ("/roles", "/roles"),
            ("/roles/check", "/roles/check"),
            ("/roles/x", "unmatched"),
            ("/whatever", "unmatched"),
            ("/ui/requests/01J00000000000000000000000", "/ui"),
        ];
        for (path, want) in cases {
            assert_eq!(route_template(path), want, "{path}");
        }
    }
}
