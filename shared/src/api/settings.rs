//! Secret settings, read once per cold start: webhook URLs, the webhook
//! signing secret and the pagination key. Deployed, they come from the
//! Secrets Manager secret named by `TOLLGATE_SETTINGS_SECRET_ARN`, a JSON
//! object `{"webhook_urls": [...], "webhook_signing_secret": "...",
//! "pagination_key": "..."}` (every field optional); locally from
//! `TOLLGATE_WEBHOOK_URLS` (comma-separated), `TOLLGATE_WEBHOOK_SECRET` and
//! `TOLLGATE_PAGINATION_KEY`. Nothing here is ever logged or printed.

use secrecy::SecretString;
use serde::Deserialize;

/// The secret settings. No `Debug` output shows a value.
#[derive(Clone, Default)]
pub struct Settings {
    /// Where notifications go.
    pub webhook_urls: Vec<SecretString>,
    /// Signs notifications (`X-Tollgate-Signature`).
    pub webhook_signing_secret: Option<SecretString>,
    /// Master key for pagination tokens; random per process when absent.
    pub pagination_key: Option<SecretString>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("webhook_urls", &self.webhook_urls.len())
            .field(
                "webhook_signing_secret",
                &self.webhook_signing_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "pagination_key",
                &self.pagination_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Secrets Manager could not be read.
    #[error("cannot read the settings secret: {0}")]
    Fetch(String),
    /// The secret is not the expected JSON (its content is never shown).
    #[error(
        "the settings secret is not a JSON object with `webhook_urls`, `webhook_signing_secret` and `pagination_key` ({0})"
    )]
    Shape(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretDoc {
    #[serde(default)]
    webhook_urls: Vec<String>,
    #[serde(default)]
    webhook_signing_secret: Option<String>,
    #[serde(default)]
    pagination_key: Option<String>,
}

impl Settings {
    /// From `TOLLGATE_WEBHOOK_URLS`, `TOLLGATE_WEBHOOK_SECRET` and
    /// `TOLLGATE_PAGINATION_KEY`.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        Self {
            webhook_urls: non_empty("TOLLGATE_WEBHOOK_URLS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(|u| SecretString::from(u.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            webhook_signing_secret: non_empty("TOLLGATE_WEBHOOK_SECRET").map(SecretString::from),
            pagination_key: non_empty("TOLLGATE_PAGINATION_KEY").map(SecretString::from),
        }
    }

    /// Parses the settings secret's JSON text.
    pub fn from_secret_json(text: &str) -> Result<Self, SettingsError> {
        let doc: SecretDoc = serde_json::from_str(text).map_err(|e| {
            // serde's message can quote values; keep only where it failed.
            SettingsError::Shape(format!("line {}, column {}", e.line(), e.column()))
        })?;
        Ok(Self {
            webhook_urls: doc
                .webhook_urls
                .into_iter()
                .filter(|u| !u.trim().is_empty())
                .map(SecretString::from)
                .collect(),
            webhook_signing_secret: doc
                .webhook_signing_secret
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            pagination_key: doc
                .pagination_key
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
        })
    }

    /// Reads the secret `arn` from Secrets Manager.
    pub async fn from_secrets_manager(
        client: &aws_sdk_secretsmanager::Client,
        arn: &str,
    ) -> Result<Self, SettingsError> {
        let out = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                SettingsError::Fetch(match e.meta().code() {
                    Some(code) => code.to_owned(),
                    None => "the request failed".to_owned(),
                })
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| SettingsError::Shape("it has no string value".into()))?;
        Self::from_secret_json(text)
    }

    /// The secret named by `TOLLGATE_SETTINGS_SECRET_ARN` when set,
    /// otherwise the environment.
    pub async fn load(sdk: &aws_config::SdkConfig) -> Result<Self, SettingsError> {
        match std::env::var("TOLLGATE_SETTINGS_SECRET_ARN") {
            Ok(arn) if !arn.is_empty() => {
                let client = aws_sdk_secretsmanager::Client::new(sdk);
                Self::from_secrets_manager(&client, &arn).await
            }
            _ => Ok(Self::from_env()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    #[test]
    fn the_environment_gives_webhooks_and_keys() {
        let env = HashMap::from([
            (
                "TOLLGATE_WEBHOOK_URLS",
                " https://a.example/x , ,http://127.0.0.1:9/y",
            ),
            ("TOLLGATE_WEBHOOK_SECRET", "s3cret"),
            ("TOLLGATE_PAGINATION_KEY", ""),
        ]);
        let s = Settings::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()));
        let urls: Vec<&str> = s.webhook_urls.iter().map(|u| u.expose_secret()).collect();
        assert_eq!(urls, ["https://a.example/x", "http://127.0.0.1:9/y"]);
        assert_eq!(
            s.webhook_signing_secret.as_ref().map(|x| x.expose_secret()),
            Some("s3cret")
        );
        assert!(s.pagination_key.is_none());
    }

    #[test]
    fn the_secret_json_is_strict_and_its_values_never_appear_in_errors_or_debug() {
        let s = Settings::from_secret_json(
            r#"{"webhook_urls":["https://hooks.example/T/B/XSECRET"],"webhook_signing_secret":"SIGNSECRET","pagination_key":"PAGESECRET"}"#,
        )
        .unwrap();
        assert_eq!(s.webhook_urls.len(), 1);
        let debug = format!("{s:?}");
        for secret in ["XSECRET", "SIGNSECRET", "PAGESECRET"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let e =
            Settings::from_secret_json(r#"{"webhook_urls":"https://x/SECRETPATH"}"#).unwrap_err();
        assert!(!e.to_string().contains("SECRETPATH"), "{e}");
        assert!(Settings::from_secret_json(r#"{"webhook_url":[]}"#).is_err());
        assert!(
            Settings::from_secret_json("{}")
                .unwrap()
                .webhook_urls
                .is_empty()
        );
    }
}
