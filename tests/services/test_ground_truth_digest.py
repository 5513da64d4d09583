"""The split digests behind training-set and model staleness are cached per process: after any sequence of label
writes, split moves and class changes, the cached digest is the one the labels give read afresh."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagestudio.annotations.selectors import _digest_of, ground_truth_digest
from imagestudio.annotations.services import annotation_set
from imagestudio.datasets.models import Dataset, LabelClass, Split
from imagestudio.datasets.services import (
    dataset_create,
    label_class_create,
    label_class_delete,
    sample_update,
)
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)

SPLITS = [Split.TRAIN, Split.DEV, Split.VALID]

steps = st.lists(st.one_of(
    st.tuples(st.just("label"), st.integers(0, 3), st.integers(0, 2), st.sampled_from(["PRESENT", "ABSENT", "ABSTAIN"])),
    st.tuples(st.just("move"), st.integers(0, 3), st.sampled_from(SPLITS)),
    st.tuples(st.just("class"), st.integers(0, 2)),
), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
@example(steps=[("label", 0, 1, "PRESENT"), ("label", 1, 0, "ABSENT"), ("class", 0)])  # the last event not the class's
def test_the_cached_digest_follows_labels_moves_and_classes(owner, steps):
    dataset = dataset_create(user=owner, name=f"d{Dataset.objects.count()}", classes=["cat", "dog"])
    samples = make_samples(dataset, [{"split": split} for split in SPLITS + [Split.DEV]])
    for step in steps:
        classes = list(LabelClass.objects.filter(dataset=dataset).order_by("id"))
        if step[0] == "label" and classes:
            sample = samples[step[1]]
            sample.refresh_from_db()
            annotation_set(dataset=dataset, user=owner, sample=sample, label_class=classes[step[2] % len(classes)],
                           value=step[3])
        elif step[0] == "move":
            sample_update(sample=samples[step[1]], split=step[2], user=owner)
        elif step[0] == "class":
            if len(classes) > 1 and step[1] == 0:
                label_class_delete(label_class=classes[-1])  # its labels go with it
            else:
                label_class_create(dataset=dataset, name=f"c{LabelClass.objects.count()}-{step[1]}")
        scoped = [c.id for c in LabelClass.objects.filter(dataset=dataset).order_by("id")][:1]  # one class's
        for split in SPLITS:
            assert ground_truth_digest(dataset=dataset, split=split) == _digest_of(dataset, split), (step, split)
            assert ground_truth_digest(dataset=dataset, split=split, class_ids=scoped) == _digest_of(
                dataset, split, tuple(scoped)), (step, split, scoped)
