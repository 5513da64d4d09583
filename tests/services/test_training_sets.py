"""Training sets asked for by concurrent requests: one snapshot per content, whoever commits it first."""

import threading

import pytest
from django.db import connections

from imagestudio.labeling.services import lf_create
from imagestudio.training.models import TrainingSet
from imagestudio.training.services import training_set_start
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_snapshot_committed_by_a_concurrent_request_is_answered_not_a_500(dataset, owner, monkeypatch):
    make_samples(dataset, [{"metadata": {"caption": c}, "split": s} for c, s in (("cat", "train"), ("dog", "dev"))])
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw", type="pattern",
              config={"field": "caption", "builder": "keyword", "words": ["cat"]}, low=0, high=1)
    create = TrainingSet.objects.create

    def a_concurrent_request_commits_first(**fields):
        monkeypatch.undo()

        def other_request():
            try:
                training_set_start(dataset=dataset, user=owner)
            finally:
                connections.close_all()

        other = threading.Thread(target=other_request)
        other.start()
        other.join()
        return create(**fields)

    monkeypatch.setattr(TrainingSet.objects, "create", a_concurrent_request_commits_first)
    training_set, created = training_set_start(dataset=dataset, user=owner)
    assert not created
    assert list(TrainingSet.objects.filter(dataset=dataset).values_list("id", flat=True)) == [training_set.id]
