"""A headless Chromium for the browser tests, and a static server that gives their pages an origin of their own.

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`; CHROMIUM and CHROMEDRIVER
name other binaries). Without them the tests skip, unless IMAGESTUDIO_REQUIRE_BROWSER=1 (set by .ci/run) turns the
skip into a failure, so CI cannot pass without having driven a browser.
"""

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PAGES = Path(__file__).resolve().parent / "pages"


def _binary(variable, *names):
    return os.environ.get(variable) or next(filter(None, map(shutil.which, names)), None)


def _unavailable(reason):
    if os.environ.get("IMAGESTUDIO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required but {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser():
    """A fresh Chromium per test: no preflight cache or open connection carries over (quitting also closes its
    keep-alive connections, so the live server's threads let go of the test database)."""
    chromium = _binary("CHROMIUM", "chromium", "chromium-browser")
    driver_path = _binary("CHROMEDRIVER", "chromedriver")
    if not (chromium and driver_path):
        _unavailable("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (the dev extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1000,800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        pass


@pytest.fixture(scope="session")
def page_origin():
    """The origin serving tests/browser/pages/: 127.0.0.1 on a port of its own (the API's live server is at
    localhost on another port, so the two never share an origin)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(PAGES)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
