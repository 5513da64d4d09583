"""Per-process caches of what LF scoring reads over whole splits: one metadata field as a column, and the
ground truth of a class, each as arrays aligned to ascending sample ids. Reloaded when the data changed."""

import threading
from collections import OrderedDict

import numpy as np
from django.db.models import F, Max
from django.db.models.fields.json import KeyTextTransform

from imagestudio.annotations.models import LABEL_VALUES, Annotation, AnnotationEvent, GroundTruthValue
from imagestudio.common.arrays import locate
from imagestudio.common.errors import ValidationFailed
from imagestudio.datasets.models import Dataset, Sample
from imagestudio.embeddings.store import SPLIT_CODES

# Sample columns a pattern LF may read besides metadata fields.
BUILTIN_FIELDS = ("external_id", "file_name", "format", "width", "height", "bytes")
_MAX_COLUMNS = 16

_columns = OrderedDict()
_lock = threading.Lock()


def field_column(*, dataset, field):
    """(ids, split codes, values) of one field over the dataset's samples, ascending by id."""
    version = Dataset.objects.filter(pk=dataset.pk).values_list("samples_version", flat=True).first()
    key = (dataset.pk, field)
    with _lock:
        cached = _columns.get(key)
        if cached is not None and cached[0] == version:
            _columns.move_to_end(key)
            return cached[1]
    # Metadata values come back as text (->>): decoding 500,000 JSON values costs more than the query.
    source = F(field) if field in BUILTIN_FIELDS else KeyTextTransform(field, "metadata")
    rows = Sample.objects.filter(dataset=dataset).order_by("id").values_list("id", "split", source)
    ids, splits, values = [], [], []
    for sample_id, split, value in rows.iterator(chunk_size=20_000):
        ids.append(sample_id)
        splits.append(SPLIT_CODES[split])
        values.append(value)
    if field not in BUILTIN_FIELDS and ids and all(v is None for v in values):
        raise ValidationFailed(f"No sample of this dataset has a metadata field {field!r}.", field="field")
    column = (np.array(ids, dtype=np.int64), np.array(splits, dtype=np.int8), np.array(values, dtype=object))
    with _lock:
        _columns[key] = (version, column)
        while len(_columns) > _MAX_COLUMNS:
            _columns.popitem(last=False)
    return column


_truth = OrderedDict()


def ground_truth_for(*, dataset, label_class, sample_ids):
    """Ground truth of a class aligned to `sample_ids` (ascending): int8, 1 PRESENT, -1 ABSENT, 0 unlabeled."""
    marker = AnnotationEvent.objects.filter(dataset=dataset).aggregate(last=Max("id"))["last"]
    key = (label_class.pk,)
    with _lock:
        cached = _truth.get(key)
    if cached is None or cached[0] != marker:
        rows = Annotation.objects.filter(label_class=label_class, value__in=LABEL_VALUES).order_by("sample_id")
        pairs = list(rows.values_list("sample_id", "value"))
        labeled_ids = np.array([p[0] for p in pairs], dtype=np.int64)
        labels = np.array([1 if p[1] == GroundTruthValue.PRESENT else -1 for p in pairs], dtype=np.int8)
        cached = (marker, labeled_ids, labels)
        with _lock:
            _truth[key] = cached
            while len(_truth) > _MAX_COLUMNS * 4:
                _truth.popitem(last=False)
    _, labeled_ids, labels = cached
    truth = np.zeros(len(sample_ids), dtype=np.int8)
    where, hit = locate(sample_ids, labeled_ids)
    truth[where[hit]] = labels[hit]
    return truth


def clear_caches():
    """Forget every cached column and ground truth (tests roll databases back under the caches' feet)."""
    with _lock:
        _columns.clear()
        _truth.clear()
