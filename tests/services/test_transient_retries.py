"""Writers that Postgres aborts as deadlock victims run again and succeed: the retry must not read state the
failed attempt left behind, and must not sit inside a transaction that makes it a no-op."""

import pytest
from django.db import OperationalError

from imagestudio.datasets import services as dataset_services
from imagestudio.datasets.models import LabelClass, Sample
from imagestudio.datasets.services import label_class_delete
from tests.conftest import client_for
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def once_a_deadlock(calls):
    """Raise Postgres's deadlock error the first time only (as Django wraps it: an OperationalError)."""
    calls.append(1)
    if len(calls) == 1:
        raise OperationalError("deadlock detected") from _Deadlock()


def test_a_class_delete_aborted_as_a_deadlock_victim_is_run_again(dataset, monkeypatch):
    calls, delete = [], LabelClass.delete

    def aborted_at_its_commit(self, *args, **kwargs):  # after Django cleared the deleted instance's pk
        result = delete(self, *args, **kwargs)
        once_a_deadlock(calls)
        return result

    monkeypatch.setattr(LabelClass, "delete", aborted_at_its_commit)
    label_class_delete(label_class=dataset.classes.get(name="dog"))
    assert len(calls) == 2 and not dataset.classes.filter(name="dog").exists()


def test_a_split_move_aborted_as_a_deadlock_victim_is_run_again(dataset, owner, monkeypatch):
    sample = make_samples(dataset, [{"split": "train"}])[0]
    calls, update = [], dataset_services.sample_update

    def aborted_first(**kwargs):
        once_a_deadlock(calls)
        return update(**kwargs)

    monkeypatch.setattr(dataset_services, "sample_update", aborted_first)
    response = client_for(owner).patch(f"/api/datasets/{dataset.id}/samples/{sample.id}/", {"split": "dev"},
                                       format="json")
    assert response.status_code == 200, response.content
    assert len(calls) == 2 and Sample.objects.get(pk=sample.pk).split == "dev"
