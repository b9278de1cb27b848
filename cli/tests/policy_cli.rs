//! Runs the built `tollgate` binary as a user would: `policy validate` on the
//! example policies and on a broken copy, and `explain` allowing, denying and
//! refusing bad input.

// Test helpers outside `#[test]` functions: a failed setup should stop the test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("TOLLGATE_POLICY_DIR")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/policies")
}

fn copy_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn write(dir: &Path, name: &str, json: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path.display().to_string()
}

#[test]
fn validate_accepts_the_example_policies() {
    let o = tollgate(&["policy", "validate", examples().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("ok: 20 policies in 5 files"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn validate_rejects_a_broken_copy_naming_file_and_line() {
    let dir = copy_examples();
    let path = dir.path().join("production.cedar");
    let text = std::fs::read_to_string(&path).unwrap();
    // Line 13 of production.cedar reads an attribute roles do not have.
    let broken = text.replacen("context has ticket &&", "resource.owner == \"sre\" &&", 1);
    assert_ne!(broken, text);
    let line = broken
        .lines()
        .position(|l| l.contains("resource.owner"))
        .unwrap()
        + 1;
    std::fs::write(&path, broken).unwrap();

    let o = tollgate(&["policy", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let expected = format!("{}:{line}:", path.display());
    assert!(
        stdout(&o).contains(&expected),
        "want {expected} in {}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("owner"), "{}", stdout(&o));
}

#[test]
fn validate_rejects_a_syntax_error_naming_file_and_line() {
    let dir = copy_examples();
    let path = write(
        dir.path(),
        "zz-typo.cedar",
        "permit(principal, action, resource);\n\npermit(principal action, resource);\n",
    );
    let o = tollgate(&["policy", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("{path}:3:")), "{}", stdout(&o));
}

#[test]
fn validate_of_a_missing_directory_fails() {
    let o = tollgate(&["policy", "validate", "/nonexistent/policies"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("/nonexistent/policies"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn validate_of_a_directory_without_policies_fails() {
    let dir = tempfile::tempdir().unwrap();
    let o = tollgate(&["policy", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("no policies in"), "{}", stdout(&o));
    // Files with nothing but comments hold no policy either.
    write(dir.path(), "empty.cedar", "// nothing here yet\n");
    let o = tollgate(&["policy", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

const DEVELOPER: &str = r#"{"sub": "alice", "groups": ["developers"], "tags": {"department": "platform"}, "mfa": false}"#;

fn explain(dir: &Path, extra: &[&str]) -> Output {
    let identity = write(dir, "alice.json", DEVELOPER);
    let examples = examples();
    let mut args = vec![
        "explain",
        "--policies",
        examples.to_str().unwrap(),
        "--identity",
        &identity,
        "--role-arn",
        "arn:aws:iam::222222222222:role/prod-admin",
        "--role-tag",
        "environment=production",
    ];
    args.extend_from_slice(extra);
    tollgate(&args)
}

#[test]
fn explain_allows_a_production_request_with_a_ticket_in_office_hours() {
    let dir = tempfile::tempdir().unwrap();
    let o = explain(
        dir.path(),
        &[
            "--ticket",
            "CHG-1",
            "--duration",
            "2h",
            "--now",
            "2026-11-18T10:00:00Z",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("ALLOW: `request`"), "{}", stdout(&o));
    assert!(stdout(&o).contains("production-request"), "{}", stdout(&o));
}

#[test]
fn explain_denies_at_night_naming_the_forbid() {
    let dir = tempfile::tempdir().unwrap();
    let o = explain(
        dir.path(),
        &[
            "--ticket",
            "CHG-1",
            "--now",
            "2026-11-18T21:00:00Z",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["decision"], "deny");
    assert_eq!(
        json["forbidden_by"][0]["id"],
        "production-outside-office-hours"
    );
}

#[test]
fn explain_approve_uses_the_requester_file() {
    let dir = tempfile::tempdir().unwrap();
    let sre = write(
        dir.path(),
        "carol.json",
        r#"{"sub": "carol", "groups": ["sre"], "mfa": true}"#,
    );
    let requester = write(dir.path(), "alice.json", DEVELOPER);
    let examples = examples();
    let base = [
        "explain",
        "--policies",
        examples.to_str().unwrap(),
        "--role-arn",
        "arn:aws:iam::222222222222:role/prod-admin",
        "--role-tag",
        "environment=production",
        "--action",
        "approve",
        "--ticket",
        "CHG-1",
        "--now",
        "2026-11-18T10:00:00Z",
        "--identity",
        &sre,
        "--requester",
    ];
    let mut args = base.to_vec();
    args.push(&requester);
    let o = tollgate(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let mut args = base.to_vec();
    args.push(&sre);
    let o = tollgate(&args);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("no-self-approval"), "{}", stdout(&o));
}

#[test]
fn explain_shows_invisible_characters_in_policy_text_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    write(
        &policies,
        "p.cedar",
        "@id(\"looks-fine\")\n@description(\"allow \u{202e}lla\u{200b} production\")\npermit (principal, action, resource);\n",
    );
    let identity = write(dir.path(), "alice.json", DEVELOPER);
    let o = tollgate(&[
        "explain",
        "--policies",
        policies.to_str().unwrap(),
        "--identity",
        &identity,
        "--role-arn",
        "arn:aws:iam::222222222222:role/prod-admin",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains("looks-fine: allow \\u{202e}lla\\u{200b} production"),
        "{text}"
    );
    assert!(!text.contains('\u{202e}') && !text.contains('\u{200b}'));
}

#[test]
fn explain_refuses_bad_input_with_exit_code_two() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, needle) in [
        (vec!["--duration", "soon"], "`soon`"),
        (vec!["--duration", "90"], "`90` has no unit: write `90m`"),
        (vec!["--now", "yesterday"], "`yesterday`"),
        (vec!["--ticket", "has space"], "`has space`"),
        (vec!["--role-tag", "novalue"], "`novalue`"),
        (vec!["--max-session", "60"], "--max-session"),
    ] {
        let o = explain(dir.path(), &extra);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stdout(&o));
        assert!(stdout(&o).contains(needle), "{extra:?}: {}", stdout(&o));
    }
    let bad_claims = write(dir.path(), "bad.json", r#"{"groups": []}"#);
    let examples = examples();
    let o = tollgate(&[
        "explain",
        "--policies",
        examples.to_str().unwrap(),
        "--identity",
        &bad_claims,
        "--role-arn",
        "arn:aws:iam::222222222222:role/prod-admin",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stdout(&o).contains("sub"), "{}", stdout(&o));
}
