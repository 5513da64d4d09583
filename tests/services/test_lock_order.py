"""Writers beside an LF edit keep the one lock order of datasets/locks.py: a label writer holding its classes
(shared) and then taking the dataset row, as a split move or an import does, neither waits for the LF edit nor
deadlocks with it. (An LF edit once locked its class and dataset rows FOR UPDATE, in the order dataset then class:
the soak saw 120 deadlocks in 10 minutes, answered 503.)"""

import threading

import pytest
from django.db import connection, connections, transaction

from imagestudio.datasets.locks import classes_lock_shared, dataset_lock
from imagestudio.labeling.models import LabelingFunction
from imagestudio.labeling.services import lf_create, lf_update
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)


class InThread(threading.Thread):
    """Runs `work` on its own database connection; keeps its exception and its backend pid."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.error, self.pid, self.started_work = work, None, None, threading.Event()

    def run(self):
        try:
            connection.ensure_connection()
            self.pid = connection.connection.info.backend_pid
            self.started_work.set()
            self.work()
        except Exception as exc:  # noqa: BLE001  (the test asserts there was none)
            self.error = exc
        finally:
            self.started_work.set()
            connections.close_all()


def waiting_or_done(thread):
    """Block until the thread finished or its transaction waits for a lock."""
    thread.started_work.wait()
    while thread.is_alive():
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [thread.pid])
            row = cursor.fetchone()
        if row and row[0] == "Lock":
            return
        thread.join(0.05)


def test_an_lf_edit_beside_a_writer_holding_its_class_does_not_deadlock(dataset, owner):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need Postgres")
    make_samples(dataset, [{"metadata": {"caption": "cat"}}])
    cat = dataset.classes.get(name="cat")
    lf = lf_create(dataset=dataset, user=owner, label_class=cat, name="kw", type="pattern",
                   config={"field": "caption", "builder": "keyword", "words": ["cat"]}, high=1)
    holding, go = threading.Event(), threading.Event()

    def writer():  # a label writer: its classes first (shared), the dataset row last
        with transaction.atomic():
            classes_lock_shared(class_ids=[cat.id])
            holding.set()
            go.wait()
            dataset_lock(dataset_id=dataset.id)

    writing = InThread(writer)
    writing.start()
    holding.wait()
    editing = InThread(lambda: lf_update(lf=LabelingFunction.objects.get(pk=lf.pk), user=owner, active=False))
    editing.start()
    waiting_or_done(editing)
    go.set()
    for thread in (writing, editing):
        thread.join()
    assert (writing.error, editing.error) == (None, None)
    assert not LabelingFunction.objects.get(pk=lf.pk).active
