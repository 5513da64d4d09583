"""The studio in headless Chromium, one test per defect a user met: what the page shows and what it sends must
stay true to the API (thresholds as saved, the rule previewed, the screen of the URL, figures of the present)."""

import pytest

from imagestudio.labeling.models import LabelingFunction
from tests.browser.studio_fixtures import (  # noqa: F401  (fixtures: chrome, demo, studio_user)
    chrome_fixture,
    demo_fixture,
    screenshot,
    sign_in_with_token,
    studio_user_fixture,
    wait_for,
)
from tests.browser.test_studio import all_css, api_for, css, fraction, present, server_stats, shown_stats

pytestmark = pytest.mark.django_db(transaction=True)

RED_TEXT = {"label_class": "red", "type": "similarity_text", "config": {"text": "a red shape"}}


def preview_ready(driver):
    return css(driver, "main").get_attribute("data-state") == "ready"


def test_saving_an_lf_unchanged_keeps_its_thresholds_as_saved(chrome, live_server, demo, studio_user):
    """An LF whose thresholds are off the histogram's bin edges (or beyond the split's scores) is shown, figured and
    saved with them as they are; only a threshold the user moves takes a bin edge."""
    from selenium.webdriver.common.keys import Keys

    client = api_for(studio_user)
    edges = client.post(f"/api/datasets/{demo.id}/lfs/preview/", {**RED_TEXT, "split": "dev", "bins": 40},
                        format="json").json()["histogram"]["edges"]
    between = {"low": round((edges[5] + edges[6]) / 2, 6), "high": round((edges[30] + edges[31]) / 2, 6)}
    beyond = {"low": None, "high": round(edges[-1] + 0.01, 6)}  # no dev sample scores that high
    for name, thresholds in (("between edges", between), ("beyond the scores", beyond)):
        made = client.post(f"/api/datasets/{demo.id}/lfs/", {**RED_TEXT, "name": name, **thresholds}, format="json")
        assert made.status_code == 201, made.content
        lf = made.json()
        sign_in_with_token(chrome, live_server, studio_user, f"/d/{demo.id}/lfs/{lf['id']}")
        wait_for(chrome, preview_ready, f"the preview of {name}")
        assert css(chrome, "#stat-present-threshold").text == f"≥ {thresholds['high']} (as saved)"
        assert css(chrome, "#stat-absent-threshold").text == \
            ("off" if thresholds["low"] is None else f"≤ {thresholds['low']} (as saved)")
        screenshot(chrome, f"regression-lf-{name.replace(' ', '-')}")
        shown = {stat: fraction(text) for stat, text in shown_stats(chrome).items()}
        assert shown == server_stats(client, demo, {**RED_TEXT, "split": "dev", "bins": 40, "invert": False},
                                     thresholds["low"], thresholds["high"])
        css(chrome, "#save-lf").click()
        wait_for(chrome, present("#lf-table"), "the LF list after saving")
        saved = LabelingFunction.objects.get(pk=lf["id"])
        assert (saved.low, saved.high) == (thresholds["low"], thresholds["high"])
        assert client.get(f"/api/datasets/{demo.id}/lfs/{lf['id']}/").json()["votes"] == lf["votes"]

    # Moved, a threshold takes the bin edge it is on; the other one stays as saved.
    lf = LabelingFunction.objects.get(name="between edges")
    chrome.execute_script("location.hash = arguments[0]", f"#/d/{demo.id}/lfs/{lf.id}")
    wait_for(chrome, lambda d: all_css(d, "g.handle.low") and preview_ready(d), "the preview again")
    css(chrome, "g.handle.low").send_keys(Keys.ARROW_LEFT)
    moved = float(css(chrome, "g.handle.low").get_attribute("data-value"))
    assert moved in edges and moved < between["low"]
    css(chrome, "#save-lf").click()
    wait_for(chrome, present("#lf-table"), "the LF list after saving")
    lf.refresh_from_db()
    assert (lf.low, lf.high) == (moved, between["high"])
