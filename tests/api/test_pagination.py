"""Every list of the API answers one envelope, `count`, `next`, `previous`, `results`, with absolute links that
lead to the right pages. The lists are found in the schema (every JSON GET is requested, so a list the schema
does not call a page, or a bare array, fails too), over a dataset where each list has something in it."""

import re
import time
from types import SimpleNamespace

import pytest
from drf_spectacular.generators import SchemaGenerator

from imagestudio.datasets.services import dataset_create, membership_set
from tests.conftest import make_user
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

ENVELOPE = {"count", "next", "previous", "results"}
PARAMETER = re.compile(r"\{[^}]+\}")
# Lists that hold one row here (one encoder embedded, one dataset pinned); every other holds several.
SINGLE_ROW = {"/api/datasets/{dataset_id}/embeddings/", "/api/datasets/{dataset_id}/resources/"}


def run_job(api, capture, url, body):
    """POST async work and run its job as the request's commit would; the job's result."""
    with capture(execute=True):
        response = api.post(url, body, format="json")
    assert response.status_code == 202, response.content
    job = api.get(response["Location"]).json()
    assert job["status"] == "succeeded", job
    return job["result"]


@pytest.fixture
def one_access_instant(monkeypatch):
    """Signed URLs (job events, export downloads) signed at one instant: their expiry steps with the clock, and pages read across
    a step would otherwise differ in that URL alone."""
    instant = time.time()
    monkeypatch.setattr("imagestudio.common.access.time", SimpleNamespace(time=lambda: instant))


@pytest.fixture
def world(api, owner, dataset, tiny_clip, django_capture_on_commit_callbacks, one_access_instant):
    """A dataset where every list has rows: samples with ground truth, tags and comments, members, classes, LFs,
    embeddings, a pinned resource, training sets, a model with predictions, exports and their jobs."""
    base = f"/api/datasets/{dataset.id}"
    dataset_create(user=owner, name="Another")
    samples = make_samples(dataset, [
        {"split": split, "metadata": {"caption": caption, "source": "web"}, "gt": {"cat": truth}, "tags": ["a", "b", "c"]}
        for split, caption, truth in [("train", "a cat", "PRESENT"), ("train", "a dog", "ABSENT"),
                                      ("dev", "a cat", "PRESENT"), ("dev", "a dog", "ABSENT"),
                                      ("valid", "a cat", "PRESENT"), ("valid", "a dog", "ABSENT")]])
    for body in ("one", "two", "three"):
        assert api.post(f"{base}/samples/{samples[0].id}/comments/", {"body": body}, format="json").status_code == 201
    for name in ("member-a", "member-b"):
        membership_set(dataset=dataset, user=make_user(name), role="viewer")
    assert api.post(f"{base}/classes/", {"name": "bird"}, format="json").status_code == 201
    for word in ("cat", "kitten", "tabby"):
        assert api.post(f"{base}/lfs/", {"name": word, "label_class": "cat", "type": "pattern", "high": 1, "low": 0,
                                          "config": {"field": "caption", "builder": "keyword", "words": [word]}},
                        format="json").status_code == 201
    capture = django_capture_on_commit_callbacks
    run_job(api, capture, f"{base}/embeddings/", {})
    assert api.post(f"{base}/resources/", {}, format="json").status_code == 201
    training_set = run_job(api, capture, f"{base}/training-sets/", {"seed": 0})["training_set"]
    run_job(api, capture, f"{base}/training-sets/", {"seed": 1})
    model = run_job(api, capture, f"{base}/models/", {"classes": ["cat"], "label_source": "ground_truth"})["model"]
    run_job(api, capture, f"{base}/models/", {"classes": ["cat"], "label_source": "ground_truth", "seed": 1})
    for columns in (["id"], ["id", "split"]):
        run_job(api, capture, f"{base}/exports/", {"kind": "dataset", "columns": columns})
    assert api.post("/api/auth/tokens/", {"name": "a second token"}, format="json").status_code == 201
    membership = dataset.memberships.get(user=owner)
    return {"datasets": dataset.id, "samples": samples[0].id, "training-sets": training_set,
            "models": model, "members": membership.id, "classes": dataset.classes.first().id,
            "tags": dataset.tags.first().id, "lfs": dataset.lfs.first().id, "exports": dataset.exports.first().id,
            "comments": samples[0].comments.first().id, "jobs": dataset.jobs.first().id,
            "tokens": api.get("/api/auth/tokens/").json()["results"][0]["id"]}


def json_get_paths():
    """{path template: is its 200 answer a page?} for every GET of the schema that answers JSON."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    found = {}
    for path, operations in schema["paths"].items():
        content = operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        if "application/json" not in content:
            continue  # image bytes, CSV files, event streams
        body = content["application/json"]["schema"]
        if "$ref" in body:
            body = components[body["$ref"].rsplit("/", 1)[1]]
        found[path] = "results" in body.get("properties", {})
    return found


def concrete(path, ids):
    """The path with each parameter replaced by the id of the resource named just before it."""
    def fill(match):
        resource = path[:match.start()].rstrip("/").rsplit("/", 1)[1]
        return str(ids[resource])
    return PARAMETER.sub(fill, path)


def follow(api, url, direction):
    """The pages from `url` following `direction` links, as (url, body) pairs."""
    pages = []
    while url:
        body = api.get(url).json()
        assert ENVELOPE <= set(body), (url, body)
        for link in (body["next"], body["previous"]):
            assert link is None or link.startswith("http://testserver/api/"), link
        pages.append((url, body))
        url = body[direction]
    return pages


def test_every_list_answers_one_envelope_and_its_links_lead_to_the_right_pages(api, world):
    paths = json_get_paths()
    lists = sorted(path for path, is_page in paths.items() if is_page)
    assert len(lists) >= 17, lists
    for path, is_page in sorted(paths.items()):
        response = api.get(concrete(path, world))
        body = response.json()
        assert not isinstance(body, list), f"{path} answers a bare array"
        assert ("results" in body) == is_page, f"{path}: the schema and the answer disagree on being a page"
    for path in lists:
        url = concrete(path, world)
        whole = api.get(url, {"limit": 500})
        assert whole.status_code == 200, (path, whole.content)
        everything = whole.json()
        assert set(everything) - {"count_exact"} == ENVELOPE, path
        assert everything["count"] == len(everything["results"]) >= (1 if path in SINGLE_ROW else 2), path
        assert everything["next"] is everything["previous"] is None, path

        forward = follow(api, f"{url}?limit=1", "next")
        assert [row for _, body in forward for row in body["results"]] == everything["results"], path
        assert all(body["count"] == everything["count"] for _, body in forward), path
        assert forward[0][1]["previous"] is None and forward[-1][1]["next"] is None, path
        backward = follow(api, forward[-1][0], "previous")
        assert [body["results"] for _, body in backward] == [body["results"] for _, body in reversed(forward)], path
        if everything["count"] >= 2:  # from an offset below the limit: the rows before, none of this page's again
            shifted = api.get(url, {"limit": 2, "offset": 1}).json()
            assert api.get(shifted["previous"]).json()["results"] == everything["results"][:1], path


def test_a_filtered_page_keeps_its_filter_in_both_links(api, world):
    url = f"/api/datasets/{world['datasets']}/samples/?split=dev&limit=1&ordering=-id"
    first = api.get(url).json()
    second = api.get(first["next"]).json()
    assert first["count"] == second["count"] == 2
    assert "split=dev" in first["next"] and "split=dev" in second["previous"] and "ordering=-id" in second["previous"]
    assert api.get(second["previous"]).json()["results"] == first["results"]
