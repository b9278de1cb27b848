//! Settings read once per cold start from the environment. Every setting has
//! a default that is safe; names are the `TOLLGATE_*` variables below.

use crate::domain::{DEFAULT_MAX_DURATION_SECONDS, DEFAULT_PENDING_TTL_SECONDS};
use std::path::PathBuf;

/// The control role every target account holds, as path/name.
pub const DEFAULT_CONTROL_ROLE: &str = "tollgate/TollgateControl";
/// The IAM path of brokered roles.
pub const DEFAULT_MANAGED_ROLE_PATH: &str = "/tollgate/";
/// How often each account's role catalogue is refreshed, seconds.
pub const DEFAULT_CATALOGUE_REFRESH_SECONDS: u32 = 300;
/// Roles per account re-read on every catalogue refresh.
pub const DEFAULT_CATALOGUE_REREADS: u32 = 20;

/// Broker settings shared by every function and the local server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TOLLGATE_TABLE`: the DynamoDB table (default `tollgate`).
    pub table: String,
    /// `TOLLGATE_POLICY_DIR`: directory of `*.cedar` files (default `policies`):
    /// the bundled set, served until the policy store holds one.
    pub policy_dir: PathBuf,
    /// `TOLLGATE_POLICY_BUCKET`: the S3 bucket of the policy store (unset:
    /// the bundled set only).
    pub policy_bucket: Option<String>,
    /// `TOLLGATE_POLICY_KEY`: the policy set object's key (default `policies.json`).
    pub policy_key: String,
    /// `TOLLGATE_POLICY_REFRESH_SECONDS`: how often a process checks the
    /// store for a new set, at most (default 10; 0 checks before every request).
    pub policy_refresh_seconds: u32,
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
    /// `TOLLGATE_TARGET_ACCOUNTS`: comma-separated 12-digit ids of the accounts
    /// whose roles may be requested (sorted, without duplicates).
    pub target_accounts: Vec<String>,
    /// `TOLLGATE_ALLOW_BROKER_ACCOUNT`: whether roles in the broker's own
    /// account may be requested (default false; unsafe, see README).
    pub allow_broker_account: bool,
    /// `TOLLGATE_BROKER_ACCOUNT`: the broker's own account id; when unset it is
    /// asked of STS (`GetCallerIdentity`) once at start.
    pub broker_account: Option<String>,
    /// `TOLLGATE_CONTROL_ROLE`: path and name of the control role in every
    /// target account (default `tollgate/TollgateControl`).
    pub control_role: String,
    /// `TOLLGATE_CONTROL_EXTERNAL_ID`: the ExternalId sent when assuming it.
    pub control_external_id: Option<String>,
    /// `TOLLGATE_MANAGED_ROLE_PATH`: the IAM path brokered roles live under
    /// (default `/tollgate/`; the IaC scopes every permission to it).
    pub managed_role_path: String,
    /// `TOLLGATE_ACCOUNT_ALIASES`: short names for target accounts,
    /// `staging=111122223333,prod=444455556666`, as `(alias, account)` pairs.
    pub account_aliases: Vec<(String, String)>,
    /// `TOLLGATE_CATALOGUE_REFRESH_SECONDS`: how often the sweep refreshes each
    /// account's role catalogue (default 300; 0 turns refreshing off).
    pub catalogue_refresh_seconds: u32,
    /// `TOLLGATE_CATALOGUE_REREADS`: roles per account re-read with `GetRole`
    /// on every refresh, least recently read first, so that a change of tags
    /// alone (which `ListRoles` does not show) is noticed (default 20).
    pub catalogue_rereads: u32,
    /// The web console's sign-in and links (`TOLLGATE_CONSOLE_*`, `TOLLGATE_PUBLIC_URL`).
    pub console: ConsoleSettings,
    /// `TOLLGATE_FEDERATION_ENDPOINT`: where console sign-in tokens are
    /// asked for, instead of the role's partition's AWS federation endpoint
    /// (`https://signin.aws.amazon.com/federation`, ...): for tests and the
    /// demo, against a local stand-in. https, or http to a loopback address.
    pub federation_endpoint: Option<String>,
    /// `TOLLGATE_BREAK_GLASS_REVIEW_SECONDS`: how long a break-glass grant
    /// may wait for its review before the sweep counts it as overdue
    /// (`UnreviewedBreakGlass`; default 86400, one day).
    pub break_glass_review_seconds: u32,
}

