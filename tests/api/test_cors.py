"""CORS: a browser page on an allowed origin may call every API route (the preflight is answered before any
authentication), a page on any other origin gets no CORS header, and nothing outside /api/ takes part."""

import pytest

from tests.api import test_authorization_matrix as matrix
from tests.conftest import client_for
from tests.unit.test_production_settings import manage

pytestmark = pytest.mark.django_db
world = matrix.world  # the fixture: a dataset with one of every object, and a client per role

ALLOWED = "https://studio.example.com"
STRANGER = "https://evil.example.net"


@pytest.fixture(autouse=True)
def allowed_origins(settings):
    settings.CORS_ALLOWED_ORIGINS = [ALLOWED]
    settings.CORS_ALLOWED_ORIGIN_REGEXES = [r"^https://[a-z0-9-]+\.preview\.example\.com$"]


def preflight(client, path, origin, method="GET"):
    return client.options(path, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD=method.upper(),
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, if-match")


def listed(header):
    return {item.strip().lower() for item in header.split(",")}


def test_every_route_answers_a_preflight_for_an_allowed_origin_and_only_for_it(world):
    clients, ids = world
    anonymous = clients["anonymous"]  # a preflight never carries credentials
    routes = {}
    for route, method, _cls, _initkwargs, _action in matrix.endpoints():
        routes.setdefault(matrix.concrete(route, ids), set()).add(method)
    assert len(routes) > 40
    for path, methods in routes.items():
        for method in methods:
            response = preflight(anonymous, path, ALLOWED, method)
            where = f"OPTIONS {path} for {method.upper()}: {response.status_code}"
            assert response.status_code == 200, where
            assert response["Access-Control-Allow-Origin"] == ALLOWED, where
            assert method in listed(response["Access-Control-Allow-Methods"]), where
            assert {"authorization", "content-type", "if-match", "if-none-match", "last-event-id"} <= listed(
                response["Access-Control-Allow-Headers"]), where
            assert "Access-Control-Allow-Credentials" not in response, where  # tokens, never cookies
        refused = preflight(anonymous, path, STRANGER)
        assert refused.status_code == 200 and "Access-Control-Allow-Origin" not in refused, path


def preflight_from(origin):
    return preflight(client_for(None), "/api/auth/token/", origin, "POST")


def test_origins_matching_a_configured_pattern_are_allowed():
    origin = "https://pr-42.preview.example.com"
    assert preflight_from(origin)["Access-Control-Allow-Origin"] == origin
    assert "Access-Control-Allow-Origin" not in preflight_from("https://pr-42.preview.example.com.evil.net")


def test_a_cross_origin_call_with_a_token_gets_the_cors_headers_and_sees_the_useful_ones(api, dataset):
    response = api.get(f"/api/datasets/{dataset.id}/", HTTP_ORIGIN=ALLOWED)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert listed(response["Access-Control-Expose-Headers"]) == {"etag", "location", "retry-after", "content-disposition"}
    assert "origin" in listed(response["Vary"])  # caches keep one answer per origin
    assert "Access-Control-Allow-Origin" not in api.get(f"/api/datasets/{dataset.id}/", HTTP_ORIGIN=STRANGER)


def test_errors_carry_the_headers_too_so_the_page_can_read_them(dataset):
    response = client_for(None).get(f"/api/datasets/{dataset.id}/", HTTP_ORIGIN=ALLOWED)
    assert response.status_code == 401 and response["Access-Control-Allow-Origin"] == ALLOWED


def test_nothing_outside_the_api_takes_part(client):
    response = client.options("/admin/login/", HTTP_ORIGIN=ALLOWED, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in response


def test_origins_come_from_the_environment_and_none_are_allowed_by_default(tmp_path):
    show = "from django.conf import settings as s; print(s.CORS_ALLOWED_ORIGINS, s.CORS_ALLOWED_ORIGIN_REGEXES)"
    assert manage("shell", "--no-imports", "-c", show, IMAGESTUDIO_DATA_DIR=str(tmp_path)).stdout.strip() == "[] []"
    configured = manage("shell", "--no-imports", "-c", show, IMAGESTUDIO_DATA_DIR=str(tmp_path),
                        CORS_ALLOWED_ORIGINS="https://studio.example.com, http://localhost:5173",
                        CORS_ALLOWED_ORIGIN_REGEXES=r"^https://a{1,3}\.example\.com$  ^http://localhost:\d+$")
    assert configured.stdout.strip() == (r"['https://studio.example.com', 'http://localhost:5173'] "
                                         r"['^https://a{1,3}\\.example\\.com$', '^http://localhost:\\d+$']")
    refused = manage("check", IMAGESTUDIO_DATA_DIR=str(tmp_path), CORS_ALLOWED_ORIGINS="studio.example.com")
    assert refused.returncode != 0 and "corsheaders.E013" in refused.stderr
