"""API tokens: login issues a new token each time, named tokens for scripts, list, rotate, revoke, logout, expiry,
other users' tokens, secrets never stored, and any Authorization header a 401 rather than a 500."""

import io
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from imagestudio.accounts.keys import key_digest
from imagestudio.accounts.models import ApiToken
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

LISTED_FIELDS = {"id", "name", "prefix", "created_at", "expires_at", "last_used_at", "current"}
ISSUED_FIELDS = {"token", "id", "name", "prefix", "created_at", "expires_at"}


def login(username, user_agent="curl/8.5.0"):
    response = APIClient().post("/api/auth/token/", {"username": username, "password": f"{username}-password-123"},
                                format="json", HTTP_USER_AGENT=user_agent)
    assert response.status_code == 200, response.content
    return response.json()


def with_key(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def refused(client, code):
    response = client.get("/api/datasets/")
    return response.status_code == 401 and response.json()["code"] == code and response["WWW-Authenticate"] == "Token"


def days_from_now(stamp):
    return (timezone.datetime.fromisoformat(stamp) - timezone.now()) / timedelta(days=1)


def test_each_login_issues_a_new_named_expiring_token(owner, settings):
    settings.TOKEN_TTL_DAYS = 7
    first, second = login("olivia", "my-script/1.0 (\x01linux)"), login("olivia")
    assert set(first) == ISSUED_FIELDS and first["token"].startswith("ist_") and first["token"] != second["token"]
    assert first["id"] != second["id"] and first["prefix"] == first["token"][:12]
    assert first["name"] == "login (my-script/1.0 ( linux))" and second["name"] == "login (curl/8.5.0)"
    assert 6.99 < days_from_now(first["expires_at"]) <= 7
    for issued in (first, second):
        assert with_key(issued["token"]).get("/api/datasets/").status_code == 200
    assert len(login("olivia", "x" * 5000)["name"]) == 100  # a long User-Agent is cut to the name's length


def test_login_tokens_never_expire_when_the_ttl_is_zero(owner, settings):
    settings.TOKEN_TTL_DAYS = 0
    assert login("olivia")["expires_at"] is None


def test_named_tokens_for_scripts_are_created_used_and_listed(owner, settings):
    settings.TOKEN_TTL_DAYS = 30
    session = with_key(login("olivia")["token"])
    nightly = session.post("/api/auth/tokens/", {"name": "nightly-export", "expires_in_days": 90}, format="json")
    forever = session.post("/api/auth/tokens/", {"name": "ci", "expires_in_days": None}, format="json")
    default = session.post("/api/auth/tokens/", {"name": "  adhoc  "}, format="json")
    assert [r.status_code for r in (nightly, forever, default)] == [201, 201, 201]
    nightly, forever, default = nightly.json(), forever.json(), default.json()
    assert set(nightly) == ISSUED_FIELDS and 89.99 < days_from_now(nightly["expires_at"]) <= 90
    assert forever["expires_at"] is None and 29.99 < days_from_now(default["expires_at"]) <= 30
    assert default["name"] == "adhoc"

    script = with_key(nightly["token"])
    assert script.post("/api/datasets/", {"name": "Made by a script", "classes": ["cat"]}, format="json").status_code == 201
    listed = script.get("/api/auth/tokens/").json()
    assert listed["count"] == 4
    assert [t["name"] for t in listed["results"]] == ["adhoc", "ci", "nightly-export", "login (curl/8.5.0)"]
    assert all(set(t) == LISTED_FIELDS for t in listed["results"])
    assert [t["current"] for t in listed["results"]] == [False, False, True, False]
    used = {t["name"]: t["last_used_at"] for t in listed["results"]}
    assert used["nightly-export"] is not None and used["ci"] is None
    one = script.get(f"/api/auth/tokens/{forever['id']}/").json()
    assert one["name"] == "ci" and one["prefix"] == forever["token"][:12] and "token" not in one


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101},
                                  {"name": "ok", "expires_in_days": 0}, {"name": "ok", "expires_in_days": -3},
                                  {"name": "ok", "expires_in_days": 3651}, {"name": "ok", "expires_in_days": "soon"},
                                  {"name": ["ok"]}])
def test_bad_token_requests_are_400(api, body):
    response = api.post("/api/auth/tokens/", body, format="json")
    assert response.status_code == 400, response.content
    assert ApiToken.objects.count() == 1  # the client's own


def test_rotation_gives_a_new_key_and_revokes_the_old_one(owner):
    session = with_key(login("olivia")["token"])
    old = session.post("/api/auth/tokens/", {"name": "deploy", "expires_in_days": 10}, format="json").json()
    rotated = with_key(old["token"]).post(f"/api/auth/tokens/{old['id']}/rotate/")
    assert rotated.status_code == 201, rotated.content
    new = rotated.json()
    assert new["name"] == "deploy" and new["id"] != old["id"] and new["token"] != old["token"]
    assert 9.99 < days_from_now(new["expires_at"]) <= 10
    assert refused(with_key(old["token"]), "token_revoked")
    assert with_key(new["token"]).get("/api/datasets/").status_code == 200
    assert session.post(f"/api/auth/tokens/{old['id']}/rotate/").status_code == 404  # only once
    assert [t["name"] for t in session.get("/api/auth/tokens/").json()["results"]] == ["deploy", "login (curl/8.5.0)"]


