#!/usr/bin/env python3
"""Lay out and zip Lambda bundles, safely when several run at once.

  lambda_bundle.py bundle --bin-dir DIR --policies DIR --out DIR [--artifacts-dir DIR] NAME...
      For each binary NAME, <out>/NAME/ gets `bootstrap` (the executable, as
      provided.al2023 expects), `policies/` (the Cedar files the function
      loads from /var/task/policies) and `bootstrap.zip` with both. With
      --artifacts-dir (what `sam build` gives each function), bootstrap and
      policies/ are also copied there. The binary is <bin-dir>/NAME, or
      <bin-dir>/NAME/bootstrap (cargo-lambda's layout).

  lambda_bundle.py locked [--once STAMP] LOCKFILE -- COMMAND [ARG...]
      Runs COMMAND while holding an exclusive lock on LOCKFILE. With --once,
      only if STAMP does not exist yet, and STAMP is created when COMMAND
      succeeds: `sam build` runs one `make build-<Fn>` per function (five at
      once with --parallel) in a build directory it empties first, so a
      stamp there makes the first one build the workspace and the others
      wait for it and reuse what it built.

Concurrency: each bundle directory is written under its own lock
(<out>/.NAME.lock), every file through a uniquely named temporary in the same
directory and an atomic rename, so two runs on one bundle (`make package`
while `sam build --parallel` runs, say) never see or leave a half-written
bundle.

Zips are reproducible: entries sorted, fixed timestamps, fixed modes
(bootstrap 0755, policies 0644), so an unchanged build gives a byte-identical
zip and CloudFormation sees no code change; an existing zip with the same
content is left as it is. Python's zipfile, so the `zip` tool is not needed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

EPOCH = (1980, 1, 1, 0, 0, 0)


class Failure(Exception):
    """One clear line on stderr and exit status 1."""


def policy_files(policies: Path, required: bool = True) -> list[Path]:
    if not required and not policies.is_dir():
        return []
    if not policies.is_dir():
        raise Failure(f"policy directory `{policies}` does not exist")
    files = sorted(p for p in policies.rglob("*.cedar") if p.is_file())
    if not files and required:
        raise Failure(f"no *.cedar files in `{policies}`; the functions refuse to start without policies")
    return files


def _entry(zf: zipfile.ZipFile, name: str, data: bytes, mode: int, level: int) -> None:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.external_attr = (0o100000 | mode) << 16
    info.create_system = 3  # unix, so the mode bits are honoured
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data, compresslevel=level)


def zip_bundle(binary: Path, policies: Path, require_policies: bool = True, level: int = 9) -> bytes:
    """The bundle as zip bytes: `bootstrap` plus `policies/...`. Without
    `require_policies` a missing policy directory gives a bundle without
    policies (for the emulator, which never runs the code; it also takes
    `level=1`, as it only stores the bytes)."""
    return _zip(binary.read_bytes(), policies, policy_files(policies, require_policies), level)


def _zip(bootstrap: bytes, root: Path, files: list[Path], level: int = 9) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        _entry(zf, "bootstrap", bootstrap, 0o755, level)
        for f in files:
            _entry(zf, "policies/" + f.relative_to(root).as_posix(), f.read_bytes(), 0o644, level)
    return out.getvalue()


def _zip_holds(path: Path, bootstrap: bytes, root: Path, files: list[Path]) -> bool:
    """Whether the zip at `path` holds exactly this bootstrap and these files."""
    try:
        with zipfile.ZipFile(path) as zf:
            want = {"bootstrap": bootstrap}
            want.update({"policies/" + f.relative_to(root).as_posix(): f.read_bytes() for f in files})
            names = zf.namelist()
            return sorted(names) == sorted(want) and all(zf.read(n) == want[n] for n in names)
    except (OSError, zipfile.BadZipFile):
        return False


@contextlib.contextmanager
def locked(lockfile: Path) -> Iterator[None]:
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    with open(lockfile, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _replace_dir(target: Path, root: Path, files: list[Path]) -> None:
    """Makes `target` hold exactly `files` (relative to `root`): built aside
    under a unique name, then swapped in by rename."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    for f in files:
        dest = staging / f.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
        dest.chmod(0o644)
    staging.chmod(0o755)
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        target.rename(old / target.name)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def _clear_leftovers(directory: Path) -> None:
    """Temporaries of a run that was killed (only called under the lock)."""
    for p in directory.glob(".*.tmp"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in directory.glob(".*.old"):
        shutil.rmtree(p)


def binary_path(name: str, bin_dir: Path) -> Path:
    binary = bin_dir / name
    if binary.is_dir():
        # cargo-lambda's layout: <bin_dir>/<name>/bootstrap
        binary = binary / "bootstrap"
    if not binary.is_file():
        raise Failure(f"`{binary}` is missing; build it first")
    return binary


def lay_out(name: str, bin_dir: Path, policies: Path, out: Path, artifacts: Path | None = None) -> Path:
    """Bundles `name` under `out` (and copies it into `artifacts`)."""
    bootstrap = binary_path(name, bin_dir).read_bytes()
    files = policy_files(policies)
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    with locked(out / f".{name}.lock"):
        _clear_leftovers(dest)
        _write_atomic(dest / "bootstrap", bootstrap, 0o755)
        _replace_dir(dest / "policies", policies, files)
        archive = dest / "bootstrap.zip"
        if not _zip_holds(archive, bootstrap, policies, files):
            _write_atomic(archive, _zip(bootstrap, policies, files), 0o644)
        if artifacts is not None:
            artifacts.mkdir(parents=True, exist_ok=True)
            _clear_leftovers(artifacts)
            _write_atomic(artifacts / "bootstrap", bootstrap, 0o755)
            _replace_dir(artifacts / "policies", policies, files)
    return dest


def cmd_bundle(args: argparse.Namespace) -> int:
    if args.artifacts_dir is not None and len(args.binaries) != 1:
        raise Failure("--artifacts-dir takes exactly one binary")
    sizes = []
    for name in args.binaries:
        dest = lay_out(name, args.bin_dir, args.policies, args.out, args.artifacts_dir)
        print(f"bundled {dest}/bootstrap.zip")
        sizes.append((name, (dest / "bootstrap").stat().st_size, (dest / "bootstrap.zip").stat().st_size))
    # The table the README quotes (goal: binary <= 12 MiB, zip <= 5 MiB).
    print("| function | binary MiB | zip MiB |")
    print("|---|---|---|")
    for name, binary, archive in sizes:
        print(f"| {name} | {binary / MIB:.2f} | {archive / MIB:.2f} |")
    return 0


MIB = 1024 * 1024


def cmd_locked(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise Failure("locked: no command given")
    with locked(args.lockfile):
        if args.once is not None and args.once.exists():
            print(f"lambda_bundle: already built in this run ({args.once})", file=sys.stderr)
            return 0
        code = subprocess.run(command, check=False).returncode
        if code == 0 and args.once is not None:
            args.once.parent.mkdir(parents=True, exist_ok=True)
            args.once.touch()
        return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    b = sub.add_parser("bundle", help="lay out and zip bundles")
    b.add_argument("--bin-dir", type=Path, required=True, help="where the build put the binaries")
    b.add_argument("--policies", type=Path, required=True, help="directory of *.cedar files")
    b.add_argument("--out", type=Path, required=True, help="bundle root, e.g. target/lambda/x86_64")
    b.add_argument("--artifacts-dir", type=Path, help="also copy the bundle here (sam build's ARTIFACTS_DIR)")
    b.add_argument("binaries", nargs="+")
    b.set_defaults(fn=cmd_bundle)
    lk = sub.add_parser("locked", help="run a command under an exclusive file lock")
    lk.add_argument("lockfile", type=Path)
    lk.add_argument("--once", type=Path, metavar="STAMP", help="run only if STAMP is missing; create it on success")
    lk.add_argument("command", nargs=argparse.REMAINDER)
    lk.set_defaults(fn=cmd_locked)
    args = parser.parse_args()
    try:
        return args.fn(args)
    except Failure as err:
        print(f"lambda_bundle: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
