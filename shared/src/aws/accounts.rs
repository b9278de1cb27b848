//! The one place that knows target accounts: which accounts' roles may be
//! brokered (the allow-list, and the broker's own account refused unless
//! explicitly allowed), the control role in each, and the IAM sessions the
//! broker holds through it.
//!
//! Every IAM call on a target role (describing it, writing its revocation
//! policy) goes through [`Accounts::iam_for`]: an IAM client acting in the
//! role's account as `<control role>`, assumed with the configured
//! ExternalId under the session name `tollgate-control`, and cached per
//! account until five minutes before its credentials expire. A burst of
//! requests on a cold start assumes each control role once.
//!
//! No other module builds STS sessions or role ARNs for accounts by hand:
//! provisioning the local emulator's accounts uses [`assume_session`] too.

use super::{AwsError, aws_failure};
use crate::BrokerError;
use crate::config::Config;
use crate::domain::{RoleArn, ValidationError};
use aws_sdk_iam::config::Credentials;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The session name of every control-role session.
pub const CONTROL_SESSION_NAME: &str = "tollgate-control";
/// How long a control session is asked for: one hour, the most role
/// chaining allows (the broker's own credentials are a role session).
pub const CONTROL_SESSION_SECONDS: i32 = 3600;
/// A cached control session is replaced this long before it expires.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Who may be brokered, and through which control role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// The broker's own account.
    pub broker_account: String,
    /// Accounts whose roles may be requested.
    pub target_accounts: BTreeSet<String>,
    /// Whether roles in the broker's own account may be requested (unsafe).
    pub allow_broker_account: bool,
    /// Path and name of the control role in every target account.
    pub control_role: String,
    /// The ExternalId the control roles require.
    pub external_id: Option<String>,
    /// The IAM path every brokered role lives under (`/tollgate/`).
    pub managed_role_path: String,
    /// Short names of target accounts (`prod` for `444455556666`), by alias.
    pub aliases: BTreeMap<String, String>,
}

impl AccountSettings {
    /// The settings of `config`, with the broker's account as resolved at
    /// start (see [`broker_account`]). Refuses an allow-list that brokers
    /// nothing, and one that names the broker's own account without
    /// `TOLLGATE_ALLOW_BROKER_ACCOUNT=true`.
    pub fn from_config(config: &Config, broker_account: String) -> Result<Self, String> {
        let mut target_accounts: BTreeSet<String> =
            config.target_accounts.iter().cloned().collect();
        if target_accounts.contains(&broker_account) && !config.allow_broker_account {
            return Err(format!(
                "TOLLGATE_TARGET_ACCOUNTS lists the broker's own account {broker_account}; \
                 brokered roles there can reach the broker's table, functions and logs. \
                 Move the roles to a target account, or set TOLLGATE_ALLOW_BROKER_ACCOUNT=true \
                 to accept that (unsafe)"
            ));
        }
        if config.allow_broker_account {
            target_accounts.insert(broker_account.clone());
        }
        if target_accounts.is_empty() {
            return Err(
                "TOLLGATE_TARGET_ACCOUNTS is empty: list the accounts whose roles Tollgate brokers"
                    .into(),
            );
        }
        if let Some((alias, account)) = config
            .account_aliases
            .iter()
            .find(|(_, account)| !target_accounts.contains(account))
        {
            return Err(format!(
                "TOLLGATE_ACCOUNT_ALIASES names account {account} (`{alias}`), which is not a target account"
            ));
        }
        Ok(Self {
            broker_account,
            target_accounts,
            allow_broker_account: config.allow_broker_account,
            control_role: config.control_role.clone(),
            external_id: config.control_external_id.clone(),
            managed_role_path: config.managed_role_path.clone(),
            aliases: config.account_aliases.iter().cloned().collect(),
        })
    }

    /// The alias of `account`, if it has one.
    pub fn alias_of(&self, account: &str) -> Option<&str> {
        self.aliases
            .iter()
            .find(|(_, a)| *a == account)
            .map(|(alias, _)| alias.as_str())
    }

    /// The brokered account `name` stands for: an alias, or a target
    /// account's id.
    pub fn account_named(&self, name: &str) -> Option<&str> {
        match self.aliases.get(name) {
            Some(account) => Some(account),
            None => self.target_accounts.get(name).map(String::as_str),
        }
    }
}

/// The broker's own account: `TOLLGATE_BROKER_ACCOUNT`, or else whatever
/// STS says the broker's credentials belong to (one `GetCallerIdentity`).
pub async fn broker_account(
    config: &Config,
    sts: &aws_sdk_sts::Client,
) -> Result<String, AwsError> {
    if let Some(account) = &config.broker_account {
        return Ok(account.clone());
    }
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| aws_failure("GetCallerIdentity", e))?;
    out.account()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::Corrupt("GetCallerIdentity returned no account".into()))
}

/// A control session and when to replace it.
#[derive(Clone)]
struct Session {
    iam: aws_sdk_iam::Client,
    refresh_at: SystemTime,
}

