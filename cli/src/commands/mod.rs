//! One module per group of subcommands, sharing a context that resolves
//! settings and builds the broker client only when a command needs them.

pub mod audit;
pub mod credentials;
pub mod dev;
pub mod local;
pub mod policy;
pub mod requests;
pub mod roles;
pub mod serve;

use crate::args::GlobalArgs;
use crate::client::Client;
use crate::error::CliError;
use crate::output::OutputFormat;
use crate::settings::{self, Flags, Settings};
use secrecy::SecretString;

/// Reads an environment variable (a function so tests can supply a map).
pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// What every command may need: the environment and the global flags.
pub struct Ctx<'a> {
    /// The environment.
    pub env: &'a Env,
    /// `--profile`, `--url`, `--token-command`, `--output`.
    pub global: &'a GlobalArgs,
    settings: Option<Settings>,
}

impl<'a> Ctx<'a> {
    /// A context over `env` and the parsed global flags.
    pub fn new(env: &'a Env, global: &'a GlobalArgs) -> Self {
        Self {
            env,
            global,
            settings: None,
        }
    }

    /// The settings from flags, environment and config file (read once).
    pub fn settings(&mut self) -> Result<&Settings, CliError> {
        if self.settings.is_none() {
            let env = |k: &str| (self.env)(k);
            let file = match settings::config_path(&env) {
                Some((path, explicit)) => settings::load_config(&path, explicit)?,
                None => None,
            };
            let flags = Flags {
                profile: self.global.profile.clone(),
                url: self.global.url.clone(),
                token_command: self.global.token_command.clone(),
                output: self.global.output,
            };
            self.settings = Some(settings::resolve(&flags, &env, file.as_ref())?);
        }
        match &self.settings {
            Some(s) => Ok(s),
            None => Err(CliError::generic("internal", "settings were not resolved")),
        }
    }

    /// The output format: the flag, else the configured one, else a table.
    /// A broken config file does not stop `--output json` from being honoured.
    pub fn output(&mut self) -> OutputFormat {
        if let Some(o) = self.global.output {
            return o;
        }
        self.settings().map(|s| s.output).unwrap_or_default()
    }

    /// The broker client and the token it uses.
    pub async fn client(&mut self) -> Result<(Client, SecretString), CliError> {
        let settings = self.settings()?;
        let url = settings.require_url()?;
        let token = settings.token().await?;
        Ok((Client::new(url, &token)?, token))
    }
}
