//! The `credentials` function: mint STS credentials for an active grant.
//! The issue event is written (one transaction) before STS is asked, so no
//! credentials exist without their record; they are returned once and
//! never stored or logged.
//!
//! This function reaches no control role: it needs nothing of the role but
//! its ARN (see [`crate::aws::CredentialPlan::new`]), so it holds STS rights
//! on target roles and nothing in IAM. Only the requester ever gets
//! credentials; anyone else is answered exactly as for a request that does
//! not exist (404, no policy question asked either way).

use super::{is_requester, not_found, parse_id};
use crate::BrokerError;
use crate::api::input::{JsonObject, LimitedBody};
use crate::api::{ApiResult, AppState, Caller};
use crate::audit::metrics;
use crate::aws::mint_credentials;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;

/// `POST /requests/{id}/credentials`: requester only, grant active only.
#[tracing::instrument(skip_all, fields(request_id = %raw_id))]
pub async fn credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let id = parse_id(&raw_id)?;
    JsonObject::parse(&body, &[])?;
    let req = state.store.get(id).await?;
    // INVARIANT: only the requester ever receives credentials for a grant.
    let Some(req) = req.filter(|r| is_requester(&caller.identity, r)) else {
        return Err(not_found(id).into());
    };
    if !state.accounts.is_brokered(req.role_arn.account()) {
        return Err(BrokerError::Conflict {
            code: "account_not_brokered",
            message: format!(
                "roles in account `{}` are no longer brokered",
                req.role_arn.account()
            ),
        }
        .into());
    }
    let Some(issuer) = state.issuer.as_ref() else {
        return Err(BrokerError::Internal {
            detail: "credentials route mounted without an STS issuer".into(),
        }
        .into());
    };
    let (next, creds) = mint_credentials(
        &state.store,
        issuer,
        &state.audit,
        &req,
        &caller.actor(),
        now,
    )
    .await?;
    state
        .metrics
        .count(metrics::CREDENTIALS_ISSUED, "credentials", 1);
    let body = json!({
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key.expose_secret(),
        "session_token": creds.session_token.expose_secret(),
        "expiration": creds.expiration,
        "request_id": next.id,
        "session_name": crate::domain::SessionName::for_request(next.id).as_str(),
        "window_end": next.window_end,
    });
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
