"""The studio in a real headless Chromium against a live server (tasks in-process), on the demo data: the whole
loop a user walks, checked through the page and against the API's own answers. Screenshots of each screen go to
tests/browser/artifacts/."""

import csv
import io
import re
import time

import pytest
from rest_framework.test import APIClient

from imagestudio.accounts.services import token_for
from imagestudio.annotations.models import Annotation
from imagestudio.annotations.services import annotation_set
from imagestudio.datasets.models import Dataset, LabelClass, Sample
from imagestudio.demo.services import demo_dataset_get_or_create
from imagestudio.labeling.models import LabelingFunction
from imagestudio.training.models import FastModel
from tests.browser.studio_fixtures import (  # noqa: F401  (fixtures: chrome, demo, studio_user)
    PASSWORD,
    chrome_fixture,
    demo_fixture,
    screenshot,
    sign_in_with_token,
    studio_user_fixture,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

STAT_IDS = ["stat-present-precision", "stat-present-recall", "stat-present-coverage", "stat-absent-precision",
            "stat-absent-recall", "stat-absent-coverage", "stat-coverage"]


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def present(selector):
    return lambda d: all_css(d, selector)


def text_of(selector, pattern):
    def check(driver):
        found = all_css(driver, selector)
        return found and re.search(pattern, found[0].text) and found[0]
    return check


def tab(driver, name):
    from selenium.webdriver.common.by import By

    driver.find_element(By.LINK_TEXT, name).click()


def button(driver, label, within=None):
    """The displayed button of this label (waited for: screens render after their reads)."""
    from selenium.webdriver.common.by import By

    scope = within or driver
    return wait_for(driver, lambda d: next((b for b in scope.find_elements(By.TAG_NAME, "button")
                                            if b.text.strip() == label and b.is_displayed()), None), f"a button {label!r}")


def loaded_images(driver, selector):
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(i => i.complete && i.naturalWidth > 0).length",
        selector)


def api_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user=user)}")
    return client


def labels(dataset, sample_ids, class_name):
    rows = Annotation.objects.filter(sample_id__in=sample_ids, label_class__dataset=dataset, label_class__name=class_name)
    found = {row.sample_id: row.value for row in rows}
    return [found.get(sample_id, "ABSTAIN") for sample_id in sample_ids]


def fraction(text):
    """'80.0% (4/5)' -> (4, 5)."""
    match = re.search(r"\((\d+)/(\d+)\)", text)
    assert match, text
    return int(match[1]), int(match[2])


def shown_stats(driver):
    return {stat: css(driver, f"#{stat}").text for stat in STAT_IDS}


def server_stats(client, dataset, rule, low, high):
    """The API's own precision / recall / coverage for the thresholds the page shows, as (successes, trials)."""
    response = client.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "low": low, "high": high}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    metrics, counts, population = body["metrics"], body["metrics"]["votes"], body["population"]
    pair = lambda rate: (rate["successes"], rate["trials"])  # noqa: E731
    return {
        "stat-present-precision": pair(metrics["present"]["precision"]),
        "stat-present-recall": pair(metrics["present"]["recall"]),
        "stat-present-coverage": (counts["present"], population),
        "stat-absent-precision": pair(metrics["absent"]["precision"]),
        "stat-absent-recall": pair(metrics["absent"]["recall"]),
        "stat-absent-coverage": (counts["absent"], population),
        "stat-coverage": pair(metrics["coverage"]),
    }


def handle_values(driver):
    values = driver.execute_script(
        "return ['low', 'high'].map(n => document.querySelector(`g.handle.${n}`).dataset.value)")
    return [float(value) if value else None for value in values]


def sign_in(driver, live_server):
    driver.get(f"{live_server.url}/studio/")
    driver.execute_script("sessionStorage.clear()")  # no token left by an earlier test
    driver.refresh()
    wait_for(driver, present('input[name="username"]'), "the sign-in screen")
    css(driver, 'input[name="username"]').send_keys("studio")
    css(driver, 'input[name="password"]').send_keys(PASSWORD)
    screenshot(driver, "01-sign-in")
    css(driver, 'form[aria-labelledby="signin-password"] button[type="submit"]').click()
    wait_for(driver, text_of(".dataset h2 a", "Demo shapes"), "the dataset picker after signing in")
    assert driver.execute_script("return sessionStorage.getItem('imagestudio.token')")
    screenshot(driver, "02-datasets")


