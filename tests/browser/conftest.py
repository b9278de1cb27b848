"""One local broker and one headless Chromium for every browser test.

The broker is the real thing: the emulator (moto, started by
scripts/aws-local in a private state directory), a fresh table with the
example roles (`tollgate local provision`) and `tollgate serve` with the
example policies and a development secret, so the console signs in through
the development OpenID provider. Chromium is Debian's, driven by its
chromium-driver through Selenium.
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

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
TOLLGATE = ROOT / "target" / "debug" / "tollgate"
SHOTS = ROOT / "target" / "browser"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"

# The example users of scripts/local-broker, as `tollgate dev token` flags.
USERS = {
    "alice": ["--group", "developers", "--group", "oncall", "--claim", "department=platform"],
    "bob": ["--group", "sre", "--mfa"],
    "carol": ["--group", "sre", "--mfa"],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A running `tollgate serve` and what the tests need to talk to it."""

    def __init__(self, url, env, roles):
        self.url = url
        self.env = env
        # Role name -> ARN, as provisioned (no account id written here).
        self.roles = {arn.rsplit("/", 1)[1]: arn for arn in roles}

    def token(self, user):
        out = subprocess.run(
            [str(TOLLGATE), "dev", "token", "--sub", user, *USERS[user]],
            env=self.env, check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def call(self, user, method, path, body=None):
        """The API as `user`, behind the browser's back: (status, JSON)."""
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


@pytest.fixture(scope="session")
def broker():
    assert TOLLGATE.is_file(), f"{TOLLGATE} is missing: run `cargo build -p tollgate-cli` first"
    state = Path(tempfile.mkdtemp(prefix="tollgate-browser-"))
    env = dict(os.environ, TOLLGATE_STATE_DIR=str(state), TOLLGATE_EMULATOR_PORT="0")
    started = subprocess.run(
        [str(ROOT / "scripts" / "aws-local"), "start"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    for line in started.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    port = free_port()
    table = f"browser-{secrets.token_hex(4)}"
    env.update(
        TOLLGATE_TABLE=table,
        TOLLGATE_POLICY_DIR=str(ROOT / "infra" / "policies"),
        TOLLGATE_DEV_SECRET=secrets.token_hex(32),
        TOLLGATE_ADDR=f"127.0.0.1:{port}",
        TOLLGATE_SWEEP_INTERVAL="2",
        AWS_EC2_METADATA_DISABLED="true",
    )
    server = None
    try:
        provisioned = subprocess.run(
            [str(TOLLGATE), "--output", "json", "local", "provision", "--table", table],
            env=env, check=True, capture_output=True, text=True)
        roles = json.loads(provisioned.stdout)["roles"]
        # The provisioned world: target accounts are those of the example
        # roles; the local control roles require this ExternalId.
        env["TOLLGATE_TARGET_ACCOUNTS"] = ",".join(sorted({arn.split(":")[4] for arn in roles}))
        env["TOLLGATE_CONTROL_EXTERNAL_ID"] = "tollgate-local"
        # Short names for the accounts, as the role picker shows them.
        account = {arn.rsplit("/", 1)[1]: arn.split(":")[4] for arn in roles}
        env["TOLLGATE_ACCOUNT_ALIASES"] = (
            f"staging={account['StagingDeveloper']},prod={account['ProductionOperator']}")
        log = open(state / "serve.log", "w")
        server = subprocess.Popen([str(TOLLGATE), "serve"], env=env, stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (state / "serve.log").read_text()
                assert time.monotonic() < deadline, "tollgate serve did not answer"
                time.sleep(0.1)
        broker = Broker(url, env, roles)
        # The sweep fills the role catalogue within its first runs.
        while not broker.call("alice", "GET", "/roles")[1].get("items"):
            assert time.monotonic() < deadline, "the role catalogue stayed empty"
            time.sleep(0.2)
        yield broker
    finally:
        if server:
            server.terminate()
            server.wait(10)
        subprocess.run([str(ROOT / "scripts" / "aws-local"), "stop"], env=env,
                       capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def driver():
    profile = tempfile.mkdtemp(prefix="tollgate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1000"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    d = webdriver.Chrome(options=options, service=service)
    d.set_script_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
