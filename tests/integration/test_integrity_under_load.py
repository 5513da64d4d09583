"""Writers of labels and splits hammering overlapping samples on Postgres, each thread with its own connection:
no call fails (no deadlock surfaces), and afterwards every counter matches a recount."""

import random
import threading
import time

import pytest
from django.db import connection, connections

from imagestudio.annotations.services import annotation_set, annotations_bulk_set, annotations_undo_last_bulk
from imagestudio.common.errors import NotFound
from imagestudio.datasets.filters import samples_select
from imagestudio.datasets.models import Sample
from imagestudio.datasets.services import sample_update
from imagestudio.demo.integrity import integrity_check
from tests.conftest import make_user
from tests.factories import make_samples

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECONDS = 6
SPLITS = ("train", "dev", "valid", "test")
VALUES = ("PRESENT", "ABSENT", "ABSTAIN")


def hammer(workers, seconds=SECONDS):
    """Run each worker(rng) in a loop in its own thread until the time is up; return the errors raised."""
    deadline = time.monotonic() + seconds
    errors, barrier = [], threading.Barrier(len(workers))

    def run(index, work):
        rng = random.Random(index)
        try:
            barrier.wait()
            while time.monotonic() < deadline:
                work(rng)
        except Exception as exc:  # noqa: BLE001  (collected: the test asserts there were none)
            errors.append(f"{work.__name__}: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return errors


def test_labels_and_splits_stay_exact_under_concurrent_writers(owner, dataset):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and deadlocks need Postgres")
    samples = make_samples(dataset, [{"split": SPLITS[i % 4], "gt": {"cat": "PRESENT"} if i % 3 else {}}
                                     for i in range(24)])
    ids = [s.id for s in samples]
    classes = list(dataset.classes.order_by("id"))
    annotators = [owner, make_user("ann"), make_user("bob")]

    def bulk(rng, user):
        chosen = rng.sample(ids, rng.randint(4, 16))
        annotations_bulk_set(dataset=dataset, user=user, samples=samples_select(dataset=dataset, sample_ids=chosen),
                             classes=rng.sample(classes, rng.randint(1, 2)), value=rng.choice(VALUES),
                             sample_ids=chosen)
        if rng.random() < 0.3:
            try:
                annotations_undo_last_bulk(dataset=dataset, user=user)
            except NotFound:  # another thread's undo came first
                pass

    def bulk_and_undo(rng):
        bulk(rng, annotators[rng.randrange(len(annotators))])

    def put(rng):
        annotation_set(dataset=dataset, user=owner, sample=Sample.objects.get(pk=rng.choice(ids)),
                       label_class=rng.choice(classes), value=rng.choice(VALUES))

    def move(rng):
        sample_update(sample=Sample.objects.get(pk=rng.choice(ids)), split=rng.choice(SPLITS))

    errors = hammer([bulk_and_undo, bulk_and_undo, put, put, move, move])
    assert errors == []
    report = integrity_check(datasets=[dataset])
    assert [str(drift) for drift in report.found] == []
