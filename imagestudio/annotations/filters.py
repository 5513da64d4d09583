"""Sample filter term on ground truth: `gt=<class>:<PRESENT|ABSENT|ABSTAIN|LABELED>` (ABSTAIN: no label,
LABELED: any label), counted exactly from the per-(class, split) counters when it is the only condition."""

from __future__ import annotations

from django.db.models import Exists, OuterRef

from imagestudio.datasets.filters import FilterError, FilterTerm, filter_term_register

from .models import LABEL_VALUES, Annotation, GroundTruthCount, GroundTruthValue

GT_ANY = "LABELED"
GT_WORDS = (*GroundTruthValue.values, GT_ANY)


def _resolve(dataset, condition, classes):
    name, _, word = condition.rpartition(":")
    word = word.upper()
    if not name or word not in GT_WORDS:
        raise FilterError(f"{condition!r} must read <class>:<{'|'.join(GT_WORDS)}>.")
    return classes(name), word


def _apply(queryset, value):
    class_id, word = value
    annotations = Annotation.objects.filter(sample_id=OuterRef("pk"), label_class_id=class_id)
    if word in (GroundTruthValue.PRESENT, GroundTruthValue.ABSENT):
        return queryset.filter(Exists(annotations.filter(value=word)))
    if word == GroundTruthValue.ABSTAIN:
        return queryset.filter(~Exists(annotations.filter(value__in=LABEL_VALUES)))
    return queryset.filter(Exists(annotations.filter(value__in=LABEL_VALUES)))


def _count(dataset, value, splits):
    class_id, word = value
    rows = GroundTruthCount.objects.filter(label_class_id=class_id, split__in=splits)
    present = sum(r.present for r in rows)
    absent = sum(r.absent for r in rows)
    total = sum(dataset.split_counts.get(split, 0) for split in splits)
    return {GroundTruthValue.PRESENT: present, GroundTruthValue.ABSENT: absent, GT_ANY: present + absent,
            GroundTruthValue.ABSTAIN: total - present - absent}[word]


def _members(value):
    """The class's annotation rows meeting the condition: the class belongs to the dataset, so do their samples."""
    class_id, word = value
    if word == GroundTruthValue.ABSTAIN:
        return None  # samples without a row
    values = LABEL_VALUES if word == GT_ANY else [word]
    return Annotation.objects.filter(label_class_id=class_id, value__in=values)


def register() -> None:
    filter_term_register(FilterTerm(key="gt", resolve=_resolve, apply=_apply, count=_count, members=_members))
