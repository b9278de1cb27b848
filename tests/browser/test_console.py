"""The web console in a real browser, against the real local broker.

Every case signs in through the development OpenID provider (a real
authorization code flow with PKCE), checks that the browser logged no
error, and runs axe-core on each page it visits (no serious or critical
violation). Screenshots go to target/browser/.
"""

import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import AXE, SHOTS

WAIT = 20


def wait(driver, condition, timeout=WAIT):
    # A page that re-renders between finding an element and reading it is
    # still loading, not failing: look again.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def heading(driver):
    return driver.find_element(By.CSS_SELECTOR, "main h1").text


def wait_heading(driver, text):
    try:
        wait(driver, lambda d: text in d.find_element(By.CSS_SELECTOR, "main h1").text)
    except TimeoutException:
        shot(driver, "timeout")
        raise AssertionError(f"no heading with {text!r}; the page says:\n{driver.find_element(By.TAG_NAME, 'body').text}")


def shot(driver, name):
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def console_errors(driver, allowed=()):
    """Errors the page logged since the last call, less the expected ones."""
    return [e for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]


def axe(driver, page):
    """Runs axe-core on the current page; fails on serious or critical violations."""
    if not driver.execute_script("return typeof axe !== 'undefined'"):
        driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then("
        "  r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        "    nodes: v.nodes.map(n => n.target.join(' '))}))),"
        "  e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {page}: {bad}"


def sign_in(driver, broker, user, path="/ui/"):
    """Opens `path` (a fresh page: no token in memory) and signs in as `user`."""
    driver.get(broker.url + path)
    wait_heading(driver, "Development sign-in")
    axe(driver, "development sign-in")
    driver.find_element(By.CSS_SELECTOR, f'button[name="user"][value="{user}"]').click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#nav .who strong")
         and d.find_element(By.CSS_SELECTOR, "#nav .who strong").text == user)


def banner(driver, kind):
    return wait(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, f".banner-{kind}")))


@pytest.fixture(autouse=True)
def no_console_errors(driver):
    console_errors(driver)  # start clean
    yield
    assert console_errors(driver, getattr(driver, "allowed_errors", ())) == []
    driver.allowed_errors = ()


def role_choice(driver, label):
    """The picker's radio button for the role labelled `label` (`prod / ProductionOperator`)."""
    return wait(driver, EC.presence_of_element_located(
        (By.XPATH, f'//li[contains(@class, "role-choice")][label[normalize-space()="{label}"]]/input')))


