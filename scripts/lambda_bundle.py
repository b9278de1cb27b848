#!/usr/bin/env python3
"""Lay out and zip Lambda bundles: for each binary, target/lambda/<binary>/
holds `bootstrap` (the executable, as provided.al2023 expects), `policies/`
(the Cedar policy files the function loads from /var/task/policies) and
`bootstrap.zip` with both.

  python3 scripts/lambda_bundle.py --bin-dir target/release --policies infra/policies \
      --out target/lambda tollgate-requests tollgate-reviews ...

Zips are reproducible: entries sorted, fixed timestamps, fixed modes
(bootstrap 0755, policies 0644), so an unchanged build gives a byte-identical
zip and CloudFormation sees no code change. Python's zipfile, so the `zip`
tool is not needed.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)


def policy_files(policies: Path, required: bool = True) -> list[Path]:
    if not required and not policies.is_dir():
        return []
    if not policies.is_dir():
        raise SystemExit(f"lambda_bundle: policy directory `{policies}` does not exist")
    files = sorted(p for p in policies.rglob("*.cedar") if p.is_file())
    if not files and required:
        raise SystemExit(f"lambda_bundle: no *.cedar files in `{policies}`; the functions refuse to start without policies")
    return files


def _entry(zf: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.external_attr = (0o100000 | mode) << 16
    info.create_system = 3  # unix, so the mode bits are honoured
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data, compresslevel=9)


def zip_bundle(binary: Path, policies: Path, require_policies: bool = True) -> bytes:
    """The bundle as zip bytes: `bootstrap` plus `policies/...`. Without
    `require_policies` a missing policy directory gives a bundle without
    policies (for the emulator, which never runs the code)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        _entry(zf, "bootstrap", binary.read_bytes(), 0o755)
        for f in policy_files(policies, require_policies):
            _entry(zf, "policies/" + f.relative_to(policies).as_posix(), f.read_bytes(), 0o644)
    return out.getvalue()


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def lay_out(name: str, bin_dir: Path, policies: Path, out: Path) -> Path:
    binary = bin_dir / name
    if binary.is_dir():
        # cargo-lambda's layout: <bin_dir>/<name>/bootstrap
        binary = binary / "bootstrap"
    if not binary.is_file():
        raise SystemExit(f"lambda_bundle: `{binary}` is missing; build it first")
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    _write_atomic(dest / "bootstrap", binary.read_bytes(), 0o755)
    shipped = dest / "policies"
    staging = dest / f".policies.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for f in policy_files(policies):
        target = staging / f.relative_to(policies)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    shutil.rmtree(shipped, ignore_errors=True)
    staging.rename(shipped)
    _write_atomic(dest / "bootstrap.zip", zip_bundle(binary, policies), 0o644)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", type=Path, required=True, help="where cargo put the binaries")
    parser.add_argument("--policies", type=Path, required=True, help="directory of *.cedar files")
    parser.add_argument("--out", type=Path, required=True, help="bundle root, e.g. target/lambda")
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    for name in args.binaries:
        dest = lay_out(name, args.bin_dir, args.policies, args.out)
        print(f"bundled {dest}/bootstrap.zip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