/// One slot per (partition, account): its lock makes concurrent first
/// callers wait for one AssumeRole instead of each making their own.
type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// Target accounts and the control sessions into them. Cheap to clone;
/// clones share the sessions.
#[derive(Clone)]
pub struct Accounts {
    settings: Arc<AccountSettings>,
    sts: aws_sdk_sts::Client,
    iam_config: aws_sdk_iam::Config,
    slots: Arc<Mutex<HashMap<(String, String), Slot>>>,
    assume_calls: Arc<AtomicU64>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("settings", &self.settings)
            .field("assume_calls", &self.assume_role_calls())
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Accounts per `settings`, assuming control roles with `sts` and
    /// building IAM clients like `iam` (its endpoint, timeouts, retries and
    /// interceptors; credentials replaced by the control session's).
    pub fn new(
        settings: AccountSettings,
        sts: aws_sdk_sts::Client,
        iam: &aws_sdk_iam::Client,
    ) -> Self {
        Self {
            settings: Arc::new(settings),
            sts,
            iam_config: iam.config().clone(),
            slots: Arc::new(Mutex::new(HashMap::new())),
            assume_calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// Whether roles in `account` may be brokered.
    pub fn is_brokered(&self, account: &str) -> bool {
        self.settings.target_accounts.contains(account)
    }

    /// Refuses, before any AWS call, a role that Tollgate does not broker: one
    /// in an account not on the allow-list (400 `account_not_brokered`; the
    /// broker's own account unless allowed), or outside the managed path
    /// (400 `role_not_brokered`).
    pub fn check(&self, role: &RoleArn) -> Result<(), BrokerError> {
        if !self.is_brokered(role.account()) {
            let why = if role.account() == self.settings.broker_account {
                "it is the broker's own account"
            } else {
                "it is not one of the target accounts"
            };
            return Err(BrokerError::InvalidInput {
                code: "account_not_brokered",
                message: format!(
                    "roles in account `{}` cannot be requested: {why}",
                    role.account()
                ),
            });
        }
        if role.path() != self.settings.managed_role_path {
            return Err(BrokerError::InvalidInput {
                code: "role_not_brokered",
                message: format!(
                    "role `{role}` cannot be requested: brokered roles live under the path `{}`",
                    self.settings.managed_role_path
                ),
            });
        }
        Ok(())
    }

    /// The partition the broker runs in, from its region (`aws` unless the
    /// region is in China, GovCloud, an isolated or the European sovereign
    /// cloud): where the catalogue lists target accounts' roles.
    pub fn partition(&self) -> &'static str {
        partition_of_region(self.iam_config.region().map_or("", |r| r.as_ref()))
    }

    /// The control role's ARN in `account` of `partition`.
    pub fn control_role_arn(&self, partition: &str, account: &str) -> String {
        format!(
            "arn:{partition}:iam::{account}:role/{}",
            self.settings.control_role
        )
    }

    /// AssumeRole calls made for control sessions since start (for tests
    /// and the bench: a cached session adds none).
    pub fn assume_role_calls(&self) -> u64 {
        self.assume_calls.load(Ordering::Relaxed)
    }

    /// An IAM client acting in `role`'s account through its control role.
    /// Refuses an account that is not brokered without calling AWS.
    pub async fn iam_for(&self, role: &RoleArn) -> Result<aws_sdk_iam::Client, AwsError> {
        self.iam_in(role.partition(), role.account()).await
    }

    /// An IAM client acting in `account` of `partition` through its control
    /// role. Refuses an account that is not brokered without calling AWS.
    pub async fn iam_in(
        &self,
        partition: &str,
        account: &str,
    ) -> Result<aws_sdk_iam::Client, AwsError> {
        if !self.is_brokered(account) {
            return Err(AwsError::Invalid(ValidationError::new(
                "role_arn",
                format!("account `{account}` is not brokered"),
            )));
        }
        let key = (partition.to_owned(), account.to_owned());
        let slot = {
            let Ok(mut slots) = self.slots.lock() else {
                return Err(AwsError::Corrupt("control session cache poisoned".into()));
            };
            slots.entry(key).or_default().clone()
        };
        let mut session = slot.lock().await;
        if let Some(s) = session.as_ref()
            && SystemTime::now() < s.refresh_at
        {
            return Ok(s.iam.clone());
        }
        let arn = self.control_role_arn(partition, account);
        self.assume_calls.fetch_add(1, Ordering::Relaxed);
        let (iam, expires) = assume_session(
            &self.sts,
            &self.iam_config,
            &arn,
            CONTROL_SESSION_NAME,
            self.settings.external_id.as_deref(),
        )
        .await
        .inspect_err(|e| {
            tracing::error!(control_role = %arn, error = %super::error_chain(e), "cannot assume the control role");
        })?;
        let refresh_at = expires
            .checked_sub(REFRESH_BEFORE_EXPIRY)
            .unwrap_or_else(SystemTime::now);
        *session = Some(Session {
            iam: iam.clone(),
            refresh_at,
        });
        Ok(iam)
    }
}

/// The partition of `region`, by AWS's region name prefixes.
pub fn partition_of_region(region: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 6] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("eu-isoe-", "aws-iso-e"),
        ("eusc-", "aws-eusc"),
    ];
    if let Some((_, partition)) = PREFIXES.iter().find(|(p, _)| region.starts_with(p)) {
        return partition;
    }
    if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