def shortcuts_overlay(driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).send_keys("?").perform()
    overlay = wait_for(driver, present("dialog.shortcuts[open]"), "the shortcuts overlay")[0]
    assert "Label the selection PRESENT / ABSENT / ABSTAIN" in overlay.text
    screenshot(driver, "03b-shortcuts")
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait_for(driver, lambda d: not all_css(d, "dialog.shortcuts"), "the overlay closed")


def bulk_annotate_and_undo(driver, dataset):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    tiles = all_css(driver, "#grid .tile")
    ids = [int(tile.get_attribute("data-id")) for tile in tiles[:4]]
    before = labels(dataset, ids, "red")
    css(driver, 'input[name="bulk-class"][value="circle"]').click()  # off
    css(driver, 'input[name="bulk-class"][value="red"]').click()  # on
    tiles[0].click()
    ActionChains(driver).key_down(Keys.SHIFT).click(tiles[3]).key_up(Keys.SHIFT).perform()
    assert css(driver, "#selection-count").text == "4 selected"
    ActionChains(driver).send_keys("2").perform()  # shortcut: ABSENT for the chosen classes
    wait_for(driver, text_of("#status", "ABSENT for red"), "the bulk annotation's confirmation")
    assert labels(dataset, ids, "red") == ["ABSENT"] * 4
    wait_for(driver, lambda d: all("✗ red" in tile.text for tile in all_css(d, "#grid .tile")[:4]), "the badges")
    screenshot(driver, "04-grid-bulk-annotated")
    ActionChains(driver).send_keys("u").perform()  # shortcut: undo
    wait_for(driver, text_of("#status", "Undone"), "the undo's confirmation")
    assert labels(dataset, ids, "red") == before


