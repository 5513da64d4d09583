"""A page served from another origin, in headless Chromium, signs in with a token, lists samples, shows their
thumbnails through the signed URLs, runs an LF preview and draws its histogram: all through CORS and <img>."""

from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from imagestudio.datasets.services import dataset_create
from tests.conftest import make_user
from tests.factories import make_samples

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots for CI to keep (gitignored)
BINS = 12
PAGE_LOAD_LIMIT = 120  # seconds to wait for the page to finish (a bound on a hang, not a measured duration)


@pytest.fixture
def studio(transactional_db):
    user = make_user("browser")
    dataset = dataset_create(user=user, name="Pets", classes=["cat", "dog"])
    samples = make_samples(dataset, [
        {"metadata": {"caption": "a tabby cat"}, "gt": {"cat": "PRESENT"}},
        {"metadata": {"caption": "a sleepy cat"}, "gt": {"cat": "PRESENT"}},
        {"metadata": {"caption": "a dog in the park"}, "gt": {"cat": "ABSENT"}},
        {"metadata": {"caption": "two dogs"}, "gt": {"cat": "ABSENT"}},
        {"metadata": {"caption": "a bowl of fruit"}},
        {"metadata": {"caption": "a cat and a dog"}, "split": "dev"},
    ])
    return user, dataset, samples


def open_page(browser, page_origin, api_url, user, dataset):
    fragment = urlencode({"api": f"{api_url}/api/", "username": user.username, "password": f"{user.username}-password-123",
                          "dataset": dataset.id, "class": "cat", "bins": BINS})
    browser.get(f"{page_origin}/index.html#{fragment}")
    WebDriverWait(browser, PAGE_LOAD_LIMIT).until(
        lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") != "loading")
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def report(browser):
    status = browser.find_element(By.ID, "status").text
    console = [entry["message"] for entry in browser.get_log("browser")]
    return f"page status: {status}\nconsole: {console}"


def test_a_page_on_another_origin_uses_the_api_end_to_end(browser, page_origin, live_server, settings, studio):
    user, dataset, samples = studio
    settings.CORS_ALLOWED_ORIGINS = [page_origin]
    state = open_page(browser, page_origin, live_server.url, user, dataset)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "cross-origin.png"))
    assert state == "done", report(browser)

    images = browser.execute_script(
        "return [...document.querySelectorAll('#grid img')].map(i => [i.currentSrc, i.complete, i.naturalWidth])")
    assert len(images) == len(samples)
    api_origin = urlsplit(live_server.url)
    for src, complete, natural_width in images:
        url = urlsplit(src)
        assert (url.scheme, url.netloc) == (api_origin.scheme, api_origin.netloc), src
        assert "exp=" in url.query and "sig=" in url.query, src  # signed: an <img> sends no token
        assert complete and natural_width > 0, (src, report(browser))

    bars = browser.find_elements(By.CSS_SELECTOR, "#histogram rect.bar")
    assert len(bars) == BINS
    assert sum(int(bar.get_attribute("data-count")) for bar in bars) == len(samples)


def test_a_page_on_an_origin_not_allowed_is_stopped_by_the_browser(browser, page_origin, live_server, settings,
                                                                   studio):
    user, dataset, _ = studio
    settings.CORS_ALLOWED_ORIGINS = ["https://studio.example.com"]
    assert open_page(browser, page_origin, live_server.url, user, dataset) == "error"
    assert "Failed to fetch" in browser.find_element(By.ID, "status").text
