"""The schema is typed for client generators, from what validates the requests (serializers, and the domain's
JSON Schemas of LF configs): one named enum per closed set, LF configs and jobs told apart by their
discriminator, one tag and one id name per resource."""

import re
from pathlib import Path

import pytest
import yaml

from imagestudio.jobs.models import JobKind
from imagestudio.labeling.models import LFType
from imagestudio.labeling.patterns import BUILDERS
from tests.factories import make_samples

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text())
COMPONENTS = DOCUMENT["components"]["schemas"]
OPERATIONS = [(path, method, operation) for path, operations in DOCUMENT["paths"].items()
              for method, operation in operations.items()]


def _walk(node, where=""):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}/{index}")


def _mapping(component):
    return {value: ref.rsplit("/", 1)[1] for value, ref in COMPONENTS[component]["discriminator"]["mapping"].items()}


def test_every_enum_is_one_named_component_and_none_is_null():
    inline = [where for where, node in _walk(DOCUMENT["paths"]) if "enum" in node]
    inline += [where for name, schema in COMPONENTS.items() if "enum" not in schema
               for where, node in _walk(schema, name) if "enum" in node]
    assert not inline
    enums = {name: frozenset(schema["enum"]) for name, schema in COMPONENTS.items() if "enum" in schema}
    assert len(set(enums.values())) == len(enums)  # one name per set of words
    assert not {"NullEnum", "BlankEnum", "TypeEnum", "KindEnum"} & set(COMPONENTS)
    assert all(None not in values for values in enums.values())
    splits = {node["$ref"] for path, method, operation in OPERATIONS for parameter in operation.get("parameters", [])
              if parameter["name"] == "split" for _, node in _walk(parameter["schema"]) if "$ref" in node}
    assert splits == {"#/components/schemas/SplitEnum"}


def test_one_tag_per_resource_and_one_id_name_per_resource():
    for path, method, operation in OPERATIONS:
        assert len(operation["tags"]) == 1, (method, path)
        assert not re.search(r"{(id|pk)}", path), path
        assert all(name.endswith("_id") for name in re.findall(r"{(\w+)}", path)), path
    tags = {operation["tags"][0] for _, _, operation in OPERATIONS}
    assert {"datasets", "samples", "lfs", "jobs", "models", "training-sets", "annotations"} <= tags
    datasets = [path for path, _, operation in OPERATIONS if operation["tags"] == ["datasets"]]
    assert set(datasets) == {"/api/datasets/", "/api/datasets/{dataset_id}/"}


def test_binary_bodies_are_typed():
    image = DOCUMENT["paths"]["/api/datasets/{dataset_id}/samples/{sample_id}/image/"]["get"]["responses"]["200"]
    assert image["content"]["image/*"]["schema"] == {"type": "string", "format": "binary"}


def test_every_lf_type_and_builder_and_job_kind_has_its_typed_variant():
    for component in ("LF", "LFCreateRequest", "LFPreviewRequest"):
        assert set(_mapping(component)) == set(LFType.values), component
    assert set(_mapping("PatternConfig")) == set(BUILDERS)
    assert set(_mapping("Job")) == set(JobKind.values)
    for kind, variant in _mapping("Job").items():
        assert "$ref" in str(COMPONENTS[variant]["properties"]["result"]), kind
    # every kind of job the domain starts is one of them
    started = {kind for source in (ROOT / "imagestudio").rglob("*.py")
               for kind in re.findall(r"(?:job_enqueue|Job\.objects\.create)\(kind=\"(\w+)\"", source.read_text())}
    assert started and started <= set(JobKind.values)


@pytest.fixture
def captioned(dataset):
    return make_samples(dataset, [{"split": "dev", "metadata": {"caption": "a cat", "size": 3}}])[0]


@pytest.mark.django_db
@pytest.mark.parametrize("lf_type, config, where", [
    ("pattern", {"field": "caption", "builder": "telepathy"}, "builder"),
    ("pattern", {"field": "caption", "words": ["cat"]}, "builder"),
    ("pattern", {"field": "caption", "builder": "keyword", "words": "cat"}, "words"),
    ("pattern", {"field": "caption", "builder": "keyword", "words": ["cat"], "mode": "most"}, "mode"),
    ("pattern", {"field": "size", "builder": "numeric", "op": "~", "value": 1}, "op"),
    ("pattern", {"field": "size", "builder": "numeric", "op": ">", "value": True}, "value"),
    ("pattern", {"field": "size", "builder": "length", "op": "between", "value": [1, 2, 3]}, "value"),
    ("pattern", ["field", "caption"], "object"),
    ("similarity_text", {"sample_id": 1}, "text"),
    ("similarity_text", {"text": "a cat", "space": "sideways"}, "space"),
    ("similarity_patch", {"sample_id": 1, "box": [0, 0, 5]}, "box"),
    ("similarity_image", {"sample_id": "first"}, "sample_id"),
    ("model", {}, "model_id"),
])
def test_a_config_off_its_type_s_shape_is_a_400_naming_the_key(api, dataset, captioned, lf_type, config, where):
    body = {"name": "x", "label_class": "cat", "type": lf_type, "config": config, "high": 1}
    for url in (f"/api/datasets/{dataset.id}/lfs/", f"/api/datasets/{dataset.id}/lfs/preview/"):
        response = api.post(url, body, format="json")
        assert response.status_code == 400, response.content
        assert where in str(response.json()["config"]), response.json()


def test_lf_configs_are_the_schemas_validation_enforces():
    """The config components are the lf-types/ catalogue's JSON Schemas (what validation checks), in OpenAPI 3.0."""
    from imagestudio.labeling.services import lf_type_catalogue

    catalogue = lf_type_catalogue()
    for entry in catalogue["types"]:
        component = COMPONENTS[f"{entry['type'].title().replace('_', '')}Config"]
        assert component["description"] == entry["config_schema"]["description"]
        if "properties" in entry["config_schema"]:
            assert set(component["properties"]) == set(entry["config_schema"]["properties"])
            assert component["required"] == entry["config_schema"]["required"]
    for entry in catalogue["builders"]:
        assert set(COMPONENTS[f"{entry['builder'].title()}Pattern"]["properties"]) == set(
            entry["config_schema"]["properties"])


@pytest.mark.django_db
def test_an_lf_edit_checks_the_config_against_the_lf_s_type(api, dataset, captioned):
    url = f"/api/datasets/{dataset.id}/lfs/"
    lf = api.post(url, {"name": "says cat", "label_class": "cat", "type": "pattern", "high": 1,
                        "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, format="json").json()
    assert lf["type"] == "pattern" and lf["config"]["builder"] == "keyword"
    wrong = api.patch(f"{url}{lf['id']}/", {"config": {"text": "a cat"}}, format="json")
    assert wrong.status_code == 400 and "field" in str(wrong.json()["config"])
    retyped = api.patch(f"{url}{lf['id']}/", {"type": "similarity_text", "config": {"field": "caption"}},
                        format="json")
    assert retyped.status_code == 400 and "text" in str(retyped.json()["config"])
    edited = api.patch(f"{url}{lf['id']}/", {"config": {"field": "caption", "builder": "regex", "pattern": "ca+t"}},
                       format="json")
    assert edited.status_code == 200, edited.content
    assert edited.json()["config"] == {"field": "caption", "builder": "regex", "pattern": "ca+t",
                                       "case_sensitive": False}
    unknown_type = api.post(url, {"name": "y", "label_class": "cat", "type": "telepathy", "config": {}},
                            format="json")
    assert unknown_type.status_code == 400 and "type" in unknown_type.json()