def compose_text_lf(driver, dataset, client):
    """Preview a text similarity LF, drag both thresholds (no request), check the page's numbers against the
    API's for the same thresholds, use the suggestions, create the LF."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    button(driver, "New LF").click()
    wait_for(driver, present('input[name="text"]'), "the composer")
    css(driver, 'input[name="name"]').send_keys("looks like a circle")
    Select(css(driver, 'select[name="label_class"]')).select_by_value("circle")
    css(driver, 'input[name="text"]').send_keys("a circle")
    Select(css(driver, 'select[name="split"]')).select_by_value("dev")
    button(driver, "Preview").click()
    wait_for(driver, lambda d: css(d, "main").get_attribute("data-state") == "ready", "the preview")
    wait_for(driver, lambda d: loaded_images(d, ".strip img") == len(all_css(d, ".strip img")) > 0, "the top samples")
    screenshot(driver, "05-lf-composer")
    rule = {"label_class": "circle", "type": "similarity_text", "config": {"text": "a circle"}, "split": "dev",
            "bins": 40, "invert": False}

    before = shown_stats(driver)
    driver.execute_script("performance.clearResourceTimings()")
    for handle in ("low", "high"):  # both to the far left: no ABSENT side, PRESENT for every scored sample
        knob = css(driver, f"g.handle.{handle} rect.knob")
        to_left_edge = driver.execute_script(
            "const k = arguments[0].getBoundingClientRect(), c = document.querySelector('svg.histogram').getBoundingClientRect();"
            "return Math.round(c.left + 2 - (k.left + k.width / 2));", knob)
        half = to_left_edge // 2
        ActionChains(driver).click_and_hold(knob).move_by_offset(half, 0).move_by_offset(to_left_edge - half, 0) \
            .release().perform()
    dragged = shown_stats(driver)
    requests = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert requests == [], "dragging a threshold must not call the API"
    assert dragged != before
    assert css(driver, "#stat-absent-threshold").text == "off"
    low, high = handle_values(driver)
    assert low is None
    expected = server_stats(client, dataset, rule, low, high)
    assert {stat: fraction(text) for stat, text in dragged.items()} == expected

    # One move of a threshold, timed in the page: the numbers are rewritten synchronously by the handler.
    timings = driver.execute_script("""
        const handle = document.querySelector('g.handle.high');
        const times = [];
        for (const key of [...Array(10).fill('ArrowRight'), ...Array(10).fill('ArrowLeft')]) {
          const started = performance.now();
          handle.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
          times.push(performance.now() - started);
        }
        return times.sort((a, b) => a - b);""")
    print(f"\nthreshold move to updated P/R text: median {timings[10]:.3f} ms, max {timings[-1]:.3f} ms (20 moves)")

    css(driver, '[data-suggestion="high-best_f1"]').click()
    css(driver, '[data-suggestion="low-best_f1"]').click()
    suggested = shown_stats(driver)
    low, high = handle_values(driver)
    assert low is not None and high is not None and low < high
    assert {stat: fraction(text) for stat, text in suggested.items()} == server_stats(client, dataset, rule, low, high)
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0

    css(driver, "#save-lf").click()
    row = wait_for(driver, text_of("#lf-table tbody tr", "looks like a circle"), "the LF in the list")
    lf = LabelingFunction.objects.get(dataset=dataset, name="looks like a circle")
    assert (lf.low, lf.high, lf.active) == (low, high, True)
    assert re.search(r"\d+\.\d% \(\d+/\d+\)", row.find_element("css selector", ".coverage").text)
    screenshot(driver, "06-lf-list")


def build_training_set(driver):
    tab(driver, "Training set")
    wait_for(driver, present("#build-training-set"), "the training pane")
    css(driver, "#build-training-set").click()
    wait_for(driver, text_of("#training-sets tbody tr", "ready"), "the training set built")
    wait_for(driver, present("#labels-table tbody tr"), "the training labels")
    screenshot(driver, "07-training-set")


def train_model(driver, dataset):
    tab(driver, "Models")
    wait_for(driver, present("#train-model"), "the models pane")
    for name in ("square", "red"):
        css(driver, f'input[name="model-class"][value="{name}"]').click()
    ratio = css(driver, 'input[name="negative_ratio"]')
    ratio.clear()
    ratio.send_keys("2")
    css(driver, 'input[name="auto_train"]').click()
    wait_for(driver, text_of("#status", "Auto-train on"), "the auto-train switch")
    assert Dataset.objects.get(pk=dataset.pk).auto_train
    wait_for(driver, present("#train-model"), "the models pane again")
    css(driver, "#train-model").click()
    card = wait_for(driver, present('article.model section[data-class="circle"] dl'), "the model's metrics")[0]
    assert re.search(r"precision\s+\d+\.\d%", card.text)
    targets = FastModel.objects.filter(dataset=dataset).latest("id").metrics["circle"]["targets"]
    assert re.search(rf"fitted\s+{targets}\b", card.text)
    wait_for(driver, present('article.model section[data-class="circle"] .curve-chart path.curve'), "the PR and ROC curves")
    screenshot(driver, "08-models")


def follow_guidance(driver, dataset, client):
    tab(driver, "Analysis")
    link = wait_for(driver, present("a.guidance-link"), "the guidance")[0]
    screenshot(driver, "09-analysis")
    link.click()
    wait_for(driver, lambda d: css(d, "#grid").get_attribute("data-loaded") is not None, "the guided grid")
    query = driver.execute_script("return location.hash.split('?')[1]")
    assert query, "the guidance link names a filter"
    page = client.get(f"/api/datasets/{dataset.id}/samples/?{query}").json()
    shown = [int(tile.get_attribute("data-id")) for tile in all_css(driver, "#grid .tile")]
    assert shown == [sample["id"] for sample in page["results"]]
    assert f"{page['count']} samples" in css(driver, ".pager").text
    screenshot(driver, "10-grid-from-guidance")


def export_and_download(driver):
    button(driver, "Export").click()
    box = wait_for(driver, present("dialog[open]"), "the export dialog")[0]
    box.find_element("css selector", 'input[name="fields"][value="caption"]').click()
    button(driver, "Export", within=box.find_element("css selector", "form")).click()
    wait_for(driver, present("dialog[open] button[data-export]"), "the export job")
    screenshot(driver, "11-export")
    css(driver, "dialog[open] button[data-export]").click()
    files = wait_for(driver, lambda d: [p for p in d.downloads.iterdir() if p.suffix == ".csv"], "the CSV download")
    header = next(csv.reader(io.StringIO(files[0].read_text())))
    assert {"id", "caption", "gt:circle"} <= set(header)
    css(driver, "dialog[open] .close").click()


def label_conflict(driver, dataset, user):
    """Someone else changes a label while the image is open: the page refuses to overwrite it, says so."""
    sample = Sample.objects.filter(dataset=dataset).order_by("id").first()
    driver.execute_script("location.hash = arguments[0]", f"#/d/{dataset.id}/sample/{sample.id}")
    wait_for(driver, lambda d: loaded_images(d, "img.full") == 1, "the image view")
    screenshot(driver, "12-image-view")
    square = LabelClass.objects.get(dataset=dataset, name="square")
    seen = labels(dataset, [sample.id], "square")[0]
    other = "ABSENT" if seen == "PRESENT" else "PRESENT"
    annotation_set(dataset=dataset, user=user, sample=sample, label_class=square, value=other)
    css(driver, 'input[name="gt-square"][value="ABSTAIN"]').click()
    message = wait_for(driver, text_of("#gt-message", "Not saved"), "the conflict message")
    assert "changed since version" in message.text  # the API's own words follow
    assert labels(dataset, [sample.id], "square") == [other]


def patch_lf_from_a_crop(driver):
    """Drag a box on the image view's image: the composer opens on a patch LF of that box, in image pixels."""
    from selenium.webdriver.common.action_chains import ActionChains

    image = css(driver, "img.full")
    width, height, natural = driver.execute_script(
        "const i = arguments[0]; return [i.clientWidth, i.clientHeight, i.naturalWidth]", image)
    ActionChains(driver).move_to_element_with_offset(image, -width // 4, -height // 4).click_and_hold() \
        .move_by_offset(width // 2, height // 2).release().perform()
    button(driver, "Patch LF from the crop").click()
    wait_for(driver, lambda d: css(d, "main").get_attribute("data-state") == "ready", "the patch LF's preview")
    box = [int(value) for value in css(driver, 'input[name="box"]').get_attribute("value").split(",")]
    quarter = natural / 4
    assert all(abs(got - want) <= 0.05 * natural for got, want in zip(box, [quarter, quarter, 3 * quarter, 3 * quarter]))
    screenshot(driver, "16-patch-lf")


def sign_out(driver, client):
    """Signing out revokes the token on the server, not only in the tab."""
    key = driver.execute_script("return sessionStorage.getItem('imagestudio.token')")
    button(driver, "Sign out").click()
    wait_for(driver, present('input[name="username"]'), "the sign-in screen")
    assert driver.execute_script("return sessionStorage.getItem('imagestudio.token')") is None
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/datasets/").status_code == 401


def test_the_whole_loop(chrome, live_server, demo, studio_user):
    client = api_for(studio_user)
    sign_in(chrome, live_server)
    button(chrome, "Open").click()
    wait_for(chrome, lambda d: css(d, "#grid").get_attribute("data-loaded") == "50", "50 thumbnails")
    assert loaded_images(chrome, "#grid img") == 50
    screenshot(chrome, "03-grid")
    shortcuts_overlay(chrome)
    bulk_annotate_and_undo(chrome, demo)
    tab(chrome, "LFs")
    compose_text_lf(chrome, demo, client)
    build_training_set(chrome)
    train_model(chrome, demo)
    follow_guidance(chrome, demo, client)
    export_and_download(chrome)
    tab(chrome, "Data")
    wait_for(chrome, present("#data-table tbody tr"), "the data view")
    screenshot(chrome, "13-data-view")
    tab(chrome, "Resources")
    button(chrome, "Allocate").click()
    wait_for(chrome, present("#allocations tbody tr"), "the dedicated resources")
    total = css(chrome, "#allocations tfoot td").text
    assert css(chrome, "#status").text.startswith(f"Pinned {total} "), total  # every matrix pinned, not one
    screenshot(chrome, "14-resources")
    label_conflict(chrome, demo, studio_user)
    patch_lf_from_a_crop(chrome)
    sign_out(chrome, client)


def test_new_dataset_and_upload_with_job_progress(chrome, live_server, studio_user, tmp_path):
    from tests.conftest import png_bytes

    paths = []
    for index, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        path = tmp_path / f"colour-{index}.png"
        path.write_bytes(png_bytes(colour=colour))
        paths.append(str(path))
    sign_in_with_token(chrome, live_server, studio_user, "/")
    wait_for(chrome, present('input[name="classes"]'), "the dataset picker")
    css(chrome, 'input[name="name"]').send_keys("Colours")
    css(chrome, 'input[name="classes"]').send_keys("warm, cool")
    css(chrome, 'input[name="auto_embed"]').click()  # off: nothing to embed in this test
    button(chrome, "Create").click()
    wait_for(chrome, present("#grid"), "the new dataset's grid")
    dataset = Dataset.objects.get(name="Colours")
    assert sorted(LabelClass.objects.filter(dataset=dataset).values_list("name", flat=True)) == ["cool", "warm"]
    chrome.find_element("link text", "Image Studio").click()
    card = wait_for(chrome, text_of(".dataset", "Colours"), "the picker")
    button(chrome, "Import images…", within=card).click()
    box = wait_for(chrome, present("dialog[open]"), "the import dialog")[0]
    box.find_element("css selector", 'input[type="file"]').send_keys("\n".join(paths))
    button(chrome, "Import", within=box).click()
    wait_for(chrome, lambda d: css(d, "dialog[open] .job").get_attribute("data-status") == "succeeded", "the import job")
    assert css(chrome, "dialog[open] progress").get_attribute("value") == "1"
    assert "Created 3" in css(chrome, "dialog[open]").text
    assert "null" not in css(chrome, "dialog[open]").text
    screenshot(chrome, "15-import")
    assert Sample.objects.filter(dataset=dataset).count() == 3


def test_grid_of_100_thumbnails_after_navigation(chrome, live_server, studio_user):
    dataset, job = demo_dataset_get_or_create(user=studio_user, count=120)
    assert job.status == "succeeded"
    started = time.monotonic()
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/grid?limit=100")
    wait_for(chrome, lambda d: css(d, "#grid").get_attribute("data-loaded") == "100", "100 thumbnails")
    assert loaded_images(chrome, "#grid img") == 100
    interactive, listed, loaded = chrome.execute_script(
        "const at = (name) => performance.getEntriesByName(name)[0].startTime;"
        "return [performance.getEntriesByType('navigation')[0].domInteractive, at('studio:grid-listed'),"
        "        at('studio:grid-thumbnails')]")
    print(f"\ngrid of 100 thumbnails loaded {loaded:.0f} ms after navigation (DOM interactive {interactive:.0f} ms, "
          f"samples listed {listed:.0f} ms; {time.monotonic() - started:.1f} s of test wall time)")


def test_pattern_lf_typed_with_a_slash_command(chrome, live_server, studio_user):
    """A keyword rule picked with "/keyword red": its 0/1 scores land in the first and last bins, and the numbers
    the page shows for the thresholds are the API's."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    dataset, job = demo_dataset_get_or_create(user=studio_user)
    assert job.status == "succeeded"
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/lfs/new?type=pattern&class=red")
    wait_for(chrome, present('input[name="builder-command"]'), "the pattern composer")
    Select(css(chrome, 'select[name="pattern-field"]')).select_by_value("caption")
    Select(css(chrome, 'select[name="builder"]')).select_by_value("regex")
    css(chrome, 'input[name="builder-command"]').send_keys("/keyword red", Keys.TAB)
    assert Select(css(chrome, 'select[name="builder"]')).first_selected_option.get_attribute("value") == "keyword"
    assert css(chrome, 'input[name="words"]').get_attribute("value") == "red"
    button(chrome, "Preview").click()
    wait_for(chrome, lambda d: css(d, "main").get_attribute("data-state") == "ready", "the preview")
    low, high = handle_values(chrome)
    rule = {"label_class": "red", "type": "pattern", "split": "dev", "bins": 40, "invert": False,
            "config": {"field": "caption", "builder": "keyword", "words": ["red"], "mode": "any",
                       "case_sensitive": False, "whole_word": True}}
    shown = {stat: fraction(text) for stat, text in shown_stats(chrome).items()}
    assert shown == server_stats(api_for(studio_user), dataset, rule, low, high)
    assert shown["stat-present-precision"][0] > 0  # the captions name the colour: the rule finds red shapes
    screenshot(chrome, "17-pattern-lf")
