"""The fleet dashboard (/system/health) in a real browser, through the balancer's HTTPS port on 127.0.0.1.

Debian's chromium, driven through Debian's chromium-driver by Selenium (scripts/bootstrap.sh installs all
three). SE_OFFLINE=true and the explicit paths keep Selenium Manager from downloading a browser or a
driver. JavaScript is off: the page must work without it, refresh included. The screenshot goes to
.cache/screenshots/dashboard.png (ROLLGATE_SCREENSHOT_DIR elsewhere); the README shows a copy.
"""

import os
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from testlib import PROJECT_DIR, fleet_version, group_vars, stack

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BASE_URL = f"https://127.0.0.1:{stack().https_port}"
SCREENSHOT_DIR = os.environ.get("ROLLGATE_SCREENSHOT_DIR", os.path.join(PROJECT_DIR, ".cache", "screenshots"))
# The app's session cookie (app/src/inventory_service/sessions.py).
SESSION_COOKIE = "rollgate_session"
# The dashboard's <meta http-equiv="refresh"> period.
REFRESH_SECONDS = 5
# Each app host's instances, as the stack's inventories give them.
INSTANCE_PORTS = (8000, 8001)


@pytest.fixture
def browser():
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: the tests run as root. The lab's certificate is self-signed.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860",
                     "--ignore-certificate-errors"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def gone(element):
    """A wait condition: `element`'s page has been replaced. expected_conditions.staleness_of, but chromedriver
    can answer a question about an element of a document it is tearing down with an "unhandled inspector error:
    Node with given id does not belong to the document" instead of a stale element (make test, 2026-12-06): that
    says the same thing. Any other error stays one."""
    def replaced(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
        return False
    return replaced


def sign_in(driver, username: str, password: str) -> None:
    """Fill in the login form and send it; return once the next page has loaded."""
    form = driver.find_element(By.TAG_NAME, "form")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 15).until(gone(form))


def updated(driver) -> str | None:
    """The page's timestamp; None while a refresh is loading the next page."""
    try:
        return driver.find_element(By.ID, "updated").text
    except WebDriverException:
        return None


def fleet_rows(driver) -> dict[str, list[str]]:
    """{instance: its cells' text} of the fleet table."""
    rows = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#fleet tbody tr"):
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        rows[cells[0].removesuffix(" (this page)")] = cells
    return rows


def test_the_dashboard_lists_every_instance_with_its_version_in_a_browser_without_javascript(browser):
    variables = group_vars()
    expected = [f"{host}:{port}" for host in stack().groups()["app"] for port in INSTANCE_PORTS]
    version = fleet_version()

    # Without a session: sent to the login page.
    browser.get(BASE_URL + "/system/health")
    assert browser.current_url == BASE_URL + "/login"

    # Wrong credentials: the login page again, with a message, and no session.
    sign_in(browser, variables.get("app_admin_username", "admin"), "not-the-password")
    assert browser.current_url == BASE_URL + "/login"
    assert browser.find_element(By.CSS_SELECTOR, "p.error").text == "Invalid user name or password."
    assert browser.get_cookie(SESSION_COOKIE) is None
    # The refused login answers 401, which Chromium logs; nothing else may be in its console (reading clears it).
    console = browser.get_log("browser")
    assert all(entry["message"].startswith(BASE_URL + "/login - ") and "status of 401" in entry["message"]
               for entry in console), console

    sign_in(browser, variables.get("app_admin_username", "admin"), variables["app_admin_password"])
    assert browser.current_url == BASE_URL + "/system/health", browser.page_source[-600:]
    assert browser.get_cookie(SESSION_COOKIE) is not None
    rows = fleet_rows(browser)
    assert sorted(rows) == sorted(expected), rows
    for instance, cells in rows.items():
        assert cells[1:3] == [version, "ready"], (instance, cells)
    heading = browser.find_element(By.CSS_SELECTOR, "section.fleet h2").text
    assert heading == f"Fleet: {len(expected)} of {len(expected)} instances answering"

    # The stylesheet applied (the CSP let it in): the page's background is the one style.css sets.
    assert browser.find_element(By.TAG_NAME, "body").value_of_css_property("background-color") == "rgba(246, 248, 250, 1)"

    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    assert browser.save_screenshot(os.path.join(SCREENSHOT_DIR, "dashboard.png"))

    # It refreshes itself with JavaScript off: a new page, with a later timestamp, within the period.
    first = updated(browser)
    deadline = time.monotonic() + REFRESH_SECONDS * 3
    while updated(browser) in (first, None) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (updated(browser) or "") > first, "the dashboard did not refresh itself"

    # Nothing in the console: no CSP violation, no failed load, no script error.
    problems = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == []
