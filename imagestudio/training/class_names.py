"""Training-set reports and model metrics are stored per class under the class's name (the API shows them so):
a renamed class takes its figures along, in the rename's transaction, and a deleted class's figures go with it.
A training set's snapshot names each LF's class too: it follows, and the content hash with it, so that a name,
which no label depends on, leaves the set current."""

from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete

from imagestudio.datasets.models import LabelClass
from imagestudio.datasets.signals import label_class_renamed

from .models import FastModel, TrainingSet
from .selectors import snapshot_hash


def _renamed(figures: dict, old_name: str, new_name: str) -> dict:
    return {new_name if key == old_name else key: value for key, value in figures.items()
            if key != new_name}  # under the new name before: a deleted class's figures (names are unique)


def _rehash(training_set):
    """Its content hash from its renamed snapshot; where another set holds that hash already (its twin built under
    the new name before this code renamed sets), it keeps the old one and reads as stale."""
    try:
        with transaction.atomic():
            TrainingSet.objects.filter(pk=training_set.pk).update(content_hash=snapshot_hash(training_set.snapshot))
    except IntegrityError:
        pass


def _on_class_renamed(sender, *, label_class, old_name, **kwargs):
    with transaction.atomic():
        for training_set in TrainingSet.objects.select_for_update().filter(dataset_id=label_class.dataset_id):
            entry = training_set.report.get(old_name)
            if isinstance(entry, dict) and entry.get("class_id") == label_class.id:
                training_set.report = _renamed(training_set.report, old_name, label_class.name)
            for lf in training_set.snapshot.get("lfs", []):
                if lf.get("class_id") == label_class.id:
                    lf["class"] = label_class.name
            training_set.save(update_fields=["report", "snapshot"])
            _rehash(training_set)
        for model in FastModel.objects.select_for_update().filter(dataset_id=label_class.dataset_id):
            if old_name in model.metrics and label_class.id in model.params.get("classes", []):
                model.metrics = _renamed(model.metrics, old_name, label_class.name)
                model.save(update_fields=["metrics"])


def _on_class_deleted(sender, *, instance, **kwargs):
    """Its figures go with it: kept under its name, they would read as those of the next class of that name."""
    # Only the rows holding its name: deleting a dataset deletes every class, and the rest of its rows with it.
    for training_set in TrainingSet.objects.select_for_update().filter(dataset_id=instance.dataset_id,
                                                                       report__has_key=instance.name):
        entry = training_set.report.get(instance.name)
        if isinstance(entry, dict) and entry.get("class_id") == instance.id:
            training_set.report = {name: figures for name, figures in training_set.report.items() if name != instance.name}
            training_set.save(update_fields=["report"])
    for model in FastModel.objects.select_for_update().filter(dataset_id=instance.dataset_id,
                                                              metrics__has_key=instance.name):
        if instance.id in model.params.get("classes", []):
            model.metrics = {name: figures for name, figures in model.metrics.items() if name != instance.name}
            model.save(update_fields=["metrics"])


def by_current_name(by_class_id: dict) -> dict:
    """Figures per class id keyed by each class's name now (the API's keys); a class deleted meanwhile drops out.
    Read under the row lock of the set or model they are stored in, which a rename's receiver waits for."""
    names = dict(LabelClass.objects.filter(id__in=list(by_class_id)).values_list("id", "name"))
    return {names[class_id]: figures for class_id, figures in by_class_id.items() if class_id in names}


def register():
    label_class_renamed.connect(_on_class_renamed, sender=LabelClass, dispatch_uid="training.class_renamed")
    # In the delete's transaction (label_class_delete): the class and its figures go together.
    post_delete.connect(_on_class_deleted, sender=LabelClass, dispatch_uid="training.class_deleted")
