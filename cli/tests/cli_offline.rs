//! The built `tollgate` binary, run as a user would, for everything that
//! needs no broker: help, usage errors, configuration, tokens, completions,
//! and the exit codes when the broker cannot be reached.

// Helpers outside #[test] functions fail loudly too: this is test code.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
const SECRET: &str = "cli-test-secret-0123456789abcdef";

/// A command with a clean environment: no TOLLGATE_* from the developer's
/// shell, and HOME/XDG dirs inside `home`.
fn tollgate(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// A loopback URL on which nothing listens.
fn closed_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn help_documents_every_exit_code_and_the_configuration() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, _) = run(tollgate(home.path()).arg("--help"));
    assert_eq!(code, 0);
    for want in [
        "0    success",
        "2    usage error",
        "3    denied",
        "4    not found",
        "5    conflict",
        "6    broker or AWS unavailable",
        "7    unauthenticated",
        "8    timed out waiting",
        "TOLLGATE_TOKEN_COMMAND",
        "credential_process = tollgate credentials --role",
    ] {
        assert!(out.contains(want), "--help lacks {want:?}");
    }
    for cmd in [
        "request",
        "wait",
        "list",
        "show",
        "approve",
        "deny",
        "cancel",
        "revoke",
        "credentials",
        "explain",
        "policy",
        "audit",
        "serve",
        "local",
        "dev",
        "completions",
    ] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(cmd)),
            "--help lacks the {cmd} command"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_send_nothing() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = run(tollgate(home.path()).args(["show", "../../etc/passwd"]));
    assert_eq!(code, 2);
    assert!(err.contains("is not a request id"), "{err}");

    // Local validation happens before any network call: the URL is closed,
    // so reaching the network would have given exit 6.
    let (code, _, err) = run(tollgate(home.path())
        .env("TOLLGATE_URL", closed_url())
        .env("TOLLGATE_TOKEN", "t.t.t")
        .args([
            "request",
            "--role",
            "arn:aws:iam::123456789012:role/X",
            "--duration",
            "10s",
            "--reason",
            "x",
        ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shorter than the minimum"), "{err}");
}

#[test]
fn an_unreachable_broker_exits_6_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let url = closed_url();
    let (code, out, err) = run(tollgate(home.path())
        .env("TOLLGATE_URL", &url)
        .env("TOLLGATE_TOKEN", "secret-token-value")
        .args(["list"]));
    assert_eq!(code, 6, "{err}");
    assert!(out.is_empty());
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("(broker_unreachable)"), "{err}");
    assert!(!err.contains("secret-token-value"));
}

#[test]
fn errors_are_json_on_stderr_with_output_json() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(tollgate(home.path())
        .env("TOLLGATE_URL", closed_url())
        .env("TOLLGATE_TOKEN", "t.t.t")
        .args(["list", "--output", "json"]));
    assert_eq!(code, 6);
    assert!(out.is_empty());
    let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(v["error"]["code"], "broker_unreachable");
    assert_eq!(v["error"]["exit_code"], 6);
}

#[test]
fn missing_url_or_token_say_how_to_configure_them() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = run(tollgate(home.path()).args(["list"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("no broker URL is configured (no_broker_url)"),
        "{err}"
    );
    assert!(err.contains("TOLLGATE_URL"), "{err}");

    let (code, _, err) = run(tollgate(home.path())
        .env("TOLLGATE_URL", closed_url())
        .args(["list"]));
    assert_eq!(code, 7);
    assert!(err.contains("(no_token)"), "{err}");
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = run(tollgate(home.path())
        .env("TOLLGATE_URL", "http://tollgate.example.com")
        .env("TOLLGATE_TOKEN", "t.t.t")
        .args(["list"]));
    assert_eq!(code, 2);
    assert!(err.contains("(invalid_url)"), "{err}");
}

#[test]
fn the_config_file_profile_supplies_url_and_token_command() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("config").join("tollgate");
    std::fs::create_dir_all(&dir).unwrap();
    let url = closed_url();
    let mut f = std::fs::File::create(dir.join("config.toml")).unwrap();
    writeln!(
        f,
        "default_profile = \"dev\"\n\n[profiles.dev]\nurl = \"{url}\"\ntoken_command = \"echo profile-token-secret; exit 9\"\n\n[profiles.other]\nurl = \"https://example.com\"\n"
    )
    .unwrap();
    drop(f);

    // The profile's token command runs and fails: exit 7, its output hidden.
    let (code, _, err) = run(tollgate(home.path()).args(["list"]));
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("exited with status 9"), "{err}");
    assert!(!err.contains("profile-token-secret"), "{err}");

    // The environment's token beats the profile's command; the profile's URL is used.
    let (code, _, err) = run(tollgate(home.path())
        .env("TOLLGATE_TOKEN", "t.t.t")
        .args(["list"]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains(&url), "{err}");

    // --profile picks another; an unknown one is a usage error.
    let (code, _, err) = run(tollgate(home.path()).env("TOLLGATE_TOKEN", "t.t.t").args([
        "list",
        "--profile",
        "nope",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("known profiles: dev, other"), "{err}");

    // TOLLGATE_CONFIG names a file that must exist.
    let (code, _, err) = run(tollgate(home.path())
        .env("TOLLGATE_CONFIG", home.path().join("missing.toml"))
        .args(["list"]));
    assert_eq!(code, 2);
    assert!(err.contains("(config_unreadable)"), "{err}");
}

#[test]
fn dev_token_refuses_without_a_development_secret() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(tollgate(home.path()).args(["dev", "token", "--sub", "alice"]));
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("TOLLGATE_DEV_SECRET is not set"), "{err}");
}

#[test]
fn dev_token_prints_a_verifiable_token_alone_on_stdout() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(tollgate(home.path())
        .env("TOLLGATE_DEV_SECRET", SECRET)
        .env("TOLLGATE_JWT_AUDIENCE", "aud-x")
        .args([
            "dev",
            "token",
            "--sub",
            "alice",
            "--group",
            "developers",
            "--claim",
            "department=data",
            "--mfa",
            "--ttl",
            "8h",
        ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["aud-x"]);
    v.set_issuer(&["tollgate-local"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        out.trim(),
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .unwrap();
    let c = data.claims;
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["groups"], serde_json::json!(["developers"]));
    assert_eq!(c["department"], "data");
    assert_eq!(c["amr"], serde_json::json!(["mfa"]));
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        8 * 3600
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(tollgate(home.path()).args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("credentials"), "{shell}");
        assert!(out.contains("credential-process"), "{shell}");
        // --role completes from the catalogue, on all four --role flags
        // (request, credentials, explain, console).
        assert_eq!(
            out.matches("tollgate roles --names 2>/dev/null").count(),
            if shell == "zsh" { 1 } else { 4 },
            "{shell}: {out}"
        );
    }
    let (_, zsh, _) = run(tollgate(home.path()).args(["completions", "zsh"]));
    assert_eq!(zsh.matches(":ROLE:_tollgate_role_names'").count(), 4);
    let (code, _, _) = run(tollgate(home.path()).args(["completions", "tcsh"]));
    assert_eq!(code, 2);
}
