"""The studio is served as a page and static ES modules, and it reaches the data through the public API alone:
one JS module (api.js) talks to the API, every path it calls is in the committed schema, and the Django app that
serves it imports nothing of the domain or of api/."""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STUDIO = ROOT / "imagestudio" / "studio"
STATIC = STUDIO / "static" / "studio"
MODULES = sorted(STATIC.rglob("*.js"))
CALL = re.compile(r"""\b(?:request|send)\(\s*"(GET|POST|PUT|PATCH|DELETE)",\s*[`"]([^`"]+)[`"]"""
                  r"""|\b(?:list|all)\(\s*[`"]([^`"]+)[`"]""")


@pytest.mark.django_db
def test_the_page_loads_without_credentials_and_names_its_modules(client):
    response = client.get("/studio/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<script type="module" src="/static/studio/main.js">' in page
    assert 'name="imagestudio-api" content="/api/"' in page


@pytest.mark.django_db
@pytest.mark.parametrize("module", MODULES, ids=lambda path: str(path.relative_to(STATIC)))
def test_every_module_is_served_as_javascript(client, module):
    response = client.get(f"/static/studio/{module.relative_to(STATIC).as_posix()}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")


def _api_calls():
    source = (STATIC / "api.js").read_text()
    calls = set()
    for method, path, listed in CALL.findall(source):  # literal paths only: URLs the API returned are variables
        calls.add((method or "GET", re.sub(r"\$\{[^}]+\}", "{}", path or listed)))
    return calls


def test_every_path_the_studio_calls_is_in_the_schema():
    schema = yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text())
    known = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api/")))
             for path, operations in schema["paths"].items() for method in operations if method != "parameters"}
    calls = _api_calls()
    assert len(calls) > 30, calls  # the pattern still finds them
    assert sorted(calls - known) == []


def test_only_api_js_talks_to_the_api():
    for module in MODULES:
        if module.name == "api.js":
            continue
        source = module.read_text()
        assert "fetch(" not in source and "XMLHttpRequest" not in source, module.name
        assert not re.search(r"""["'`](/api/|datasets/)""", source), f"{module.name} names an API path"


def test_the_app_serving_it_imports_no_domain_and_no_api():
    for path in STUDIO.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert not name.startswith(("api", "imagestudio.")) or name.startswith("imagestudio.studio"), \
                    f"{path.name} imports {name}"
