//! The `credentials` function: mint STS credentials for an active grant.
//! The issue event is written (one transaction) before STS is asked, so no
//! credentials exist without their record; they are returned once and
//! never stored or logged.

use super::{is_requester, load_visible, parse_id, transition};
use crate::BrokerError;
use crate::api::input::{JsonObject, LimitedBody};
use crate::api::{ApiResult, AppState, Caller};
use crate::audit::metrics;
use crate::aws::{CredentialPlan, issue_recorded};
use crate::domain::{Command, Refusal, Status};
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
    let (req, role) = load_visible(&state, &caller, id, now).await?;
    // INVARIANT: only the requester ever receives credentials for a grant.
    if !is_requester(&caller.identity, &req) {
        return Err(BrokerError::from(Refusal::NotRequester).into());
    }
    let Some(role) = role else {
        return Err(BrokerError::Conflict {
            code: "role_missing",
            message: format!("role `{}` no longer exists", req.role_arn),
        }
        .into());
    };
    let Some(issuer) = state.issuer.as_ref() else {
        return Err(BrokerError::Internal {
            detail: "credentials route mounted without an STS issuer".into(),
        }
        .into());
    };
    let actor = caller.actor();
    let mut plan: Option<CredentialPlan> = None;
    let (next, _) = transition(&state, req, |current| {
        let status = current.effective_status(now);
        if status != Status::Active {
            return Err(Refusal::NotActive(status).into());
        }
        let p = CredentialPlan::new(current, &role, now)?;
        let command = Command::IssueCredentials {
            session_name: p.session_name.clone(),
            expires_at: p.expires_at,
        };
        let applied = current.apply(command, &actor, now)?;
        plan = Some(p);
        Ok(applied)
    })
    .await?;
    let Some(plan) = plan else {
        return Err(BrokerError::Internal {
            detail: "credential plan missing after the issue event".into(),
        }
        .into());
    };
    let creds = issue_recorded(issuer, &state.audit, &next, &plan).await?;
    state
        .metrics
        .count(metrics::CREDENTIALS_ISSUED, "credentials", 1);
    let body = json!({
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key.expose_secret(),
        "session_token": creds.session_token.expose_secret(),
        "expiration": creds.expiration,
        "request_id": next.id,
        "session_name": plan.session_name.as_str(),
        "window_end": next.window_end,
    });
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
