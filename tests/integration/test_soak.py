"""The short profile of bench/soak.py: client threads doing random interleavings of every kind of write over HTTP
against a live server, a real worker SIGKILLed once and restarted; afterwards every job finished, no 5xx, every
import accounted for each file, exact counts are exact and check_integrity finds no drift."""

import sys

import httpx
import pytest
from django.conf import settings

from imagestudio.datasets.models import Dataset
from imagestudio.demo.integrity import integrity_check
from tests.conftest import TINY_CLIP_CONFIG
from tests.integration.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import soak  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECONDS = 40
VISIBILITY_TIMEOUT = 4


def test_a_short_soak_with_a_killed_worker_ends_clean(live_server, start_worker, tiny_clip):
    env = {"EMBEDDING_DEFAULT_ENCODER": "open_clip", "CLIP_MODEL": "tiny-clip", "CLIP_MODEL_CONFIG": str(TINY_CLIP_CONFIG),
           "CLIP_CHECKPOINT": tiny_clip, "EMBEDDING_DEVICE": "cpu", "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
           "JOB_HEARTBEAT_SECONDS": "1", "JOB_ORPHAN_SECONDS": "3"}
    target = soak.make_target(live_server.url)
    # The new worker starts after the visibility timeout, so its first sweep hands it the killed worker's job, and
    # after the orphan time, so it may claim it.
    stats, killer, _ = soak.run(target, seconds=SECONDS, clients=4, kills=1, seed=0,
                                start_worker=lambda: start_worker(env=env, concurrency=2),
                                restart_delay=lambda rng: VISIBILITY_TIMEOUT + 1)
    assert killer.error is None and len(killer.events) == 1
    assert soak.settle(timeout=180) == []
    assert stats.client_bugs == []
    assert stats.server_errors == [] and stats.transport_errors == []
    assert sum(stats.status_counts().values()) > 0 and stats.imports
    assert soak.import_problems(stats) == []
    assert soak.staging_leftovers(settings.MEDIA_ROOT, kills=1) == []
    with httpx.Client(base_url=target.base_url, headers={"Authorization": f"Token {target.tokens['owner']}"}) as http:
        assert soak.count_problems(http, target.dataset_id) == []
    report = integrity_check(datasets=Dataset.objects.all())
    assert [str(drift) for drift in report.found] == []
