"""Which model speaks for a class: the newest ready model trained for it, not the newest model overall."""

import pytest

from imagestudio.training.models import FastModel
from imagestudio.training.selectors import latest_models_by_class

pytestmark = pytest.mark.django_db


def test_a_newer_model_of_one_class_leaves_the_other_classes_models(dataset):
    cat, dog = dataset.classes.get(name="cat"), dataset.classes.get(name="dog")

    def model(version, classes, ready=True):
        return FastModel.objects.create(dataset=dataset, version=version, label_source="ground_truth", ready=ready,
                                        params={"classes": [c.id for c in classes]})

    both = model(1, [cat, dog])
    only_cat = model(2, [cat])
    model(3, [dog], ready=False)  # still training (or failed): not a candidate
    assert latest_models_by_class(dataset=dataset) == {cat.id: only_cat, dog.id: both}
