//! Everything a handler needs, built once per cold start (or once by
//! `tollgate serve`) and cloned into each request: configuration, AWS
//! adapters, the policy engine, token verification, page sealing,
//! notifications, the clock and the audit log.
//!
//! Each Lambda function builds only what its routes use: only
//! `credentials` holds an STS issuer, only `revocations` and `expiry` a
//! role-policy writer. The IaC grants each function exactly that.

use super::auth::{Authenticator, OidcVerifier, TokenVerifier, VerifierError, VerifierSettings};
use super::clock::Clock;
use super::notify::{DEFAULT_BUDGET, Notifier, NotifyConfigError};
use super::pagination::PageSealer;
use super::policies::{Policies, StoreSource};
use super::settings::{Settings, SettingsError};
use super::web::WebConsole;
use crate::audit::{AuditLog, Metrics};
use crate::aws::{
    AccountSettings, Accounts, AuditSigner, Catalogue, CatalogueSettings, Federation, Issuer,
    PolicyObject, Revoker, RoleDirectory, Store,
};
use crate::config::{Config, ConfigError};
use crate::policy::{ActivePolicies, PolicyDocument, PolicyError};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

/// Which routes a process serves; this also decides which AWS
/// capabilities its state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSet {
    /// `POST /requests` (and dry run), `GET /requests`, `GET /requests/{id}`,
    /// `POST /requests/{id}/cancel`, `POST /requests/{id}/extend`,
    /// `GET /roles`, `POST /roles/check`, `GET /health`, and the web console
    /// (`/ui`).
    Requests,
    /// `POST /requests/{id}/approve`, `/deny` and `/review`.
    Reviews,
    /// `POST /requests/{id}/credentials` and `/console`.
    Credentials,
    /// `POST /requests/{id}/revoke`.
    Revocations,
    /// No routes: the scheduled expiry sweep.
    Expiry,
    /// Every route: the local server.
    All,
}

impl RouteSet {
    /// Whether this process may call STS to assume target roles.
    pub const fn issues_credentials(self) -> bool {
        matches!(self, Self::Credentials | Self::All)
    }

    /// Whether this process may write role policies.
    pub const fn writes_role_policies(self) -> bool {
        matches!(self, Self::Revocations | Self::Expiry | Self::All)
    }

    /// Whether this process evaluates policies.
    pub const fn decides(self) -> bool {
        !matches!(self, Self::Expiry)
    }

    /// The function's name (`local` for `tollgate serve`), as its policy
    /// status item names it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Reviews => "reviews",
            Self::Credentials => "credentials",
            Self::Revocations => "revocations",
            Self::Expiry => "expiry",
            Self::All => "local",
        }
    }
}

/// The state shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Settings from the environment.
    pub config: Arc<Config>,
    /// The DynamoDB store.
    pub store: Store,
    /// Target accounts: the allow-list and the control-role sessions.
    pub accounts: Accounts,
    /// IAM role descriptions (cached).
    pub roles: RoleDirectory,
    /// The brokerable roles of every target account, as the sweep last
    /// found them (discovery reads it; the sweep refreshes it).
    pub catalogue: Catalogue,
    /// The Cedar policies: `state.policy.current()` is the set to decide
    /// with (an empty, deny-all set for `expiry`), refreshed from the policy
    /// store before each request.
    pub policy: Policies,
    /// STS, only where credentials are minted.
    pub issuer: Option<Issuer>,
    /// Console sign-in (the federation endpoint), only where credentials
    /// are minted.
    pub federation: Option<Federation>,
    /// Role-policy writes, only where grants are revoked or pruned.
    pub revoker: Option<Revoker>,
    /// How callers are identified.
    pub auth: Authenticator,
    /// Seals pagination tokens.
    pub pages: PageSealer,
    /// Webhooks.
    pub notifier: Notifier,
    /// Now.
    pub clock: Clock,
    /// Audit lines.
    pub audit: AuditLog,
    /// EMF metrics.
    pub metrics: Metrics,
    /// The web console under `/ui`.
    pub web: WebConsole,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("table", &self.config.table)
            .field("policies", &self.policy)
            .field("issuer", &self.issuer.is_some())
            .field("revoker", &self.revoker.is_some())
            .field("notifier", &self.notifier)
            .finish_non_exhaustive()
    }
}

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A `TOLLGATE_*` setting is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policies do not load or validate.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The secret settings could not be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A webhook is misconfigured.
    #[error(transparent)]
    Notify(#[from] NotifyConfigError),
    /// Tokens cannot be verified.
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    /// Another start-up problem.
    #[error("{0}")]
    Other(String),
}