/// How long a break-glass grant may wait for its review: one day.
pub const DEFAULT_BREAK_GLASS_REVIEW_SECONDS: u32 = 86_400;

/// How the web console signs people in and where it is reachable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// `TOLLGATE_PUBLIC_URL`: the broker's address as people reach it
    /// (`https://tollgate.example.com`), for links in notifications.
    pub public_url: Option<String>,
    /// `TOLLGATE_CONSOLE_CLIENT_ID`: the OpenID Connect public client id.
    pub client_id: Option<String>,
    /// `TOLLGATE_CONSOLE_ISSUER` (default `TOLLGATE_JWT_ISSUER`): the OpenID
    /// Connect issuer; its discovery document is `<issuer>/.well-known/openid-configuration`.
    pub issuer: Option<String>,
    /// `TOLLGATE_CONSOLE_CONNECT_ORIGINS`: further origins the console may
    /// call besides its own and the issuer's (Cognito's token endpoint lives
    /// on the user pool's domain), comma-separated.
    pub connect_origins: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            table: "tollgate".into(),
            policy_dir: PathBuf::from("policies"),
            policy_bucket: None,
            policy_key: crate::aws::DEFAULT_POLICY_KEY.into(),
            policy_refresh_seconds: 10,
            max_duration_seconds: DEFAULT_MAX_DURATION_SECONDS,
            pending_ttl_seconds: DEFAULT_PENDING_TTL_SECONDS,
            retention_days: 400,
            role_cache_seconds: 60,
            groups_claim: "groups".into(),
            tag_claims: vec!["department".into(), "clearance".into(), "location".into()],
            audit_key_id: crate::aws::DEFAULT_AUDIT_KEY.into(),
            max_open_requests: 20,
            max_creates_per_minute: 10,
            console: ConsoleSettings::default(),
            target_accounts: Vec::new(),
            allow_broker_account: false,
            broker_account: None,
            control_role: DEFAULT_CONTROL_ROLE.into(),
            control_external_id: None,
            managed_role_path: DEFAULT_MANAGED_ROLE_PATH.into(),
            federation_endpoint: None,
            break_glass_review_seconds: DEFAULT_BREAK_GLASS_REVIEW_SECONDS,
            account_aliases: Vec::new(),
            catalogue_refresh_seconds: DEFAULT_CATALOGUE_REFRESH_SECONDS,
            catalogue_rereads: DEFAULT_CATALOGUE_REREADS,
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
            policy_bucket: get("TOLLGATE_POLICY_BUCKET")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            policy_key: match get("TOLLGATE_POLICY_KEY").filter(|v| !v.trim().is_empty()) {
                None => d.policy_key,
                Some(v) => policy_key(v.trim())?,
            },
            policy_refresh_seconds: num(
                "TOLLGATE_POLICY_REFRESH_SECONDS",
                d.policy_refresh_seconds,
                0,
                3600,
            )?,
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
            console: ConsoleSettings::from_lookup(&get)?,
            target_accounts: match get("TOLLGATE_TARGET_ACCOUNTS") {
                None => d.target_accounts,
                Some(v) => account_list("TOLLGATE_TARGET_ACCOUNTS", &v)?,
            },
            allow_broker_account: match get("TOLLGATE_ALLOW_BROKER_ACCOUNT").as_deref() {
                None | Some("" | "false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(ConfigError {
                        name: "TOLLGATE_ALLOW_BROKER_ACCOUNT",
                        message: format!("`{other}` is not `true` or `false`"),
                    });
                }
            },
            broker_account: match get("TOLLGATE_BROKER_ACCOUNT").filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(v) => Some(account_id("TOLLGATE_BROKER_ACCOUNT", v.trim())?),
            },
            control_role: match get("TOLLGATE_CONTROL_ROLE").filter(|v| !v.trim().is_empty()) {
                None => d.control_role,
                Some(v) => control_role(v.trim())?,
            },
            control_external_id: match get("TOLLGATE_CONTROL_EXTERNAL_ID").filter(|v| !v.is_empty())
            {
                None => None,
                Some(v) => Some(external_id(&v)?),
            },
            managed_role_path: match get("TOLLGATE_MANAGED_ROLE_PATH")
                .filter(|v| !v.trim().is_empty())
            {
                None => d.managed_role_path,
                Some(v) => role_path(v.trim())?,
            },
            federation_endpoint: get("TOLLGATE_FEDERATION_ENDPOINT")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(|v| web_url("TOLLGATE_FEDERATION_ENDPOINT", &v))
                .transpose()?,
            break_glass_review_seconds: num(
                "TOLLGATE_BREAK_GLASS_REVIEW_SECONDS",
                d.break_glass_review_seconds,
                60,
                30 * 86_400,
            )?,
            account_aliases: match get("TOLLGATE_ACCOUNT_ALIASES") {
                None => d.account_aliases,
                Some(v) => account_aliases(&v)?,
            },
            catalogue_refresh_seconds: num(
                "TOLLGATE_CATALOGUE_REFRESH_SECONDS",
                d.catalogue_refresh_seconds,
                0,
                86_400,
            )?,
            catalogue_rereads: num("TOLLGATE_CATALOGUE_REREADS", d.catalogue_rereads, 0, 1000)?,
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

