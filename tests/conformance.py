"""Every JSON body the API answers in the tests is checked against the committed api/openapi.yaml, strictly:
a key the schema does not declare is an error (objects are closed), so a typed client never meets data its
types do not describe. Checked for the documented status codes of the documented operations."""

import json
import re
from functools import cache
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource

SCHEMA = Path(__file__).resolve().parents[1] / "api" / "openapi.yaml"
COMPONENTS = "#/components/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def _by_discriminator(discriminator):
    """A discriminated oneOf as "the variant its discriminator names", so an error names what is wrong in it."""
    name, mapping = discriminator["propertyName"], discriminator["mapping"]
    return {"type": "object", "required": [name], "properties": {name: {"enum": list(mapping)}},
            "allOf": [{"if": {"properties": {name: {"const": value}}},
                       "then": {"$ref": ref.replace(COMPONENTS, "urn:schemas:")}} for value, ref in mapping.items()]}


def _json_schema(schema):
    """The OpenAPI 3.0 schema as JSON Schema: `nullable` as a null alternative, objects with properties closed."""
    if "discriminator" in schema:
        return _by_discriminator(schema["discriminator"])
    converted = {}
    for key, value in schema.items():
        if key in ("discriminator", "nullable"):
            continue
        if key == "properties":
            value = {name: _json_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            value = _json_schema(value)
        elif key in SUBSCHEMA_LISTS:
            value = [_json_schema(item) for item in value]
        elif key == "$ref":
            value = value.replace(COMPONENTS, "urn:schemas:")
        converted[key] = value
    if converted.get("type") == "object" and "properties" in converted and "additionalProperties" not in converted:
        converted["additionalProperties"] = False
    return {"anyOf": [converted, {"type": "null"}]} if schema.get("nullable") else converted


@cache
def _document():
    document = yaml.safe_load(SCHEMA.read_text())
    registry = Registry().with_resources(
        (f"urn:schemas:{name}", Resource.from_contents({"$schema": DRAFT, **_json_schema(schema)}))
        for name, schema in document["components"]["schemas"].items()
    )
    routes = [(re.compile("^" + re.sub(r"{\w+}", "[^/]+", path) + "$"), operations)
              for path, operations in document["paths"].items()]
    return routes, registry


def response_problems(method, path, status, content_type, body):
    """What is wrong with a JSON response body against the schema (empty: nothing, or not documented)."""
    if not content_type.startswith("application/json"):
        return []
    routes, registry = _document()
    # `samples/resample/` also matches `samples/{sample_id}/`: the path with the fewest parameters wins.
    matches = sorted((pattern.pattern.count("[^/]+"), index) for index, (pattern, _) in enumerate(routes)
                     if pattern.match(path))
    operation = routes[matches[0][1]][1].get(method.lower()) if matches else None
    response = (operation or {}).get("responses", {}).get(str(status))
    schema = ((response or {}).get("content") or {}).get("application/json", {}).get("schema")
    if schema is None:
        return []
    validator = jsonschema.Draft202012Validator(_json_schema(schema), registry=registry)
    problems = []
    for error in validator.iter_errors(json.loads(body)):
        # an anyOf says only that no variant fits: name what is wrong in the variant closest to fitting
        error = jsonschema.exceptions.best_match(error.context) if error.context else error
        problems.append(f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message[:300]}")
    return problems


def component_problems(name, body):
    """What is wrong with a decoded JSON value against the component `name` of the schema (empty: nothing)."""
    _, registry = _document()
    validator = jsonschema.Draft202012Validator({"$ref": f"urn:schemas:{name}"}, registry=registry)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message[:300]}"
            for error in validator.iter_errors(body)]
