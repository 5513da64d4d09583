"""Training-set reports and model metrics are stored per class under the class's name (the API shows them so):
a renamed class takes its figures along, in the rename's transaction."""

from django.db import transaction

from imagestudio.datasets.models import LabelClass
from imagestudio.datasets.signals import label_class_renamed

from .models import FastModel, TrainingSet


def _renamed(figures: dict, old_name: str, new_name: str) -> dict:
    return {new_name if key == old_name else key: value for key, value in figures.items()
            if key != new_name}  # under the new name before: a deleted class's figures (names are unique)


def _on_class_renamed(sender, *, label_class, old_name, **kwargs):
    with transaction.atomic():
        for training_set in TrainingSet.objects.select_for_update().filter(dataset_id=label_class.dataset_id):
            entry = training_set.report.get(old_name)
            if isinstance(entry, dict) and entry.get("class_id") == label_class.id:
                training_set.report = _renamed(training_set.report, old_name, label_class.name)
                training_set.save(update_fields=["report"])
        for model in FastModel.objects.select_for_update().filter(dataset_id=label_class.dataset_id):
            if old_name in model.metrics and label_class.id in model.params.get("classes", []):
                model.metrics = _renamed(model.metrics, old_name, label_class.name)
                model.save(update_fields=["metrics"])


def register():
    label_class_renamed.connect(_on_class_renamed, sender=LabelClass, dispatch_uid="training.class_renamed")
