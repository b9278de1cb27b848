//! `tollgate dev token`: mints an HS256 JWT for local development, signed
//! with `TOLLGATE_DEV_SECRET`, the same secret `tollgate serve` verifies
//! with. Refuses when no development secret is configured.

use super::Env;
use crate::args::DevTokenArgs;
use crate::error::CliError;
use crate::output::{OutputFormat, write_json};
use serde_json::{Map, Value, json};
use std::io::Write;
use tollgate::domain::{Timestamp, UserId, parse_seconds};

/// Longest lifetime of a development token: 7 days.
const MAX_TTL_SECONDS: u64 = 7 * 86_400;
/// Claims `--claim` may not set, because the token's meaning rests on them.
const RESERVED: &[&str] = &["iss", "aud", "sub", "exp", "nbf", "iat", "amr", "jti"];

/// The claims of a development token.
pub fn claims(args: &DevTokenArgs, env: &Env, now: Timestamp) -> Result<Value, CliError> {
    let sub = UserId::parse(&args.sub)?;
    let ttl = parse_seconds(&args.ttl)?;
    if ttl == 0 || ttl > MAX_TTL_SECONDS {
        return Err(CliError::usage(
            "invalid_input",
            format!(
                "--ttl `{}` must be between 1 second and 7 days",
                crate::output::clean(&args.ttl)
            ),
        ));
    }
    let non_empty = |k: &str, d: &str| {
        env(k)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| d.to_owned())
    };
    let issuer = non_empty("TOLLGATE_JWT_ISSUER", "tollgate-local");
    let audience = non_empty("TOLLGATE_JWT_AUDIENCE", "tollgate");
    let groups_claim = non_empty("TOLLGATE_GROUPS_CLAIM", "groups");
    let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);

    let mut map = Map::new();
    for (k, v) in &args.claims {
        if RESERVED.contains(&k.as_str()) || *k == groups_claim {
            return Err(CliError::usage(
                "reserved_claim",
                format!(
                    "--claim cannot set `{}`; use the dedicated flag",
                    crate::output::clean(k)
                ),
            ));
        }
        map.insert(k.clone(), Value::String(v.clone()));
    }
    map.insert("iss".into(), issuer.into());
    map.insert("aud".into(), audience.into());
    map.insert("sub".into(), sub.as_str().into());
    map.insert("iat".into(), now.unix().into());
    map.insert("nbf".into(), now.unix().into());
    map.insert("exp".into(), now.plus(ttl).unix().into());
    map.insert(groups_claim, json!(args.groups));
    map.insert(
        "amr".into(),
        if args.mfa {
            json!(["mfa"])
        } else {
            json!(["pwd"])
        },
    );
    Ok(Value::Object(map))
}

/// `tollgate dev token`: prints the token alone (for `$(...)`), or JSON.
pub fn token(
    args: &DevTokenArgs,
    env: &Env,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Some(secret) = env("TOLLGATE_DEV_SECRET").filter(|s| !s.is_empty()) else {
        return Err(CliError::usage(
            "dev_secret_missing",
            "TOLLGATE_DEV_SECRET is not set; development tokens are only for a local broker started with the same secret",
        ));
    };
    let now = Timestamp::now();
    let claims = claims(args, env, now)?;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| {
        CliError::generic(
            "token_signing_failed",
            format!("cannot sign the token: {e}"),
        )
    })?;
    match format {
        OutputFormat::Table => writeln!(out, "{token}")?,
        OutputFormat::Json => write_json(
            out,
            &json!({
                "token": token,
                "sub": claims["sub"],
                "expires_at": Timestamp::from_unix(claims["exp"].as_i64().unwrap_or_default()),
            }),
        )?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> DevTokenArgs {
        use clap::Parser;
        let mut argv = vec!["tollgate", "dev", "token"];
        argv.extend_from_slice(extra);
        let cli = crate::args::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::args::Command::Dev(crate::args::DevCommand::Token(a)) => a,
            _ => panic!("parsed as another command"),
        }
    }

    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> + Send + Sync {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn tokens_carry_subject_groups_claims_and_mfa() {
        let now = Timestamp::from_unix(1_795_000_000);
        let a = args(&[
            "--sub",
            "alice",
            "--group",
            "developers",
            "--group",
            "sre",
            "--claim",
            "department=data",
            "--mfa",
            "--ttl",
            "8h",
        ]);
        let c = claims(&a, &env(&[]), now).unwrap();
        assert_eq!(
            c,
            json!({
                "iss": "tollgate-local",
                "aud": "tollgate",
                "sub": "alice",
                "iat": 1_795_000_000,
                "nbf": 1_795_000_000,
                "exp": 1_795_028_800,
                "groups": ["developers", "sre"],
                "amr": ["mfa"],
                "department": "data",
            })
        );
    }

    #[test]
    fn issuer_audience_and_groups_claim_follow_the_environment() {
        let now = Timestamp::from_unix(1_795_000_000);
        let e = env(&[
            ("TOLLGATE_JWT_ISSUER", "https://idp.example.com"),
            ("TOLLGATE_JWT_AUDIENCE", "broker"),
            ("TOLLGATE_GROUPS_CLAIM", "cognito:groups"),
        ]);
        let c = claims(&args(&["--sub", "bob"]), &e, now).unwrap();
        assert_eq!(c["iss"], "https://idp.example.com");
        assert_eq!(c["aud"], "broker");
        assert_eq!(c["cognito:groups"], json!([]));
        assert_eq!(c["amr"], json!(["pwd"]));
        assert_eq!(c["exp"], 1_795_003_600, "one hour by default");
    }

    #[test]
    fn reserved_claims_bad_subjects_and_bad_lifetimes_are_refused() {
        let now = Timestamp::now();
        for extra in [
            &["--sub", "alice", "--claim", "sub=root"][..],
            &["--sub", "alice", "--claim", "groups=admins"],
            &["--sub", "alice", "--claim", "amr=mfa"],
            &["--sub", "", "--ttl", "1h"],
            &["--sub", "a#b"],
            &["--sub", "alice", "--ttl", "0"],
            &["--sub", "alice", "--ttl", "8d"],
            &["--sub", "alice", "--ttl", "soon"],
        ] {
            let err = claims(&args(extra), &env(&[]), now).unwrap_err();
            assert_eq!(err.exit.code(), 2, "{extra:?}");
        }
    }

    #[test]
    fn no_token_without_a_development_secret() {
        let mut out = Vec::new();
        let err = token(
            &args(&["--sub", "alice"]),
            &env(&[]),
            OutputFormat::Table,
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err.code, "dev_secret_missing");
        assert!(out.is_empty());
    }

    #[test]
    fn tokens_verify_with_the_development_secret_and_no_other() {
        let mut out = Vec::new();
        let e = env(&[("TOLLGATE_DEV_SECRET", "local-dev-secret-0123456789abcdef")]);
        token(
            &args(&["--sub", "alice", "--mfa"]),
            &e,
            OutputFormat::Table,
            &mut out,
        )
        .unwrap();
        let tok = String::from_utf8(out).unwrap();
        let tok = tok.trim();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_issuer(&["tollgate-local"]);
        v.set_audience(&["tollgate"]);
        let data = jsonwebtoken::decode::<Value>(
            tok,
            &jsonwebtoken::DecodingKey::from_secret(b"local-dev-secret-0123456789abcdef"),
            &v,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.header.alg, jsonwebtoken::Algorithm::HS256);
        assert!(
            jsonwebtoken::decode::<Value>(
                tok,
                &jsonwebtoken::DecodingKey::from_secret(b"another-secret"),
                &v
            )
            .is_err()
        );
    }
}