/// Assumes `role_arn` (one `AssumeRole`, [`CONTROL_SESSION_SECONDS`]) and
/// returns an IAM client configured like `iam_config` acting as that
/// session, with when its credentials expire.
pub async fn assume_session(
    sts: &aws_sdk_sts::Client,
    iam_config: &aws_sdk_iam::Config,
    role_arn: &str,
    session_name: &str,
    external_id: Option<&str>,
) -> Result<(aws_sdk_iam::Client, SystemTime), AwsError> {
    let out = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .duration_seconds(CONTROL_SESSION_SECONDS)
        .set_external_id(external_id.map(str::to_owned))
        .send()
        .await
        .map_err(|e| aws_failure("AssumeRole", e))?;
    let Some(c) = out.credentials() else {
        return Err(AwsError::Corrupt(
            "AssumeRole returned no credentials".into(),
        ));
    };
    let expires = SystemTime::try_from(*c.expiration())
        .map_err(|_| AwsError::Corrupt("AssumeRole returned an unusable expiration".into()))?;
    let credentials = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        Some(expires),
        "tollgate-control",
    );
    let config = iam_config
        .to_builder()
        .credentials_provider(credentials)
        .build();
    Ok((aws_sdk_iam::Client::from_conf(config), expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: &[&str], allow: bool) -> Config {
        Config {
            target_accounts: targets.iter().map(|s| (*s).to_owned()).collect(),
            allow_broker_account: allow,
            ..Config::default()
        }
    }

    #[test]
    fn the_broker_account_is_refused_unless_explicitly_allowed() {
        let err = AccountSettings::from_config(
            &config(&["123456789012", "444455556666"], false),
            "123456789012".into(),
        )
        .unwrap_err();
        assert!(err.contains("TOLLGATE_ALLOW_BROKER_ACCOUNT"), "{err}");
        let s = AccountSettings::from_config(&config(&[], true), "123456789012".into()).unwrap();
        assert!(s.target_accounts.contains("123456789012"));
        let err =
            AccountSettings::from_config(&config(&[], false), "123456789012".into()).unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn partitions_follow_region_prefixes() {
        for (region, partition) in [
            ("eu-west-1", "aws"),
            ("", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(partition_of_region(region), partition, "{region}");
        }
    }

    #[test]
    fn aliases_name_target_accounts_only() {
        let mut c = config(&["111122223333", "444455556666"], false);
        c.account_aliases = vec![("prod".into(), "444455556666".into())];
        let s = AccountSettings::from_config(&c, "123456789012".into()).unwrap();
        assert_eq!(s.alias_of("444455556666"), Some("prod"));
        assert_eq!(s.alias_of("111122223333"), None);
        assert_eq!(s.account_named("prod"), Some("444455556666"));
        assert_eq!(s.account_named("111122223333"), Some("111122223333"));
        assert_eq!(s.account_named("123456789012"), None);
        assert_eq!(s.account_named("staging"), None);
        c.account_aliases = vec![("broker".into(), "123456789012".into())];
        let err = AccountSettings::from_config(&c, "123456789012".into()).unwrap_err();
        assert!(err.contains("not a target account"), "{err}");
    }

    #[test]
    fn unlisted_accounts_and_unmanaged_paths_are_refused_with_their_own_codes() {
        let settings = AccountSettings::from_config(
            &config(&["111122223333", "444455556666"], false),
            "123456789012".into(),
        )
        .unwrap();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let accounts = Accounts::new(
            settings,
            aws_sdk_sts::Client::new(&sdk),
            &aws_sdk_iam::Client::new(&sdk),
        );
        let code = |arn: &str| {
            accounts
                .check(&RoleArn::parse(arn).unwrap())
                .err()
                .map(|e| e.code())
        };
        assert_eq!(code("arn:aws:iam::444455556666:role/tollgate/Ops"), None);
        assert_eq!(
            code("arn:aws:iam::999988887777:role/tollgate/Ops"),
            Some("account_not_brokered")
        );
        assert_eq!(
            code("arn:aws:iam::123456789012:role/tollgate/Ops"),
            Some("account_not_brokered")
        );
        assert_eq!(
            code("arn:aws:iam::444455556666:role/Ops"),
            Some("role_not_brokered")
        );
        assert_eq!(
            code("arn:aws:iam::444455556666:role/tollgate/more/Ops"),
            Some("role_not_brokered")
        );
        assert_eq!(
            accounts.control_role_arn("aws-us-gov", "444455556666"),
            "arn:aws-us-gov:iam::444455556666:role/tollgate/TollgateControl"
        );
    }
}
