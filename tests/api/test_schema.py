"""The OpenAPI schema is valid without warnings, and the committed api/openapi.yaml matches the code."""

from pathlib import Path

import pytest
from django.core.management import call_command

COMMITTED = Path(__file__).resolve().parents[2] / "api" / "openapi.yaml"


@pytest.mark.django_db
def test_schema_validates_without_warnings_and_matches_committed_file(tmp_path):
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(generated))
    assert generated.read_text() == COMMITTED.read_text(), (
        "api/openapi.yaml is stale: regenerate it with "
        "`python manage.py spectacular --validate --fail-on-warn --file api/openapi.yaml`"
    )


@pytest.mark.django_db
def test_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/datasets/{dataset_id}/samples/" in schema.content
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


@pytest.mark.django_db
def test_migrations_are_complete():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _free_form(schema, where, components, seen=frozenset()):
    """Where `schema` holds JSON of no declared shape (an object without properties, or no type at all)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return set() if name in seen else _free_form(components[name], name, components, seen | {name})
    found = set()
    for item in [*schema.get("oneOf", []), *schema.get("anyOf", []), *schema.get("allOf", [])]:
        found |= _free_form(item, where, components, seen)
    if "items" in schema:
        found |= _free_form(schema["items"], f"{where}[]", components, seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        found |= _free_form(extra, f"{where}{{}}", components, seen)
    for name, prop in schema.get("properties", {}).items():
        found |= _free_form(prop, f"{where}.{name}", components, seen)
    shaped = {"properties", "oneOf", "anyOf", "allOf", "enum", "items", "format"} & set(schema) or (
        schema.get("type") not in (None, "object")) or isinstance(extra, dict) and extra
    return found if shaped else found | {where}


# Free-form by nature: what users write (sample metadata, and examples of its values), and the JSON Schema
# documents lf-types/ publishes (a schema language of their own).
FREE_FORM_BY_NATURE = (".metadata", "MetadataField.examples", ".config_schema")


def test_only_metadata_is_free_form():
    """Every request and success body is typed to the leaf, but for what users write free-form: sample metadata."""
    import yaml

    document = yaml.safe_load(COMMITTED.read_text())
    components = document["components"]["schemas"]
    free = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            bodies = [media["schema"] for media in operation.get("requestBody", {}).get("content", {}).values()]
            bodies += [media["schema"] for status, response in operation["responses"].items() if status[0] == "2"
                       for kind, media in (response.get("content") or {}).items() if "json" in kind]
            for body in bodies:
                free.update({where: f"{method.upper()} {path}" for where in _free_form(body, "body", components)})
    assert free and all(any(allowed in where for allowed in FREE_FORM_BY_NATURE) for where in free), free


def test_every_security_requirement_names_a_declared_scheme():
    """An undeclared scheme makes the document invalid OpenAPI, and Swagger UI sends no token for it (the image
    operations named `tokenAuth`, declared as `Token`)."""
    import yaml

    document = yaml.safe_load(COMMITTED.read_text())
    declared = set(document["components"]["securitySchemes"])
    named = {(path, method, name) for path, operations in document["paths"].items()
             for method, operation in operations.items() if isinstance(operation, dict)
             for requirement in operation.get("security", document.get("security", [])) for name in requirement}
    assert {(path, method, name) for path, method, name in named if name not in declared} == set()
    assert named
