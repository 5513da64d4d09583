"""Reads: datasets visible to a user, roles, and the sample filter language shared by lists and bulk actions."""

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Prefetch

from imagestudio.annotations.models import LABEL_VALUES, Annotation, GroundTruthValue

from .models import Dataset, DatasetMembership, ResampleMember, Role, Sample

SAMPLE_ORDERINGS = ("id", "external_id", "created_at", "width", "height", "bytes", "split")
GT_ANY = "LABELED"  # filter word: the class has ground truth (PRESENT or ABSENT)


def datasets_for_user(*, user):
    if user.is_superuser:
        return Dataset.objects.all()
    return Dataset.objects.filter(memberships__user=user)


def dataset_role(*, user, dataset):
    """The user's role on the dataset, or None for a stranger. Superusers act as owners."""
    if user.is_superuser:
        return Role.OWNER
    return DatasetMembership.objects.filter(dataset=dataset, user=user).values_list("role", flat=True).first()


def label_class_by_ref(*, dataset, ref):
    """A class of the dataset by name or id, or None."""
    classes = dataset.classes.all()
    by_name = next((c for c in classes if c.name == ref), None)
    if by_name is not None or not str(ref).isdigit():
        return by_name
    return next((c for c in classes if c.id == int(ref)), None)


@dataclass
class SampleFilter:
    """The filter language of the samples list, also used by bulk actions ("split dev, tag blurry")."""

    split: str | None = None
    tag_ids: list = field(default_factory=list)  # every tag must be on the sample
    search: str | None = None
    # (class_id, word) pairs, all must hold; word: PRESENT, ABSENT, ABSTAIN (no label) or LABELED.
    ground_truth: list = field(default_factory=list)
    in_sample: bool = False
    ids: list | None = None


def sample_filter(*, dataset, spec: SampleFilter):
    queryset = Sample.objects.filter(dataset=dataset)
    if spec.split:
        queryset = queryset.filter(split=spec.split)
    if spec.ids is not None:
        queryset = queryset.filter(id__in=spec.ids)
    for tag_id in spec.tag_ids:
        queryset = queryset.filter(
            Exists(Sample.tags.through.objects.filter(sample_id=OuterRef("pk"), tag_id=tag_id))
        )
    if spec.search:
        queryset = queryset.filter(search_text__contains=spec.search.lower())
    for class_id, word in spec.ground_truth:
        annotations = Annotation.objects.filter(sample_id=OuterRef("pk"), label_class_id=class_id)
        if word in (GroundTruthValue.PRESENT, GroundTruthValue.ABSENT):
            queryset = queryset.filter(Exists(annotations.filter(value=word)))
        elif word == GroundTruthValue.ABSTAIN:
            queryset = queryset.filter(~Exists(annotations.filter(value__in=LABEL_VALUES)))
        else:
            queryset = queryset.filter(Exists(annotations.filter(value__in=LABEL_VALUES)))
    if spec.in_sample:
        members = ResampleMember.objects.filter(sample_id=OuterRef("pk"), resample__dataset=dataset)
        if spec.split:
            members = members.filter(resample__split=spec.split)
        queryset = queryset.filter(Exists(members))
    return queryset


def sample_list(*, dataset, spec: SampleFilter, ordering="id"):
    """Filtered, ordered samples with what a grid or data view shows (ground truth and tags prefetched)."""
    key = ordering.lstrip("-")
    order = [ordering] if key == "id" else [ordering, "-id" if ordering.startswith("-") else "id"]
    return sample_filter(dataset=dataset, spec=spec).order_by(*order).prefetch_related(
        Prefetch("annotations", queryset=Annotation.objects.filter(value__in=LABEL_VALUES)
                 .select_related("label_class").order_by("label_class_id")),
        "tags",
    )


def sample_detail(*, dataset, sample_id):
    return (
        Sample.objects.filter(dataset=dataset, pk=sample_id)
        .prefetch_related(
            Prefetch("annotations",
                     queryset=Annotation.objects.select_related("label_class", "updated_by").order_by("label_class_id")),
            "tags",
            "comments__author",
        )
        .first()
    )
