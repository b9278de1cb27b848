//! The `credentials` function: mint STS credentials for an active grant,
//! for the CLI and SDKs or exchanged for an AWS console sign-in URL.
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
use crate::aws::mint;
use crate::domain::CredentialUse;
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
    let (req, issuer) = requester_grant(&state, &caller, id).await?;
    let (next, creds) = mint(
        &state.store,
        issuer,
        &state.audit,
        &req,
        &caller.actor(),
        now,
        CredentialUse::Api,
    )
    .await?;
    state
        .metrics
        .count(metrics::CREDENTIALS_ISSUED, "credentials", 1);
    Ok(no_store(json!({
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key.expose_secret(),
        "session_token": creds.session_token.expose_secret(),
        "expiration": creds.expiration,
        "request_id": next.id,
        "session_name": crate::domain::SessionName::for_request(next.id).as_str(),
        "window_end": next.window_end,
    })))
}

/// `POST /requests/{id}/console` `{destination?}`: requester only, grant
/// active only. Credentials are minted exactly as for
/// `POST /requests/{id}/credentials` (same plan, session policy, names and
/// tags) behind their own `console_issued` event, and exchanged at the
/// role's partition's federation endpoint for a sign-in URL. The URL is a
/// bearer secret: returned once with `Cache-Control: no-store`, never
/// logged (the audit line names only the destination's host).
#[tracing::instrument(skip_all, fields(request_id = %raw_id))]
pub async fn console(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let id = parse_id(&raw_id)?;
    let o = JsonObject::parse(&body, &["destination"])?;
    let asked = o.optional_str("destination")?;
    let (req, issuer) = requester_grant(&state, &caller, id).await?;
    let Some(federation) = state.federation.as_ref() else {
        return Err(BrokerError::Internal {
            detail: "console route mounted without a federation client".into(),
        }
        .into());
    };
    // Checked before anything is minted: a refused destination costs no
    // credentials and no event.
    let destination = federation.destination(&req.role_arn, asked)?;
    let (next, creds) = mint(
        &state.store,
        issuer,
        &state.audit,
        &req,
        &caller.actor(),
        now,
        CredentialUse::Console,
    )
    .await?;
    let url = federation
        .sign_in_url(&next.role_arn, &creds, &destination)
        .await?;
    state
        .audit
        .console_sign_in(&next, destination.host_str().unwrap_or_default());
    state.metrics.count(metrics::CONSOLE_SIGN_INS, "console", 1);
    Ok(no_store(json!({
        "url": url.expose_secret(),
        "expiration": creds.expiration,
        "request_id": next.id,
        "session_name": crate::domain::SessionName::for_request(next.id).as_str(),
        "window_end": next.window_end,
    })))
}

/// Request `id` when `caller` asked for it and its account is still
/// brokered, with the STS issuer; 404 for anyone else, exactly as for a
/// request that does not exist (no policy question asked either way).
async fn requester_grant<'s>(
    state: &'s AppState,
    caller: &Caller,
    id: crate::domain::RequestId,
) -> Result<(crate::domain::AccessRequest, &'s crate::aws::Issuer), BrokerError> {
    let req = state.store.get(id).await?;
    // INVARIANT: only the requester ever receives credentials for a grant.
    let Some(req) = req.filter(|r| is_requester(&caller.identity, r)) else {
        return Err(not_found(id));
    };
    if !state.accounts.is_brokered(req.role_arn.account()) {
        return Err(BrokerError::Conflict {
            code: "account_not_brokered",
            message: format!(
                "roles in account `{}` are no longer brokered",
                req.role_arn.account()
            ),
        });
    }
    let Some(issuer) = state.issuer.as_ref() else {
        return Err(BrokerError::Internal {
            detail: "credentials route mounted without an STS issuer".into(),
        });
    };
    Ok((req, issuer))
}

/// A JSON answer holding a secret: never to be cached.
fn no_store(body: serde_json::Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
