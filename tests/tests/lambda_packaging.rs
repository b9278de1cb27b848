//! The build paths a deployer runs, against prebuilt marker binaries (small
//! ELF executables, one per function and architecture, each naming itself)
//! so that no release build is needed: `scripts/lambda_bundle.py` run many
//! times at once on the same bundles, the real `sam build --build-in-source`
//! (SAM CLI pinned in `scripts/requirements-sam.txt`) for x86_64 and arm64
//! staging exactly the right binary and policies for every function and
//! building the workspace once, and `scripts/release` producing checksummed
//! zips and a packaged template that the AWS CLI can package and deploy
//! without a Rust toolchain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step is a failed test"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tollgate::aws::testing::{Emulator, repo_root};
use tollgate_tests::runtime_api::workspace_binary;

const BINARIES: [(&str, &str); 5] = [
    ("RequestsFunction", "tollgate-requests"),
    ("ReviewsFunction", "tollgate-reviews"),
    ("CredentialsFunction", "tollgate-credentials"),
    ("RevocationsFunction", "tollgate-revocations"),
    ("ExpiryFunction", "tollgate-expiry"),
];

/// (LAMBDA_ARCH, cargo target triple, ELF e_machine).
const ARCHES: [(&str, &str, u16); 2] = [
    ("x86_64", "x86_64-unknown-linux-gnu", 62),
    ("arm64", "aarch64-unknown-linux-gnu", 183),
];

/// A minimal static ELF64 executable for `machine` whose only content is
/// `marker`: what `scripts/check-lambda-binaries` reads of a real one
/// (class, byte order, machine, type, no dynamic libraries, no glibc
/// versions), and a payload that says which function and architecture it is.
fn marker_elf(machine: u16, marker: &str) -> Vec<u8> {
    let total = (64 + 56 + marker.len()) as u64;
    let mut b = Vec::new();
    b.extend_from_slice(b"\x7fELF");
    b.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little endian, version 1, System V
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b.extend_from_slice(&machine.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&0x0040_0078u64.to_le_bytes()); // entry
    b.extend_from_slice(&64u64.to_le_bytes()); // program headers right after
    b.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    b.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 64, 0, 0] {
        b.extend_from_slice(&half.to_le_bytes());
    }
    b.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b.extend_from_slice(&5u32.to_le_bytes()); // R+X
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&0x0040_0000u64.to_le_bytes());
    b.extend_from_slice(&0x0040_0000u64.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(&0x1000u64.to_le_bytes());
    b.extend_from_slice(marker.as_bytes());
    b
}

fn marker(binary: &str, arch: &str) -> String {
    format!("tollgate-marker {binary} {arch}")
}