/// Settings that only `tollgate serve` honours. A function that finds one
/// refuses to start rather than ignore it: a development clock or secret in
/// a deployed function is a mistake (or an attempt to move its clock).
pub const LOCAL_ONLY_SETTINGS: &[&str] = &[
    "TOLLGATE_DEV_SECRET",
    "TOLLGATE_DEV_CLOCK_FILE",
    "TOLLGATE_JWKS_FILE",
];

fn refuse_local_only_settings(is_set: impl Fn(&str) -> bool) -> Result<(), StartupError> {
    match LOCAL_ONLY_SETTINGS.iter().find(|k| is_set(k)) {
        Some(k) => Err(StartupError::Other(format!(
            "{k} is a setting of the local server only; remove it from the function's environment"
        ))),
        None => Ok(()),
    }
}

/// What [`AppState::build`] needs besides the AWS configuration.
pub struct StateOptions {
    /// Settings.
    pub config: Config,
    /// Which routes (and so which capabilities).
    pub routes: RouteSet,
    /// How callers are identified.
    pub auth: Authenticator,
    /// Secret settings.
    pub settings: Settings,
    /// The clock.
    pub clock: Clock,
    /// The audit log (stdout unless a test captures it).
    pub audit: AuditLog,
}

impl AppState {
    /// Builds the state from one `SdkConfig`: clients, the store, the target
    /// accounts, the role directory, the policies (for every route set but
    /// expiry), and the capabilities `options.routes` needs. The broker's
    /// account must be known ([`AppState::resolve_broker_account`]).
    pub fn build(sdk: &aws_config::SdkConfig, options: StateOptions) -> Result<Self, StartupError> {
        let StateOptions {
            config,
            routes,
            auth,
            settings,
            clock,
            audit,
        } = options;
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let iam = aws_sdk_iam::Client::new(sdk);
        let sts = aws_sdk_sts::Client::new(sdk);
        // INVARIANT: every process that writes events signs them; none
        // writes unsigned (the store refuses).
        let signer = AuditSigner::new(aws_sdk_kms::Client::new(sdk), config.audit_key_id.clone());
        let store = Store::new(dynamodb, config.table.clone(), config.retention_seconds())
            .with_signer(signer)
            .with_limits(config.user_limits());
        let Some(broker_account) = config.broker_account.clone() else {
            return Err(StartupError::Other(
                "the broker's own account is unknown (TOLLGATE_BROKER_ACCOUNT)".into(),
            ));
        };
        let accounts = Accounts::new(
            AccountSettings::from_config(&config, broker_account).map_err(StartupError::Other)?,
            sts.clone(),
            &iam,
        );
        let roles = RoleDirectory::new(
            accounts.clone(),
            Duration::from_secs(u64::from(config.role_cache_seconds)),
        );
        let catalogue = Catalogue::new(
            store.clone(),
            roles.clone(),
            CatalogueSettings {
                refresh_seconds: config.catalogue_refresh_seconds,
                rereads: config.catalogue_rereads,
                cache_seconds: config.role_cache_seconds,
                ceiling_seconds: config.max_duration_seconds,
            },
        );
        let policy = if routes.decides() {
            let dir = &config.policy_dir;
            let bundled = ActivePolicies::bundled(&PolicyDocument::from_dir(dir)?, |name| {
                dir.join(name).display().to_string()
            })?;
            match &config.policy_bucket {
                Some(bucket) => Policies::with_store(
                    bundled,
                    StoreSource {
                        object: PolicyObject::new(
                            crate::aws::s3_client(sdk),
                            bucket.clone(),
                            config.policy_key.clone(),
                        ),
                        refresh: Duration::from_secs(u64::from(config.policy_refresh_seconds)),
                        status: store.clone(),
                        function: routes.name(),
                        metrics: Metrics::new(audit.sink()),
                        clock: clock.clone(),
                    },
                ),
                None => Policies::fixed(bundled),
            }
        } else {
            // INVARIANT: the sweep authorises nothing; an empty set denies all.
            Policies::fixed(ActivePolicies::bundled(
                &PolicyDocument::empty(),
                str::to_owned,
            )?)
        };
        let issuer = routes.issues_credentials().then(|| Issuer::new(sts));
        let federation = if routes.issues_credentials() {
            let region = sdk.region().map(|r| r.as_ref().to_owned());
            let issuer_name = config
                .console
                .public_url
                .clone()
                .unwrap_or_else(|| "tollgate".to_owned());
            Some(
                Federation::new(
                    config.federation_endpoint.as_deref(),
                    region.as_deref(),
                    issuer_name,
                )
                .map_err(StartupError::Other)?,
            )
        } else {
            None
        };
        let revoker = routes
            .writes_role_policies()
            .then(|| Revoker::new(store.clone(), roles.clone()));
        let pages = match &settings.pagination_key {
            Some(key) => PageSealer::new(key.expose_secret().as_bytes()),
            None => PageSealer::random(),
        };
        let notifier = Notifier::new(
            &settings.webhook_urls,
            settings.webhook_signing_secret.clone(),
            DEFAULT_BUDGET,
        )?
        .with_links(config.console.public_url.clone());
        let metrics = Metrics::new(audit.sink());
        let web = WebConsole::from_settings(&config.console);
        Ok(Self {
            config: Arc::new(config),
            store,
            accounts,
            roles,
            catalogue,
            policy,
            issuer,
            federation,
            revoker,
            auth,
            pages,
            notifier,
            clock,
            audit,
            metrics,
            web,
        })
    }