def test_a_developer_asks_for_production_and_an_approver_approves_from_the_inbox(driver, broker):
    role = broker.roles["ProductionOperator"]
    sign_in(driver, broker, "alice", "/ui/requests/new")
    wait_heading(driver, "Ask for access")
    # She picks the role from those she may ask for, its terms beside it.
    choice = role_choice(driver, "prod / ProductionOperator")
    terms = driver.find_element(By.ID, choice.get_attribute("aria-describedby")).text
    assert terms == "Needs 1 approval · up to 2 h · ticket required", terms
    choice.click()
    assert driver.find_element(By.ID, "role_arn").get_attribute("value") == role
    assert driver.find_element(By.CSS_SELECTOR, "label[for=ticket]").text == "Ticket (required for this role)"
    duration = driver.find_element(By.ID, "duration")
    duration.clear()
    duration.send_keys("1h")
    driver.find_element(By.ID, "reason").send_keys("rotate TLS certificates on the API fleet")
    # Without a ticket policy refuses, and the form says so as she types.
    wait(driver, lambda d: "Refused" in d.find_element(By.ID, "decision").text)
    assert "production-ticket-required" in driver.find_element(By.ID, "decision").text
    driver.find_element(By.ID, "ticket").send_keys("CHG-1042")
    wait(driver, lambda d: "Needs 1 approval" in d.find_element(By.ID, "decision").text)
    axe(driver, "request form")
    shot(driver, "request-form")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert "Request sent" in banner(driver, "success").text
    wait_heading(driver, "alice asks for ProductionOperator")
    request_id = driver.current_url.rstrip("/").rsplit("/", 1)[1]
    assert "Waiting for approval" in driver.find_element(By.CSS_SELECTOR, ".status-line").text
    axe(driver, "request page (requester, pending)")

    driver.find_element(By.CSS_SELECTOR, "#nav .who button").click()
    wait_heading(driver, "You are signed out")
    axe(driver, "signed out")

    sign_in(driver, broker, "bob", "/ui/inbox")
    wait_heading(driver, "Requests to review")
    link = wait(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, f'a[href="/ui/requests/{request_id}"]')))
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#nav .count").text not in ("", "0"))
    assert "wait" in driver.find_element(By.ID, "inbox-count").text
    axe(driver, "inbox")
    shot(driver, "inbox")
    link.click()
    wait_heading(driver, "alice asks for ProductionOperator")
    page = driver.find_element(By.TAG_NAME, "main").text
    # Everything the digest covers, and what the approver needs to decide.
    for expected in ["developers, oncall", "department: platform", "Signed in with MFA", "ProductionOperator",
                     role.split(":")[4], "environment", "production", "1 h", "rotate TLS certificates on the API fleet",
                     "CHG-1042", "None: the role's own permissions apply", "production-approve",
                     "Policies let you review this request"]:
        assert expected in page, f"{expected!r} not on the request page"
    sections = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "main section h2")]
    assert sections[:6] == ["Who is asking", "Which role", "For how long", "Why", "Session policy",
                            "What the policies say"], sections
    axe(driver, "request page (approver)")
    shot(driver, "request-approver")
    driver.find_element(By.ID, "approve-comment").send_keys("matches CHG-1042")
    driver.find_element(By.ID, "approve").click()
    assert "alice can use ProductionOperator now" in banner(driver, "success").text
    assert "Active" in driver.find_element(By.CSS_SELECTOR, ".status-line").text

    sign_in(driver, broker, "alice", "/ui/")
    wait_heading(driver, "Your requests")
    row = wait(driver, EC.presence_of_element_located(
        (By.XPATH, f'//a[@href="/ui/requests/{request_id}"]/ancestor::tr')))
    wait(driver, lambda d: "Active" in row.text and "left" in row.text)
    axe(driver, "your requests")
    shot(driver, "your-requests")
    row.find_element(By.TAG_NAME, "a").click()
    wait_heading(driver, "alice asks for ProductionOperator")
    snippet = wait(driver, EC.visibility_of_element_located((By.ID, "snippet"))).text
    assert f"credential_process = tollgate credentials --role {role} --format credential-process" in snippet
    axe(driver, "request page (requester, active)")
    shot(driver, "request-active")
    # She is done early and revokes it.
    driver.find_element(By.ID, "revoke-reason").send_keys("certificates rotated")
    driver.find_element(By.ID, "revoke").click()
    assert "Revoked" in banner(driver, "success").text
    assert "Revoked" in driver.find_element(By.CSS_SELECTOR, ".status-line").text
    assert broker.call("alice", "GET", f"/requests/{request_id}")[1]["status"] == "revoked"


def test_the_role_picker_lists_what_a_user_may_ask_for_with_its_terms(driver, broker):
    sign_in(driver, broker, "alice", "/ui/requests/new")
    wait_heading(driver, "Ask for access")
    staging = role_choice(driver, "staging / StagingDeveloper")
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "li.role-choice label")]
    # Not the data team's role; the production roles need a ticket.
    assert "prod / DataAnalyst" not in labels, labels
    assert {"staging / StagingDeveloper", "prod / ProductionOperator", "prod / ProductionBreakGlass"} <= set(labels)
    breakglass = driver.find_element(By.ID, role_choice(driver, "prod / ProductionBreakGlass").get_attribute("aria-describedby"))
    assert "Needs 2 approvals" in breakglass.text, breakglass.text
    assert driver.find_element(By.ID, staging.get_attribute("aria-describedby")).text == \
        "Approved at once · up to 4 h"
    # Filtering narrows the list and says how many match.
    driver.find_element(By.ID, "role-filter").send_keys("stag")
    wait(driver, lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "li.role-choice label")]
         == ["staging / StagingDeveloper"])
    assert driver.find_element(By.ID, "role-count").text == "1 role"
    axe(driver, "request form with the role picker")
    # Picked with the keyboard: the dry run follows.
    role_choice(driver, "staging / StagingDeveloper").send_keys(Keys.SPACE)
    assert driver.find_element(By.ID, "role_arn").get_attribute("value") == broker.roles["StagingDeveloper"]
    driver.find_element(By.ID, "reason").send_keys("try the new build")
    wait(driver, lambda d: "Granted at once" in d.find_element(By.ID, "decision").text)
    shot(driver, "role-picker")
    # Typing an ARN picks its role when it is in the list.
    driver.find_element(By.ID, "role-filter").send_keys(Keys.CONTROL, "a", Keys.DELETE)
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.role-choice")) >= 3)
    arn = driver.find_element(By.ID, "role_arn")
    arn.send_keys(Keys.CONTROL, "a", Keys.DELETE)
    arn.send_keys(broker.roles["ProductionOperator"])
    wait(driver, lambda d: role_choice(d, "prod / ProductionOperator").is_selected())