/// A cargo target directory holding marker binaries where a release build
/// for each architecture puts them (`target/<triple>/release/<binary>`);
/// `swap` puts each architecture's markers in the other's place.
fn marker_target(dir: &Path, swap: bool) -> PathBuf {
    let target = dir.join("target");
    for (i, (arch, triple, _)) in ARCHES.iter().enumerate() {
        let (_, _, machine) = ARCHES[if swap { 1 - i } else { i }];
        let release = target.join(triple).join("release");
        std::fs::create_dir_all(&release).unwrap();
        for (_, binary) in BINARIES {
            let path = release.join(binary);
            std::fs::write(&path, marker_elf(machine, &marker(binary, arch))).unwrap();
            set_mode(&path, 0o755);
        }
    }
    target
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The venv the emulator and template tools run from.
fn venv() -> PathBuf {
    std::env::var_os("TOLLGATE_VENV").map_or_else(|| repo_root().join(".venv"), PathBuf::from)
}

/// Runs `cmd` (in the repository unless it says where).
fn run(cmd: &mut Command) -> Output {
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(repo_root());
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The example policies, by path relative to `infra/policies`.
fn policies(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|e| e == "cedar") {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn check_binaries(arch: &str, dirs: &[PathBuf]) -> Output {
    run(Command::new("python3")
        .arg("scripts/check-lambda-binaries")
        .args(["--arch", arch])
        .args(dirs))
}

#[test]
fn bundling_the_same_functions_many_times_at_once_always_succeeds() {
    // `sam build --parallel` and `make package` at the same time: before
    // bundles were written under a lock, 2 of 8 such runs failed with
    // `Directory not empty` on the policies swap.
    let dir = tempfile::tempdir().unwrap();
    let target = marker_target(dir.path(), false);
    let out = dir.path().join("bundles");
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let mut cmd = Command::new("python3");
            cmd.current_dir(repo_root())
                .arg("scripts/lambda_bundle.py")
                .arg("bundle")
                .arg("--bin-dir")
                .arg(target.join("x86_64-unknown-linux-gnu/release"))
                .args(["--policies", "infra/policies", "--out"])
                .arg(&out);
            // Half of them also stage into their own sam artifacts directory.
            if i % 2 == 0 {
                cmd.arg("--artifacts-dir")
                    .arg(dir.path().join(format!("artifacts-{i}")))
                    .arg("tollgate-requests");
            } else {
                cmd.args(BINARIES.map(|(_, b)| b));
            }
            cmd.spawn().unwrap()
        })
        .collect();
    for child in runs {
        let status = child.wait_with_output().unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let bundles: Vec<PathBuf> = BINARIES.iter().map(|(_, b)| out.join(b)).collect();
    let checked = check_binaries("x86_64", &bundles);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let want = policies(&repo_root().join("infra/policies"));
    for (_, binary) in BINARIES {
        assert_eq!(policies(&out.join(binary).join("policies")), want);
        let leftovers: Vec<_> = std::fs::read_dir(out.join(binary))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{binary}: {leftovers:?}");
    }
}

#[test]
fn the_binary_check_refuses_the_wrong_machine_a_stale_zip_and_missing_policies() {
    let dir = tempfile::tempdir().unwrap();
    let target = marker_target(dir.path(), false);
    let out = dir.path().join("bundles");
    ok(Command::new("python3")
        .arg("scripts/lambda_bundle.py")
        .arg("bundle")
        .arg("--bin-dir")
        .arg(target.join("aarch64-unknown-linux-gnu/release"))
        .args(["--policies", "infra/policies", "--out"])
        .arg(&out)
        .arg("tollgate-requests"));
    let bundle = out.join("tollgate-requests");
    assert!(
        check_binaries("arm64", std::slice::from_ref(&bundle))
            .status
            .success()
    );
    let wrong = check_binaries("x86_64", std::slice::from_ref(&bundle));
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("machine `AArch64`"));

    // A bootstrap rebuilt after the zip was made.
    std::fs::write(
        bundle.join("bootstrap"),
        marker_elf(183, "tollgate-marker newer arm64"),
    )
    .unwrap();
    let stale = check_binaries("arm64", std::slice::from_ref(&bundle));
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("bootstrap differs"),
        "{stale:?}"
    );

    // A staged directory (what sam deploys) without policies.
    let staged = dir.path().join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::copy(bundle.join("bootstrap"), staged.join("bootstrap")).unwrap();
    let bare = check_binaries("arm64", &[staged]);
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("neither bootstrap.zip nor policies/"),
        "{bare:?}"
    );
}

