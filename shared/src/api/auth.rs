//! Who is calling. Every process verifies the bearer token itself and takes
//! the claims from the verified token, never from anything else in the
//! request: deployed, against the issuer's JWKS, found through its OpenID
//! configuration ([`OidcVerifier`], in `oidc.rs`), so a direct invoke of a
//! function with forged authorizer claims gets nowhere; locally, with an
//! HS256 development secret or a JWKS file of RS256/ES256 keys
//! ([`TokenVerifier`]). Both end in [`identity_from_claims`], which refuses
//! an identity it cannot map faithfully.

mod oidc;
pub use oidc::{JWKS_REFRESH_COOLDOWN, OidcVerifier};

use crate::BrokerError;
use crate::config::Config;
use crate::domain::{Identity, Timestamp, UserId};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
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

/// Most groups an identity may have; a token with more is refused.
pub const MAX_GROUPS: usize = 100;
/// Longest group name or tag claim value, in characters.
pub const MAX_CLAIM_CHARS: usize = 256;

/// Builds an [`Identity`] from verified claims: `sub`, the configured groups
/// claim, the configured tag claims and `amr`. Groups and tags are taken
/// exactly as the token holds them (a group name may hold spaces); a claim
/// that cannot be mapped faithfully (a group that is not a string, empty,
/// over 256 characters or with control characters; more than 100 groups; a
/// tag claim that is not a single value) refuses the identity with a 401,
/// rather than drop or shorten what a `forbid` might name.
pub fn identity_from_claims(
    claims: &Map<String, Value>,
    config: &Config,
) -> Result<Identity, BrokerError> {
    let refuse =
        |why: String| BrokerError::Unauthenticated(format!("the token cannot be used: {why}"));
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
    let name = &config.groups_claim;
    let listed: Vec<&Value> = match claims.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::String(_)) => vec![one],
        Some(_) => {
            return Err(refuse(format!(
                "claim `{name}` must be a list of group names"
            )));
        }
    };
    let mut groups = Vec::with_capacity(listed.len());
    for (i, group) in listed.into_iter().enumerate() {
        let Value::String(group) = group else {
            return Err(refuse(format!(
                "group {} in claim `{name}` is not a string",
                i + 1
            )));
        };
        check_claim_value(group)
            .map_err(|why| refuse(format!("group {} in claim `{name}` {why}", i + 1)))?;
        groups.push(group.clone());
    }
    groups.sort();
    groups.dedup();
    if groups.len() > MAX_GROUPS {
        return Err(refuse(format!(
            "claim `{name}` lists {} groups; at most {MAX_GROUPS} are accepted",
            groups.len()
        )));
    }
    let mut tags = BTreeMap::new();
    for name in &config.tag_claims {
        let value = match claims.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => {
                return Err(refuse(format!("claim `{name}` is not a single value")));
            }
        };
        check_claim_value(&value).map_err(|why| refuse(format!("claim `{name}` {why}")))?;
        tags.insert(name.clone(), value);
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

/// `amr`: a JSON array of strings, or a single string. Anything else holds
/// no method (and so no MFA).
fn claim_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Why a group name or tag value cannot be used as it is.
fn check_claim_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    let n = s.chars().count();
    if n > MAX_CLAIM_CHARS {
        return Err(format!(
            "is {n} characters long; at most {MAX_CLAIM_CHARS} are accepted"
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("holds control characters".into());
    }
    Ok(())
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
    /// `TOLLGATE_JWT_AUDIENCE`: accepted audiences, comma-separated
    /// (default [`DEFAULT_AUDIENCE`]), matched against `aud`, or against
    /// `client_id` when a token has no `aud` (Cognito access tokens).
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
    /// A deployed function has no issuer or audience to verify tokens with.
    #[error(
        "TOLLGATE_JWT_ISSUER and TOLLGATE_JWT_AUDIENCE must be set: the function verifies every bearer token against the issuer's keys"
    )]
    NoIssuer,
    /// The issuer is not an https URL (http only on the loopback address).
    #[error("TOLLGATE_JWT_ISSUER `{0}` must be an https URL")]
    BadIssuer(String),
}

struct JwksKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The key among `keys` that a token with `header` names: same algorithm,
/// same `kid`; without a `kid`, only an unambiguous key.
fn select_key<'a>(keys: &'a [JwksKey], header: &Header) -> Option<&'a DecodingKey> {
    let candidates: Vec<&JwksKey> = keys
        .iter()
        .filter(|k| k.alg == header.alg)
        .filter(|k| match (&header.kid, &k.kid) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    match candidates.as_slice() {
        [one] => Some(&one.key),
        _ => None,
    }
}

/// What every verifier checks once it has the key: the signature with the
/// header's algorithm, `iss`, `exp`, `nbf` (with [`LEEWAY_SECONDS`]), `sub`
/// present, and `aud` (or, without one, `client_id`) among `audiences`.
fn decode_verified(
    token: &str,
    alg: Algorithm,
    key: &DecodingKey,
    issuer: &str,
    audiences: &[String],
) -> Result<Map<String, Value>, BrokerError> {
    let invalid = || BrokerError::Unauthenticated("the token is not valid".into());
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS;
    let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            tracing::info!(reason = ?e.kind(), "token refused");
            return Err(match e.kind() {
                ErrorKind::ExpiredSignature => {
                    BrokerError::Unauthenticated("the token has expired".into())
                }
                ErrorKind::ImmatureSignature => {
                    BrokerError::Unauthenticated("the token is not valid yet".into())
                }
                _ => invalid(),
            });
        }
    };
    let accepted = |v: &Value| v.as_str().is_some_and(|a| audiences.iter().any(|x| x == a));
    let audience_ok = match (claims.get("aud"), claims.get("client_id")) {
        (Some(Value::Array(auds)), _) => auds.iter().any(accepted),
        (Some(aud), _) => accepted(aud),
        (None, Some(client_id)) => accepted(client_id),
        (None, None) => false,
    };
    if !audience_ok {
        tracing::info!("token refused: audience not accepted");
        return Err(invalid());
    }
    Ok(claims)
}

/// Audiences from a comma-separated setting.
fn audiences(setting: Option<&str>) -> Vec<String> {
    setting
        .unwrap_or(DEFAULT_AUDIENCE)
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Verifies bearer tokens locally: signature, `iss`, `aud`, `exp`, `nbf`.
/// HS256 only with the development secret; RS256 and ES256 only with keys
/// from the JWKS file, so a public key can never be used as an HMAC secret.
pub struct TokenVerifier {
    dev_key: Option<DecodingKey>,
    jwks: Vec<JwksKey>,
    issuer: String,
    audiences: Vec<String>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("dev_secret", &self.dev_key.as_ref().map(|_| "[redacted]"))
            .field("jwks_keys", &self.jwks.len())
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
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
            audiences: audiences(settings.audience.as_deref()),
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
            Algorithm::RS256 | Algorithm::ES256 => select_key(&self.jwks, &header),
            _ => None,
        }
        .ok_or_else(invalid)?;
        decode_verified(token, header.alg, key, &self.issuer, &self.audiences)
    }
}

fn load_jwks(path: &Path) -> Result<Vec<JwksKey>, VerifierError> {
    let text = std::fs::read_to_string(path).map_err(|source| VerifierError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_jwks(&text, true).map_err(|message| VerifierError::Jwks {
        path: path.to_owned(),
        message,
    })
}

/// The RS256 and ES256 keys of a JWKS document. `strict`: any other key is
/// an error (a file the operator wrote); otherwise other keys (encryption
/// keys, other algorithms, as an identity provider may publish) are skipped.
fn parse_jwks(text: &str, strict: bool) -> Result<Vec<JwksKey>, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm, PublicKeyUse};
    let set: JwkSet = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            _ if !strict && jwk.common.public_key_use == Some(PublicKeyUse::Encryption) => {
                continue;
            }
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(_), None | Some(KeyAlgorithm::ES256)) => {
                Algorithm::ES256
            }
            _ if !strict => continue,
            _ => return Err(format!("key {i} is not an RS256 or ES256 public key")),
        };
        let key = match DecodingKey::from_jwk(jwk) {
            Ok(key) => key,
            Err(_) if !strict => continue,
            Err(e) => return Err(format!("key {i}: {e}")),
        };
        keys.push(JwksKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err("it has no RS256 or ES256 keys".into());
    }
    Ok(keys)
}

/// How a process learns who is calling.
#[derive(Clone, Debug)]
pub enum Authenticator {
    /// A deployed function: verify the bearer token against the issuer's
    /// JWKS. API Gateway's authorizer claims are never read.
    Oidc(Arc<OidcVerifier>),
    /// The local server: verify the bearer token here.
    Local(Arc<TokenVerifier>),
    /// A process with no HTTP routes (`expiry`): nobody is authenticated.
    Nobody,
}

impl Authenticator {
    /// The caller's identity from a request's `Authorization` header.
    pub async fn authenticate(
        &self,
        parts: &http::request::Parts,
        config: &Config,
    ) -> Result<Identity, BrokerError> {
        let claims = match self {
            Self::Oidc(verifier) => {
                let token = bearer_token(parts.headers.get(http::header::AUTHORIZATION))?;
                verifier.verify(token).await?
            }
            Self::Local(verifier) => {
                let token = bearer_token(parts.headers.get(http::header::AUTHORIZATION))?;
                verifier.verify(token)?
            }
            Self::Nobody => {
                return Err(BrokerError::Unauthenticated(
                    "this function authenticates nobody".into(),
                ));
            }
        };
        identity_from_claims(&claims, config)
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
