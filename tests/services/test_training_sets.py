"""Training sets asked for by concurrent requests: one snapshot per content, whoever commits it first; a set is
built from the inputs it was asked for, or not at all."""

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


def test_a_set_whose_inputs_changed_while_it_was_queued_is_not_built_from_them(dataset, owner):
    from imagestudio.annotations.services import annotation_set
    from imagestudio.common.errors import Conflict
    from imagestudio.training.selectors import training_snapshot
    from imagestudio.training.set_build import training_set_build

    samples = make_samples(dataset, [{"metadata": {"caption": c}, "split": "dev", "gt": {"cat": value}}
                                     for c, value in (("cat", "PRESENT"), ("cat", "PRESENT"), ("dog", "ABSENT"))])
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw", type="pattern",
              config={"field": "caption", "builder": "keyword", "words": ["cat"]}, low=0, high=1)
    snapshot, content_hash = training_snapshot(dataset, ["train", "dev", "valid", "test"], 0)
    queued = TrainingSet.objects.create(dataset=dataset, content_hash=content_hash, snapshot=snapshot, created_by=owner)
    cat = dataset.classes.get(name="cat")
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=cat, value="PRESENT")
    with pytest.raises(Conflict, match="changed while it was queued"):
        training_set_build(queued, lambda fraction, message: None)
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=cat, value="ABSENT")  # as asked
    result = training_set_build(queued, lambda fraction, message: None)
    assert result["classes"]["cat"]["candidates"]["majority_vote"]["dev"]["scored"] == 3
