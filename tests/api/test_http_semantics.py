"""HTTP semantics (RFC 9110): ETags on GET and 304 for If-None-Match, 412 for a stale If-Match (409 stays for a
stale `version` in the body and for state conflicts), and the API root."""

import re
import time

import pytest
import yaml

from tests.conftest import client_for
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

ETAG = re.compile(r'"([0-9]+)\.[0-9a-f]{16}"')


@pytest.fixture
def samples(dataset):
    return make_samples(dataset, [{"metadata": {"caption": caption}} for caption in ("a cat", "a dog", "cat food")])


@pytest.fixture
def lf_url(api, dataset, samples):
    created = api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "says cat", "label_class": "cat", "type": "pattern", "high": 1,
        "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, format="json")
    assert created.status_code == 201 and ETAG.fullmatch(created["ETag"])
    return f"/api/datasets/{dataset.id}/lfs/{created.json()['id']}/"


def test_lf_etag_answers_304_until_anything_shown_changes(api, dataset, lf_url):
    first = api.get(lf_url)
    assert ETAG.fullmatch(first["ETag"]).group(1) == str(first.json()["version"]) == "1"
    unchanged = api.get(lf_url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged["ETag"] == first["ETag"]
    make_samples(dataset, [{"metadata": {"caption": "another cat"}}])  # its votes grow, its version does not
    grown = api.get(lf_url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert grown.status_code == 200 and grown.json()["votes"]["present"] == 3 and grown.json()["version"] == 1
    assert grown["ETag"] != first["ETag"]
    api.patch(f"/api/datasets/{dataset.id}/classes/{grown.json()['class_id']}/", {"name": "feline"}, format="json")
    renamed = api.get(lf_url, HTTP_IF_NONE_MATCH=grown["ETag"])
    assert renamed.status_code == 200 and renamed.json()["label_class"] == "feline"


def test_lf_if_match_412_with_the_current_etag_and_nothing_changed(api, lf_url):
    seen = api.get(lf_url)["ETag"]
    edited = api.patch(lf_url, {"name": "cat words"}, format="json", HTTP_IF_MATCH=seen)
    assert edited.status_code == 200 and edited.json()["version"] == 2
    assert edited["ETag"] == api.get(lf_url)["ETag"]  # a write's ETag is the next GET's
    stale = api.patch(lf_url, {"name": "lost update"}, format="json", HTTP_IF_MATCH=seen)
    assert stale.status_code == 412
    assert stale.json() == {"detail": stale.json()["detail"], "code": "version_conflict", "version": 2,
                            "etag": edited["ETag"]}
    assert stale["ETag"] == edited["ETag"]
    assert api.get(lf_url).json()["name"] == "cat words"
    in_body = api.patch(lf_url, {"name": "lost update", "version": 1}, format="json")
    assert in_body.status_code == 409 and in_body.json()["version"] == 2  # the body's version: a state conflict
    assert api.patch(lf_url, {"name": "x"}, format="json", HTTP_IF_MATCH="soon").status_code == 400
    anything = api.patch(lf_url, {"name": "cat words!"}, format="json", HTTP_IF_MATCH="*")  # it exists: proceed
    assert anything.status_code == 200 and anything.json()["version"] == 3


def test_lf_if_match_ignores_derived_figures(api, dataset, lf_url):
    seen = api.get(lf_url)["ETag"]
    make_samples(dataset, [{"metadata": {"caption": "a cat again"}}])
    assert api.get(lf_url)["ETag"] != seen  # the representation changed (vote counts) ...
    assert api.patch(lf_url, {"active": False}, format="json", HTTP_IF_MATCH=seen).status_code == 200  # ... not it


def test_annotation_etag_from_a_get_conditions_the_put(api, dataset, samples):
    url = f"/api/datasets/{dataset.id}/annotations/"
    query = {"sample": samples[0].id, "label_class": "cat"}
    never = api.get(url, query)
    assert never.json()["count"] == 0 and ETAG.fullmatch(never["ETag"]).group(1) == "0"
    assert api.get(url, query, HTTP_IF_NONE_MATCH=never["ETag"]).status_code == 304
    body = {**query, "sample": samples[0].id, "value": "PRESENT"}
    written = api.put(url, body, format="json", HTTP_IF_MATCH=never["ETag"])
    assert written.status_code == 200 and written.json()["annotation"]["version"] == 1
    now = api.get(url, query)
    assert now["ETag"] == written["ETag"] and ETAG.fullmatch(now["ETag"]).group(1) == "1"
    stale = api.put(url, {**body, "value": "ABSENT"}, format="json", HTTP_IF_MATCH=never["ETag"])
    assert stale.status_code == 412 and (stale.json()["version"], stale.json()["etag"]) == (1, now["ETag"])
    assert api.get(url, query).json()["results"][0]["value"] == "PRESENT"
    filtered = api.get(url, {**query, "value": "PRESENT"})
    assert not ETAG.fullmatch(filtered["ETag"])  # a filtered list: the body's digest, no version


def test_clearing_a_never_set_label_answers_the_never_set_etag(api, dataset, samples):
    url = f"/api/datasets/{dataset.id}/annotations/"
    query = {"sample": samples[1].id, "label_class": "dog"}
    cleared = api.put(url, {**query, "value": "ABSTAIN"}, format="json")
    assert cleared.json()["changed"] is False and cleared["ETag"] == api.get(url, query)["ETag"]


def test_every_get_answer_carries_an_etag_and_honours_if_none_match(api, dataset, samples):
    detail = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/"
    for url in (detail, f"/api/datasets/{dataset.id}/samples/", f"/api/datasets/{dataset.id}/lfs/", "/api/datasets/"):
        first = api.get(url)
        assert first.status_code == 200 and first["ETag"]
        assert api.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    seen = api.get(detail)["ETag"]
    api.post(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/comments/", {"body": "look"}, format="json")
    assert api.get(detail, HTTP_IF_NONE_MATCH=seen).status_code == 200


def test_state_conflicts_stay_409(api, dataset):
    from imagestudio.jobs.models import Job
    from imagestudio.jobs.services import job_cancel

    job = Job.objects.create(kind="import", dataset=dataset, creator=dataset.created_by)
    job_cancel(job=job)
    again = api.post(f"/api/jobs/{job.id}/cancel/")
    assert again.status_code == 409 and again.json()["code"] == "job_finished"


def test_api_root_lists_every_top_level_resource_and_the_version():
    anonymous = client_for(None)
    root = anonymous.get("/api/")
    assert root.status_code == 200
    body = root.json()
    committed = yaml.safe_load(open("api/openapi.yaml"))
    assert body["version"] == committed["info"]["version"]
    top_level = {path.removeprefix("/api/").rstrip("/") for path in committed["paths"]
                 if path != "/api/" and "{" not in path}
    assert {"datasets", "jobs", "health", "auth/token"} <= top_level
    assert set(body["resources"]) == top_level | {"schema", "docs"}  # and the schema itself, and its viewer
    for name, url in body["resources"].items():
        assert url == f"http://testserver/api/{name}/"
        assert anonymous.get(url).status_code in (200, 401, 405), name  # routed: public, or asks for credentials


def documented_creates():
    """(method, path) of every operation the committed schema says answers 201 with a Location."""
    committed = yaml.safe_load(open("api/openapi.yaml"))
    return {(method.upper(), path) for path, operations in committed["paths"].items()
            for method, operation in operations.items()
            if "Location" in operation.get("responses", {}).get("201", {}).get("headers", {})}


def test_every_201_carries_the_location_of_what_it_created(api, dataset, samples, stranger):
    sample, cat = samples[0], dataset.classes.get(name="cat")
    base = f"/api/datasets/{dataset.id}"
    token = api.post("/api/auth/tokens/", {"name": "script"}, format="json").json()
    creates = [
        ("/api/datasets/", "/api/datasets/", {"name": "Second", "classes": ["a"]}),
        ("/api/datasets/{dataset_id}/classes/", f"{base}/classes/", {"name": "bird"}),
        ("/api/datasets/{dataset_id}/members/", f"{base}/members/", {"username": stranger.username, "role": "viewer"}),
        ("/api/datasets/{dataset_id}/tags/", f"{base}/tags/", {"name": "blurry"}),
        ("/api/datasets/{dataset_id}/samples/{sample_id}/comments/", f"{base}/samples/{sample.id}/comments/",
         {"body": "look"}),
        ("/api/datasets/{dataset_id}/lfs/", f"{base}/lfs/", {
            "name": "says dog", "label_class": cat.name, "type": "pattern", "high": 1,
            "config": {"field": "caption", "builder": "keyword", "words": ["dog"]}}),
        ("/api/auth/tokens/", "/api/auth/tokens/", {"name": "another script"}),
        ("/api/auth/tokens/{token_id}/rotate/", f"/api/auth/tokens/{token['id']}/rotate/", None),
    ]
    assert {("POST", route) for route, _, _ in creates} == documented_creates()
    for route, url, body in creates:
        created = api.post(url, body, format="json")
        assert created.status_code == 201, (route, created.content)
        location = created["Location"]
        assert location.startswith("http://testserver/api/"), (route, location)
        shown = api.get(location)
        assert shown.status_code == 200 and shown.json()["id"] == created.json()["id"], (route, shown.content)


def test_head_honours_if_none_match_as_get_does(api, dataset, samples):
    for url in (f"/api/datasets/{dataset.id}/samples/{samples[0].id}/", "/api/datasets/"):
        etag = api.get(url)["ETag"]
        head = api.head(url)
        assert head.status_code == 200 and head["ETag"] == etag
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            assert api.head(url, HTTP_IF_NONE_MATCH=header).status_code == 304, header
        assert api.head(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_file_downloads_carry_an_etag_and_answer_304_for_it(api, dataset, samples, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        exported = api.post(f"/api/datasets/{dataset.id}/exports/", {"kind": "dataset", "columns": ["id"]},
                            format="json")
    job = api.get(exported["Location"]).json()
    assert job["status"] == "succeeded", job
    export_id = job["result"]["export"]
    image = api.get(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/")
    for url in (f"/api/datasets/{dataset.id}/exports/{export_id}/download/", image.json()["image_url"]):
        first = api.get(url)
        assert first.status_code == 200 and first["ETag"], url
        etag = first["ETag"]
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            unchanged = api.get(url, HTTP_IF_NONE_MATCH=header)
            assert (unchanged.status_code, unchanged["ETag"], unchanged.content) == (304, etag, b""), (url, header)
        assert api.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def editable(api, dataset, samples, stranger):
    """(url, two successive PATCH bodies, whether DELETE is offered) of each resource without versions."""
    base = f"/api/datasets/{dataset.id}"
    second = api.post("/api/datasets/", {"name": "Scratch", "classes": ["a"]}, format="json").json()["id"]
    tag = api.post(f"{base}/tags/", {"name": "blurry"}, format="json").json()["id"]
    comment = api.post(f"{base}/samples/{samples[0].id}/comments/", {"body": "look"}, format="json").json()["id"]
    member = api.post(f"{base}/members/", {"username": stranger.username, "role": "viewer"}, format="json").json()["id"]
    cat = dataset.classes.get(name="cat").id
    return [
        (f"/api/datasets/{second}/", {"name": "Scratch 2"}, {"name": "Scratch 3"}, True),
        (f"{base}/classes/{cat}/", {"name": "feline"}, {"name": "kitty"}, True),
        (f"{base}/tags/{tag}/", {"name": "sharp"}, {"name": "crisp"}, True),
        (f"{base}/samples/{samples[0].id}/comments/{comment}/", {"body": "edited"}, {"body": "again"}, True),
        (f"{base}/members/{member}/", {"role": "annotator"}, {"role": "editor"}, True),
        (f"{base}/samples/{samples[1].id}/", {"split": "dev"}, {"split": "valid"}, False),
    ]


def test_if_match_guards_writes_of_resources_without_versions(api, dataset, samples, stranger):
    for url, first, second, deletable in editable(api, dataset, samples, stranger):
        seen = api.get(url)["ETag"]
        assert api.get(url, HTTP_IF_NONE_MATCH=seen).status_code == 304, url
        edited = api.patch(url, first, format="json", HTTP_IF_MATCH=seen)
        assert edited.status_code == 200, (url, edited.content)
        current = api.get(url)["ETag"]
        assert current != seen, url
        for stale in (seen, f"W/{current}", '"other"'):  # an older ETag; a weak one never matches a write
            refused = api.patch(url, second, format="json", HTTP_IF_MATCH=stale)
            assert refused.status_code == 412, (url, stale, refused.content)
            assert refused.json()["etag"] == refused["ETag"] == current and refused.json()["version"] is None, url
            assert api.get(url)["ETag"] == current, url  # nothing changed
        assert edited["ETag"].split(".")[0] == current.split(".")[0], url  # the write's answer chains the next one
        listed = api.patch(url, second, format="json", HTTP_IF_MATCH=f'"other", {current}')
        assert listed.status_code == 200, (url, listed.content)
        counted = api.get(url)["ETag"]
        if deletable:
            assert api.delete(url, HTTP_IF_MATCH=current).status_code == 412, url  # the PATCH moved it on
            assert counted != current
            assert api.delete(url, HTTP_IF_MATCH=api.get(url)["ETag"]).status_code == 204, url
    committed = yaml.safe_load(open("api/openapi.yaml"))["paths"]
    for path in ("/api/datasets/{dataset_id}/classes/{class_id}/", "/api/datasets/{dataset_id}/samples/{sample_id}/"):
        assert "If-Match" in [p["name"] for p in committed[path]["patch"]["parameters"]]
        assert "412" in committed[path]["patch"]["responses"]
        assert "ETag" in committed[path]["patch"]["responses"]["200"]["headers"]


def test_lf_delete_and_lists_and_weak_tags_in_if_match(api, lf_url):
    seen = api.get(lf_url)["ETag"]
    assert api.patch(lf_url, {"name": "cat words"}, format="json", HTTP_IF_MATCH=seen).status_code == 200
    current = api.get(lf_url)["ETag"]
    weak = api.patch(lf_url, {"name": "x"}, format="json", HTTP_IF_MATCH=f"W/{current}")
    assert weak.status_code == 412 and "weak tag" in weak.json()["detail"] and "-1" not in weak.json()["detail"]
    assert api.delete(lf_url, HTTP_IF_MATCH=seen).status_code == 412 and api.get(lf_url).status_code == 200
    assert api.delete(lf_url, HTTP_IF_MATCH=f"W/{current}").status_code == 412
    assert api.delete(lf_url, HTTP_IF_MATCH=f'{seen}, {current}').status_code == 204
    assert api.get(lf_url).status_code == 404


def test_an_accept_header_no_type_satisfies_is_a_documented_json_406(api, dataset):
    answer = api.get(f"/api/datasets/{dataset.id}/", HTTP_ACCEPT="application/xml")
    assert answer.status_code == 406 and answer.json()["code"] == "not_acceptable", answer.content
    committed = yaml.safe_load(open("api/openapi.yaml"))
    image = api.get(f"/api/datasets/{dataset.id}/samples/{make_samples(dataset, [{}])[0].id}/image/",
                    HTTP_ACCEPT="application/xml")
    assert image.status_code == 200  # a file is answered whatever Accept says, and its operation lists no 406
    for path, operations in committed["paths"].items():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                answers = {kind for status, response in operation["responses"].items() if status.startswith("2")
                           for kind in response.get("content", {})}
                assert ("406" in operation["responses"]) == (not answers or "application/json" in answers), path


def test_figures_kept_in_the_background_do_not_fail_an_edit(api, dataset, samples, settings):
    """A dataset's or class's counts move with every label and a sample's signed URLs with time: If-Match is about
    what a write may change (If-None-Match still sees everything)."""
    settings.IMAGE_URL_TTL_SECONDS = 4
    base = f"/api/datasets/{dataset.id}"
    cat = dataset.classes.get(name="cat").id
    seen = {url: api.get(url)["ETag"] for url in (f"{base}/", f"{base}/classes/{cat}/", f"{base}/samples/{samples[0].id}/")}
    assert api.put(f"{base}/annotations/", {"sample": samples[1].id, "label_class": "cat", "value": "PRESENT"},
                   format="json").status_code == 200
    time.sleep(1.1)  # the signed URLs' expiry moves on every quarter of their lifetime
    bodies = {f"{base}/": {"description": "pets"}, f"{base}/classes/{cat}/": {"description": "felines"},
              f"{base}/samples/{samples[0].id}/": {"split": "dev"}}
    for url, etag in seen.items():
        assert api.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 200, url  # what it shows did change
        edited = api.patch(url, bodies[url], format="json", HTTP_IF_MATCH=etag)
        assert edited.status_code == 200, (url, edited.content)


def test_an_annotation_put_takes_a_list_of_etags(api, dataset, samples):
    url = f"/api/datasets/{dataset.id}/annotations/"
    body = {"sample": samples[0].id, "label_class": "cat", "value": "PRESENT"}
    first = api.put(url, body, format="json")["ETag"]
    second = api.put(url, {**body, "value": "ABSENT"}, format="json", HTTP_IF_MATCH=first)["ETag"]
    assert api.put(url, body, format="json", HTTP_IF_MATCH=f"{first}, {second}").status_code == 200
    assert api.put(url, body, format="json", HTTP_IF_MATCH=f"{first}, {second}").status_code == 412


@pytest.mark.parametrize("header", [",", " , ", "W/", '"unterminated'])
def test_an_if_match_without_a_usable_tag_is_a_400_or_412_never_a_500(api, dataset, lf_url, header):
    for url, body in ((lf_url, {"name": "x"}), (f"/api/datasets/{dataset.id}/", {"name": "y"})):
        answer = api.patch(url, body, format="json", HTTP_IF_MATCH=header)
        assert answer.status_code in (400, 412), (url, header, answer.status_code)