/// An S3 object key: 1-1024 bytes, printable, no leading `/`.
fn policy_key(v: &str) -> Result<String, ConfigError> {
    if v.len() <= 1024 && !v.starts_with('/') && !v.chars().any(char::is_control) {
        Ok(v.to_owned())
    } else {
        Err(ConfigError {
            name: "TOLLGATE_POLICY_KEY",
            message: format!(
                "`{v}` is not an S3 object key (1-1024 printable bytes, no leading `/`)"
            ),
        })
    }
}

impl ConsoleSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let public_url = non_empty("TOLLGATE_PUBLIC_URL")
            .map(|v| web_url("TOLLGATE_PUBLIC_URL", &v).map(|u| u.trim_end_matches('/').to_owned()))
            .transpose()?;
        let issuer = match non_empty("TOLLGATE_CONSOLE_ISSUER") {
            Some(v) => Some(web_url("TOLLGATE_CONSOLE_ISSUER", &v)?),
            // The API's issuer is a URL when deployed; a local `tollgate-local` is not.
            None => non_empty("TOLLGATE_JWT_ISSUER")
                .filter(|v| web_url("TOLLGATE_JWT_ISSUER", v).is_ok()),
        };
        let client_id = non_empty("TOLLGATE_CONSOLE_CLIENT_ID")
            .map(|v| {
                if v.len() <= 256 && v.chars().all(|c| c.is_ascii_graphic() && c != '"') {
                    Ok(v)
                } else {
                    Err(ConfigError {
                        name: "TOLLGATE_CONSOLE_CLIENT_ID",
                        message: "not a client id (printable ASCII without spaces or quotes, at most 256 characters)".into(),
                    })
                }
            })
            .transpose()?;
        let connect_origins = non_empty("TOLLGATE_CONSOLE_CONNECT_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|o| web_origin("TOLLGATE_CONSOLE_CONNECT_ORIGINS", o))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            public_url,
            client_id,
            issuer,
            connect_origins,
        })
    }
}

/// `https://...`, or `http://` to a loopback host (local development).
fn web_url(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let bad = |message: &str| ConfigError {
        name,
        message: format!("`{value}` {message}"),
    };
    let url = reqwest::Url::parse(value).map_err(|_| bad("is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(bad("must be https (http only to localhost)")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("must not carry a query, fragment or user name"));
    }
    Ok(value.to_owned())
}

/// The origin (`scheme://host[:port]`) of a [`web_url`].
pub(crate) fn web_origin(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let url = web_url(name, value)?;
    reqwest::Url::parse(&url)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| ConfigError {
            name,
            message: format!("`{value}` is not a URL"),
        })
}

/// A 12-digit AWS account id.
fn account_id(name: &'static str, v: &str) -> Result<String, ConfigError> {
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(v.to_owned())
    } else {
        Err(ConfigError {
            name,
            message: format!("`{v}` is not a 12-digit account id"),
        })
    }
}

/// Comma-separated account ids, sorted and without duplicates.
fn account_list(name: &'static str, v: &str) -> Result<Vec<String>, ConfigError> {
    let mut ids = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| account_id(name, s))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// `alias=account,...`: each alias 1-32 of `a-z 0-9 -` starting with a
