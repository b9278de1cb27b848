//! Roles: discovery and onboarding, both served by the `requests` function.
//!
//! `GET /roles?account=&name=&limit=&next_token=` lists the catalogued roles
//! the caller may request, with the terms the policies set
//! ([`crate::service::roles`]): `{items: [{role_arn, account,
//! account_alias, path, name, tags, max_session_seconds, terms}],
//! next_token}`. `terms` is `{available_now, max_duration_seconds,
//! max_duration_limit: {source: "ceiling"|"role_tag"|"policy", policy?},
//! max_duration_without_ticket_seconds?, ticket_required, mfa_required,
//! auto_approve: {max_duration_seconds, ticket_required} | null,
//! approvals_required, depends_on: ["time_of_day"|"day_of_week"|"date"|
//! "source_ip"|"reason"]}`. `next_token` is sealed like `GET /requests`'
//! tokens and bound to the caller and the filters.
//!
//! `POST /roles/check` `{role_arns: [...]}` tells an operator,
//! for each role, whether Tollgate can broker it and what to fix if not
//! (`tollgate roles check`), reading roles through each target account's
//! control role.
//!
//! Who may ask is policy: Cedar action `check`, decided for every role
//! before any AWS call, over a role built from its ARN alone. Refused for
//! any role, the whole call is 403 `policy_denied`, so the answer never
//! tells a caller more than policy lets them ask.

use super::{decide_logged, policy_denied};
use crate::BrokerError;
use crate::api::input::{JsonObject, LimitedBody, field_error, query_pairs};
use crate::api::pagination::PageBinding;
use crate::api::{ApiResult, AppState, Caller};
use crate::domain::{OnboardingRules, RoleArn, RoleInfo, assess, quote};
use crate::policy::{Action, Query, QueryContext};
use crate::service::roles::{
    DEFAULT_LIMIT, Discoverable, MAX_LIMIT, Position, RolesQuery, Sources, requestable,
};
use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

/// Roles checked per call, at most.
pub const MAX_ROLES_PER_CHECK: usize = 20;

/// `GET /roles?account=&name=&limit=&next_token=`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw_query): RawQuery,
) -> ApiResult<Json<Value>> {
    let now = state.clock.now();
    let params = query_pairs(
        raw_query.as_deref(),
        &["account", "name", "limit", "next_token"],
    )?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                field_error(
                    "limit",
                    format!("limit {} is not a number from 1 to {MAX_LIMIT}", quote(v)),
                )
            })?,
    };
    let (account, name) = (get("account"), get("name"));
    // A role name alone: IAM's name characters, no path.
    if let Some(n) = name
        && (n.len() > 64
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)))
    {
        return Err(field_error("name", format!("{} is not a role name", quote(n))).into());
    }
    let filters = format!("{}\u{0}{}", account.unwrap_or(""), name.unwrap_or(""));
    let binding = PageBinding {
        sub: caller.identity.sub.as_str(),
        scope: "roles",
        status: Some(&filters),
    };
    let after: Option<Position> = get("next_token")
        .map(|token| state.pages.open(binding, token, now))
        .transpose()?;
    let policies = state.policy.current();
    let page = requestable(
        Sources {
            catalogue: &state.catalogue,
            policy: policies.engine(),
            accounts: state.accounts.settings(),
            ceiling_seconds: state.config.max_duration_seconds,
        },
        RolesQuery {
            caller: &caller.identity,
            source_ip: caller.source_ip.as_deref(),
            now,
            account,
            name,
            after,
            limit,
        },
    )
    .await?;
    let items: Vec<Value> = page.items.iter().map(discoverable_json).collect();
    let next_token = page.next.map(|p| state.pages.seal(binding, &p, now));
    Ok(Json(json!({ "items": items, "next_token": next_token })))
}

fn discoverable_json(d: &Discoverable) -> Value {
    let r = &d.role;
    json!({
        "role_arn": r.arn,
        "account": r.arn.account(),
        "account_alias": d.account_alias,
        "path": r.arn.path(),
        "name": r.arn.name(),
        "tags": r.tags,
        "max_session_seconds": r.max_session_seconds,
        "terms": d.terms,
    })
}

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
