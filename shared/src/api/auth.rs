//! Who is calling. Deployed, API Gateway's JWT authorizer has verified the
//! token and the claims arrive in the request context (array claims
//! flattened to strings like `[developers sre]`); locally, the server
//! verifies the bearer token itself (an HS256 development secret or a JWKS
//! file of RS256/ES256 keys). Both paths end in the same
//! [`identity_from_claims`].

use crate::BrokerError;
use crate::config::Config;
use crate::domain::{Identity, Timestamp, UserId};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tokens longer than this are refused before they are parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// `amr` values that count as multi-factor authentication (RFC 8176).
pub const MFA_METHODS: &[&str] = &["mfa", "otp", "hwk", "swk", "sms", "fpt", "face"];
/// Issuer expected (and minted by `tollgate dev token`) when none is configured.
pub const DEFAULT_ISSUER: &str = "tollgate-local";
/// Audience expected (and minted) when none is configured.
pub const DEFAULT_AUDIENCE: &str = "tollgate";
/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

const MAX_GROUPS: usize = 100;
const MAX_CLAIM_CHARS: usize = 256;

/// Builds an [`Identity`] from verified claims: `sub`, the configured groups
/// claim, the configured tag claims and `amr`.
pub fn identity_from_claims(
    claims: &Map<String, Value>,
    config: &Config,
) -> Result<Identity, BrokerError> {
    let sub = match claims.get("sub") {
        Some(Value::String(s)) => UserId::parse(s).map_err(|_| {
            BrokerError::Unauthenticated("the token's subject is not usable".into())
        })?,
        _ => {
            return Err(BrokerError::Unauthenticated(
                "the token has no subject".into(),
            ));
        }
    };
    let mut groups: Vec<String> = claims
        .get(&config.groups_claim)
        .map(claim_list)
        .unwrap_or_default()
        .into_iter()
        .filter(|g| is_clean(g))
        .collect();
    groups.sort();
    groups.dedup();
    groups.truncate(MAX_GROUPS);
    let mut tags = BTreeMap::new();
    for name in &config.tag_claims {
        let value = match claims.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        if is_clean(&value) {
            tags.insert(name.clone(), value);
        } else {
            tracing::warn!(claim = %name, "ignoring a tag claim with control characters or over 256 characters");
        }
    }
    let mfa = claims
        .get("amr")
        .map(claim_list)
        .unwrap_or_default()
        .iter()
        .any(|m| MFA_METHODS.contains(&m.as_str()));
    Ok(Identity {
        sub,
        groups,
        tags,
        mfa,
    })
}

/// Builds an [`Identity`] from API Gateway HTTP API JWT authorizer claims,
/// which arrive as strings (arrays flattened to `[a b c]`).
pub fn identity_from_apigw_claims(
    claims: &HashMap<String, String>,
    config: &Config,
) -> Result<Identity, BrokerError> {
    let map: Map<String, Value> = claims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    identity_from_claims(&map, config)
}

/// A claim that may hold several values: a JSON array of strings, API
/// Gateway's flattened `[a b c]`, or a single string.
fn claim_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(s) => {
            let s = s.trim();
            if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                // A JSON array that was passed through as text, or API Gateway's flattening.
                if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(s) {
                    return claim_list(&Value::Array(items));
                }
                inner.split_whitespace().map(str::to_owned).collect()
            } else if s.is_empty() {
                Vec::new()
            } else {
                vec![s.to_owned()]
            }
        }
        _ => Vec::new(),
    }
}

fn is_clean(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_CLAIM_CHARS && !s.chars().any(char::is_control)
}

/// The bearer token from an `Authorization` header value.
pub fn bearer_token(header: Option<&http::HeaderValue>) -> Result<&str, BrokerError> {
    let Some(value) = header else {
        return Err(BrokerError::Unauthenticated(
            "missing bearer token in the `Authorization` header".into(),
        ));
    };
    if value.len() > MAX_TOKEN_BYTES + 7 {
        return Err(BrokerError::Unauthenticated(
            "the token is too large".into(),
        ));
    }
    let text = value.to_str().map_err(|_| {
        BrokerError::Unauthenticated("the `Authorization` header is not text".into())
    })?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(BrokerError::Unauthenticated(
            "the `Authorization` header must be `Bearer <token>`".into(),
        ));
    }
    Ok(token)
}