def test_an_approver_denies_with_a_reason(driver, broker):
    req = broker.ask("alice", broker.roles["ProductionOperator"], "look at the payment queue")
    sign_in(driver, broker, "bob", f"/ui/requests/{req['id']}")
    wait_heading(driver, "alice asks for ProductionOperator")
    driver.find_element(By.ID, "deny").click()
    summary = wait(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, ".error-summary")))
    assert driver.switch_to.active_element == summary
    summary.find_element(By.CSS_SELECTOR, "a").click()
    assert driver.switch_to.active_element.get_attribute("id") == "deny-reason"
    axe(driver, "deny form with an error")
    driver.switch_to.active_element.send_keys("use the read-only role for this")
    driver.find_element(By.ID, "deny").click()
    assert "You denied this request" in banner(driver, "success").text
    assert "Denied" in driver.find_element(By.CSS_SELECTOR, ".status-line").text
    status, body = broker.call("alice", "GET", f"/requests/{req['id']}")
    assert (status, body["status"], body["closed_reason"]) == (200, "denied", "use the read-only role for this")


def test_a_request_that_changed_after_the_page_loaded_is_not_approved(driver, broker):
    req = broker.ask("alice", broker.roles["ProductionOperator"], "restart the ingest workers")
    sign_in(driver, broker, "bob", f"/ui/requests/{req['id']}")
    wait_heading(driver, "alice asks for ProductionOperator")
    # Meanwhile the requester withdraws it.
    assert broker.call("alice", "POST", f"/requests/{req['id']}/cancel", {})[0] == 200
    driver.allowed_errors = (f"/requests/{req['id']}/approve - Failed to load resource: the server responded with a status of 409",)
    driver.find_element(By.ID, "approve").click()
    error = banner(driver, "error")
    assert "changed while you were looking at it" in error.text
    assert "nothing was approved" in error.text
    assert driver.switch_to.active_element == error
    axe(driver, "stale request message")
    shot(driver, "request-stale")
    error.find_element(By.TAG_NAME, "button").click()
    wait(driver, lambda d: "Cancelled" in d.find_element(By.CSS_SELECTOR, ".status-line").text)
    status, body = broker.call("alice", "GET", f"/requests/{req['id']}")
    assert body["approvals"] == [] and body["status"] == "cancelled"


def test_an_approver_approves_with_the_keyboard_alone(driver, broker):
    req = broker.ask("alice", broker.roles["ProductionOperator"], "drain node i-0abc for patching")
    sign_in(driver, broker, "carol", "/ui/inbox")
    wait_heading(driver, "Requests to review")
    wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, f'a[href="/ui/requests/{req["id"]}"]')))

    def tab_to(predicate, limit=60):
        for _ in range(limit):
            driver.switch_to.active_element.send_keys(Keys.TAB)
            if predicate(driver.switch_to.active_element):
                return driver.switch_to.active_element
        raise AssertionError("never reached by Tab")

    tab_to(lambda e: e.get_attribute("href") and e.get_attribute("href").endswith(f"/ui/requests/{req['id']}"))
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait_heading(driver, "alice asks for ProductionOperator")
    # The page moved focus to its heading; from there Tab reaches Approve.
    assert driver.switch_to.active_element.tag_name == "h1"
    tab_to(lambda e: e.get_attribute("id") == "approve")
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    success = banner(driver, "success")
    assert "alice can use ProductionOperator now" in success.text
    assert driver.switch_to.active_element == success
    deadline = time.monotonic() + WAIT
    while broker.call("alice", "GET", f"/requests/{req['id']}")[1]["status"] != "active":
        assert time.monotonic() < deadline
        time.sleep(0.2)
