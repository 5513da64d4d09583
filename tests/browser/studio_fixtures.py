"""Fixtures of the studio's browser tests: Debian's headless Chromium driven by Selenium, the demo data, helpers.

Without Chromium and its driver the tests skip, unless IMAGESTUDIO_REQUIRE_BROWSER=1 (set by .ci/run, which
installs `chromium` and `chromium-driver`) makes that a failure. CHROMIUM and CHROMEDRIVER name other binaries."""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from imagestudio.demo.services import demo_dataset_get_or_create, demo_embeddings_ensure

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PASSWORD = "studio-password-123"
WAIT_SECONDS = 60


def _chromium():
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = "Chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
    if os.environ.get("IMAGESTUDIO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required but {reason}")
    pytest.skip(reason)


# Fixtures are imported by the test modules: named apart from their functions, so parameters shadow nothing.
@pytest.fixture(name="chrome")
def chrome_fixture(tmp_path):
    """A fresh headless Chromium at 1280x800 per test (no connection to the live server outlives its test), that
    downloads into a temporary folder (`chrome.downloads`)."""
    browser, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = Options()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                     "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(name="studio_user")
def studio_user_fixture(transactional_db):
    return get_user_model().objects.create_user(username="studio", password=PASSWORD)


@pytest.fixture(name="demo")
def demo_fixture(studio_user):
    """The quick start's demo dataset (60 images, some ground truth), embedded with the default encoder."""
    dataset, job = demo_dataset_get_or_create(user=studio_user)
    assert job.status == "succeeded", job.error
    embedded = demo_embeddings_ensure(dataset=dataset, user=studio_user)
    assert embedded.status == "succeeded", embedded.error
    return dataset


def screenshot(driver, name):
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait_for(driver, condition, message, seconds=WAIT_SECONDS):
    """Wait until `condition(driver)` is truthy; returns its value. On a timeout the page is kept as a screenshot
    and its error region is part of the failure."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # a screen re-rendering under the condition makes its elements stale: ask again
        return WebDriverWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]) \
            .until(lambda d: condition(d), message)
    except TimeoutException:
        screenshot(driver, "timeout-" + "".join(c if c.isalnum() else "-" for c in message))
        errors = driver.execute_script("return [...document.querySelectorAll('[role=alert]')].map(e => e.innerText)"
                                       ".filter(Boolean).join(' | ')")
        raise TimeoutException(f"{message}; the page's errors: {errors or 'none'}") from None


def sign_in_with_token(driver, live_server, user, route):
    """Open the studio on `route` with the user's token in sessionStorage, as the sign-in screen leaves it."""
    from imagestudio.accounts.services import token_for

    driver.get(f"{live_server.url}/static/studio/studio.css")  # the studio's origin, without the studio
    driver.execute_script("sessionStorage.setItem('imagestudio.token', arguments[0])", token_for(user=user))
    driver.get("about:blank")  # a new document: the next page load is a navigation of its own
    driver.get(f"{live_server.url}/studio/#{route}")
