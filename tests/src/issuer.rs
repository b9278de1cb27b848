//! A small OpenID Connect issuer for tests: serves
//! `/.well-known/openid-configuration` and a JWKS of ES256 keys on
//! 127.0.0.1, mints tokens signed by those keys, rotates keys, and counts
//! how often each document was fetched (to see the functions' JWKS cache).

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The audience the test functions are configured with.
pub const AUDIENCE: &str = "tollgate";

struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl Key {
    fn generate(kid: &str) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("an ES256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("key");
        // Uncompressed point: 0x04 ‖ x ‖ y.
        let point = pair.public_key().as_ref().to_vec();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..65]),
            }),
        }
    }
}

#[derive(Default)]
struct Inner {
    issuer: String,
    published: Vec<Key>,
    discovery_fetches: u64,
    jwks_fetches: u64,
}

/// The running issuer; stops when dropped.
pub struct FakeIssuer {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeIssuer {
    /// Starts an issuer with one published key, `k1`.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/keys", get(jwks))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the issuer");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        {
            let mut i = inner.lock().expect("lock");
            i.issuer = format!("http://{addr}");
            i.published.push(Key::generate("k1"));
        }
        Self {
            addr,
            inner,
            server,
        }
    }

    /// `iss`, and the URL the discovery document is under.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes a new key `kid` (keeping the others), as a rotation does.
    pub fn rotate(&self, kid: &str) {
        self.inner
            .lock()
            .expect("lock")
            .published
            .push(Key::generate(kid));
    }

    /// How often the discovery document and the JWKS were fetched.
    pub fn fetches(&self) -> (u64, u64) {
        let i = self.inner.lock().expect("lock");
        (i.discovery_fetches, i.jwks_fetches)
    }

    /// A token with `claims` (plus `iss`, `aud`, `iat`, `exp` unless given)
    /// signed with published key `kid`.
    pub fn token(&self, kid: &str, claims: &Value) -> String {
        let i = self.inner.lock().expect("lock");
        let key = i
            .published
            .iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("no published key {kid}"));
        sign(key, &self.full_claims(claims))
    }

    /// A token signed by a key this issuer never published, under `kid`.
    pub fn forged_token(&self, kid: &str, claims: &Value) -> String {
        sign(&Key::generate(kid), &self.full_claims(claims))
    }

    fn full_claims(&self, claims: &Value) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut c = json!({"iss": self.issuer(), "aud": AUDIENCE, "iat": now, "exp": now + 600});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), claims.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign a token")
}

async fn discovery(State(inner): State<Arc<Mutex<Inner>>>) -> axum::Json<Value> {
    let mut i = inner.lock().expect("lock");
    i.discovery_fetches += 1;
    axum::Json(json!({
        "issuer": i.issuer,
        "jwks_uri": format!("{}/keys", i.issuer),
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(inner): State<Arc<Mutex<Inner>>>) -> axum::Json<Value> {
    let mut i = inner.lock().expect("lock");
    i.jwks_fetches += 1;
    let keys: Vec<Value> = i.published.iter().map(|k| k.jwk.clone()).collect();
    axum::Json(json!({ "keys": keys }))
}
