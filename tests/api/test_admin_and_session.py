"""Django admin pages for datasets, samples and jobs; session login for the browsable API."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

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


def test_session_login_drives_the_browsable_api(owner, dataset):
    client = Client()
    assert client.get("/api/datasets/").status_code in (401, 403)
    assert client.get("/api/auth/login/").status_code == 200
    assert client.login(username=owner.username, password="olivia-password-123")
    page = client.get("/api/datasets/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"Pets" in page.content
