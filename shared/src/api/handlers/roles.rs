//! Onboarding: `POST /roles/check` `{role_arns: [...]}` tells an operator,
//! for each role, whether Tollgate can broker it and what to fix if not
//! (`tollgate roles check`). Served by the `requests` function, which reads
//! roles through each target account's control role.
//!
//! Who may ask is policy: Cedar action `check`, decided for every role
//! before any AWS call, over a role built from its ARN alone. Refused for
//! any role, the whole call is 403 `policy_denied`, so the answer never
//! tells a caller more than policy lets them ask.

use super::{decide_logged, policy_denied};
use crate::BrokerError;
use crate::api::input::{JsonObject, LimitedBody, field_error};
use crate::api::{ApiResult, AppState, Caller};
use crate::domain::{OnboardingRules, RoleArn, RoleInfo, assess};
use crate::policy::{Action, Query, QueryContext};
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// Roles checked per call, at most.
pub const MAX_ROLES_PER_CHECK: usize = 20;

/// `POST /roles/check` `{role_arns: [arn, ...]}` (1 to 20 ARNs).
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let arns = parse_arns(&body)?;
    for arn in &arns {
        let role = RoleInfo {
            arn: arn.clone(),
            role_id: String::new(),
            max_session_seconds: 0,
            tags: Default::default(),
        };
        let q = Query {
            principal: &caller.identity,
            action: Action::Check,
            role: &role,
            context: QueryContext {
                duration_seconds: 0,
                reason: "",
                ticket: None,
                source_ip: caller.source_ip.as_deref(),
                now,
                requester: None,
                approvals_so_far: 0,
                starts_at: None,
                extension_seconds: None,
            },
        };
        let decision = decide_logged(&state, &q, None);
        if !decision.allowed {
            return Err(policy_denied(&decision).into());
        }
    }
    let settings = state.accounts.settings();
    let rules = OnboardingRules {
        broker_account: &settings.broker_account,
        managed_path: &settings.managed_role_path,
        ceiling_seconds: state.config.max_duration_seconds,
    };
    let mut roles = Vec::with_capacity(arns.len());
    for arn in &arns {
        let facts = state.roles.facts(arn).await?;
        roles.push(assess(arn, &facts, rules));
    }
    Ok(Json(json!({ "roles": roles })))
}

fn parse_arns(body: &[u8]) -> Result<Vec<RoleArn>, BrokerError> {
    let o = JsonObject::parse(body, &["role_arns"])?;
    let bad = || {
        field_error(
            "role_arns",
            format!("`role_arns` must be a list of 1 to {MAX_ROLES_PER_CHECK} role ARNs"),
        )
    };
    let Some(Value::Array(items)) = o.optional_value("role_arns") else {
        return Err(bad());
    };
    if items.is_empty() || items.len() > MAX_ROLES_PER_CHECK {
        return Err(bad());
    }
    let mut arns = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(bad());
        };
        let arn = RoleArn::parse(s)?;
        if !arns.contains(&arn) {
            arns.push(arn);
        }
    }
    Ok(arns)
}
