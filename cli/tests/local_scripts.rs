//! `scripts/local-broker` and `scripts/demo` as a newcomer runs them: a
//! broker of this test's own (state directory, port, emulator), the shell
//! that `local-broker env` sets up, README's AWS CLI example run exactly as
//! written, the example flows `up` reports by the broker's clock, and the
//! demo running beside it without touching it.

// Helpers outside #[test] functions fail loudly too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tollgate::aws::testing::repo_root;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn venv() -> PathBuf {
    std::env::var_os("TOLLGATE_VENV").map_or_else(|| repo_root().join(".venv"), PathBuf::from)
}

struct Ran {
    code: i32,
    out: String,
    err: String,
}

/// A local broker's scripts, with a clean environment of their own.
struct Local {
    state: tempfile::TempDir,
    addr: String,
}

impl Local {
    fn new() -> Self {
        Self {
            state: tempfile::tempdir().unwrap(),
            addr: format!("127.0.0.1:{}", free_port()),
        }
    }

    /// `bash -c script` in the repository, with only what a fresh shell
    /// has: no AWS or TOLLGATE variables but this broker's location.
    fn bash(&self, script: &str) -> Ran {
        let out = Command::new("bash")
            .current_dir(repo_root())
            .env_clear()
            .env("HOME", self.state.path())
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    venv().join("bin").display()
                ),
            )
            .env("TOLLGATE_VENV", venv())
            .env("TOLLGATE_BIN", BIN)
            .env("TOLLGATE_STATE_DIR", self.state.path().join("local"))
            .env("TOLLGATE_ADDR", &self.addr)
            .env("XDG_CACHE_HOME", self.state.path().join("cache"))
            .env("AWS_CONFIG_FILE", self.state.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.state.path().join("no-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(["-euo", "pipefail", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Ran {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8(out.stdout).unwrap(),
            err: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn ok(&self, script: &str) -> String {
        let r = self.bash(script);
        assert_eq!(r.code, 0, "{script}\n{}\n{}", r.out, r.err);
        r.out
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.bash("scripts/local-broker down");
    }
}

/// The first fenced block of `lang` after `marker` in `text`.
fn block_after<'a>(text: &'a str, marker: &str, lang: &str) -> &'a str {
    let rest = &text[text.find(marker).expect("the marker is in README.md")..];
    let start = rest.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
    let len = rest[start..].find("```").unwrap();
    &rest[start..start + len]
}

/// Seconds from now to the coming Saturday, 12:00 UTC.
fn to_saturday_noon() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = i64::try_from(now).unwrap();
    let day = now / 86_400;
    // 1970-01-01 was a Thursday: (day + 4) % 7 is 0 on Sundays.
    let days_ahead = (6 - (day + 4) % 7 + 7) % 7 + 7;
    (day + days_ahead) * 86_400 + 12 * 3600 - now
}

#[test]
fn the_local_broker_leaves_profiles_alone_says_what_works_now_and_survives_the_demo() {
    let local = Local::new();
    // Not up yet: env says how to start it, and prints nothing to eval.
    let r = local.bash("scripts/local-broker env");
    assert_eq!(r.code, 1);
    assert!(r.out.is_empty());
    assert!(r.err.contains("start it with: make up"), "{}", r.err);

    // On a Saturday, only the on-call flows work; up says so and how to move the clock.
    local.ok(&format!(
        "scripts/local-broker clock {}",
        to_saturday_noon()
    ));
    let up = local.ok("scripts/local-broker up");
    let flow = |who: &str, what: &str| {
        up.lines()
            .find(|l| l.starts_with(&format!("  {who:<6} {what}")))
            .unwrap_or_else(|| panic!("no {who} {what} flow in\n{up}"))
            .to_owned()
    };
    assert!(up.contains("by the broker's clock (Saturday 12:0"), "{up}");
    assert!(flow("alice", "staging").ends_with("works now"), "{up}");
    assert!(flow("alice", "production").ends_with("works now"), "{up}");
    assert!(
        flow("bob", "production").ends_with("not now (production-weekend)"),
        "{up}"
    );
    assert!(
        up.contains("scripts/local-broker clock office-hours"),
        "{up}"
    );
    // One set of token arguments per user, the same wherever they are printed.
    let alice_args = local.ok("scripts/local-broker token-args alice");
    let alice_args = alice_args.trim();
    assert!(alice_args.contains("--claim department=platform"));
    assert_eq!(
        up.matches(&format!("tollgate dev token {alice_args}\n"))
            .count(),
        1,
        "{up}"
    );
    assert!(
        up.contains(&format!(
            "TOLLGATE_TOKEN_COMMAND=\"tollgate dev token {alice_args}\""
        )),
        "{up}"
    );
    local.ok("scripts/local-broker clock office-hours");
    let up = local.ok("scripts/local-broker up");
    assert!(
        up.lines()
            .any(|l| l.starts_with("  bob    production") && l.ends_with("works now")),
        "{up}"
    );

    // The shell env sets up holds no AWS credentials: README's example
    // works exactly as written, with the credentials of the profile it names.
    let env = local.ok("scripts/local-broker env");
    for secret in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ] {
        assert!(!env.contains(secret), "{env}");
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let profile = block_after(
        &readme,
        "With the AWS CLI and SDKs, in `~/.aws/config`:",
        "ini",
    );
    let example = block_after(
        &readme,
        "With the AWS CLI and SDKs, in `~/.aws/config`:",
        "sh",
    );
    assert_eq!(
        example.trim(),
        "AWS_PROFILE=prod aws sts get-caller-identity"
    );
    let prod = profile
        .split_whitespace()
        .skip_while(|w| *w != "--role")
        .nth(1)
        .unwrap()
        .to_owned();
    std::fs::write(local.state.path().join("aws-config"), profile).unwrap();
    let shell = format!(
        r#"eval "$(scripts/local-broker env)"
as() {{ TOLLGATE_TOKEN_COMMAND="tollgate dev token $(scripts/local-broker token-args "$1")" "${{@:2}}"; }}
id=$(as alice tollgate request --role {prod} --duration 1h --reason "README example" --ticket CHG-1 --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
as bob tollgate approve "$id" --yes >/dev/null 2>&1
echo "$id"
export TOLLGATE_TOKEN_COMMAND="tollgate dev token $(scripts/local-broker token-args alice)"
{example}"#
    );
    let out = local.ok(&shell);
    let id = out.lines().next().unwrap();
    let identity: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    let session = format!("/tollgate-{id}");
    assert!(
        identity["Arn"].as_str().unwrap().ends_with(&session),
        "the profile's credential_process was used: {identity}"
    );

    // The demo runs beside it on its own state and port, and leaves it be.
    let demo = local.bash("env -u TOLLGATE_STATE_DIR -u TOLLGATE_ADDR scripts/demo");
    assert_eq!(demo.code, 0, "{}\n{}", demo.out, demo.err);
    assert!(
        demo.err.contains("$ tollgate approve --digest"),
        "{}",
        demo.err
    );
    let after = local.ok(&format!(
        r#"eval "$(scripts/local-broker env)"
TOLLGATE_TOKEN_COMMAND="tollgate dev token $(scripts/local-broker token-args alice)" tollgate show {id} --output json"#
    ));
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["status"], "active", "{after}");
    assert!(Path::new(&local.state.path().join("local/serve.pid")).exists());
}
