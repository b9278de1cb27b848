//! The `revocations` function: end an active grant now. The deny statement
//! goes on the role first, then the transition, so a failure in between
//! leaves more revoked, never less.

use super::{
    ReasonInput, decide_logged, is_requester, load_visible, parse_id, policy_denied, query,
    request_json, transition,
};
use crate::BrokerError;
use crate::api::input::LimitedBody;
use crate::api::notify::Notice;
use crate::api::{ApiResult, AppState, Caller};
use crate::audit::metrics;
use crate::domain::{Command, Refusal, Status};
use crate::policy::Action;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

/// `POST /requests/{id}/revoke` `{reason}`: the requester, or anyone
/// `revoke` is permitted for, while the grant is active.
#[tracing::instrument(skip_all, fields(request_id = %raw_id))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let id = parse_id(&raw_id)?;
    let ReasonInput { reason } = ReasonInput::parse(&body)?;
    let (req, role) = load_visible(&state, &caller, id, now).await?;
    if !is_requester(&caller.identity, &req) {
        let Some(role) = role.as_ref() else {
            return Err(super::not_found(id).into());
        };
        let decision = decide_logged(
            &state,
            &query(&caller, Action::Revoke, role, &req, now),
            Some(req.id),
        );
        if !decision.allowed {
            return Err(policy_denied(&decision).into());
        }
    }
    let status = req.effective_status(now);
    let Some(window_end) = req.window_end.filter(|_| status == Status::Active) else {
        return Err(BrokerError::from(Refusal::NotActive(status)).into());
    };
    let Some(revoker) = state.revoker.as_ref() else {
        return Err(BrokerError::Internal {
            detail: "revoke route mounted without a role-policy writer".into(),
        }
        .into());
    };
    match role.as_ref() {
        Some(role) => {
            let outcome = revoker.revoke(role, req.id, window_end, now).await?;
            tracing::info!(request_id = %req.id, ?outcome, "revocation statement written");
        }
        None => tracing::warn!(
            request_id = %req.id,
            role = %req.role_arn,
            "the role no longer exists; recording the revocation without a statement"
        ),
    }
    let actor = caller.actor();
    let (next, _) = transition(&state, req, |current| {
        Ok(current.apply(
            Command::Revoke {
                reason: reason.clone(),
            },
            &actor,
            now,
        )?)
    })
    .await?;
    state.metrics.count(metrics::REVOCATIONS, "revoke", 1);
    state.notifier.notify(Notice::Revoked(&next, &actor)).await;
    Ok(Json(request_json(&next, now)))
}
