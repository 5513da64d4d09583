"""`manage.py create_user`: a user for the members example and for scripts; the password from the environment,
a token printed alone; refusals are command errors that name the reason, never a traceback."""

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def run(*args, env=None, monkeypatch=None):
    from io import StringIO

    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    out = StringIO()
    call_command("create_user", *args, stdout=out)
    return out.getvalue().strip()


def test_password_from_the_environment_signs_in(monkeypatch):
    out = run("alice", "--password-env", "ALICE_PASSWORD", env={"ALICE_PASSWORD": "a-long-secret-41"},
              monkeypatch=monkeypatch)
    assert out == "created user alice" and "a-long-secret-41" not in out
    assert authenticate(username="alice", password="a-long-secret-41") is not None


def test_token_printed_alone_works_and_a_user_without_password_cannot_sign_in():
    key = run("bot", "--token", "nightly")
    assert key.startswith("ist_") and "\n" not in key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    tokens = client.get("/api/auth/tokens/").json()["results"]
    assert [t["name"] for t in tokens] == ["nightly"]
    assert not get_user_model().objects.get(username="bot").has_usable_password()


@pytest.mark.parametrize("args, env, words", [
    (("carol", "--password-env", "UNSET_VARIABLE_X"), {}, "not set"),
    (("carol", "--password-env", "P"), {"P": "password"}, "too common"),
    (("carol", "--password-env", "P"), {"P": "short"}, "too short"),
    (("bad name!",), {}, "valid username"),
])
def test_refusals_name_the_reason(monkeypatch, args, env, words):
    with pytest.raises(CommandError, match=words):
        run(*args, env=env, monkeypatch=monkeypatch)
    assert not get_user_model().objects.filter(username=args[0]).exists()


def test_an_existing_name_in_any_case_is_refused():
    run("dave")
    with pytest.raises(CommandError, match="exists already"):
        run("DAVE")
