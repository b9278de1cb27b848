//! Target roles as IAM describes them (role id, tags, maximum session
//! duration), from one `GetRole` call in the role's account through its
//! control role ([`Accounts::iam_for`]), cached in process for a short time
//! so a burst of requests for one role costs one call.
//!
//! A role in an account that is not brokered is unknown without any AWS
//! call; a role of the same name under another path does not match what
//! `GetRole` returns and is unknown too.

use super::accounts::Accounts;
use super::{AwsError, aws_failure, percent_decode};
use crate::domain::{RoleArn, RoleFacts, RoleInfo};
use aws_sdk_iam::error::SdkError;
use aws_sdk_iam::operation::get_role::GetRoleError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// IAM's default maximum session duration, used when a role reports none.
const DEFAULT_MAX_SESSION_SECONDS: u32 = 3600;

/// Answers by role ARN, with when they were fetched.
type Cache = HashMap<RoleArn, (Instant, Option<RoleInfo>)>;

/// Describes target roles through IAM, with an in-process cache. Cheap to
/// clone; clones share the cache.
#[derive(Clone, Debug)]
pub struct RoleDirectory {
    accounts: Accounts,
    ttl: Duration,
    cache: Arc<Mutex<Cache>>,
}

impl RoleDirectory {
    /// A directory caching each answer (including "no such role") for `cache_ttl`.
    /// A zero TTL disables the cache.
    pub fn new(accounts: Accounts, cache_ttl: Duration) -> Self {
        Self {
            accounts,
            ttl: cache_ttl,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The role, or `None` when IAM has no role with this ARN or its account
    /// is not brokered. One `GetRole` call (and, for a cold control session,
    /// one `AssumeRole`), none while a cached answer is fresh.
    #[tracing::instrument(skip_all, fields(role = %arn))]
    pub async fn describe(&self, arn: &RoleArn) -> Result<Option<RoleInfo>, AwsError> {
        if let Some(hit) = self.cached(arn) {
            return Ok(hit);
        }
        self.describe_fresh(arn).await
    }

    /// The role as IAM describes it now: one `GetRole` call whatever the
    /// cache holds, and the cache refreshed with the answer. Revocation
    /// statements are rendered with this role id, so a role deleted and
    /// recreated under the same name within the cache's lifetime is denied
    /// by its current id.
    #[tracing::instrument(skip_all, fields(role = %arn))]
    pub async fn describe_fresh(&self, arn: &RoleArn) -> Result<Option<RoleInfo>, AwsError> {
        let info = self.fetch(arn).await?;
        if !self.ttl.is_zero()
            && let Ok(mut cache) = self.cache.lock()
        {
            cache.insert(arn.clone(), (Instant::now(), info.clone()));
        }
        Ok(info)
    }

    /// Forgets every cached answer (after tags changed, in tests).
    pub fn clear_cache(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    fn cached(&self, arn: &RoleArn) -> Option<Option<RoleInfo>> {
        let cache = self.cache.lock().ok()?;
        let (at, info) = cache.get(arn)?;
        (at.elapsed() < self.ttl).then(|| info.clone())
    }

    /// The accounts the directory describes roles in.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Everything `tollgate roles check` judges a role by, read through the
    /// control role without the cache: the role with its trust policy, or
    /// why it could not be read. Transport failures are errors; refusals are
    /// facts.
    pub async fn facts(&self, arn: &RoleArn) -> Result<RoleFacts, AwsError> {
        if !self.accounts.is_brokered(arn.account()) {
            return Ok(RoleFacts::NotBrokered);
        }
        let iam = match self.accounts.iam_for(arn).await {
            Ok(iam) => iam,
            Err(AwsError::Rejected { source, .. }) => {
                let why = source
                    .downcast_ref::<SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>>(
                    )
                    .and_then(|e| {
                        e.as_service_error()
                            .and_then(|s| s.code())
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| "refused".to_owned());
                return Ok(RoleFacts::NoControlSession(why));
            }
            Err(e) => return Err(e),
        };
        let out = match iam.get_role().role_name(arn.name()).send().await {
            Ok(out) => out,
            Err(SdkError::ServiceError(ctx))
                if matches!(ctx.err(), GetRoleError::NoSuchEntityException(_)) =>
            {
                return Ok(RoleFacts::Missing);
            }
            Err(SdkError::ServiceError(ctx)) if ctx.err().code() == Some("AccessDenied") => {
                return Ok(RoleFacts::Unreadable);
            }
            Err(e) => return Err(aws_failure("GetRole", e)),
        };
        let Some(role) = out.role() else {
            return Err(AwsError::Corrupt("GetRole returned no role".into()));
        };
        if role.arn() != arn.as_str() {
            return Ok(RoleFacts::Missing);
        }
        let trust = role
            .assume_role_policy_document()
            .map(|raw| {
                let text = if raw.trim_start().starts_with('{') {
                    raw.to_owned()
                } else {
                    percent_decode(raw)
                };
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
            })
            .unwrap_or(serde_json::Value::Null);
        Ok(RoleFacts::Found {
            role: role_info(arn, role),
            trust,
        })
    }

    async fn fetch(&self, arn: &RoleArn) -> Result<Option<RoleInfo>, AwsError> {
        if !self.accounts.is_brokered(arn.account()) {
            return Ok(None);
        }
        let iam = self.accounts.iam_for(arn).await?;
        let out = match iam.get_role().role_name(arn.name()).send().await {
            Ok(out) => out,
            Err(SdkError::ServiceError(ctx))
                if matches!(ctx.err(), GetRoleError::NoSuchEntityException(_)) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws_failure("GetRole", e)),
        };
        let Some(role) = out.role() else {
            return Err(AwsError::Corrupt("GetRole returned no role".into()));
        };
        // A role of the same name under another path or account is not the
        // role asked for.
        if role.arn() != arn.as_str() {
            return Ok(None);
        }
        Ok(Some(role_info(arn, role)))
    }
}

/// A role as the broker uses it, from IAM's description.
fn role_info(arn: &RoleArn, role: &aws_sdk_iam::types::Role) -> RoleInfo {
    let max_session_seconds = role
        .max_session_duration()
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(DEFAULT_MAX_SESSION_SECONDS);
    RoleInfo {
        arn: arn.clone(),
        role_id: role.role_id().to_owned(),
        max_session_seconds,
        tags: role
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
    }
}
