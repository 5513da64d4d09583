"""Django admin pages for datasets, samples and jobs; session login for the browsable API."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from imagestudio.datasets.models import ImportGrant
from imagestudio.jobs.models import Job
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(owner):
    get_user_model().objects.create_superuser("root", "root@example.com", "root-password-123")
    client = Client()
    assert client.login(username="root", password="root-password-123")
    return client


def test_admin_lists_and_changes_datasets_samples_jobs(admin_client_logged_in, dataset, owner):
    sample = make_samples(dataset, [{"metadata": {"caption": "x"}}])[0]
    job = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    for path in ("/admin/datasets/dataset/", f"/admin/datasets/dataset/{dataset.id}/change/",
                 "/admin/datasets/sample/", f"/admin/datasets/sample/{sample.id}/change/",
                 "/admin/jobs/job/", f"/admin/jobs/job/{job.id}/change/", "/admin/annotations/annotation/"):
        assert admin_client_logged_in.get(path).status_code == 200, path


def test_admin_grants_an_import_source_to_a_dataset_only_where_a_directory_is(admin_client_logged_in, dataset,
                                                                             settings, tmp_path):
    (tmp_path / "team").mkdir()
    settings.IMPORT_ROOT = str(tmp_path)
    add = "/admin/datasets/importgrant/add/"
    for form, error in (({"dataset": dataset.id, "path": "../team"}, b"cannot contain"),
                        ({"dataset": dataset.id, "path": "nowhere"}, b"not a directory"),
                        ({"path": "team"}, b"exactly one")):
        page = admin_client_logged_in.post(add, form)
        assert page.status_code == 200 and error in page.content, form
    assert admin_client_logged_in.post(add, {"dataset": dataset.id, "path": "./team/"}).status_code == 302
    grant = ImportGrant.objects.get()
    assert (grant.dataset, grant.path, grant.created_by.username) == (dataset, "team", "root")
    assert admin_client_logged_in.get("/admin/datasets/importgrant/").status_code == 200


def test_session_login_drives_the_browsable_api(owner, dataset):
    client = Client()
    assert client.get("/api/datasets/").status_code in (401, 403)
    assert client.get("/api/auth/login/").status_code == 200
    assert client.login(username=owner.username, password="olivia-password-123")
    page = client.get("/api/datasets/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"Pets" in page.content


def test_login_attempts_are_throttled_per_user_whatever_the_forwarded_address(db):
    from rest_framework.test import APIClient

    from tests.conftest import make_user

    make_user("victim")
    client = APIClient()
    answers = [client.post("/api/auth/token/", {"username": "victim", "password": "wrong"}, format="json",
                           HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code for i in range(12)]
    assert answers[:10] == [401] * 10 and answers[10:] == [429, 429]
    for spelling in ("victim", " victim", "victim\t", "VICTIM", "ｖｉｃｔｉｍ"):  # one budget, however it is spelled
        right = client.post("/api/auth/token/", {"username": spelling, "password": "victim-password-123"},
                            format="json")
        assert right.status_code == 429 and "Retry-After" in right, spelling  # the right password waits too


def test_a_login_body_that_does_not_parse_is_a_parse_error(db):
    from rest_framework.test import APIClient

    for body in (b"{", b'{"username": "de\\u0000mo", "password": "x"'):
        answer = APIClient().post("/api/auth/token/", body, content_type="application/json")
        assert (answer.status_code, answer.json()["code"]) == (400, "parse_error"), answer.content


def test_forwarded_addresses_do_not_reset_the_per_address_limit(db, settings):
    from rest_framework.test import APIClient

    client = APIClient()
    answers = {client.post("/api/auth/token/", {"username": f"nobody-{i}", "password": "x"}, format="json",
                           HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(31)}
    assert answers == {401, 429}  # 30 a minute from this peer, whatever X-Forwarded-For claims


def test_a_throttle_store_that_is_down_lets_logins_through(db, monkeypatch):
    from rest_framework.test import APIClient

    from tests.conftest import make_user

    def down(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle.cache, "get", down)
    with pytest.raises(ConnectionError):
        SimpleRateThrottle.cache.get("any")  # the throttles' store is down indeed
    make_user("ada")
    response = APIClient().post("/api/auth/token/", {"username": "ada", "password": "ada-password-123"}, format="json")
    assert response.status_code == 200
