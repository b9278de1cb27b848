//! Where the CLI finds the broker and the caller's token: flags first, then
//! `TOLLGATE_*` environment variables, then a named profile in
//! `~/.config/tollgate/config.toml`. Tokens are held as secrets and never
//! printed, logged or put into an error message.

use crate::error::{CliError, Exit};
use crate::output::OutputFormat;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file: a default profile name and named profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Profile used when neither `--profile` nor `TOLLGATE_PROFILE` names one.
    pub default_profile: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One `[profiles.<name>]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The broker's base URL.
    pub url: Option<String>,
    /// A command that prints a bearer token (an IdP CLI, say).
    pub token_command: Option<String>,
    /// `table` or `json`.
    pub output: Option<String>,
    /// The broker's DynamoDB table, for the commands that read it with your
    /// AWS credentials (`policy status`, `policy diff`).
    pub table: Option<String>,
    /// The policy store's bucket (`policy publish`, `status`, `diff`).
    pub policy_bucket: Option<String>,
    /// The policy set object's key.
    pub policy_key: Option<String>,
}

/// Settings given as flags (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--profile`.
    pub profile: Option<String>,
    /// `--url`.
    pub url: Option<String>,
    /// `--token-command`.
    pub token_command: Option<String>,
    /// `--output`.
    pub output: Option<OutputFormat>,
}

/// Where the bearer token comes from. Has no `Debug` that could show it.
pub enum TokenSource {
    /// `TOLLGATE_TOKEN`.
    Literal(SecretString),
    /// A command whose standard output is the token.
    Command {
        /// The command, run with `sh -c`.
        command: String,
        /// Which setting supplied it, for error messages.
        origin: &'static str,
    },
    /// Nothing configured.
    Missing,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("TokenSource::Literal(<redacted>)"),
            Self::Command { origin, .. } => write!(f, "TokenSource::Command(from {origin})"),
            Self::Missing => f.write_str("TokenSource::Missing"),
        }
    }
}

/// The resolved settings for one invocation.
#[derive(Debug)]
pub struct Settings {
    /// The profile in use, if any.
    pub profile: Option<String>,
    /// The broker's base URL, if configured.
    pub url: Option<String>,
    /// Where the token comes from.
    pub token: TokenSource,
    /// How to print results.
    pub output: OutputFormat,
    /// `TOLLGATE_TABLE`, else the profile's `table`.
    pub table: Option<String>,
    /// `TOLLGATE_POLICY_BUCKET`, else the profile's `policy_bucket`.
    pub policy_bucket: Option<String>,
    /// `TOLLGATE_POLICY_KEY`, else the profile's `policy_key`.
    pub policy_key: Option<String>,
}

/// How long a token command may run (an IdP login may open a browser).
const TOKEN_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest token accepted from a command or the environment.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The config file path: `TOLLGATE_CONFIG`, else
/// `$XDG_CONFIG_HOME/tollgate/config.toml`, else `~/.config/tollgate/config.toml`.
/// The flag says whether the path was given explicitly (then it must exist).
pub fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<(PathBuf, bool)> {
    if let Some(p) = non_empty(env("TOLLGATE_CONFIG")) {
        return Some((PathBuf::from(p), true));
    }
    let base = non_empty(env("XDG_CONFIG_HOME"))
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty(env("HOME")).map(|h| Path::new(&h).join(".config")))?;
    Some((base.join("tollgate").join("config.toml"), false))
}

/// Reads and parses the config file; a missing default file is no config.
pub fn load_config(path: &Path, explicit: bool) -> Result<Option<ConfigFile>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(CliError::usage(
                "config_unreadable",
                format!("cannot read config file `{}`: {e}", path.display()),
            ));
        }
    };
    parse_config(&text)
        .map(Some)
        .map_err(|e| CliError::usage("config_invalid", format!("`{}`: {e}", path.display())))
}

