//! Target roles as IAM describes them (role id, tags, maximum session
//! duration), from one `GetRole` call, cached in process for a short time so
//! a burst of requests for one role costs one call.
//!
//! Roles are looked up by name in the broker's own account; a role ARN that
//! names another account (or another path) does not match what `GetRole`
//! returns and is reported as unknown. Cross-account roles are not supported.

use super::{AwsError, aws_failure};
use crate::domain::{RoleArn, RoleInfo};
use aws_sdk_iam::Client;
use aws_sdk_iam::error::SdkError;
use aws_sdk_iam::operation::get_role::GetRoleError;
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
    client: Client,
    ttl: Duration,
    cache: Arc<Mutex<Cache>>,
}

impl RoleDirectory {
    /// A directory caching each answer (including "no such role") for `cache_ttl`.
    /// A zero TTL disables the cache.
    pub fn new(client: Client, cache_ttl: Duration) -> Self {
        Self {
            client,
            ttl: cache_ttl,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The role, or `None` when IAM has no role with this ARN. One `GetRole`
    /// call, none while a cached answer is fresh.
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

    async fn fetch(&self, arn: &RoleArn) -> Result<Option<RoleInfo>, AwsError> {
        let out = match self.client.get_role().role_name(arn.name()).send().await {
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
        let max_session_seconds = role
            .max_session_duration()
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(DEFAULT_MAX_SESSION_SECONDS);
        Ok(Some(RoleInfo {
            arn: arn.clone(),
            role_id: role.role_id().to_owned(),
            max_session_seconds,
            tags: role
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        }))
    }
}
