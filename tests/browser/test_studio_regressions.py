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
from tests.browser.test_studio import (
    all_css,
    api_for,
    button,
    css,
    fraction,
    handle_values,
    present,
    server_stats,
    shown_stats,
    text_of,
)

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


def test_an_lf_s_config_edited_keeps_its_thresholds_a_new_class_does_not(chrome, live_server, demo, studio_user):
    """Any key in the config forgot an existing LF's thresholds: the next preview put them on its suggestions and
    Save wrote those. Another config keeps them (re-previewed); another class or type drops them."""
    from selenium.webdriver.common.keys import Keys

    client = api_for(studio_user)
    edges = client.post(f"/api/datasets/{demo.id}/lfs/preview/", {**RED_TEXT, "split": "dev", "bins": 40},
                        format="json").json()["histogram"]["edges"]
    thresholds = {"low": round((edges[5] + edges[6]) / 2, 6), "high": round((edges[30] + edges[31]) / 2, 6)}
    lf = client.post(f"/api/datasets/{demo.id}/lfs/", {**RED_TEXT, "name": "kept", **thresholds}, format="json").json()
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{demo.id}/lfs/{lf['id']}")
    wait_for(chrome, preview_ready, "the LF's preview")
    text = css(chrome, 'input[name="text"]')
    text.send_keys(" x")
    text.send_keys(Keys.BACKSPACE, Keys.BACKSPACE)  # the rule it was: the thresholds stay, a preview is due
    assert not css(chrome, "#save-lf").is_enabled()
    css(chrome, 'button[type="submit"].primary').click()
    wait_for(chrome, lambda d: preview_ready(d) and css(d, "#save-lf").is_enabled(), "the preview again")
    assert css(chrome, "#stat-present-threshold").text == f"≥ {thresholds['high']} (as saved)"
    css(chrome, "#save-lf").click()
    wait_for(chrome, present("#lf-table"), "the LF list after saving")
    saved = LabelingFunction.objects.get(pk=lf["id"])
    assert (saved.low, saved.high) == (thresholds["low"], thresholds["high"])


def test_a_changed_rule_must_be_previewed_before_it_is_saved(chrome, live_server, demo, studio_user):
    """Changing the class, the type or the config (or a preview that fails) drops the preview and its thresholds:
    Save waits for a preview of the rule it saves."""
    from selenium.webdriver.support.ui import Select

    sign_in_with_token(chrome, live_server, studio_user, f"/d/{demo.id}/lfs/new?type=similarity_text&class=red"
                                                         "&text=a+red+shape")
    wait_for(chrome, preview_ready, "the text rule's preview")
    assert css(chrome, "#save-lf").is_enabled()

    def dropped(driver):
        return not css(driver, "#save-lf").is_enabled() and not all_css(driver, "svg.histogram") \
            and "preview" in css(driver, "#histogram-area").text.lower()

    Select(css(chrome, 'select[name="label_class"]')).select_by_value("square")
    assert dropped(chrome)
    assert css(chrome, "#stat-present-threshold").text == "–"
    Select(css(chrome, 'select[name="type"]')).select_by_value("pattern")
    Select(css(chrome, 'select[name="pattern-field"]')).select_by_value("caption")
    Select(css(chrome, 'select[name="builder"]')).select_by_value("keyword")
    css(chrome, 'input[name="words"]').send_keys("square")
    css(chrome, 'input[name="name"]').send_keys("says square")
    css(chrome, "#save-lf").click()  # disabled: nothing is sent
    assert dropped(chrome)
    assert not LabelingFunction.objects.filter(name="says square").exists()

    bins = css(chrome, 'input[name="bins"]')
    bins.clear()
    bins.send_keys("1000")  # more than the API allows: the preview fails
    css(chrome, 'button[type="submit"].primary').click()
    wait_for(chrome, lambda d: css(d, "main").get_attribute("data-state") == "error", "the failed preview")
    assert dropped(chrome)
    bins.clear()
    bins.send_keys("40")
    css(chrome, 'button[type="submit"].primary').click()
    wait_for(chrome, lambda d: preview_ready(d) and all_css(d, "svg.histogram"), "the keyword rule's preview")
    assert css(chrome, "#save-lf").is_enabled()
    css(chrome, 'input[name="words"]').send_keys(", box")  # the config changes again after its preview
    assert dropped(chrome)
    css(chrome, 'button[type="submit"].primary').click()
    wait_for(chrome, lambda d: preview_ready(d) and all_css(d, "svg.histogram"), "the new preview")
    low, high = handle_values(chrome)
    css(chrome, "#save-lf").click()
    wait_for(chrome, present("#lf-table"), "the LF list")
    lf = LabelingFunction.objects.get(name="says square")
    assert (lf.type, lf.label_class.name, lf.config["words"], lf.low, lf.high) == \
        ("pattern", "square", ["square", "box"], low, high)