/// Where the local verifier's keys and expectations come from.
#[derive(Clone, Default)]
pub struct VerifierSettings {
    /// `TOLLGATE_DEV_SECRET`: an HS256 secret for development tokens.
    pub dev_secret: Option<SecretString>,
    /// `TOLLGATE_JWKS_FILE`: a JWKS document with RS256/ES256 public keys.
    pub jwks_file: Option<PathBuf>,
    /// `TOLLGATE_JWT_ISSUER` (default [`DEFAULT_ISSUER`]).
    pub issuer: Option<String>,
    /// `TOLLGATE_JWT_AUDIENCE` (default [`DEFAULT_AUDIENCE`]).
    pub audience: Option<String>,
}

impl VerifierSettings {
    /// Reads the `TOLLGATE_*` variables above from the environment.
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            dev_secret: get("TOLLGATE_DEV_SECRET").map(SecretString::from),
            jwks_file: get("TOLLGATE_JWKS_FILE").map(PathBuf::from),
            issuer: get("TOLLGATE_JWT_ISSUER"),
            audience: get("TOLLGATE_JWT_AUDIENCE"),
        }
    }
}

/// Why the local verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// Neither a development secret nor a JWKS file.
    #[error("no way to verify tokens: set TOLLGATE_DEV_SECRET (development) or TOLLGATE_JWKS_FILE")]
    NoKeys,
    /// The JWKS file could not be read.
    #[error("cannot read the JWKS file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The JWKS file is not usable.
    #[error("the JWKS file {path} is not usable: {message}")]
    Jwks {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

struct JwksKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens locally: signature, `iss`, `aud`, `exp`, `nbf`.
/// HS256 only with the development secret; RS256 and ES256 only with keys
/// from the JWKS file, so a public key can never be used as an HMAC secret.
pub struct TokenVerifier {
    dev_key: Option<DecodingKey>,
    jwks: Vec<JwksKey>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("dev_secret", &self.dev_key.as_ref().map(|_| "[redacted]"))
            .field("jwks_keys", &self.jwks.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl TokenVerifier {
    /// Builds a verifier; at least one of the secret and the JWKS file is needed.
    pub fn new(settings: &VerifierSettings) -> Result<Self, VerifierError> {
        let dev_key = settings.dev_secret.as_ref().map(|s| {
            if s.expose_secret().len() < 16 {
                tracing::warn!(
                    "TOLLGATE_DEV_SECRET is shorter than 16 bytes; use it for development only"
                );
            }
            DecodingKey::from_secret(s.expose_secret().as_bytes())
        });
        let jwks = match &settings.jwks_file {
            Some(path) => load_jwks(path)?,
            None => Vec::new(),
        };
        if dev_key.is_none() && jwks.is_empty() {
            return Err(VerifierError::NoKeys);
        }
        Ok(Self {
            dev_key,
            jwks,
            issuer: settings
                .issuer
                .clone()
                .unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
            audience: settings
                .audience
                .clone()
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
        })
    }

    /// Verifies `token` at the current time and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, BrokerError> {
        let invalid = || BrokerError::Unauthenticated("the token is not valid".into());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(BrokerError::Unauthenticated(
                "the token is too large".into(),
            ));
        }
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no `none`.
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let key = match header.alg {
            Algorithm::HS256 => self.dev_key.as_ref(),
            Algorithm::RS256 | Algorithm::ES256 => self.jwks_key(&header),
            _ => None,
        }
        .ok_or_else(invalid)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                tracing::info!(reason = ?e.kind(), "token refused");
                Err(match e.kind() {
                    ErrorKind::ExpiredSignature => {
                        BrokerError::Unauthenticated("the token has expired".into())
                    }
                    ErrorKind::ImmatureSignature => {
                        BrokerError::Unauthenticated("the token is not valid yet".into())
                    }
                    _ => invalid(),
                })
            }
        }
    }

    fn jwks_key(&self, header: &Header) -> Option<&DecodingKey> {
        let candidates: Vec<&JwksKey> = self
            .jwks
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        // Without a `kid`, only an unambiguous key is used.
        match candidates.as_slice() {
            [one] => Some(&one.key),
            _ => None,
        }
    }
}

