//! The `reviews` function: approve and deny.

use super::{
    ReasonInput, decide_logged, is_requester, load_visible, parse_id, permitting, policy_denied,
    query, request_json, text_field, transition,
};
use crate::BrokerError;
use crate::api::input::{JsonObject, LimitedBody, field_error};
use crate::api::notify::Notice;
use crate::api::{ApiResult, AppState, Caller};
use crate::audit::metrics;
use crate::domain::{Command, Reason, Refusal, RoleInfo};
use crate::policy::Action;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

/// The longest digest accepted (a sha256 in hex is 64).
const MAX_DIGEST_CHARS: usize = 128;

/// The validated body of `POST /requests/{id}/approve`: `{digest, comment?}`.
#[derive(Debug)]
pub struct ApproveInput {
    /// The digest the approver was shown (1-128 bytes; compared later).
    pub digest: String,
    /// An optional comment, checked like a reason.
    pub comment: Option<Reason>,
}

impl ApproveInput {
    /// Parses a body, refusing anything but `digest` and `comment` with a 400.
    pub fn parse(body: &[u8]) -> Result<Self, BrokerError> {
        let o = JsonObject::parse(body, &["digest", "comment"])?;
        let digest = o.required_str("digest")?;
        if digest.is_empty() || digest.len() > MAX_DIGEST_CHARS {
            return Err(field_error(
                "digest",
                "`digest` must be the request's digest as shown by `GET /requests/{id}`".into(),
            ));
        }
        let comment = o
            .optional_str("comment")?
            .map(|c| text_field("comment", c))
            .transpose()?;
        Ok(Self {
            digest: digest.to_owned(),
            comment,
        })
    }
}

/// `POST /requests/{id}/approve` `{digest, comment?}`.
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let id = parse_id(&raw_id)?;
    let ApproveInput { digest, comment } = ApproveInput::parse(&body)?;
    let (req, role) = reviewer_view(&state, &caller, id, now).await?;
    let actor = caller.actor();
    let (next, _) = transition(&state, req, |current| {
        let decision = decide_logged(
            &state,
            &query(&caller, Action::Approve, &role, current, now),
            Some(current.id),
        );
        if !decision.allowed {
            return Err(policy_denied(&decision));
        }
        let command = Command::Approve {
            digest: digest.clone(),
            comment: comment.clone(),
            policies: permitting(&decision),
        };
        Ok(current.apply(command, &actor, now)?)
    })
    .await?;
    state.metrics.count(metrics::APPROVALS, "approve", 1);
    state.notifier.notify(Notice::Approved(&next, &actor)).await;
    Ok(Json(request_json(&next, now)))
}

/// `POST /requests/{id}/deny` `{reason}`.
pub async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let id = parse_id(&raw_id)?;
    let ReasonInput { reason } = ReasonInput::parse(&body)?;
    let (req, role) = reviewer_view(&state, &caller, id, now).await?;
    let actor = caller.actor();
    let (next, _) = transition(&state, req, |current| {
        let decision = decide_logged(
            &state,
            &query(&caller, Action::Approve, &role, current, now),
            Some(current.id),
        );
        if !decision.allowed {
            return Err(policy_denied(&decision));
        }
        Ok(current.apply(
            Command::Deny {
                reason: reason.clone(),
            },
            &actor,
            now,
        )?)
    })
    .await?;
    state.metrics.count(metrics::DENIALS, "deny", 1);
    state.notifier.notify(Notice::Denied(&next, &actor)).await;
    Ok(Json(request_json(&next, now)))
}

/// A request the caller may review, with its role: 404 when they may not
/// see it, 403 `self_review` for the requester.
async fn reviewer_view(
    state: &AppState,
    caller: &Caller,
    id: crate::domain::RequestId,
    now: crate::domain::Timestamp,
) -> Result<(crate::domain::AccessRequest, RoleInfo), BrokerError> {
    let (req, role) = load_visible(state, caller, id, now).await?;
    // INVARIANT: nobody reviews their own request, whatever policies say.
    if is_requester(&caller.identity, &req) {
        return Err(Refusal::SelfReview.into());
    }
    let role = role.ok_or_else(|| super::not_found(id))?;
    Ok((req, role))
}
