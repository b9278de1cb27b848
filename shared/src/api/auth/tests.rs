use super::*;
use serde_json::json;

fn config() -> Config {
    Config::default()
}

fn secret() -> SecretString {
    SecretString::from("a-development-secret-of-some-length")
}

fn spec(sub: &str) -> DevTokenSpec {
    DevTokenSpec {
        sub: sub.into(),
        groups: vec!["developers".into()],
        claims: BTreeMap::from([("department".into(), "data".into())]),
        mfa: true,
        ttl_seconds: 600,
        ..DevTokenSpec::default()
    }
}

fn dev_verifier() -> TokenVerifier {
    TokenVerifier::new(&VerifierSettings {
        dev_secret: Some(secret()),
        ..VerifierSettings::default()
    })
    .unwrap()
}

fn unauthenticated(r: Result<Map<String, Value>, BrokerError>) -> String {
    match r {
        Err(BrokerError::Unauthenticated(m)) => m,
        other => panic!("expected 401, got {other:?}"),
    }
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn groups_are_taken_exactly_as_the_token_holds_them() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!(["Data Engineers", "not admins"]),
            vec!["Data Engineers", "not admins"],
        ),
        (json!("sre"), vec!["sre"]),
        (json!("[developers sre]"), vec!["[developers sre]"]),
        (json!(["sre", "sre", "oncall"]), vec!["oncall", "sre"]),
        (json!([]), vec![]),
        (json!(null), vec![]),
    ];
    for (groups, want) in cases {
        let claims = json!({"sub": "alice", "groups": groups});
        let id = identity_from_claims(claims.as_object().unwrap(), &config()).unwrap();
        assert_eq!(id.groups, want, "{groups}");
    }
    let long = "x".repeat(256);
    let claims = json!({"sub": "alice", "groups": [long]});
    let id = identity_from_claims(claims.as_object().unwrap(), &config()).unwrap();
    assert_eq!(id.groups, vec![long]);
    let hundred: Vec<String> = (0..100).map(|i| format!("g{i}")).collect();
    let claims = json!({"sub": "alice", "groups": hundred});
    assert_eq!(
        identity_from_claims(claims.as_object().unwrap(), &config())
            .unwrap()
            .groups
            .len(),
        100
    );
}