def active_tab(driver):
    return [tab.text for tab in all_css(driver, "#nav a.tab.active")]


def test_only_the_latest_route_is_rendered(chrome, live_server, demo, studio_user):
    """Data, then Resources while the data view still loads: the data view, done last, does not replace Resources."""
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{demo.id}/lfs")
    wait_for(chrome, lambda d: css(d, "main").get_attribute("data-screen") == "lfs", "the LF list")
    chrome.execute_script("""
        // The data view's field catalogue is held until the test lets it go: the data view finishes last.
        const fetchNow = window.fetch;
        window.held = [];
        window.fetch = (url, init) => String(url).includes('/fields/')
          ? new Promise((resolve) => window.held.push(() => resolve(fetchNow(url, init)))) : fetchNow(url, init);
        // The element the data view renders into (listeners run in order: the studio's render has begun).
        window.addEventListener('hashchange', () => {
          if (location.hash.endsWith('/data')) window.dataMain = document.getElementById('main');
        });
        location.hash = arguments[0];""", f"#/d/{demo.id}/data")
    wait_for(chrome, lambda d: d.execute_script("return window.held.length"), "the data view loading")
    chrome.execute_script("location.hash = arguments[0]", f"#/d/{demo.id}/resources")
    wait_for(chrome, lambda d: css(d, "main").get_attribute("data-screen") == "resources", "the resources screen")
    chrome.execute_script("window.held.splice(0).forEach((release) => release())")
    wait_for(chrome, lambda d: d.execute_script("return Boolean(window.dataMain?.querySelector('#data-table'))"),
             "the data view done")
    assert css(chrome, "main").get_attribute("data-screen") == "resources"
    assert css(chrome, "main h1").text == "Embeddings and resources"
    assert not all_css(chrome, "#data-table")
    assert active_tab(chrome) == ["Resources"]


def test_a_screen_that_cannot_load_says_so(chrome, live_server, demo, studio_user):
    """The server gone (or only a screen's module): the click on a tab shows an error, and nothing is left
    unhandled."""
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{demo.id}/grid")
    wait_for(chrome, lambda d: css(d, "#grid").get_attribute("data-loaded") is not None, "the grid")
    chrome.execute_script("window.unhandled = []; window.addEventListener('unhandledrejection', "
                          "(event) => window.unhandled.push(String(event.reason)))")
    chrome.execute_cdp_cmd("Network.enable", {})
    for blocked, tab_name, screen in ((["*/screens/lfs.js", "*/api/*"], "LFs", "lfs"),  # the server is down
                                      (["*/screens/training.js"], "Training set", "training")):  # one module
        chrome.execute_cdp_cmd("Network.setBlockedURLs", {"urls": blocked})
        chrome.find_element("link text", tab_name).click()
        expected = "cannot be reached" if "*/api/*" in blocked else f"The {tab_name} screen could not be loaded"
        wait_for(chrome, text_of("#errors", expected), f"the error of the {tab_name} tab")
        assert chrome.execute_script("return window.unhandled") == []
        assert active_tab(chrome) == [tab_name]
        assert not all_css(chrome, "main #grid")
    chrome.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


