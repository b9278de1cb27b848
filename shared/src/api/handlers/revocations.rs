//! The `revocations` function: end an active grant now.
//!
//! The revoke is one transaction (the request, its event and, when
//! credentials were issued for the grant, the role revocation item that
//! makes the table require a deny statement). Then the statement is put on
//! the role under the role's lease ([`crate::aws::Revoker::confirm`]). A
//! grant that never had credentials needs no statement: the transaction is
//! conditional on the version read, so a credential issued meanwhile makes
//! it retry with the item.
//!
//! When the statement cannot be confirmed in time, the grant stays revoked
//! (new credentials are refused), `RevocationFailures` is counted, and the
//! answer is 503 `revocation_incomplete`: sessions already handed out keep
//! working until the statement lands, which the sweep retries every run.
//! Repeating the revoke retries it at once: 200 with the request once the
//! statement is in place, 409 `not_active` when it already was.

use super::{
    ReasonInput, decide_logged, is_requester, load_visible, parse_id, policy_denied, query,
    request_json, transition,
};
use crate::BrokerError;
use crate::api::input::LimitedBody;
use crate::api::notify::Notice;
use crate::api::{ApiResult, AppState, Caller};
use crate::audit::metrics;
use crate::aws::Revoker;
use crate::domain::{AccessRequest, Command, Refusal, Status, Timestamp};
use crate::policy::Action;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long a revoke may take before it answers 503 `revocation_incomplete`:
/// inside the revocations function's 10-second timeout (`infra/template.yaml`)
/// with room to answer.
pub const REVOKE_TIME_LIMIT: Duration = Duration::from_secs(8);

/// `POST /requests/{id}/revoke` `{reason}`: the requester, or anyone
/// `revoke` is permitted for, while the grant is active.
#[tracing::instrument(skip_all, fields(request_id = %raw_id))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    let deadline = Instant::now() + REVOKE_TIME_LIMIT;
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
    let Some(revoker) = state.revoker.as_ref() else {
        return Err(BrokerError::Internal {
            detail: "revoke route mounted without a role-policy writer".into(),
        }
        .into());
    };
    let status = req.effective_status(now);
    if status == Status::Revoked
        && req.revocation_until().is_some_and(|until| until > now)
        && !revoker
            .is_confirmed(&req.role_arn, req.id)
            .await
            .map_err(BrokerError::from)?
    {
        // A revoke repeated after its statement could not be written:
        // finish it now.
        confirm_statement(&state, revoker, &req, now, deadline).await?;
        return Ok(Json(request_json(&req, now)));
    }
    if status != Status::Active {
        return Err(BrokerError::from(Refusal::NotActive(status)).into());
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
    if next.revocation_until().is_some() {
        confirm_statement(&state, revoker, &next, now, deadline).await?;
    } else {
        tracing::info!(request_id = %next.id, "no credentials were issued for the grant: no statement needed");
    }
    Ok(Json(request_json(&next, now)))
}

/// Puts the revoked grant's deny statement on its role (or sees another
/// revocation's render cover it). On failure, counts `RevocationFailures`
/// and answers 503 `revocation_incomplete`; the sweep retries.
async fn confirm_statement(
    state: &AppState,
    revoker: &Revoker,
    req: &AccessRequest,
    now: Timestamp,
    deadline: Instant,
) -> Result<(), BrokerError> {
    let Some(until) = req.revocation_until() else {
        return Ok(());
    };
    match revoker
        .confirm(&req.role_arn, req.id, until, now, deadline)
        .await
    {
        Ok(done) => {
            tracing::info!(
                request_id = %req.id,
                role = %req.role_arn,
                lease_waits = done.lease_waits,
                rendered = done.render.is_some(),
                outcome = ?done.render.as_ref().map(|r| r.outcome),
                role_missing = done.render.as_ref().is_some_and(|r| r.role_missing),
                "revocation statement in place"
            );
            Ok(())
        }
        Err(e) => {
            state
                .metrics
                .count(metrics::REVOCATION_FAILURES, "revoke", 1);
            Err(BrokerError::Incomplete {
                code: "revocation_incomplete",
                message: "the grant is revoked and no new credentials will be issued, but the deny statement for sessions already handed out is not written yet; Tollgate retries it every sweep, and repeating this revoke retries it now".into(),
                source: Some(Box::new(e)),
            })
        }
    }
}
