"""One local broker and one headless Chromium for every browser test.

The broker is the real thing (tests/python/local_broker.py): the emulator,
a fresh table with the example roles and `tollgate serve` with the example
policies and a development secret, so the console signs in through the
development OpenID provider. Chromium is Debian's, driven by its
chromium-driver through Selenium.
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from local_broker import ROOT, LocalBroker  # noqa: E402

SHOTS = ROOT / "target" / "browser"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def broker():
    with LocalBroker(prefix="tollgate-browser-") as b:
        # The sweep fills the role catalogue within its first runs.
        deadline = time.monotonic() + 60
        while not b.call("alice", "GET", "/roles")[1].get("items"):
            assert time.monotonic() < deadline, "the role catalogue stayed empty"
            time.sleep(0.2)
        yield b


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