def test_the_composer_fits_a_narrow_window(chrome, live_server, demo, studio_user):
    """At 800 x 600 the composer's columns stack: nothing overflows sideways."""
    chrome.set_window_size(800, 600)
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{demo.id}/lfs/new?type=similarity_text&class=red"
                                                         "&text=a+red+shape")
    wait_for(chrome, preview_ready, "the preview")
    screenshot(chrome, "regression-narrow-composer")
    widths = chrome.execute_script("const e = document.documentElement; return [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1], widths


def test_the_import_dialog_lists_refused_and_skipped_files(chrome, live_server, studio_user, tmp_path):
    """An archive whose manifest leaves members out and names a missing one: every count, each file with its
    reason, and no stray "null"."""
    import zipfile

    from imagestudio.datasets.services import dataset_create
    from tests.conftest import png_bytes

    dataset_create(user=studio_user, name="Archive", classes=["a"])
    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr("listed.png", png_bytes((1, 1, 1)))
        members.writestr("unlisted.png", png_bytes((2, 2, 2)))
        members.writestr("notes.txt", "hello")
        members.writestr("manifest.csv", "file,split\nlisted.png,dev\nmissing.png,dev\n")
    sign_in_with_token(chrome, live_server, studio_user, "/")
    card = wait_for(chrome, text_of(".dataset", "Archive"), "the picker")
    button(chrome, "Import images…", within=card).click()
    box = wait_for(chrome, present("dialog[open]"), "the import dialog")[0]
    box.find_element("css selector", 'input[type="file"]').send_keys(str(archive))
    button(chrome, "Import", within=box).click()
    wait_for(chrome, lambda d: css(d, "dialog[open] .job").get_attribute("data-status") == "succeeded", "the import")
    text = wait_for(chrome, text_of("dialog[open] .progress-area", "Created"), "the import's report").text
    screenshot(chrome, "regression-import-report")
    assert "Created 1, duplicates 0, refused 1, skipped 2." in text
    assert "missing.png: " in text
    for name in ("unlisted.png", "notes.txt"):
        assert f"{name}: not listed in the manifest manifest.csv" in text
    assert "null" not in css(chrome, "dialog[open]").text


def test_signing_out_with_the_server_unreachable_says_the_token_stays_valid(chrome, live_server, studio_user):
    sign_in_with_token(chrome, live_server, studio_user, "/")
    wait_for(chrome, present('input[name="classes"]'), "the dataset picker")
    key = chrome.execute_script("return sessionStorage.getItem('imagestudio.token')")
    chrome.execute_cdp_cmd("Network.enable", {})
    chrome.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/api/auth/logout/*"]})
    button(chrome, "Sign out").click()
    wait_for(chrome, present('input[name="username"]'), "the sign-in screen")
    message = wait_for(chrome, text_of("#errors", "not revoked"), "the warning").text
    assert "stays valid" in message
    assert chrome.execute_script("return sessionStorage.getItem('imagestudio.token')") is None
    client = api_for(studio_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/datasets/").status_code == 200


def test_a_new_submit_clears_the_previous_error(chrome, live_server, studio_user):
    """Resample refused, then done: the refusal goes; done, then refused: the earlier result goes."""
    from imagestudio.demo.services import demo_dataset_get_or_create

    dataset, _ = demo_dataset_get_or_create(user=studio_user)
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/grid")
    button(chrome, "Resample").click()
    box = wait_for(chrome, present("dialog[open]"), "the resample dialog")[0]
    size = box.find_element("css selector", 'input[name="sample_size"]')
    for value, shown in (("20000000", "sample_size"), ("5", "Sampled 5"), ("20000000", "sample_size")):
        size.clear()
        size.send_keys(value)
        button(chrome, "Resample", within=box.find_element("css selector", "form")).click()
        wait_for(chrome, lambda d: shown in box.text, f"the answer to a sample of {value}")
        error = box.find_element("css selector", ".form-errors").text
        assert bool(error) == (value != "5"), error
        assert ("Sampled" in box.text) == (value == "5")


def test_a_models_figures_follow_the_current_ground_truth(chrome, live_server, demo, studio_user):
    """A valid label changed after training: the card's confusion and PR-AUC are today's (the charts'), and a cell
    opens a grid of as many samples as it says."""
    from imagestudio.annotations.models import Annotation
    from imagestudio.annotations.services import annotation_set
    from imagestudio.datasets.models import LabelClass, Sample
    from imagestudio.training.models import FastModel

    client = api_for(studio_user)
    started = client.post(f"/api/datasets/{demo.id}/models/", {"classes": ["circle"], "label_source": "ground_truth"},
                          format="json")
    assert started.status_code == 202, started.content
    model = FastModel.objects.get(dataset=demo)
    assert model.ready, model.job.error
    circle = LabelClass.objects.get(dataset=demo, name="circle")
    labeled = Annotation.objects.filter(label_class=circle, sample__split="valid").exclude(value="ABSTAIN").first()
    flipped = "ABSENT" if labeled.value == "PRESENT" else "PRESENT"
    annotation_set(dataset=demo, user=studio_user, sample=Sample.objects.get(pk=labeled.sample_id), label_class=circle,
                   value=flipped)
    charts = client.get(f"/api/datasets/{demo.id}/models/{model.id}/charts/").json()["classes"]
    today = next(entry for entry in charts if entry["label_class"] == "circle")
    assert today["confusion"] != model.metrics["circle"]["valid"]["confusion"]  # the label change shows

    sign_in_with_token(chrome, live_server, studio_user, f"/d/{demo.id}/models")
    section = 'article.model section[data-class="circle"]'
    wait_for(chrome, present(f"{section} .curve-chart path.curve"), "the curves")
    cells = {cell.get_attribute("data-bucket"): int(cell.text.split()[-1]) for cell in all_css(chrome, f"{section} a")
             if cell.get_attribute("data-bucket")}
    assert cells == {bucket.upper(): count for bucket, count in today["confusion"].items()}
    assert f"PR-AUC\n{today['pr_auc']:.3f}" in css(chrome, section).text
    bucket = "TP" if cells["TP"] else "FP"
    css(chrome, f'{section} a[data-bucket="{bucket}"]').click()
    wait_for(chrome, lambda d: all_css(d, "#grid") and css(d, "#grid").get_attribute("data-loaded") is not None,
             "the grid of the bucket")
    assert f"{cells[bucket]} samples" in css(chrome, ".pager").text


def test_the_data_view_can_show_no_metadata_column(chrome, live_server, studio_user):
    """Every metadata field unchecked: no metadata column, and so after a reload."""
    from imagestudio.demo.services import demo_dataset_get_or_create

    dataset, _ = demo_dataset_get_or_create(user=studio_user)
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/data")
    wait_for(chrome, present("#data-table thead th"), "the data view")
    fields = [box.get_attribute("value") for box in all_css(chrome, 'input[name="field"]')]

    def headers(driver):
        return {th.text.strip(" ▲▼") for th in all_css(driver, "#data-table thead th")}

    while checked := [box for box in all_css(chrome, 'input[name="field"]') if box.is_selected()]:
        name = checked[0].get_attribute("value")
        checked[0].click()
        wait_for(chrome, lambda d, name=name: "id" in headers(d) and name not in headers(d), f"the {name} column gone")
    assert not headers(chrome) & set(fields)
    chrome.refresh()
    wait_for(chrome, lambda d: "id" in headers(d), "the data view reloaded")
    assert not headers(chrome) & set(fields)
    assert not [box for box in all_css(chrome, 'input[name="field"]') if box.is_selected()]


def test_the_image_view_shows_the_labels_and_history_of_the_server(chrome, live_server, studio_user):
    """A label saved in the page joins the history; a label refused (changed elsewhere) shows the server's value."""
    from imagestudio.annotations.services import annotation_set
    from imagestudio.datasets.models import LabelClass, Sample
    from imagestudio.demo.services import demo_dataset_get_or_create

    dataset, _ = demo_dataset_get_or_create(user=studio_user)
    sample = Sample.objects.filter(dataset=dataset).order_by("id").first()
    square = LabelClass.objects.get(dataset=dataset, name="square")
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/sample/{sample.id}")
    wait_for(chrome, lambda d: all_css(d, ".history") and "Loading" not in css(d, ".history").text, "the label history")

    def checked(driver):
        return [radio.get_attribute("value") for radio in all_css(driver, 'input[name="gt-square"]') if radio.is_selected()]

    mine = "ABSENT" if checked(chrome) == ["PRESENT"] else "PRESENT"
    css(chrome, f'input[name="gt-square"][value="{mine}"]').click()
    wait_for(chrome, text_of("#status", f"square: {mine} saved"), "the label saved")
    wait_for(chrome, text_of(".history", rf"square \w+ → {mine}"), "the change in the history")

    other = "ABSTAIN" if mine == "PRESENT" else "PRESENT"
    annotation_set(dataset=dataset, user=studio_user, sample=sample, label_class=square, value=other)
    refused = next(value for value in ("PRESENT", "ABSENT", "ABSTAIN") if value not in (mine, other))
    css(chrome, f'input[name="gt-square"][value="{refused}"]').click()
    wait_for(chrome, text_of("#gt-message", "Not saved"), "the conflict message")
    wait_for(chrome, lambda d: checked(d) == [other], "the server's label shown")
    wait_for(chrome, text_of(".history", rf"square {mine} → {other}"), "the other change in the history")

    # two quick clicks are the user's own changes, saved one after the other (the second was a conflict)
    first, second = (value for value in ("PRESENT", "ABSENT", "ABSTAIN") if value != other)
    chrome.execute_script("for (const value of arguments) document.querySelector("
                          "`input[name='gt-square'][value='${value}']`).click()", first, second)
    wait_for(chrome, text_of("#status", f"square: {second} saved"), "the second click saved")
    assert "Not saved" not in css(chrome, "#gt-message").text and checked(chrome) == [second]
    assert sample.annotations.get(label_class=square).value == second


def test_the_label_history_shows_the_last_read_when_answers_cross(chrome, live_server, studio_user):
    """Two saves refresh the history twice; the first read answering last must not put back the older history."""
    from imagestudio.datasets.models import Sample
    from imagestudio.demo.services import demo_dataset_get_or_create

    dataset, _ = demo_dataset_get_or_create(user=studio_user)
    sample = Sample.objects.filter(dataset=dataset).order_by("id").first()
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/sample/{sample.id}")
    wait_for(chrome, lambda d: all_css(d, ".history") and "Loading" not in css(d, ".history").text, "the label history")
    chrome.execute_script("""
        // The answer of the first history read after this point (read at once: the history before the second
        // save) is held until the test lets it go; later reads pass.
        const fetchNow = window.fetch;
        window.held = [];
        window.armed = true;
        window.fetch = (url, init) => {
          if (!String(url).includes('/annotations/history/') || !window.armed) return fetchNow(url, init);
          window.armed = false;
          const answer = fetchNow(url, init);
          return new Promise((resolve) => window.held.push(() => {
            resolve(answer);
            answer.then(() => setTimeout(() => { window.released = true; }, 0));
          }));
        };""")
    shown = [radio.get_attribute("value") for radio in all_css(chrome, 'input[name="gt-square"]') if radio.is_selected()]
    first, second = [value for value in ("PRESENT", "ABSENT", "ABSTAIN") if value not in shown][:2]
    css(chrome, f'input[name="gt-square"][value="{first}"]').click()
    wait_for(chrome, text_of("#status", f"square: {first} saved"), "the first label saved")
    wait_for(chrome, lambda d: d.execute_script("return window.held.length"), "the first history read held")
    css(chrome, f'input[name="gt-square"][value="{second}"]').click()
    wait_for(chrome, text_of("#status", f"square: {second} saved"), "the second label saved")
    wait_for(chrome, text_of(".history", rf"square {first} → {second}"), "the second change in the history")
    chrome.execute_script("window.held.splice(0).forEach((release) => release())")
    wait_for(chrome, lambda d: d.execute_script("return window.released === true"), "the held read answered")
    chrome.execute_script("return new Promise((resolve) => setTimeout(resolve, 300))")  # its body read and rendered
    assert f"square {first} → {second}" in css(chrome, ".history").text


def test_back_to_the_grid_keeps_its_filter_and_page(chrome, live_server, studio_user):
    """From the image view, the link, `b` and Esc go back to the grid page it was opened from."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from imagestudio.demo.services import demo_dataset_get_or_create

    dataset, _ = demo_dataset_get_or_create(user=studio_user)
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/grid?search=circle&limit=10")
    wait_for(chrome, lambda d: css(d, "#grid").get_attribute("data-loaded") == "10", "the first page")
    first_page = css(chrome, "#grid .tile").get_attribute("data-id")
    button(chrome, "Next").click()
    wait_for(chrome, lambda d: css(d, "main").get_attribute("data-screen") == "grid"
             and css(d, "#grid .tile").get_attribute("data-id") != first_page, "the second page")
    grid = chrome.execute_script("return location.hash")
    assert "page=" in grid
    first = css(chrome, "#grid .tile").get_attribute("data-id")
    for back in ("link", "b", Keys.ESCAPE):
        ActionChains(chrome).double_click(css(chrome, f'#grid .tile[data-id="{first}"]')).perform()
        wait_for(chrome, lambda d: css(d, "main").get_attribute("data-screen") == "sample", "the image view")
        if back == "link":
            chrome.find_element("link text", "Back to the grid").click()
        else:
            ActionChains(chrome).send_keys(back).perform()
        wait_for(chrome, lambda d: css(d, "main").get_attribute("data-screen") == "grid", f"the grid again ({back!r})")
        assert chrome.execute_script("return location.hash") == grid


def test_where_wrong_covers_both_sides_of_an_lf(chrome, live_server, studio_user):
    """An LF with both thresholds: a link to its wrong PRESENT votes and one to its wrong ABSENT votes."""
    from imagestudio.demo.services import demo_dataset_get_or_create

    dataset, _ = demo_dataset_get_or_create(user=studio_user)
    client = api_for(studio_user)
    made = client.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "circles are red", "label_class": "red", "type": "pattern", "low": 0.2, "high": 0.8,
        "config": {"field": "caption", "builder": "keyword", "words": ["circle"]}}, format="json")
    assert made.status_code == 201, made.content
    lf = made.json()
    sign_in_with_token(chrome, live_server, studio_user, f"/d/{dataset.id}/lfs")
    for vote, truth in (("PRESENT", "ABSENT"), ("ABSENT", "PRESENT")):
        link = wait_for(chrome, present(f'#lf-table tr[data-lf="{lf["id"]}"] a[data-wrong="{vote}"]'), "the link")[0]
        query = link.get_attribute("href").split("?")[1]
        expected = client.get(f"/api/datasets/{dataset.id}/samples/?{query}").json()
        assert f"lf_vote={lf['id']}%3A{vote}" in query and f"gt=red%3A{truth}" in query
        assert expected["count"] > 0
        link.click()
        wait_for(chrome, lambda d: all_css(d, "#grid") and css(d, "#grid").get_attribute("data-loaded") is not None,
                 f"the wrong {vote} votes")
        assert f"{expected['count']} samples" in css(chrome, ".pager").text
        chrome.back()