/// letter (so never mistaken for an account id), each alias and each
/// account named once.
fn account_aliases(v: &str) -> Result<Vec<(String, String)>, ConfigError> {
    const NAME: &str = "TOLLGATE_ACCOUNT_ALIASES";
    let bad = |message: String| ConfigError {
        name: NAME,
        message,
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((alias, account)) = entry.split_once('=') else {
            return Err(bad(format!("`{entry}` is not alias=account")));
        };
        let (alias, account) = (alias.trim(), account_id(NAME, account.trim())?);
        let valid = (1..=32).contains(&alias.len())
            && alias.starts_with(|c: char| c.is_ascii_lowercase())
            && alias
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(bad(format!(
                "`{alias}` is not an alias (1-32 of a-z 0-9 -, starting with a letter)"
            )));
        }
        if pairs.iter().any(|(a, _)| a == alias) {
            return Err(bad(format!("alias `{alias}` is given twice")));
        }
        if pairs.iter().any(|(_, acct)| *acct == account) {
            return Err(bad(format!("account {account} has two aliases")));
        }
        pairs.push((alias.to_owned(), account));
    }
    Ok(pairs)
}

/// `path/name` or `name` of an IAM role: IAM's name characters, no wildcards.
fn control_role(v: &str) -> Result<String, ConfigError> {
    let probe = format!(
        "arn:aws:iam::000000000000:role/{}",
        v.trim_start_matches('/')
    );
    crate::domain::RoleArn::parse(&probe)
        .map(|_| v.trim_start_matches('/').to_owned())
        .map_err(|_| ConfigError {
            name: "TOLLGATE_CONTROL_ROLE",
            message: format!("`{v}` is not a role path and name like `tollgate/TollgateControl`"),
        })
}

/// An IAM path: `/` or `/segment/.../`.
fn role_path(v: &str) -> Result<String, ConfigError> {
    let probe = format!("arn:aws:iam::000000000000:role{v}Probe");
    if v.starts_with('/') && v.ends_with('/') && crate::domain::RoleArn::parse(&probe).is_ok() {
        Ok(v.to_owned())
    } else {
        Err(ConfigError {
            name: "TOLLGATE_MANAGED_ROLE_PATH",
            message: format!("`{v}` is not an IAM path like `/tollgate/`"),
        })
    }
}