    /// The state of one Lambda function: configuration from the
    /// environment, one `SdkConfig`, the settings secret, and bearer tokens
    /// verified against the issuer's keys (`TOLLGATE_JWT_ISSUER`,
    /// `TOLLGATE_JWT_AUDIENCE`; the function does not rely on API Gateway's
    /// authorizer alone).
    pub async fn for_lambda(routes: RouteSet) -> Result<Self, StartupError> {
        refuse_local_only_settings(|k| std::env::var_os(k).is_some())?;
        let mut config = Config::from_env()?;
        let auth = if routes == RouteSet::Expiry {
            Authenticator::Nobody
        } else {
            Authenticator::Oidc(Arc::new(OidcVerifier::new(&VerifierSettings::from_env())?))
        };
        let sdk = crate::aws::load_sdk_config().await;
        Self::resolve_broker_account(&sdk, &mut config).await?;
        let settings = if matches!(routes, RouteSet::Expiry | RouteSet::Credentials) {
            // These never list or notify: they do not read the secret.
            Settings::default()
        } else {
            Settings::load(&sdk).await?
        };
        let state = Self::build(
            &sdk,
            StateOptions {
                config,
                routes,
                auth,
                settings,
                clock: Clock::system(),
                audit: AuditLog::stdout(),
            },
        )?;
        state.start_policies().await?;
        Ok(state)
    }

    /// Reads the policy store once before serving (when one is configured):
    /// a store that cannot be read refuses the start.
    pub async fn start_policies(&self) -> Result<(), StartupError> {
        self.policy.start().await.map_err(|e| {
            StartupError::Other(format!(
                "cannot read the policy store (TOLLGATE_POLICY_BUCKET): {}",
                crate::aws::error_chain(&e)
            ))
        })
    }

    /// Fills in the broker's own account when the environment does not name
    /// it, from STS (`GetCallerIdentity`, once per cold start).
    pub async fn resolve_broker_account(
        sdk: &aws_config::SdkConfig,
        config: &mut Config,
    ) -> Result<(), StartupError> {
        if config.broker_account.is_none() {
            let sts = aws_sdk_sts::Client::new(sdk);
            let account = crate::aws::accounts::broker_account(config, &sts)
                .await
                .map_err(|e| {
                    StartupError::Other(format!(
                        "cannot tell the broker's own account (set TOLLGATE_BROKER_ACCOUNT): {}",
                        crate::aws::error_chain(&e)
                    ))
                })?;
            config.broker_account = Some(account);
        }
        Ok(())
    }

    /// A local verifier from the environment, for `tollgate serve`.
    pub fn local_authenticator(settings: &VerifierSettings) -> Result<Authenticator, StartupError> {
        Ok(Authenticator::Local(Arc::new(TokenVerifier::new(
            settings,
        )?)))
    }
}