def test_revoking_a_token_makes_it_401_and_unlisted(owner):
    session = with_key(login("olivia")["token"])
    script = session.post("/api/auth/tokens/", {"name": "old-script"}, format="json").json()
    assert session.delete(f"/api/auth/tokens/{script['id']}/").status_code == 204
    assert refused(with_key(script["token"]), "token_revoked")
    assert session.delete(f"/api/auth/tokens/{script['id']}/").status_code == 404
    assert script["id"] not in [t["id"] for t in session.get("/api/auth/tokens/").json()["results"]]
    assert session.get("/api/datasets/").status_code == 200  # the caller's own token is untouched


def test_logout_revokes_the_token_used_and_no_other(owner):
    first, second = login("olivia"), login("olivia")
    client = with_key(first["token"])
    assert client.post("/api/auth/logout/").status_code == 204
    assert refused(client, "token_revoked")
    assert client.post("/api/auth/logout/").status_code == 401
    assert with_key(second["token"]).get("/api/datasets/").status_code == 200
    assert APIClient().post("/api/auth/logout/").status_code == 401


def test_logout_ends_a_browsable_api_session(owner):
    from django.test import Client

    browser = Client()
    assert browser.login(username="olivia", password="olivia-password-123")
    assert browser.get("/api/datasets/").status_code == 200
    assert browser.post("/api/auth/logout/").status_code == 204
    assert browser.get("/api/datasets/").status_code == 401


def test_expired_tokens_are_401_unlisted_and_cannot_be_rotated(owner):
    session = with_key(login("olivia")["token"])
    script = session.post("/api/auth/tokens/", {"name": "short-lived", "expires_in_days": 1}, format="json").json()
    ApiToken.objects.filter(pk=script["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert refused(with_key(script["token"]), "token_expired")
    assert script["id"] not in [t["id"] for t in session.get("/api/auth/tokens/").json()["results"]]
    assert session.post(f"/api/auth/tokens/{script['id']}/rotate/").status_code == 404


def test_another_users_token_is_404_and_keeps_working(owner, stranger):
    theirs = with_key(login("sam")["token"])
    their_id = theirs.get("/api/auth/tokens/").json()["results"][0]["id"]
    mine = client_for(owner)
    for response in (mine.get(f"/api/auth/tokens/{their_id}/"), mine.delete(f"/api/auth/tokens/{their_id}/"),
                     mine.post(f"/api/auth/tokens/{their_id}/rotate/")):
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert their_id not in [t["id"] for t in mine.get("/api/auth/tokens/").json()["results"]]
    assert theirs.get("/api/datasets/").status_code == 200
    for bad in ("0", "-1", "abc", "9" * 30, "1.5"):
        assert mine.get(f"/api/auth/tokens/{bad}/").status_code == 404, bad


def test_inactive_users_tokens_are_401(owner):
    client = client_for(owner)
    owner.is_active = False
    owner.save()
    assert refused(client, "user_inactive")


def test_the_database_holds_digests_never_keys(owner):
    issued = login("olivia")
    made = with_key(issued["token"]).post("/api/auth/tokens/", {"name": "s"}, format="json").json()
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    for key in (issued["token"], made["token"]):
        assert key not in dump.getvalue() and key_digest(key) in dump.getvalue()
        assert key[12:] not in dump.getvalue()  # not even the secret part beyond the listed prefix
    assert "authtoken_token" not in connection.introspection.table_names()  # no plain-text table left


def test_passwords_are_not_logged(owner, caplog):
    caplog.set_level(logging.DEBUG)
    for password in ("olivia-password-123", "Wrong-Horse-Battery"):
        APIClient().post("/api/auth/token/", {"username": "olivia", "password": password}, format="json")
    APIClient().post("/api/auth/token/", '{"username": "olivia", "password": "Broken-Json', content_type="application/json")
    assert "Unauthorized: /api/auth/token/" in caplog.text  # the failures are logged, without the body
    assert "password-123" not in caplog.text and "Horse" not in caplog.text and "Broken" not in caplog.text


@pytest.mark.parametrize("header", ["Token", "Token ", "token a b", "Token ist_\x00" + "a" * 30, "Token " + "é" * 40,
                                    "Token " + "a" * 101, "Token " + "0" * 40, "Token ist_" + "A" * 43])
def test_malformed_or_unknown_token_headers_are_401(db, header):
    response = APIClient().get("/api/datasets/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401 and response.json()["code"] in (
        "invalid_token", "invalid_token_header"), (header, response.content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(st.text(), st.text().map(lambda rest: "Token " + rest),
                        st.text(alphabet="Tokentoken ist_-\t\x0b\x1c\u2028\u00a0abcAB0129", max_size=80),
                        st.binary(max_size=60).map(lambda raw: raw.decode("latin-1"))))
def test_any_authorization_header_is_a_401_never_a_500(owner, header):
    client_for(owner)  # a live token exists: the garbage must not find it
    response = APIClient().get("/api/datasets/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401, (header, response.status_code)
    assert response.json()["code"] in ("not_authenticated", "invalid_token", "invalid_token_header")
