//! `tollgate serve`: the same router as the Lambda functions, every route
//! mounted, on a TCP listener (127.0.0.1:8080 by default), with the expiry
//! sweep in-process every few seconds, against `AWS_ENDPOINT_URL` (the local
//! emulator) or real AWS. Tokens are verified here (HS256 development
//! secret or a JWKS file), since there is no API Gateway in front.
//!
//! Development clock: `TOLLGATE_DEV_CLOCK_FILE` (or
//! [`LocalOptions::clock_offset_file`]) names a file holding an offset in
//! seconds that is added to the clock for every decision, window and sweep.
//! It is honoured only when `TOLLGATE_DEV_SECRET` is configured, and is
//! meant for demos and end-to-end tests of expiry and lapse.
//!
//! The web console is served under `/ui`. With a development secret and no
//! `TOLLGATE_CONSOLE_CLIENT_ID`, the console signs in through the
//! development OpenID provider ([`super::dev_oidc`]), which exists only
//! then. Links in notifications point at this server unless
//! `TOLLGATE_PUBLIC_URL` says otherwise.

use super::auth::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, VerifierSettings};
use super::clock::Clock;
use super::dev_oidc::{DISCOVERY_PATH, DevProvider};
use super::settings::Settings;
use super::state::{AppState, RouteSet, StartupError, StateOptions};
use super::sweep::sweep;
use super::web::{SignIn, WebConsole};
use crate::audit::AuditLog;
use crate::config::Config;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listening address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default time between in-process sweeps.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How to run the local broker.
#[derive(Clone)]
pub struct LocalOptions {
    /// Where to listen (`TOLLGATE_ADDR`, default [`DEFAULT_ADDR`]).
    pub addr: SocketAddr,
    /// Broker settings (table, policy directory, limits).
    pub config: Config,
    /// Time between sweeps (`TOLLGATE_SWEEP_INTERVAL` seconds, default 5).
    pub sweep_interval: Duration,
    /// How tokens are verified.
    pub verifier: VerifierSettings,
    /// Webhooks and the pagination key.
    pub settings: Settings,
    /// A development clock offset file (only with a development secret).
    pub clock_offset_file: Option<PathBuf>,
}

impl std::fmt::Debug for LocalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOptions")
            .field("addr", &self.addr)
            .field("config", &self.config)
            .field("sweep_interval", &self.sweep_interval)
            .field("clock_offset_file", &self.clock_offset_file)
            .finish_non_exhaustive()
    }
}

impl LocalOptions {
    /// Options from the environment: [`Config::from_env`], `TOLLGATE_ADDR`,
    /// `TOLLGATE_SWEEP_INTERVAL`, `TOLLGATE_DEV_SECRET`/`TOLLGATE_JWKS_FILE`/
    /// `TOLLGATE_JWT_ISSUER`/`TOLLGATE_JWT_AUDIENCE`, `TOLLGATE_WEBHOOK_URLS`/
    /// `TOLLGATE_WEBHOOK_SECRET`/`TOLLGATE_PAGINATION_KEY` and
    /// `TOLLGATE_DEV_CLOCK_FILE`. Callers (the CLI) override fields from flags.
    pub fn from_env() -> Result<Self, StartupError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let addr = get("TOLLGATE_ADDR")
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned())
            .parse()
            .map_err(|_| {
                StartupError::Other("TOLLGATE_ADDR: not an address like 127.0.0.1:8080".into())
            })?;
        let sweep_interval = match get("TOLLGATE_SWEEP_INTERVAL") {
            None => DEFAULT_SWEEP_INTERVAL,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    StartupError::Other(
                        "TOLLGATE_SWEEP_INTERVAL: not a number of seconds from 1 to 3600".into(),
                    )
                })?,
        };
        Ok(Self {
            addr,
            config: Config::from_env()?,
            sweep_interval,
            verifier: VerifierSettings::from_env(),
            settings: Settings::from_env(),
            clock_offset_file: get("TOLLGATE_DEV_CLOCK_FILE").map(PathBuf::from),
        })
    }
}

/// A bound, ready local broker.
pub struct LocalServer {
    listener: tokio::net::TcpListener,
    state: AppState,
    sweep_interval: Duration,
    dev_sign_in: Option<DevProvider>,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl LocalServer {
    /// Loads everything and binds the listener; nothing is served yet. An
    /// invalid policy set, a missing key or a busy port fails here.
    pub async fn bind(mut options: LocalOptions) -> Result<Self, StartupError> {
        let auth = AppState::local_authenticator(&options.verifier)?;
        let clock = match options.clock_offset_file {
            Some(path) if options.verifier.dev_secret.is_some() => {
                tracing::warn!(file = %path.display(), "development clock offset enabled");
                Clock::with_offset_file(path)
            }
            Some(_) => {
                return Err(StartupError::Other(
                    "a development clock offset needs TOLLGATE_DEV_SECRET (it is for development only)"
                        .into(),
                ));
            }
            None => Clock::system(),
        };
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| StartupError::Other(format!("cannot listen on {}: {e}", options.addr)))?;
        let bound = listener.local_addr().ok();
        if options.config.console.public_url.is_none()
            && let Some(addr) = bound.filter(|a| a.ip().is_loopback())
        {
            options.config.console.public_url = Some(format!("http://{addr}"));
        }
        let sdk = crate::aws::load_sdk_config().await;
        let mut config = options.config;
        AppState::resolve_broker_account(&sdk, &mut config).await?;
        let mut state = AppState::build(
            &sdk,
            StateOptions {
                config,
                routes: RouteSet::All,
                auth,
                settings: options.settings,
                clock,
                audit: AuditLog::stdout(),
            },
        )?;
        state.start_policies().await?;
        if state.policy.current().policy_count() == 0 {
            tracing::warn!("no policies loaded: every request will be denied");
        }
        // INVARIANT: the development sign-in exists only with a development secret.
        let dev_sign_in = options.verifier.dev_secret.clone().map(|secret| {
            DevProvider::new(
                secret,
                options
                    .verifier
                    .issuer
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
                options
                    .verifier
                    .audience
                    .clone()
                    .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            )
        });
        if let Some(dev) = &dev_sign_in
            && state.config.console.client_id.is_none()
        {
            tracing::warn!("the web console signs in through the development OpenID provider");
            state.web = WebConsole::new(
                &SignIn::Oidc {
                    issuer: dev.issuer().to_owned(),
                    client_id: dev.client_id().to_owned(),
                    discovery: DISCOVERY_PATH.to_owned(),
                },
                &state.config.console.connect_origins,
            );
        }
        Ok(Self {
            listener,
            state,
            sweep_interval: options.sweep_interval,
            dev_sign_in,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The state the server runs with.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, sweeping every interval.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let sweeper = tokio::spawn(sweep_forever(self.state.clone(), self.sweep_interval));
        let mut app = super::router(self.state, RouteSet::All);
        if let Some(dev) = &self.dev_sign_in {
            app = app.merge(dev.router());
        }
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(addr = ?self.listener.local_addr().ok(), "tollgate is serving");
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        served.map_err(|e| StartupError::Other(format!("the server stopped: {e}")))
    }
}

async fn sweep_forever(state: AppState, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweep(&state, state.clock.now()).await {
            Ok(report) if report.changed() || report.failed > 0 => {
                tracing::info!(?report, "sweep");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(code = e.code(), error = %e, "sweep failed"),
        }
    }
}

/// Runs the local broker until Ctrl-C or SIGTERM.
pub async fn serve(options: LocalOptions) -> Result<(), StartupError> {
    let server = LocalServer::bind(options).await?;
    server.run(shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
