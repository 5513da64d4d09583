"""GET /api/health/: what load balancers and healthchecks ask, without credentials."""

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_healthy_without_credentials():
    response = APIClient().get("/api/health/")
    assert response.status_code == 200 and response.json() == {"database": "ok", "broker": "ok"}


def test_a_broken_broker_or_no_worker_is_a_503(monkeypatch):
    from imagestudio.celery import app
    from imagestudio.common.errors import ServiceUnavailable

    def unreachable():
        raise ServiceUnavailable("down")

    monkeypatch.setattr("imagestudio.jobs.health.queue_check", unreachable)
    response = APIClient().get("/api/health/")
    assert response.status_code == 503 and response.json()["broker"] == "unavailable"
    monkeypatch.setattr("imagestudio.jobs.health.queue_check", lambda: None)
    monkeypatch.setattr(app.control, "ping", lambda timeout: [])
    app.conf.task_always_eager = False  # a deployment with a broker (put back by conftest's fixture)
    response = APIClient().get("/api/health/?workers=1")
    assert response.status_code == 503 and response.json()["workers"] == 0
    monkeypatch.setattr(app.control, "ping", lambda timeout: [{"celery@a": {"ok": "pong"}}])
    assert APIClient().get("/api/health/?workers=1").json() == {"database": "ok", "broker": "ok", "workers": 1}