#[test]
fn an_identity_that_cannot_be_mapped_faithfully_is_refused_not_shortened() {
    let many: Vec<String> = (0..101).map(|i| format!("g{i}")).collect();
    let cases = [
        (json!({"groups": many}), "lists 101 groups; at most 100"),
        (
            json!({"groups": ["ok", "x".repeat(257)]}),
            "group 2 in claim `groups` is 257 characters",
        ),
        (
            json!({"groups": [42]}),
            "group 1 in claim `groups` is not a string",
        ),
        (
            json!({"groups": ["sre", true]}),
            "group 2 in claim `groups` is not a string",
        ),
        (
            json!({"groups": ["sre", ""]}),
            "group 2 in claim `groups` is empty",
        ),
        (json!({"groups": ["line\nbreak"]}), "control characters"),
        (json!({"groups": 7}), "claim `groups` must be a list"),
        (json!({"groups": {"a": 1}}), "claim `groups` must be a list"),
        (
            json!({"department": ["a", "b"]}),
            "claim `department` is not a single value",
        ),
        (
            json!({"department": "x".repeat(300)}),
            "claim `department` is 300 characters",
        ),
        (
            json!({"clearance": "top\u{7}"}),
            "claim `clearance` holds control characters",
        ),
    ];
    for (extra, want) in cases {
        let mut claims = json!({"sub": "alice"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        match identity_from_claims(claims.as_object().unwrap(), &config()) {
            Err(BrokerError::Unauthenticated(m)) => {
                assert!(m.contains(want), "{extra}: {m}");
                assert!(m.starts_with("the token cannot be used"), "{m}");
            }
            other => panic!("{extra}: expected a 401, got {other:?}"),
        }
    }
}

#[test]
fn the_configured_groups_claim_and_tag_claims_are_used() {
    let cfg = Config {
        groups_claim: "cognito:groups".into(),
        tag_claims: vec!["team".into(), "level".into(), "absent".into()],
        ..Config::default()
    };
    let claims = json!({
        "sub": "carol",
        "groups": ["ignored"],
        "cognito:groups": ["sre", "sre", "oncall"],
        "team": "payments",
        "level": 3,
        "department": "not configured",
    });
    let id = identity_from_claims(claims.as_object().unwrap(), &cfg).unwrap();
    assert_eq!(id.groups, vec!["oncall", "sre"]);
    assert_eq!(
        id.tags,
        BTreeMap::from([
            ("level".to_string(), "3".to_string()),
            ("team".to_string(), "payments".to_string())
        ])
    );
    assert!(!id.mfa);
}

#[test]
fn mfa_is_read_from_every_multi_factor_amr_value_and_only_those() {
    let cases = [
        (json!(["mfa"]), true),
        (json!(["pwd", "otp"]), true),
        (json!(["hwk"]), true),
        (json!(["swk"]), true),
        (json!(["sms"]), true),
        (json!(["fpt"]), true),
        (json!(["face"]), true),
        (json!("mfa"), true),
        (json!(["pwd"]), false),
        (json!(["kba", "pin"]), false),
        (json!("MFA"), false),
        (json!(1), false),
        (json!([]), false),
    ];
    for (amr, want) in cases {
        let claims = json!({"sub": "dave", "amr": amr});
        let id = identity_from_claims(claims.as_object().unwrap(), &config()).unwrap();
        assert_eq!(id.mfa, want, "{amr}");
    }
}

#[test]
fn a_missing_or_unusable_subject_is_unauthenticated() {
    for claims in [
        json!({}),
        json!({"sub": 5}),
        json!({"sub": "a#b"}),
        json!({"sub": ""}),
    ] {
        let e = identity_from_claims(claims.as_object().unwrap(), &config()).unwrap_err();
        assert_eq!(e.status(), 401, "{claims}");
    }
}

#[test]
fn a_dev_token_round_trips_through_the_verifier() {
    let token = mint_dev_token(&secret(), &spec("alice"), Timestamp::now()).unwrap();
    let claims = dev_verifier().verify(&token).unwrap();
    let id = identity_from_claims(&claims, &config()).unwrap();
    assert_eq!(id.sub.as_str(), "alice");
    assert_eq!(id.groups, vec!["developers"]);
    assert!(id.mfa);
    assert_eq!(id.tags.get("department").map(String::as_str), Some("data"));
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    let old = Timestamp::now().plus(-3600);
    let token = mint_dev_token(&secret(), &spec("alice"), old).unwrap();
    assert_eq!(
        unauthenticated(dev_verifier().verify(&token)),
        "the token has expired"
    );
    let future = Timestamp::now().plus(600);
    let token = mint_dev_token(&secret(), &spec("alice"), future).unwrap();
    assert_eq!(
        unauthenticated(dev_verifier().verify(&token)),
        "the token is not valid yet"
    );
}

#[test]
fn wrong_issuer_audience_or_secret_is_refused() {
    let now = Timestamp::now();
    let mut s = spec("alice");
    s.issuer = Some("someone-else".into());
    let token = mint_dev_token(&secret(), &s, now).unwrap();
    unauthenticated(dev_verifier().verify(&token));
    let mut s = spec("alice");
    s.audience = Some("another-app".into());
    let token = mint_dev_token(&secret(), &s, now).unwrap();
    unauthenticated(dev_verifier().verify(&token));
    let token = mint_dev_token(
        &SecretString::from("not-the-configured-secret-at-all"),
        &spec("alice"),
        now,
    )
    .unwrap();
    unauthenticated(dev_verifier().verify(&token));
}

#[test]
fn alg_none_and_tampered_payloads_are_refused() {
    let now = Timestamp::now().unix();
    let claims = json!({"sub": "mallory", "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE,
        "exp": now + 600, "groups": ["sre"], "amr": ["mfa"]});
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims)
        );
        unauthenticated(dev_verifier().verify(&token));
    }
    let good = mint_dev_token(&secret(), &spec("alice"), Timestamp::now()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    unauthenticated(dev_verifier().verify(&forged));
    unauthenticated(dev_verifier().verify("not.a.token"));
    unauthenticated(dev_verifier().verify(""));
}

#[test]
fn tokens_over_eight_kibibytes_are_refused_before_parsing() {
    let mut s = spec("alice");
    s.claims
        .insert("padding".into(), "x".repeat(MAX_TOKEN_BYTES));
    let token = mint_dev_token(&secret(), &s, Timestamp::now()).unwrap();
    assert_eq!(
        unauthenticated(dev_verifier().verify(&token)),
        "the token is too large"
    );
}

#[test]
fn the_bearer_scheme_is_required() {
    let ok = http::HeaderValue::from_static("Bearer abc.def.ghi");
    assert_eq!(bearer_token(Some(&ok)).unwrap(), "abc.def.ghi");
    let lower = http::HeaderValue::from_static("bearer abc");
    assert_eq!(bearer_token(Some(&lower)).unwrap(), "abc");
    for bad in ["Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "abc.def.ghi"] {
        let v = http::HeaderValue::from_str(bad).unwrap();
        assert_eq!(bearer_token(Some(&v)).unwrap_err().status(), 401, "{bad}");
    }
    assert_eq!(bearer_token(None).unwrap_err().status(), 401);
}

#[test]
fn a_verifier_needs_a_secret_or_keys() {
    assert!(matches!(
        TokenVerifier::new(&VerifierSettings::default()),
        Err(VerifierError::NoKeys)
    ));
}