/// STS's ExternalId rules: 2-1224 characters of `[\w+=,.@:/-]`.
fn external_id(v: &str) -> Result<String, ConfigError> {
    let ok = (2..=1224).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ConfigError {
            name: "TOLLGATE_CONTROL_EXTERNAL_ID",
            message: "must be 2 to 1224 characters of A-Z a-z 0-9 _+=,.@:/-".into(),
        })
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

    #[test]
    fn console_urls_must_be_https_or_loopback_and_origins_are_normalised() {
        let lookup = |pairs: &[(&'static str, &'static str)]| {
            let env: HashMap<&str, &str> = pairs.iter().copied().collect();
            Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()))
        };
        let c = lookup(&[
            ("TOLLGATE_PUBLIC_URL", "https://tollgate.example.com/"),
            (
                "TOLLGATE_JWT_ISSUER",
                "https://example.okta.com/oauth2/default",
            ),
            ("TOLLGATE_CONSOLE_CLIENT_ID", "0oa1b2c3"),
            (
                "TOLLGATE_CONSOLE_CONNECT_ORIGINS",
                "https://tollgate.auth.eu-west-1.amazoncognito.com/oauth2/token",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.console.public_url.as_deref(),
            Some("https://tollgate.example.com")
        );
        assert_eq!(
            c.console.issuer.as_deref(),
            Some("https://example.okta.com/oauth2/default")
        );
        assert_eq!(
            c.console.connect_origins,
            vec!["https://tollgate.auth.eu-west-1.amazoncognito.com"]
        );
        // A local, non-URL API issuer is not a console issuer.
        let c = lookup(&[("TOLLGATE_JWT_ISSUER", "tollgate-local")]).unwrap();
        assert_eq!(c.console.issuer, None);
        for (name, value) in [
            ("TOLLGATE_PUBLIC_URL", "http://tollgate.example.com"),
            ("TOLLGATE_PUBLIC_URL", "https://x.example.com/?a=b"),
            ("TOLLGATE_CONSOLE_ISSUER", "ftp://idp.example.com"),
            ("TOLLGATE_CONSOLE_CLIENT_ID", "has space"),
            (
                "TOLLGATE_CONSOLE_CONNECT_ORIGINS",
                "https://ok.example.com,'unsafe-inline'",
            ),
        ] {
            let err = lookup(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name, "{value}");
        }
        assert!(lookup(&[("TOLLGATE_PUBLIC_URL", "http://127.0.0.1:8080")]).is_ok());
    }

    #[test]
    fn account_settings_are_parsed_strictly() {
        let parse = |pairs: &[(&str, &str)]| {
            let env: HashMap<&str, &str> = pairs.iter().copied().collect();
            Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()))
        };
        let c = parse(&[
            (
                "TOLLGATE_TARGET_ACCOUNTS",
                " 444455556666,111122223333,444455556666 ",
            ),
            ("TOLLGATE_ALLOW_BROKER_ACCOUNT", "true"),
            ("TOLLGATE_BROKER_ACCOUNT", "123456789012"),
            ("TOLLGATE_CONTROL_ROLE", "/ops/Control"),
            ("TOLLGATE_CONTROL_EXTERNAL_ID", "tollgate-prod:1"),
        ])
        .unwrap();
        assert_eq!(c.target_accounts, vec!["111122223333", "444455556666"]);
        assert!(c.allow_broker_account);
        assert_eq!(c.broker_account.as_deref(), Some("123456789012"));
        assert_eq!(c.control_role, "ops/Control");
        assert_eq!(c.control_external_id.as_deref(), Some("tollgate-prod:1"));
        let d = parse(&[]).unwrap();
        assert!(d.target_accounts.is_empty() && !d.allow_broker_account);
        assert_eq!(d.control_role, "tollgate/TollgateControl");
        assert_eq!(d.managed_role_path, "/tollgate/");
        assert_eq!(d.federation_endpoint, None);
        assert_eq!(d.break_glass_review_seconds, 86_400);
        let c = parse(&[
            (
                "TOLLGATE_FEDERATION_ENDPOINT",
                "http://127.0.0.1:4567/federation",
            ),
            ("TOLLGATE_BREAK_GLASS_REVIEW_SECONDS", "3600"),
        ])
        .unwrap();
        assert_eq!(
            c.federation_endpoint.as_deref(),
            Some("http://127.0.0.1:4567/federation")
        );
        assert_eq!(c.break_glass_review_seconds, 3600);
        assert!(d.account_aliases.is_empty());
        let c = parse(&[(
            "TOLLGATE_ACCOUNT_ALIASES",
            " staging=111122223333, prod-eu=444455556666 ,",
        )])
        .unwrap();
        assert_eq!(
            c.account_aliases,
            [
                ("staging".to_owned(), "111122223333".to_owned()),
                ("prod-eu".to_owned(), "444455556666".to_owned())
            ]
        );
        for (name, bad) in [
            ("TOLLGATE_TARGET_ACCOUNTS", "1234"),
            ("TOLLGATE_TARGET_ACCOUNTS", "111122223333,abc"),
            ("TOLLGATE_ALLOW_BROKER_ACCOUNT", "yes"),
            ("TOLLGATE_BROKER_ACCOUNT", "12345678901x"),
            ("TOLLGATE_CONTROL_ROLE", "ops/*"),
            ("TOLLGATE_CONTROL_EXTERNAL_ID", "a b"),
            ("TOLLGATE_MANAGED_ROLE_PATH", "tollgate"),
            (
                "TOLLGATE_FEDERATION_ENDPOINT",
                "http://signin.example.com/federation",
            ),
            (
                "TOLLGATE_FEDERATION_ENDPOINT",
                "https://x.example.com/federation?a=b",
            ),
            ("TOLLGATE_BREAK_GLASS_REVIEW_SECONDS", "59"),
            ("TOLLGATE_ACCOUNT_ALIASES", "prod"),
            ("TOLLGATE_ACCOUNT_ALIASES", "prod=1234"),
            ("TOLLGATE_ACCOUNT_ALIASES", "Prod=444455556666"),
            ("TOLLGATE_ACCOUNT_ALIASES", "4444=444455556666"),
            ("TOLLGATE_ACCOUNT_ALIASES", "a=444455556666,a=111122223333"),
            ("TOLLGATE_ACCOUNT_ALIASES", "a=444455556666,b=444455556666"),
            ("TOLLGATE_CATALOGUE_REFRESH_SECONDS", "-1"),
            ("TOLLGATE_CATALOGUE_REREADS", "5000"),
        ] {
            assert_eq!(parse(&[(name, bad)]).unwrap_err().name, name, "{bad}");
        }
    }
}
