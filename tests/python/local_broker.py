"""A real local broker for the Python test suites (browser, API contract).

The emulator (moto, started by scripts/aws-local in a private state
directory), a fresh table with the example roles (`tollgate local
provision`) and `tollgate serve` with the example policies and a development
secret, so tokens come from `tollgate dev token` and the console signs in
through the development OpenID provider; console sign-in URLs come from
scripts/federation-stand-in (the emulator has no federation endpoint).
Standard library only, so any of the project's virtualenvs can run it.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOLLGATE = ROOT / "target" / "debug" / "tollgate"

# The example users of scripts/local-broker, as `tollgate dev token` flags,
# and a stranger whom no example policy names.
USERS = {
    "alice": ["--group", "developers", "--group", "oncall", "--claim", "department=platform"],
    "bob": ["--group", "sre", "--mfa"],
    "carol": ["--group", "sre", "--mfa"],
    "mallory": [],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalBroker:
    """`with LocalBroker() as b:` a running `tollgate serve` on the emulator.

    `extra_env` overrides the server's settings (e.g. per-user caps)."""

    def __init__(self, extra_env=None, prefix="tollgate-broker-"):
        self.extra_env = dict(extra_env or {})
        self.prefix = prefix
        self.server = None
        self.federation = None

    def __enter__(self):
        assert TOLLGATE.is_file(), f"{TOLLGATE} is missing: run `cargo build -p tollgate-cli` first"
        self.state = Path(tempfile.mkdtemp(prefix=self.prefix))
        env = dict(os.environ, TOLLGATE_STATE_DIR=str(self.state), TOLLGATE_EMULATOR_PORT="0")
        self.env = env
        started = subprocess.run(
            [str(ROOT / "scripts" / "aws-local"), "start"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
        for line in started.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        port = free_port()
        table = f"py-{secrets.token_hex(4)}"
        env.update(
            TOLLGATE_TABLE=table,
            TOLLGATE_POLICY_DIR=str(ROOT / "infra" / "policies"),
            TOLLGATE_DEV_SECRET=secrets.token_hex(32),
            TOLLGATE_ADDR=f"127.0.0.1:{port}",
            TOLLGATE_SWEEP_INTERVAL="2",
            AWS_EC2_METADATA_DISABLED="true",
        )
        env.update(self.extra_env)
        try:
            if "TOLLGATE_FEDERATION_ENDPOINT" not in env:
                federation_port = free_port()
                self.federation = subprocess.Popen(
                    [str(ROOT / "scripts" / "federation-stand-in"), str(federation_port)],
                    stdin=subprocess.DEVNULL)
                env["TOLLGATE_FEDERATION_ENDPOINT"] = (
                    f"http://127.0.0.1:{federation_port}/federation")
            provisioned = subprocess.run(
                [str(TOLLGATE), "--output", "json", "local", "provision", "--table", table],
                env=env, check=True, capture_output=True, text=True)
            arns = json.loads(provisioned.stdout)["roles"]
            # Role name -> ARN, as provisioned (no account id written here).
            self.roles = {arn.rsplit("/", 1)[1]: arn for arn in arns}
            # The provisioned world: target accounts are those of the example
            # roles; the local control roles require this ExternalId.
            env["TOLLGATE_TARGET_ACCOUNTS"] = ",".join(sorted({a.split(":")[4] for a in arns}))
            env["TOLLGATE_CONTROL_EXTERNAL_ID"] = "tollgate-local"
            # Short names for the accounts (`GET /roles`, the role picker).
            env["TOLLGATE_ACCOUNT_ALIASES"] = (
                f"staging={self.roles['StagingDeveloper'].split(':')[4]},"
                f"prod={self.roles['ProductionOperator'].split(':')[4]}")
            self.log = self.state / "serve.log"
            with open(self.log, "w") as log:
                self.server = subprocess.Popen([str(TOLLGATE), "serve"], env=env, stdout=log,
                                               stderr=log, stdin=subprocess.DEVNULL)
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(self.url + "/health", timeout=2)
                    break
                except OSError:
                    assert self.server.poll() is None, self.log.read_text()
                    assert time.monotonic() < deadline, "tollgate serve did not answer"
                    time.sleep(0.1)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.server:
            self.server.terminate()
            self.server.wait(10)
        if self.federation:
            self.federation.terminate()
            self.federation.wait(10)
        subprocess.run([str(ROOT / "scripts" / "aws-local"), "stop"], env=self.env,
                       capture_output=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def token(self, user):
        out = subprocess.run(
            [str(TOLLGATE), "dev", "token", "--sub", user, *USERS[user]],
            env=self.env, check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def call(self, user, method, path, body=None):
        """The API as `user`: (status, JSON)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token(user)}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ask(self, user, role, reason, ticket="CHG-1042", duration=3600):
        status, body = self.call(user, "POST", "/requests", {
            "role_arn": role, "duration_seconds": duration, "reason": reason, "ticket": ticket,
        })
        assert status == 201, body
        return body
