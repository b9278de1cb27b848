//! Token verification in the deployed functions: the issuer's signing keys
//! come from its OpenID configuration (`<issuer>/.well-known/openid-configuration`
//! names `jwks_uri`), fetched on first use and cached for the life of the
//! process (one cold start). A token signed with a key the cache does not
//! hold makes one refresh (the issuer may have rotated its keys), at most
//! once every [`JWKS_REFRESH_COOLDOWN`], so a stream of tokens with made-up
//! key ids cannot make the function hammer the issuer.

use super::{
    JwksKey, MAX_TOKEN_BYTES, VerifierError, VerifierSettings, audiences, decode_verified,
    parse_jwks, select_key,
};
use crate::BrokerError;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Least time between two refreshes caused by an unknown key id.
pub const JWKS_REFRESH_COOLDOWN: Duration = Duration::from_secs(10);
/// Least time between two failed first fetches (the issuer is down).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Time allowed for each fetch from the issuer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest discovery or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Cache {
    keys: Arc<Vec<JwksKey>>,
    fetched: bool,
    last_attempt: Option<Instant>,
    last_unknown_kid_refresh: Option<Instant>,
}

/// Verifies bearer tokens against the issuer's published keys: RS256 or
/// ES256 only, then `iss`, `aud` (or `client_id`), `exp`, `nbf`, as the
/// local verifier does.
pub struct OidcVerifier {
    issuer: String,
    audiences: Vec<String>,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Cache>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

/// Whether `url` may be fetched: https, or http to the loopback address
/// (a local issuer in tests and development).
fn fetchable(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" => u.host().is_some(),
        Ok(u) if u.scheme() == "http" => {
            let host = u.host_str().unwrap_or("");
            host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

impl OidcVerifier {
    /// A verifier for `TOLLGATE_JWT_ISSUER` and `TOLLGATE_JWT_AUDIENCE`,
    /// both required. Nothing is fetched until the first token.
    pub fn new(settings: &VerifierSettings) -> Result<Self, VerifierError> {
        let (Some(issuer), Some(_)) = (&settings.issuer, &settings.audience) else {
            return Err(VerifierError::NoIssuer);
        };
        if !fetchable(issuer) {
            return Err(VerifierError::BadIssuer(issuer.clone()));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| VerifierError::BadIssuer(format!("{issuer}: {e}")))?;
        Ok(Self {
            issuer: issuer.clone(),
            audiences: audiences(settings.audience.as_deref()),
            http,
            cache: tokio::sync::Mutex::new(Cache::default()),
        })
    }

    /// Verifies `token` at the current time and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, BrokerError> {
        let invalid = || BrokerError::Unauthenticated("the token is not valid".into());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(BrokerError::Unauthenticated(
                "the token is too large".into(),
            ));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        // INVARIANT: only the issuer's asymmetric keys; never HS256 (a public
        // key must not become an HMAC secret), never `none`.
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid());
        }
        let keys = self.keys_for(&header).await?;
        let key = select_key(&keys, &header).ok_or_else(|| {
            tracing::info!(kid = ?header.kid, "token refused: signing key unknown to the issuer");
            invalid()
        })?;
        decode_verified(token, header.alg, key, &self.issuer, &self.audiences)
    }

    /// The cached keys, fetched first if there are none yet, refreshed once
    /// (rate-limited) when none matches `header`.
    async fn keys_for(
        &self,
        header: &jsonwebtoken::Header,
    ) -> Result<Arc<Vec<JwksKey>>, BrokerError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if !cache.fetched {
            if cache
                .last_attempt
                .is_some_and(|t| now.duration_since(t) < RETRY_AFTER_FAILURE)
            {
                return Err(issuer_unavailable(None));
            }
            cache.last_attempt = Some(now);
            cache.keys = Arc::new(self.fetch().await?);
            cache.fetched = true;
            return Ok(cache.keys.clone());
        }
        let known = select_key(&cache.keys, header).is_some();
        let may_refresh = cache
            .last_unknown_kid_refresh
            .is_none_or(|t| now.duration_since(t) >= JWKS_REFRESH_COOLDOWN);
        if !known && may_refresh {
            cache.last_unknown_kid_refresh = Some(now);
            match self.fetch().await {
                Ok(keys) => cache.keys = Arc::new(keys),
                // Keep the keys we have; this token stays refused.
                Err(e) => tracing::warn!(error = %e, "refreshing the issuer's keys failed"),
            }
        }
        Ok(cache.keys.clone())
    }

    /// The discovery document, then the JWKS it names.
    async fn fetch(&self) -> Result<Vec<JwksKey>, BrokerError> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc: Value = serde_json::from_slice(&self.get(&discovery_url).await?)
            .map_err(|e| issuer_unavailable(Some(format!("discovery document: {e}"))))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(issuer_unavailable(Some(
                "the discovery document names another issuer".into(),
            )));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|u| fetchable(u))
            .ok_or_else(|| issuer_unavailable(Some("no usable jwks_uri".into())))?;
        let body = self.get(jwks_uri).await?;
        let text = String::from_utf8(body)
            .map_err(|_| issuer_unavailable(Some("the JWKS is not text".into())))?;
        let keys =
            parse_jwks(&text, false).map_err(|e| issuer_unavailable(Some(format!("JWKS: {e}"))))?;
        tracing::info!(keys = keys.len(), "fetched the issuer's signing keys");
        Ok(keys)
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, BrokerError> {
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| issuer_unavailable(Some(format!("{url}: {e}"))))?;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| issuer_unavailable(Some(format!("{url}: {e}"))))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(issuer_unavailable(Some(format!("{url}: too large"))));
            }
        }
        Ok(body)
    }
}

/// 503: without the issuer's keys no token can be checked.
fn issuer_unavailable(detail: Option<String>) -> BrokerError {
    if let Some(d) = &detail {
        tracing::warn!(detail = %d, "the identity provider's keys could not be fetched");
    }
    BrokerError::Unavailable {
        message: "the identity provider's signing keys could not be fetched; retry shortly".into(),
        source: detail.map(Box::<dyn std::error::Error + Send + Sync>::from),
    }
}