/// Parses config file text.
pub fn parse_config(text: &str) -> Result<ConfigFile, String> {
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Resolves settings: each one from the first of flag, environment, profile.
/// A profile named by `--profile`, `TOLLGATE_PROFILE` or `default_profile`
/// must exist.
pub fn resolve(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&ConfigFile>,
) -> Result<Settings, CliError> {
    let named = non_empty(flags.profile.clone())
        .or_else(|| non_empty(env("TOLLGATE_PROFILE")))
        .or_else(|| file.and_then(|f| f.default_profile.clone()));
    let profile = match &named {
        None => None,
        Some(name) => {
            let found = file.and_then(|f| f.profiles.get(name));
            if found.is_none() {
                let known: Vec<&str> = file
                    .map(|f| f.profiles.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let known = if known.is_empty() {
                    "no profiles are configured".to_owned()
                } else {
                    format!("known profiles: {}", known.join(", "))
                };
                return Err(CliError::usage(
                    "unknown_profile",
                    format!(
                        "profile `{}` is not in the config file; {known}",
                        crate::output::clean(name)
                    ),
                ));
            }
            found
        }
    };

    let url = non_empty(flags.url.clone())
        .or_else(|| non_empty(env("TOLLGATE_URL")))
        .or_else(|| profile.and_then(|p| non_empty(p.url.clone())));

    let token = if let Some(command) = non_empty(flags.token_command.clone()) {
        TokenSource::Command {
            command,
            origin: "--token-command",
        }
    } else if let Some(token) = non_empty(env("TOLLGATE_TOKEN")) {
        TokenSource::Literal(SecretString::from(token.trim().to_owned()))
    } else if let Some(command) = non_empty(env("TOLLGATE_TOKEN_COMMAND")) {
        TokenSource::Command {
            command,
            origin: "TOLLGATE_TOKEN_COMMAND",
        }
    } else if let Some(command) = profile.and_then(|p| non_empty(p.token_command.clone())) {
        TokenSource::Command {
            command,
            origin: "the profile's token_command",
        }
    } else {
        TokenSource::Missing
    };

    let output = match flags.output {
        Some(o) => o,
        None => {
            let from_env = non_empty(env("TOLLGATE_OUTPUT")).map(|v| ("TOLLGATE_OUTPUT", v));
            let from_profile = || {
                profile
                    .and_then(|p| non_empty(p.output.clone()))
                    .map(|v| ("the profile's output", v))
            };
            match from_env.or_else(from_profile) {
                None => OutputFormat::Table,
                Some((origin, v)) => OutputFormat::parse(&v).ok_or_else(|| {
                    CliError::usage(
                        "invalid_output",
                        format!(
                            "{origin} `{}` is not `table` or `json`",
                            crate::output::clean(&v)
                        ),
                    )
                })?,
            }
        }
    };

    let from = |var: &str, field: fn(&Profile) -> &Option<String>| {
        non_empty(env(var)).or_else(|| profile.and_then(|p| non_empty(field(p).clone())))
    };
    Ok(Settings {
        profile: named,
        url,
        token,
        output,
        table: from("TOLLGATE_TABLE", |p| &p.table),
        policy_bucket: from("TOLLGATE_POLICY_BUCKET", |p| &p.policy_bucket),
        policy_key: from("TOLLGATE_POLICY_KEY", |p| &p.policy_key),
    })
}

/// Checks a broker URL: `https`, or `http` only to a loopback address, with
/// no user name, password, query or fragment (a token must never travel in
/// clear text across a network).
pub fn check_url(raw: &str) -> Result<reqwest::Url, CliError> {
    let bad = |why: &str| {
        CliError::usage(
            "invalid_url",
            format!(
                "broker URL `{}` {why}",
                crate::output::truncate(&crate::output::clean(raw), 120)
            ),
        )
    };
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL holds a credential.
        return Err(CliError::usage(
            "invalid_url",
            "the broker URL must not contain a user name or password",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(bad(
                    "uses http to a host that is not this machine; use https so the token is not sent in clear text",
                ));
            }
        }
        _ => return Err(bad("must use https (or http to 127.0.0.1)")),
    }
    Ok(url)
}

impl Settings {
    /// The broker URL, or a usage error saying how to configure it.
    pub fn require_url(&self) -> Result<reqwest::Url, CliError> {
        match &self.url {
            Some(u) => check_url(u),
            None => Err(CliError::usage(
                "no_broker_url",
                match &self.profile {
                    Some(p) => format!(
                        "no broker URL is configured (profile `{}` has no `url`)",
                        crate::output::clean(p)
                    ),
                    None => "no broker URL is configured".to_owned(),
                },
            )
            .with_hint(
                "pass --url, set TOLLGATE_URL, or add `url` to a profile in ~/.config/tollgate/config.toml",
            )),
        }
    }

    /// The bearer token, running the token command if one is configured.
    pub async fn token(&self) -> Result<SecretString, CliError> {
        match &self.token {
            TokenSource::Literal(t) => check_token(t.expose_secret(), "TOLLGATE_TOKEN"),
            TokenSource::Command { command, origin } => run_token_command(command, origin).await,
            TokenSource::Missing => Err(CliError::new(
                Exit::Unauthenticated,
                "no_token",
                "no token is configured",
            )
            .with_hint(
                "set TOLLGATE_TOKEN or TOLLGATE_TOKEN_COMMAND, pass --token-command, or add `token_command` to a profile",
            )),
        }
    }
}

fn check_token(token: &str, origin: &str) -> Result<SecretString, CliError> {
    let token = token.trim();
    let bad = |why: &str| {
        CliError::new(
            Exit::Unauthenticated,
            "invalid_token",
            format!("the token from {origin} {why}"),
        )
    };
    if token.is_empty() {
        return Err(bad("is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(bad("is too long"));
    }
    // A header value cannot carry these; say so without echoing the token.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("contains spaces or characters a token cannot have"));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// Runs `command` with `sh -c`, standard input and error passed through (for
/// interactive logins), standard output captured as the token.
async fn run_token_command(command: &str, origin: &str) -> Result<SecretString, CliError> {
    let failed = |msg: String| CliError::new(Exit::Unauthenticated, "token_command_failed", msg);
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run the token command from {origin}: {e}")))?;
    let output = tokio::time::timeout(TOKEN_COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            failed(format!(
                "the token command from {origin} did not finish within {} s",
                TOKEN_COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| failed(format!("the token command from {origin} failed: {e}")))?;
    if !output.status.success() {
        let status = output
            .status
            .code()
            .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
        return Err(failed(format!(
            "the token command from {origin} exited with {status}"
        )));
    }
    let text = String::from_utf8(output.stdout).map_err(|_| {
        failed(format!(
            "the token command from {origin} printed non-UTF-8 output"
        ))
    })?;
    check_token(&text, &format!("the token command ({origin})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        move |k| map.get(k).map(|v| (*v).to_owned())
    }

    fn file() -> ConfigFile {
        parse_config(
            r#"
default_profile = "work"

[profiles.work]
url = "https://tollgate.example.com"
token_command = "idp-cli token"
output = "json"

[profiles.local]
url = "http://127.0.0.1:8080"
"#,
        )
        .unwrap()
    }

    fn token_origin(s: &Settings) -> String {
        match &s.token {
            TokenSource::Literal(t) => format!("literal:{}", t.expose_secret()),
            TokenSource::Command { command, origin } => format!("{origin}:{command}"),
            TokenSource::Missing => "missing".into(),
        }
    }

    #[test]
    fn the_default_profile_applies_when_nothing_else_is_set() {
        let f = file();
        let s = resolve(&Flags::default(), &env(&[]), Some(&f)).unwrap();
        assert_eq!(s.profile.as_deref(), Some("work"));
        assert_eq!(s.url.as_deref(), Some("https://tollgate.example.com"));
        assert_eq!(
            token_origin(&s),
            "the profile's token_command:idp-cli token"
        );
        assert_eq!(s.output, OutputFormat::Json);
    }

    #[test]
    fn environment_overrides_the_profile_and_flags_override_the_environment() {
        let f = file();
        let e = env(&[
            ("TOLLGATE_URL", "https://env.example.com"),
            ("TOLLGATE_TOKEN", "env-token"),
            ("TOLLGATE_OUTPUT", "table"),
        ]);
        let s = resolve(&Flags::default(), &e, Some(&f)).unwrap();
        assert_eq!(s.url.as_deref(), Some("https://env.example.com"));
        assert_eq!(token_origin(&s), "literal:env-token");
        assert_eq!(s.output, OutputFormat::Table);

        let flags = Flags {
            url: Some("https://flag.example.com".into()),
            token_command: Some("flag-cmd".into()),
            output: Some(OutputFormat::Json),
            ..Flags::default()
        };
        let s = resolve(&flags, &e, Some(&f)).unwrap();
        assert_eq!(s.url.as_deref(), Some("https://flag.example.com"));
        assert_eq!(token_origin(&s), "--token-command:flag-cmd");
        assert_eq!(s.output, OutputFormat::Json);
    }

    #[test]
    fn a_literal_token_beats_a_token_command_from_the_environment() {
        let s = resolve(
            &Flags::default(),
            &env(&[("TOLLGATE_TOKEN_COMMAND", "cmd"), ("TOLLGATE_TOKEN", "t")]),
            None,
        )
        .unwrap();
        assert_eq!(token_origin(&s), "literal:t");
        let s = resolve(
            &Flags::default(),
            &env(&[("TOLLGATE_TOKEN_COMMAND", "cmd"), ("TOLLGATE_TOKEN", "  ")]),
            None,
        )
        .unwrap();
        assert_eq!(token_origin(&s), "TOLLGATE_TOKEN_COMMAND:cmd");
    }

    #[test]
    fn the_profile_flag_beats_the_profile_variable_and_the_default() {
        let f = file();
        let e = env(&[("TOLLGATE_PROFILE", "work")]);
        let flags = Flags {
            profile: Some("local".into()),
            ..Flags::default()
        };
        let s = resolve(&flags, &e, Some(&f)).unwrap();
        assert_eq!(s.profile.as_deref(), Some("local"));
        assert_eq!(s.url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(token_origin(&s), "missing");
        assert_eq!(s.output, OutputFormat::Table);
        let s = resolve(&Flags::default(), &e, Some(&f)).unwrap();
        assert_eq!(s.profile.as_deref(), Some("work"));
    }

    #[test]
    fn an_unknown_profile_is_a_usage_error_listing_the_known_ones() {
        let f = file();
        let flags = Flags {
            profile: Some("prod".into()),
            ..Flags::default()
        };
        let err = resolve(&flags, &env(&[]), Some(&f)).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert_eq!(err.code, "unknown_profile");
        assert!(
            err.message.contains("known profiles: local, work"),
            "{}",
            err.message
        );
        let err = resolve(&flags, &env(&[]), None).unwrap_err();
        assert!(err.message.contains("no profiles are configured"));
    }

    #[test]
    fn a_bad_output_setting_names_where_it_came_from() {
        let err = resolve(
            &Flags::default(),
            &env(&[("TOLLGATE_OUTPUT", "yaml")]),
            None,
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_output");
        assert!(err.message.starts_with("TOLLGATE_OUTPUT `yaml`"));
    }

    #[test]
    fn config_files_with_unknown_keys_are_refused() {
        let err =
            parse_config("[profiles.a]\nurl = \"https://x\"\ntoken = \"secret\"\n").unwrap_err();
        assert!(err.contains("unknown field `token`"), "{err}");
    }

    #[test]
    fn the_config_path_follows_tollgate_config_then_xdg_then_home() {
        assert_eq!(
            config_path(&env(&[
                ("TOLLGATE_CONFIG", "/etc/tg.toml"),
                ("XDG_CONFIG_HOME", "/x"),
                ("HOME", "/h")
            ])),
            Some((PathBuf::from("/etc/tg.toml"), true))
        );
        assert_eq!(
            config_path(&env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some((PathBuf::from("/x/tollgate/config.toml"), false))
        );
        assert_eq!(
            config_path(&env(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/h")])),
            Some((PathBuf::from("/h/.config/tollgate/config.toml"), false))
        );
        assert_eq!(config_path(&env(&[])), None);
    }

    #[test]
    fn a_missing_default_config_file_is_fine_but_a_named_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.toml");
        assert_eq!(load_config(&path, false).unwrap(), None);
        assert_eq!(
            load_config(&path, true).unwrap_err().code,
            "config_unreadable"
        );
    }

    #[test]
    fn broker_urls_must_not_send_tokens_in_clear_text() {
        for ok in [
            "https://tollgate.example.com",
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:9000",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://tollgate.example.com",
            "http://10.0.0.1:8080",
            "ftp://127.0.0.1",
            "https://user:pw@tollgate.example.com",
            "https://tollgate.example.com/?x=1",
            "not a url",
        ] {
            let err = check_url(bad).unwrap_err();
            assert_eq!(err.code, "invalid_url", "{bad}");
            assert!(!err.message.contains("pw@"), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_token_command_supplies_the_token_and_its_failures_never_echo_output() {
        let s = resolve(
            &Flags {
                token_command: Some("printf 'abc.def.ghi\\n'".into()),
                ..Flags::default()
            },
            &env(&[]),
            None,
        )
        .unwrap();
        assert_eq!(s.token().await.unwrap().expose_secret(), "abc.def.ghi");

        let s = resolve(
            &Flags {
                token_command: Some("echo leaked-secret; exit 3".into()),
                ..Flags::default()
            },
            &env(&[]),
            None,
        )
        .unwrap();
        let err = s.token().await.unwrap_err();
        assert_eq!(err.exit, Exit::Unauthenticated);
        assert_eq!(err.code, "token_command_failed");
        assert!(err.message.contains("exited with status 3"));
        assert!(!err.message.contains("leaked-secret"));

        let s = resolve(
            &Flags {
                token_command: Some("echo 'two words'".into()),
                ..Flags::default()
            },
            &env(&[]),
            None,
        )
        .unwrap();
        let err = s.token().await.unwrap_err();
        assert_eq!(err.code, "invalid_token");
        assert!(!err.message.contains("two words"));
    }

    #[tokio::test]
    async fn no_token_at_all_is_unauthenticated_with_a_hint() {
        let s = resolve(&Flags::default(), &env(&[]), None).unwrap();
        let err = s.token().await.unwrap_err();
        assert_eq!(err.exit.code(), 7);
        assert!(err.hint.unwrap().contains("TOLLGATE_TOKEN"));
    }
}