/// `sam build --build-in-source` as DEPLOY.md has it, with the architecture
/// given to both make (LAMBDA_ARCH) and the template (Architecture), against
/// marker binaries: the build command only counts its runs.
fn sam_build(dir: &Path, target: &Path, arch: &str, parallel: bool) -> (Output, PathBuf) {
    let build_dir = dir.join(format!("sam-{arch}"));
    let counter = dir.join(format!("builds-{arch}"));
    let cli = workspace_binary("tollgate", "tollgate-cli");
    let mut cmd = Command::new(repo_root().join("scripts/sam"));
    cmd.args([
        "build",
        "--build-in-source",
        "--template-file",
        "infra/template.yaml",
    ])
    .arg("--build-dir")
    .arg(&build_dir)
    .args(["--parameter-overrides", &format!("Architecture={arch}")])
    .env("LAMBDA_ARCH", arch)
    .env("CARGO_TARGET_DIR", target)
    .env(
        "LAMBDA_BUILD",
        format!("echo built >> '{}'", counter.display()),
    )
    .env(
        "POLICY_VALIDATE",
        format!("'{}' policy validate", cli.display()),
    );
    if parallel {
        cmd.arg("--parallel");
    }
    (run(&mut cmd), build_dir)
}

#[test]
fn sam_build_stages_each_function_for_the_chosen_architecture_building_once() {
    let dir = tempfile::tempdir().unwrap();
    let target = marker_target(dir.path(), false);
    let want_policies = policies(&repo_root().join("infra/policies"));
    for (arch, _, _) in ARCHES {
        // x86_64 with --parallel: five makes at once share one build.
        let (out, build_dir) = sam_build(dir.path(), &target, arch, arch == "x86_64");
        assert!(
            out.status.success(),
            "sam build {arch}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let builds = std::fs::read_to_string(dir.path().join(format!("builds-{arch}"))).unwrap();
        assert_eq!(
            builds.lines().count(),
            1,
            "{arch}: built once, not five times"
        );
        let built = std::fs::read_to_string(build_dir.join("template.yaml")).unwrap();
        for (logical_id, binary) in BINARIES {
            let staged = build_dir.join(logical_id);
            let bootstrap = std::fs::read(staged.join("bootstrap")).unwrap();
            assert!(
                bootstrap.ends_with(marker(binary, arch).as_bytes()),
                "{arch} {logical_id}: staged {:?}",
                String::from_utf8_lossy(&bootstrap[120..])
            );
            assert_eq!(mode(&staged.join("bootstrap")), 0o755);
            assert_eq!(policies(&staged.join("policies")), want_policies);
            let entries: Vec<_> = std::fs::read_dir(&staged)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                entries.len(),
                2,
                "{logical_id}: only bootstrap and policies: {entries:?}"
            );
            assert!(
                built.contains(&format!("CodeUri: {logical_id}")),
                "the built template deploys {logical_id} from its staged directory"
            );
            // The bundle for this architecture, zipped and checked.
            let bundle = target.join("lambda").join(arch).join(binary);
            assert_eq!(std::fs::read(bundle.join("bootstrap")).unwrap(), bootstrap);
            assert!(bundle.join("bootstrap.zip").is_file());
        }
    }
}

#[test]
fn sam_build_refuses_binaries_of_the_other_architecture() {
    let dir = tempfile::tempdir().unwrap();
    // What an x86_64 build left where the arm64 one belongs.
    let target = marker_target(dir.path(), true);
    let (out, _) = sam_build(dir.path(), &target, "arm64", false);
    assert!(
        !out.status.success(),
        "an x86_64 binary was staged for arm64"
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("machine `Advanced Micro Devices X86-64`, expected `AArch64`"),
        "{said}"
    );
}

