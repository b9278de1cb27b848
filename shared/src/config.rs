//! Settings read once per cold start from the environment. Every setting has
//! a default that is safe; names are the `TOLLGATE_*` variables below.

use crate::domain::{DEFAULT_MAX_DURATION_SECONDS, DEFAULT_PENDING_TTL_SECONDS};
use std::path::PathBuf;

/// Broker settings shared by every function and the local server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TOLLGATE_TABLE`: the DynamoDB table (default `tollgate`).
    pub table: String,
    /// `TOLLGATE_POLICY_DIR`: directory of `*.cedar` files (default `policies`).
    pub policy_dir: PathBuf,
    /// `TOLLGATE_MAX_DURATION`: ceiling on any grant, seconds (default 43200).
    pub max_duration_seconds: u32,
    /// `TOLLGATE_PENDING_TTL`: seconds a request may wait for review (default 86400).
    pub pending_ttl_seconds: u32,
    /// `TOLLGATE_RETENTION_DAYS`: how long history is kept after a request closes (default 400).
    pub retention_days: u32,
    /// `TOLLGATE_ROLE_CACHE_SECONDS`: how long IAM role descriptions are cached (default 60).
    pub role_cache_seconds: u32,
    /// `TOLLGATE_GROUPS_CLAIM`: the token claim holding groups (default `groups`).
    pub groups_claim: String,
    /// `TOLLGATE_TAG_CLAIMS`: comma-separated claims exposed to policies as user tags
    /// (default `department,clearance,location`).
    pub tag_claims: Vec<String>,
    /// `TOLLGATE_AUDIT_KEY_ID`: the KMS key (id, ARN or `alias/...`) that
    /// signs every audit event (default `alias/tollgate-audit`, which
    /// `tollgate local provision` creates; the template sets the key's ARN).
    pub audit_key_id: String,
    /// `TOLLGATE_MAX_OPEN_REQUESTS`: open (pending or active) requests one
    /// user may have at once (default 20).
    pub max_open_requests: u32,
    /// `TOLLGATE_MAX_CREATES_PER_MINUTE`: requests one user may make per
    /// minute (default 10).
    pub max_creates_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            table: "tollgate".into(),
            policy_dir: PathBuf::from("policies"),
            max_duration_seconds: DEFAULT_MAX_DURATION_SECONDS,
            pending_ttl_seconds: DEFAULT_PENDING_TTL_SECONDS,
            retention_days: 400,
            role_cache_seconds: 60,
            groups_claim: "groups".into(),
            tag_claims: vec!["department".into(), "clearance".into(), "location".into()],
            audit_key_id: crate::aws::DEFAULT_AUDIT_KEY.into(),
            max_open_requests: 20,
            max_creates_per_minute: 10,
        }
    }
}

/// A setting that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Config {
    /// Reads the `TOLLGATE_*` variables from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num =
            |name: &'static str, default: u32, min: u32, max: u32| -> Result<u32, ConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => match v.trim().parse::<u32>() {
                        Ok(n) if (min..=max).contains(&n) => Ok(n),
                        _ => Err(ConfigError {
                            name,
                            message: format!("`{v}` is not a number from {min} to {max}"),
                        }),
                    },
                }
            };
        Ok(Self {
            table: get("TOLLGATE_TABLE").unwrap_or(d.table),
            policy_dir: get("TOLLGATE_POLICY_DIR").map_or(d.policy_dir, PathBuf::from),
            max_duration_seconds: num(
                "TOLLGATE_MAX_DURATION",
                d.max_duration_seconds,
                900,
                7 * 86_400,
            )?,
            pending_ttl_seconds: num(
                "TOLLGATE_PENDING_TTL",
                d.pending_ttl_seconds,
                60,
                30 * 86_400,
            )?,
            retention_days: num("TOLLGATE_RETENTION_DAYS", d.retention_days, 1, 3650)?,
            role_cache_seconds: num("TOLLGATE_ROLE_CACHE_SECONDS", d.role_cache_seconds, 0, 3600)?,
            max_open_requests: num("TOLLGATE_MAX_OPEN_REQUESTS", d.max_open_requests, 1, 10_000)?,
            max_creates_per_minute: num(
                "TOLLGATE_MAX_CREATES_PER_MINUTE",
                d.max_creates_per_minute,
                1,
                10_000,
            )?,
            groups_claim: get("TOLLGATE_GROUPS_CLAIM").unwrap_or(d.groups_claim),
            audit_key_id: get("TOLLGATE_AUDIT_KEY_ID")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or(d.audit_key_id),
            tag_claims: get("TOLLGATE_TAG_CLAIMS").map_or(d.tag_claims, |v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }),
        })
    }

    /// The per-user caps the store enforces.
    pub fn user_limits(&self) -> crate::aws::UserLimits {
        crate::aws::UserLimits {
            max_open: self.max_open_requests,
            creates_per_minute: self.max_creates_per_minute,
        }
    }

    /// Retention in seconds, for `ttl` attributes.
    pub fn retention_seconds(&self) -> i64 {
        i64::from(self.retention_days) * 86_400
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_apply_and_bad_numbers_are_refused() {
        let env: HashMap<&str, &str> = HashMap::new();
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c, Config::default());
        let env = HashMap::from([
            ("TOLLGATE_MAX_DURATION", "7200"),
            ("TOLLGATE_TAG_CLAIMS", "department, team,"),
        ]);
        let c = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.max_duration_seconds, 7200);
        assert_eq!(c.tag_claims, vec!["department", "team"]);
        let env = HashMap::from([("TOLLGATE_MAX_DURATION", "12h")]);
        let err = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap_err();
        assert_eq!(err.name, "TOLLGATE_MAX_DURATION");
    }
}
