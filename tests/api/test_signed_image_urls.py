"""Image URLs an <img> can load: the sample payloads' signed URLs open their one file with no token, cache for no
longer than they live, and nothing else; with object storage, the payloads carry the storage's presigned URLs."""

import io
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagestudio.datasets.image_urls import ImageSize, signed_query
from imagestudio.datasets.services import dataset_create
from tests.conftest import client_for
from tests.factories import make_samples, sample_png
from tests.object_storage import PRESIGNED_PREFIX

pytestmark = pytest.mark.django_db


@pytest.fixture
def samples(dataset):
    return make_samples(dataset, [{"metadata": {"caption": "a cat"}}, {"metadata": {"caption": "a dog"}}])


def listed(api, dataset):
    response = api.get(f"/api/datasets/{dataset.id}/samples/")
    assert response.status_code == 200, response.content
    return {s["id"]: s for s in response.json()["results"]}


def fetch(url, **headers):
    """GET a payload's URL as an <img> would: no credentials at all."""
    return client_for(None).get(url, **headers)


def test_payload_urls_open_the_image_and_thumbnail_without_a_token(api, dataset, samples):
    payload = listed(api, dataset)[samples[0].id]
    image = fetch(payload["image_url"])
    assert image.status_code == 200, image.content
    assert image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content) == sample_png(0)
    thumbnail = fetch(payload["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(b"".join(thumbnail.streaming_content))).format == "JPEG"
    detail = api.get(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/").json()
    assert fetch(detail["thumbnail_url"]).status_code == 200


def test_signed_responses_cache_for_no_longer_than_the_url_lives(api, dataset, samples, settings):
    settings.IMAGE_URL_TTL_SECONDS = 600
    payload = listed(api, dataset)[samples[0].id]
    expires = int(parse_qs(urlsplit(payload["thumbnail_url"]).query)["exp"][0])
    issued_before = int(time.time())
    response = fetch(payload["thumbnail_url"])
    directives = dict(re.findall(r"([a-z-]+)(?:=(\d+))?", response["Cache-Control"]))
    assert set(directives) == {"private", "max-age", "immutable"}
    assert 0 < int(directives["max-age"]) <= expires - issued_before <= 600 + 150
    assert response["ETag"] == f'"{samples[0].sha256}-thumb"'
    assert fetch(payload["thumbnail_url"], HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_urls_are_the_same_from_one_request_to_the_next(api, dataset, samples, settings):
    settings.IMAGE_URL_TTL_SECONDS = 10**9  # buckets of 250 million seconds: no boundary falls between two requests
    assert listed(api, dataset) == listed(api, dataset)


def test_a_signature_opens_its_own_sample_and_size_only(api, owner, dataset, samples):
    payload = listed(api, dataset)
    first, second = samples
    query = urlsplit(payload[first.id]["thumbnail_url"]).query
    other_dataset = dataset_create(user=owner, name="Other", classes=["cat"])
    for path in (f"/api/datasets/{dataset.id}/samples/{second.id}/thumbnail/",  # another sample
                 f"/api/datasets/{dataset.id}/samples/{first.id}/image/",  # another size
                 f"/api/datasets/{other_dataset.id}/samples/{first.id}/thumbnail/"):  # another dataset
        response = fetch(f"{path}?{query}")
        assert response.status_code == 403, (path, response.content)
        assert response.json()["code"] == "signature_invalid"


def test_an_expired_url_is_refused_with_its_reason(dataset, samples):
    past = int(time.time()) - 5
    query = signed_query(dataset_id=dataset.id, sample_id=samples[0].id, size=ImageSize.ORIGINAL, expires=past)
    response = fetch(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/image/?{query}")
    assert response.status_code == 403
    assert response.json()["code"] == "signature_expired" and "expired" in response.json()["detail"]


@pytest.mark.parametrize("query", ["exp=", "sig=", "exp=abc&sig=abc", "exp=-1&sig=x", f"exp={'9' * 40}&sig={'A' * 43}",
                                   "exp=1e9&sig=%00", "exp=1&exp=2&sig=z"])
def test_malformed_signatures_are_a_403_in_json_never_a_500(dataset, samples, query):
    response = fetch(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/thumbnail/?{query}")
    assert response.status_code == 403 and response.json()["code"] == "signature_invalid"


def test_a_signed_url_of_a_deleted_sample_is_a_404(api, dataset, samples):
    url = listed(api, dataset)[samples[1].id]["image_url"]
    assert api.delete(f"/api/datasets/{dataset.id}/").status_code == 204
    response = fetch(url)
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_a_token_when_sent_is_the_credential_and_the_signature_is_not_needed(api, dataset, samples, stranger):
    path = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/image/"
    assert api.get(f"{path}?exp=1&sig=tampered").status_code == 200
    signed = listed(api, dataset)[samples[0].id]["image_url"]
    assert client_for(stranger).get(signed).status_code == 404  # a stranger's token: the dataset is not visible
    assert fetch(path).status_code == 401  # neither a token nor a signature


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_tampering_of_a_payload_url_never_opens_a_file(api, dataset, samples, data):
    # The path and query only: payload URLs are absolute, and the host is not what the signature covers.
    url = data.draw(st.sampled_from([u.removeprefix("http://testserver") for s in listed(api, dataset).values()
                                     for u in (s["image_url"], s["thumbnail_url"])]))
    position = data.draw(st.integers(min_value=len("/api/datasets/"), max_value=len(url) - 1))
    replacement = data.draw(st.sampled_from("0123456789abcdefABCDEF-_/?&="))
    tampered = url[:position] + replacement + url[position + 1:]
    if tampered == url:
        return
    assert fetch(tampered).status_code in (400, 401, 403, 404)


def test_with_object_storage_payloads_carry_the_storages_presigned_urls(api, dataset, settings):
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "tests.object_storage.PresignedObjectStorage"}}
    sample = make_samples(dataset, [{"metadata": {"caption": "stored in a bucket"}}])[0]
    payload = listed(api, dataset)[sample.id]
    assert payload["image_url"].startswith(f"{PRESIGNED_PREFIX}{sample.original}?")
    assert "X-Amz-Signature=" in payload["image_url"]
    assert payload["thumbnail_url"].startswith(f"{PRESIGNED_PREFIX}{sample.thumbnail}?")
    detail = api.get(f"/api/datasets/{dataset.id}/samples/{sample.id}/").json()
    assert detail["image_url"] == payload["image_url"]
    # The API still streams the bytes to a token holder, reading them through the storage.
    streamed = api.get(f"/api/datasets/{dataset.id}/samples/{sample.id}/image/")
    assert streamed.status_code == 200 and b"".join(streamed.streaming_content) == sample_png(0)


@pytest.mark.parametrize("accept", ["image/*", "image/png,image/*;q=0.8", "image/avif,image/webp,*/*;q=0.8", "text/html"])
def test_an_accept_header_asking_for_an_image_gets_the_image_and_errors_stay_json(api, dataset, samples, accept):
    payload = listed(api, dataset)[samples[0].id]
    for url in (payload["image_url"], payload["thumbnail_url"]):
        response = fetch(url, HTTP_ACCEPT=accept)
        assert response.status_code == 200 and response["Content-Type"].startswith("image/"), response
    refused = fetch(payload["thumbnail_url"].replace("sig=", "sig=x"), HTTP_ACCEPT=accept)
    assert refused.status_code == 403 and refused.json()["code"] == "signature_invalid"


def test_a_signed_file_is_one_read_by_primary_key_and_no_authentication(api, dataset, samples,
                                                                         django_assert_num_queries):
    url = listed(api, dataset)[samples[0].id]["thumbnail_url"]
    client = client_for(None)
    client.cookies["sessionid"] = "a-stale-session"  # never looked up: the signature is the permission
    with django_assert_num_queries(1):
        response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"


def test_a_signed_head_and_a_304_carry_the_files_headers(api, dataset, samples):
    url = listed(api, dataset)[samples[0].id]["thumbnail_url"]
    head = client_for(None).head(url)
    assert head.status_code == 200 and head["ETag"] == f'"{samples[0].sha256}-thumb"'
    not_modified = fetch(url, HTTP_IF_NONE_MATCH=head["ETag"])
    assert not_modified.status_code == 304
    assert not_modified["Cache-Control"].startswith("private, max-age=") and not_modified["ETag"] == head["ETag"]
    assert head["Content-Security-Policy"] == not_modified["Content-Security-Policy"]


def test_a_signed_url_whose_file_is_gone_is_a_404_in_json(api, dataset, samples):
    from django.core.files.storage import default_storage

    url = listed(api, dataset)[samples[0].id]["thumbnail_url"]
    default_storage.delete(samples[0].thumbnail)
    response = fetch(url)
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_a_signed_url_with_the_database_down_is_a_503_in_json(api, dataset, samples, monkeypatch):
    from django.db import OperationalError

    url = listed(api, dataset)[samples[0].id]["thumbnail_url"]

    def unreachable(**ids):
        raise OperationalError("connection refused")

    monkeypatch.setattr("api.views.samples.sample_files_signed", unreachable)
    response = fetch(url)
    assert response.status_code == 503 and response.json()["code"] == "database_unavailable"
    assert response["Retry-After"] == "10"


def test_other_methods_on_a_signed_url_are_the_viewsets(api, dataset, samples):
    url = listed(api, dataset)[samples[0].id]["thumbnail_url"]
    assert client_for(None).post(url).status_code == 401  # no credentials: the signature opens GET and HEAD only
    assert api.post(url).status_code == 405


def test_an_api_path_without_its_slash_is_a_json_404_naming_it(api, dataset):
    for method in (api.get, api.post, api.delete):
        answer = method(f"/api/datasets/{dataset.id}")
        assert answer.status_code == 404 and answer["Content-Type"] == "application/json"
        assert answer.json() == {"detail": f"Not found. API paths end with a slash: /api/datasets/{dataset.id}/",
                                 "code": "not_found"}
    assert api.get("/api/no-such-thing").json() == {"detail": "Not found.", "code": "not_found"}