fn load_jwks(path: &Path) -> Result<Vec<JwksKey>, VerifierError> {
    let bad = |message: String| VerifierError::Jwks {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| VerifierError::Read {
        path: path.to_owned(),
        source,
    })?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm};
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(_), None | Some(KeyAlgorithm::ES256)) => {
                Algorithm::ES256
            }
            _ => {
                return Err(bad(format!("key {i} is not an RS256 or ES256 public key")));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("key {i}: {e}")))?;
        keys.push(JwksKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err(bad("it has no keys".into()));
    }
    Ok(keys)
}

/// How a deployment learns who is calling.
#[derive(Clone, Debug)]
pub enum Authenticator {
    /// Behind API Gateway's JWT authorizer: trust the claims in the request
    /// context, and nothing else (an `Authorization` header alone is refused).
    ApiGateway,
    /// The local server: verify the bearer token here.
    Local(Arc<TokenVerifier>),
}

impl Authenticator {
    /// The caller's identity from a request's headers and extensions.
    pub fn authenticate(
        &self,
        parts: &http::request::Parts,
        config: &Config,
    ) -> Result<Identity, BrokerError> {
        match self {
            Self::ApiGateway => {
                let claims = apigw_claims(&parts.extensions).ok_or_else(|| {
                    BrokerError::Unauthenticated("the request carries no verified claims".into())
                })?;
                identity_from_apigw_claims(claims, config)
            }
            Self::Local(verifier) => {
                let token = bearer_token(parts.headers.get(http::header::AUTHORIZATION))?;
                let claims = verifier.verify(token)?;
                identity_from_claims(&claims, config)
            }
        }
    }
}

/// The JWT authorizer's claims from an API Gateway v2 request context.
fn apigw_claims(ext: &http::Extensions) -> Option<&HashMap<String, String>> {
    use lambda_http::request::RequestContext;
    match ext.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => {
            ctx.authorizer.as_ref()?.jwt.as_ref().map(|jwt| &jwt.claims)
        }
        // Other event sources are not enabled today; they carry no JWT claims.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// What a development token says about its holder.
#[derive(Debug, Clone, Default)]
pub struct DevTokenSpec {
    /// Subject.
    pub sub: String,
    /// Groups, put in the `groups` claim.
    pub groups: Vec<String>,
    /// Further claims (department, ...), as top-level string claims.
    pub claims: BTreeMap<String, String>,
    /// Whether `amr` shows MFA.
    pub mfa: bool,
    /// Lifetime in seconds.
    pub ttl_seconds: i64,
    /// `iss` (default [`DEFAULT_ISSUER`]).
    pub issuer: Option<String>,
    /// `aud` (default [`DEFAULT_AUDIENCE`]).
    pub audience: Option<String>,
}

/// Mints an HS256 development token that [`TokenVerifier`] accepts when
/// configured with the same secret. For `tollgate dev token` and tests only.
pub fn mint_dev_token(
    secret: &SecretString,
    spec: &DevTokenSpec,
    now: Timestamp,
) -> Result<String, BrokerError> {
    let mut claims = Map::new();
    for (k, v) in &spec.claims {
        claims.insert(k.clone(), Value::String(v.clone()));
    }
    let iat = now.unix();
    let fixed = [
        ("sub", Value::String(spec.sub.clone())),
        (
            "iss",
            Value::String(spec.issuer.clone().unwrap_or_else(|| DEFAULT_ISSUER.into())),
        ),
        (
            "aud",
            Value::String(
                spec.audience
                    .clone()
                    .unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
            ),
        ),
        ("iat", Value::from(iat)),
        ("nbf", Value::from(iat)),
        ("exp", Value::from(iat.saturating_add(spec.ttl_seconds))),
        (
            "groups",
            Value::Array(spec.groups.iter().cloned().map(Value::String).collect()),
        ),
        (
            "amr",
            Value::Array(if spec.mfa {
                vec!["pwd".into(), "mfa".into()]
            } else {
                vec!["pwd".into()]
            }),
        ),
    ];
    for (k, v) in fixed {
        claims.insert(k.to_owned(), v);
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map_err(|e| BrokerError::Internal {
        detail: format!("minting a development token failed: {e}"),
    })
}

#[cfg(test)]
mod tests;
