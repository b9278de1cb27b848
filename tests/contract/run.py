"""The API contract, checked by Schemathesis against a real local broker.

Three runs against `tollgate serve` on the emulator, each reading the
document from the server's own `GET /openapi.json`, every phase (examples,
coverage, fuzzing, stateful) and the checks below:

1. alice (a developer) calls everything; bob (an approver) calls approve and
   deny, so the stateful phase can follow the document's links from
   create through show, approve, credentials and revoke.
2. mallory, whom no policy names, calls everything.
3. The approval flow alone, stateful: alice asks for the production role
   (which always waits for a human) and bob approves through the link that
   carries the request's digest, then credentials and revoke.

Example role ARNs, durations, tickets and reasons are offered from
dictionaries most of the time, so generated requests reach real roles as well as refusals. The
per-user caps are raised for the run (each run creates hundreds of
requests); their 429 is checked in the Rust suites. Exits non-zero on any
failure; prints how many cases ran.
"""

import argparse
import json
import re
import subprocess
import sys
import shutil
import tempfile
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from local_broker import ROOT, LocalBroker  # noqa: E402

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "ignored_auth",
]


def toml_string(s):
    return json.dumps(s)


def config(url, default_token, approver_token, roles, max_examples, flow):
    # The flow run asks only for the role that needs an approval, always
    # with what its policies require, so every scenario can go the whole way.
    p = 1.0 if flow else 0.8
    roles = [roles["ProductionOperator"]] if flow else sorted(roles.values())
    lines = [
        f"base-url = {toml_string(url)}",
        "workers = 1",
        "request-timeout = 30.0",
        f"headers = {{ Authorization = {toml_string('Bearer ' + default_token)} }}",
        "[generation]",
        f"max-examples = {max_examples}",
        "deterministic = true",
        "[checks]",
        "enabled = false",
    ]
    lines += [f"{c}.enabled = true" for c in CHECKS]
    lines += [
        # A path parameter outside its pattern is refused with 400, an
        # unknown id with 404: both are rejections.
        "negative_data_rejection.expected-statuses = [400, 401, 403, 404, 405, 413]",
        "[phases.stateful]",
        "max-steps = 10",
        "[phases.stateful.generation]",
        f"max-examples = {max_examples * (3 if flow else 1)}",
        "[dictionaries.roles]",
        f"values = {json.dumps(roles)}",
        "[dictionaries.durations]",
        "values = [900, 3600]",
        "[dictionaries.tickets]",
        'values = ["CHG-1042"]',
        "[dictionaries.reasons]",
        'values = ["deploy the fix for INC-7"]',
        "[parameters]",
        f'"body.role_arn" = {{ dictionary = "roles", probability = {p} }}',
        f'"body.duration_seconds" = {{ dictionary = "durations", probability = {p} }}',
        f'"body.ticket" = {{ dictionary = "tickets", probability = {p} }}',
        f'"body.reason" = {{ dictionary = "reasons", probability = {p if flow else 0.5} }}',
    ]
    if approver_token:
        lines += [
            "[[operations]]",
            'include-operation-id = ["approveRequest", "denyRequest"]',
            f"headers = {{ Authorization = {toml_string('Bearer ' + approver_token)} }}",
        ]
    return "\n".join(lines) + "\n"


FLOW = ["createRequest", "showRequest", "approveRequest", "issueCredentials", "revokeGrant"]


def run(schemathesis, broker, name, default_user, approver, max_examples, flow=False):
    text = config(broker.url, broker.token(default_user),
                  broker.token(approver) if approver else None, broker.roles, max_examples, flow)
    with tempfile.TemporaryDirectory(prefix="tollgate-contract-") as tmp:
        path = Path(tmp) / "schemathesis.toml"
        path.write_text(text)
        cmd = [schemathesis, "--no-color", "--config-file", str(path), "run",
               broker.url + "/openapi.json"]
        if flow:
            cmd += ["--phases", "stateful"]
            for op in FLOW:
                cmd += ["--include-operation-id", op]
        print(f"contract: {name}", flush=True)
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    out = done.stdout + done.stderr
    print(out, flush=True)
    cases = sum(int(n) for n in re.findall(r"(\d+) generated", out))
    return done.returncode, cases


def tally(broker):
    """What the runs did to alice's requests: statuses, approvals, credentials."""
    counts = {}
    token = ""
    while True:
        status, page = broker.call("alice", "GET", "/requests?limit=100" + token)
        assert status == 200, page
        for item in page["items"]:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
            if any(a["approver"] == "bob" for a in item["approvals"]):
                counts["approved_by_bob"] = counts.get("approved_by_bob", 0) + 1
            if item.get("credentials_issued", 0) > 0:
                counts["with_credentials"] = counts.get("with_credentials", 0) + 1
        if not page["next_token"]:
            return counts
        token = "&next_token=" + urllib.parse.quote(page["next_token"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--schemathesis", required=True)
    parser.add_argument("--max-examples", type=int, default=25)
    args = parser.parse_args()
    caps = {"TOLLGATE_MAX_OPEN_REQUESTS": "10000", "TOLLGATE_MAX_CREATES_PER_MINUTE": "10000"}
    failed = []
    total = 0
    with LocalBroker(caps, prefix="tollgate-contract-") as broker:
        for name, user, approver, flow in [("requester and approver", "alice", "bob", False),
                                           ("stranger", "mallory", None, False),
                                           ("the approval flow", "alice", "bob", True)]:
            code, cases = run(args.schemathesis, broker, name, user, approver, args.max_examples,
                              flow)
            print(f"contract: {name}: {cases} cases, exit {code}", flush=True)
            total += cases
            if code != 0:
                failed.append(name)
        kept = ROOT / "target" / "contract"
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copy(broker.log, kept / "serve.log")
        reached = tally(broker)
        print(f"contract: {total} cases in all")
        print(f"contract: alice's requests after the runs: {json.dumps(reached, sort_keys=True)}")
        # The stateful phase must have walked the whole flow through the
        # document's links, or the run proved less than it claims.
        for what in ["approved_by_bob", "with_credentials", "revoked"]:
            if reached.get(what, 0) == 0:
                failed.append(f"no request {what.replace('_', ' ')}")
    if failed:
        print(f"contract: failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