/// A key pair made by the system's `openssl`, as a PEM private key.
fn openssl_key(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(["genpkey"])
        .args(args)
        .output()
        .expect("openssl is needed to generate test keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct JwksFixture {
    _dir: tempfile::TempDir,
    verifier: TokenVerifier,
    rsa: EncodingKey,
    ec: EncodingKey,
    rsa_pem: Vec<u8>,
}

fn jwks_fixture() -> JwksFixture {
    let rsa_pem = openssl_key(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let ec_pem = openssl_key(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let rsa = EncodingKey::from_rsa_pem(&rsa_pem).unwrap();
    let ec = EncodingKey::from_ec_pem(&ec_pem).unwrap();
    let mut rsa_jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
    rsa_jwk.common.key_id = Some("rsa-1".into());
    let mut ec_jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap();
    ec_jwk.common.key_id = Some("ec-1".into());
    let set = JwkSet {
        keys: vec![rsa_jwk, ec_jwk],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&set).unwrap()).unwrap();
    let verifier = TokenVerifier::new(&VerifierSettings {
        jwks_file: Some(path),
        issuer: Some("https://idp.example.com/".into()),
        audience: Some("tollgate-api".into()),
        ..VerifierSettings::default()
    })
    .unwrap();
    JwksFixture {
        _dir: dir,
        verifier,
        rsa,
        ec,
        rsa_pem,
    }
}

fn idp_claims(exp_in: i64) -> Value {
    let now = Timestamp::now().unix();
    json!({"sub": "erin", "iss": "https://idp.example.com/", "aud": "tollgate-api",
        "exp": now + exp_in, "nbf": now - 10, "groups": ["sre"], "amr": ["hwk"]})
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

#[test]
fn rs256_and_es256_tokens_verify_against_the_jwks_file() {
    let f = jwks_fixture();
    let rs = sign(Algorithm::RS256, Some("rsa-1"), &idp_claims(600), &f.rsa);
    let claims = f.verifier.verify(&rs).unwrap();
    assert_eq!(claims["sub"], "erin");
    let es = sign(Algorithm::ES256, Some("ec-1"), &idp_claims(600), &f.ec);
    let id = identity_from_claims(&f.verifier.verify(&es).unwrap(), &config()).unwrap();
    assert!(id.mfa);
    // One key per algorithm, so a token without `kid` still finds its key.
    let no_kid = sign(Algorithm::ES256, None, &idp_claims(600), &f.ec);
    assert!(f.verifier.verify(&no_kid).is_ok());
}

#[test]
fn jwks_tokens_with_wrong_keys_kids_or_claims_are_refused() {
    let f = jwks_fixture();
    let other = EncodingKey::from_rsa_pem(&openssl_key(&[
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]))
    .unwrap();
    let wrong_key = sign(Algorithm::RS256, Some("rsa-1"), &idp_claims(600), &other);
    unauthenticated(f.verifier.verify(&wrong_key));
    let unknown_kid = sign(Algorithm::RS256, Some("rsa-2"), &idp_claims(600), &f.rsa);
    unauthenticated(f.verifier.verify(&unknown_kid));
    let expired = sign(Algorithm::RS256, Some("rsa-1"), &idp_claims(-600), &f.rsa);
    assert_eq!(
        unauthenticated(f.verifier.verify(&expired)),
        "the token has expired"
    );
    let mut wrong_aud = idp_claims(600);
    wrong_aud["aud"] = json!("someone-else");
    unauthenticated(
        f.verifier
            .verify(&sign(Algorithm::RS256, Some("rsa-1"), &wrong_aud, &f.rsa)),
    );
    let mut no_iss = idp_claims(600);
    no_iss.as_object_mut().unwrap().remove("iss");
    unauthenticated(
        f.verifier
            .verify(&sign(Algorithm::RS256, Some("rsa-1"), &no_iss, &f.rsa)),
    );
}

#[test]
fn an_hs256_token_is_refused_when_only_public_keys_are_configured() {
    let f = jwks_fixture();
    // The classic confusion: the public key's bytes used as an HMAC secret.
    let as_hmac = EncodingKey::from_secret(&f.rsa_pem);
    let token = sign(Algorithm::HS256, Some("rsa-1"), &idp_claims(600), &as_hmac);
    unauthenticated(f.verifier.verify(&token));
    let token = sign(
        Algorithm::HS256,
        None,
        &idp_claims(600),
        &EncodingKey::from_secret(b"x"),
    );
    unauthenticated(f.verifier.verify(&token));
}

#[tokio::test]
async fn the_development_clock_is_refused_without_the_development_secret() {
    let f = jwks_fixture();
    let clock = f._dir.path().join("clock-offset");
    std::fs::write(&clock, "3600").unwrap();
    let options = |dev_secret: Option<&str>| crate::api::local::LocalOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        config: Config::default(),
        sweep_interval: std::time::Duration::from_secs(5),
        verifier: VerifierSettings {
            dev_secret: dev_secret.map(SecretString::from),
            jwks_file: Some(f._dir.path().join("jwks.json")),
            issuer: Some("https://idp.example.com/".into()),
            audience: Some("tollgate-api".into()),
        },
        settings: Default::default(),
        clock_offset_file: Some(clock.clone()),
    };
    let err = crate::api::local::LocalServer::bind(options(None))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("TOLLGATE_DEV_SECRET"),
        "refused for the clock, before anything else: {err}"
    );
}
