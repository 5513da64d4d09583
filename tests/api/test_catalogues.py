"""Catalogues through the HTTP API: a dataset's metadata fields, and the LF types with their config schemas."""

import pytest
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from imagestudio.datasets.services import dataset_create
from tests.conftest import client_for
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def described(dataset):
    return make_samples(dataset, [
        {"split": "dev", "metadata": {"caption": "a cat", "n": 3}, "gt": {"cat": "PRESENT"}},
        {"split": "dev", "metadata": {"caption": "a dog", "n": 4}, "gt": {"cat": "ABSENT"}},
        {"split": "valid", "metadata": {"caption": "a cat", "source": "web"}},
    ])


def test_fields_list_paginates_and_counts(api, dataset, described):
    url = f"/api/datasets/{dataset.id}/fields/"
    body = api.get(url).json()
    assert body["count"] == 3 and [row["name"] for row in body["results"]] == ["caption", "n", "source"]
    caption = body["results"][0]
    assert caption == {"name": "caption", "type": "string", "samples": 3, "filled": 3, "fill_rate": 1.0,
                       "kinds": {"string": 3, "number": 0, "boolean": 0, "object": 0, "array": 0, "null": 0},
                       "distinct": 2, "examples": ["a cat", "a dog"]}
    page = api.get(f"{url}?limit=1&offset=1").json()
    assert [row["name"] for row in page["results"]] == ["n"] and page["next"] and page["previous"]
    dev = api.get(f"{url}?split=dev").json()["results"]
    assert [(row["name"], row["filled"], row["samples"]) for row in dev] == [("caption", 2, 2), ("n", 2, 2)]


def test_fields_follow_metadata_edits_and_imports(api, dataset, described):
    url = f"/api/datasets/{dataset.id}/fields/"
    patched = api.patch(f"/api/datasets/{dataset.id}/samples/{described[2].id}/", {"metadata": {"source": 1}},
                        format="json")
    assert patched.status_code == 200, patched.content
    rows = {row["name"]: row for row in api.get(url).json()["results"]}
    assert rows["caption"]["filled"] == 2 and rows["source"]["type"] == "number"
    make_samples(dataset, [{"split": "test", "metadata": {"colour": "red"}}])  # an import
    rows = {row["name"]: row for row in api.get(url).json()["results"]}
    assert rows["colour"]["filled"] == 1 and rows["caption"]["samples"] == 4


def test_fields_refuse_strangers_bad_input_and_anonymous(api, dataset, described, stranger, owner):
    url = f"/api/datasets/{dataset.id}/fields/"
    assert client_for(stranger).get(url).status_code == 404
    assert APIClient().get(url).status_code == 401
    assert api.get(f"{url}?split=holdout").status_code == 400
    assert api.get(f"{url}?limit=x").status_code == 400
    empty = dataset_create(user=owner, name="Empty")
    assert api.get(f"/api/datasets/{empty.id}/fields/").json() == {"count": 0, "next": None, "previous": None,
                                                                   "results": []}


def test_lf_types_need_a_user(api):
    assert APIClient().get("/api/lf-types/").status_code == 401
    body = api.get("/api/lf-types/").json()
    assert [t["type"] for t in body["types"]] == ["similarity_text", "similarity_image", "similarity_patch", "model",
                                                  "pattern"]
    assert [b["builder"] for b in body["builders"]] == ["keyword", "regex", "numeric", "length", "empty"]
    assert "external_id" in body["builtin_fields"]
    for entry in body["types"] + body["builders"]:
        Draft202012Validator.check_schema(entry["config_schema"])  # each is a valid JSON Schema
        assert entry["title"] and entry["description"]


# Per builder and type: a config the API accepts and one it refuses for a reason its schema states.
CONFIGS = {
    "keyword": ({"words": ["cat"], "mode": "all", "whole_word": False}, {"words": ["cat"], "mode": "most"}),
    "regex": ({"pattern": "^a (cat|dog)$", "case_sensitive": True}, {"pattern": ""}),
    "numeric": ({"op": "between", "value": [1, 3.5]}, {"op": "<", "value": [1, 2]}),
    "length": ({"op": ">=", "value": 4}, {"op": "between", "value": 4}),
    "empty": ({}, {"builder": "blank"}),
    "similarity_text": ({"text": "a cat", "encoder": "conse-offline"}, {"text": "   "}),
    "similarity_image": ({"sample_id": "FIRST", "space": "joint"}, {"sample_id": "FIRST", "space": "astral"}),
    "similarity_patch": ({"sample_id": "FIRST", "box": [0, 0, 5, 5]}, {"sample_id": "FIRST", "box": [0, 0, -1, 5]}),
    "model": ({"model_id": 1}, {"model_id": "the best one"}),
}


# Accepted by its schema, refused past it for want of data: the message says what is missing.
BEYOND_SCHEMA = {"model": "trained fast model"}


@pytest.mark.parametrize("name", CONFIGS)
def test_each_schema_accepts_what_the_api_accepts_and_refuses_what_it_refuses(api, dataset, described, name):
    catalogue = api.get("/api/lf-types/").json()
    schemas = {entry.get("builder") or entry["type"]: entry["config_schema"]
               for entry in catalogue["types"] + catalogue["builders"]}
    is_builder = name in {entry["builder"] for entry in catalogue["builders"]}
    for config, accepted in zip(CONFIGS[name], (True, False), strict=True):
        config = {key: described[0].id if value == "FIRST" else value for key, value in config.items()}
        if is_builder:
            config = {"field": "caption", "builder": name, **config}
        response = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {
            "label_class": "cat", "type": "pattern" if is_builder else name, "config": config, "high": 0.5},
            format="json")
        for schema in (schemas[name], schemas["pattern"]) if is_builder else (schemas[name],):
            assert Draft202012Validator(schema).is_valid(config) == accepted, config
        if not accepted:
            assert response.status_code == 400 and "config" in response.json(), response.content
        elif name in BEYOND_SCHEMA:
            assert response.status_code == 400 and BEYOND_SCHEMA[name] in str(response.json()), response.content
        else:  # scored, or waiting for embeddings (409)
            assert response.status_code in (200, 409), response.content