#[tokio::test]
async fn a_release_is_checksummed_and_deploys_from_its_zips_without_a_toolchain() {
    // Starting the emulator also sets up the virtualenv (cfn-lint, the AWS CLI).
    let endpoint = Emulator::shared().unwrap().endpoint().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let target = marker_target(dir.path(), false);
    let cli = dir.path().join("tollgate");
    std::fs::write(&cli, b"tollgate cli marker").unwrap();
    let dist = dir.path().join("dist");
    for (arch, triple, _) in ARCHES {
        let bundles = target.join("lambda").join(arch);
        ok(Command::new("python3")
            .arg("scripts/lambda_bundle.py")
            .arg("bundle")
            .arg("--bin-dir")
            .arg(target.join(triple).join("release"))
            .args(["--policies", "infra/policies", "--out"])
            .arg(&bundles)
            .args(BINARIES.map(|(_, b)| b)));
        ok(Command::new("python3")
            .arg("scripts/release")
            .args(["--arch", arch, "--version", "9.8.7", "--cli-target"])
            .arg("x86_64-unknown-linux-gnu")
            .arg("--bundles")
            .arg(&bundles)
            .arg("--cli")
            .arg(&cli)
            .arg("--out")
            .arg(&dist));
    }
    let release = dist.join("tollgate-9.8.7");
    let sums = std::fs::read_to_string(release.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    let mut want = vec![
        "oidc-token".to_owned(),
        "target-role.yaml".to_owned(),
        "template-arm64.yaml".to_owned(),
        "template-x86_64.yaml".to_owned(),
        "tollgate-9.8.7-x86_64-unknown-linux-gnu".to_owned(),
    ];
    for (arch, _, _) in ARCHES {
        for (_, binary) in BINARIES {
            want.push(format!("functions/{binary}-9.8.7-{arch}.zip"));
        }
    }
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(
        mode(&release.join("tollgate-9.8.7-x86_64-unknown-linux-gnu")),
        0o755
    );
    // The sums hold, and catch a changed file.
    ok(Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(&release));
    let zip = release.join("functions/tollgate-expiry-9.8.7-arm64.zip");
    let original = std::fs::read(&zip).unwrap();
    std::fs::write(&zip, b"tampered").unwrap();
    let tampered = Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(&release)
        .output()
        .unwrap();
    assert!(!tampered.status.success());
    std::fs::write(&zip, original).unwrap();

    // The packaged template: no build step, each function from its zip, only
    // the architecture the zips are for; clean for cfn-lint.
    let template = std::fs::read_to_string(release.join("template-arm64.yaml")).unwrap();
    assert!(!template.contains("BuildMethod"));
    assert!(!template.contains("CodeUri: .."));
    assert!(template.contains("    Default: arm64\n    AllowedValues: [arm64]\n"));
    for (_, binary) in BINARIES {
        assert_eq!(
            template
                .matches(&format!("CodeUri: functions/{binary}-9.8.7-arm64.zip\n"))
                .count(),
            1,
            "{binary}"
        );
    }
    ok(Command::new(venv().join("bin/cfn-lint"))
        .args(["--regions", "us-east-1", "--"])
        .arg(release.join("template-arm64.yaml"))
        .arg(release.join("template-x86_64.yaml")));

    // What a team without Rust runs: the AWS CLI uploads each zip as it is.
    let aws = |args: &[&str]| {
        ok(Command::new(venv().join("bin/aws"))
            .args(args)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .current_dir(&release))
    };
    let bucket = format!("release-{}", std::process::id());
    aws(&["s3", "mb", &format!("s3://{bucket}")]);
    let packaged = dir.path().join("packaged.yaml");
    aws(&[
        "cloudformation",
        "package",
        "--template-file",
        "template-arm64.yaml",
        "--s3-bucket",
        &bucket,
        "--output-template-file",
        packaged.to_str().unwrap(),
    ]);
    let packaged = std::fs::read_to_string(&packaged).unwrap();
    let uris: Vec<&str> = packaged
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CodeUri: "))
        .collect();
    assert_eq!(uris.len(), BINARIES.len(), "{packaged}");
    let fetched = dir.path().join("fetched");
    for uri in uris {
        assert!(uri.starts_with(&format!("s3://{bucket}/")), "{uri}");
        aws(&["s3", "cp", uri, fetched.to_str().unwrap()]);
        let bytes = std::fs::read(&fetched).unwrap();
        let matches = BINARIES
            .iter()
            .filter(|(_, b)| {
                std::fs::read(release.join(format!("functions/{b}-9.8.7-arm64.zip"))).unwrap()
                    == bytes
            })
            .count();
        assert_eq!(matches, 1, "{uri} is one of the release's arm64 zips");
    }
}
