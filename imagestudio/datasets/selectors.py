"""Reads: datasets visible to a user, roles, and the sample filter language shared by lists and bulk actions."""

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Prefetch

from imagestudio.annotations.models import LABEL_VALUES, Annotation, GroundTruthCount, GroundTruthValue
from imagestudio.labeling.models import LFVote
from imagestudio.training.models import Prediction, ScoredRange

from .models import Dataset, DatasetMembership, ResampleMember, Role, Sample

SAMPLE_ORDERINGS = ("id", "external_id", "created_at", "width", "height", "bytes", "split")
GT_ANY = "LABELED"  # filter word: the class has ground truth (PRESENT or ABSENT)
PREDICTION_BUCKETS = ("TP", "FP", "FN", "TN")  # a prediction against the ground truth


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
    # (lf_id, word) pairs: the LF voted PRESENT / ABSENT, or ABSTAIN (no vote).
    lf_votes: list = field(default_factory=list)
    # Class ids whose LFs disagree on the sample (one voted PRESENT, another ABSENT).
    lf_conflicts: list = field(default_factory=list)
    # (model_id, class_id, word): the model predicted PRESENT / ABSENT, or a confusion bucket TP FP FN TN.
    predictions: list = field(default_factory=list)


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
    for lf_id, word in spec.lf_votes:
        votes = LFVote.objects.filter(sample_id=OuterRef("pk"), lf_id=lf_id)
        if word == GroundTruthValue.ABSTAIN:
            queryset = queryset.filter(~Exists(votes))
        else:
            queryset = queryset.filter(Exists(votes.filter(vote=1 if word == GroundTruthValue.PRESENT else -1)))
    for class_id in spec.lf_conflicts:
        votes = LFVote.objects.filter(sample_id=OuterRef("pk"), lf__label_class_id=class_id, lf__active=True)
        queryset = queryset.filter(Exists(votes.filter(vote=1)), Exists(votes.filter(vote=-1)))
    for model_id, class_id, word in spec.predictions:
        present = Exists(Prediction.objects.filter(model_id=model_id, label_class_id=class_id, sample_id=OuterRef("pk")))
        if word in ("PRESENT", "TP", "FP"):
            queryset = queryset.filter(present)
        else:  # scored, and no PRESENT row
            scored = ScoredRange.objects.filter(model_id=model_id, low__lte=OuterRef("pk"), high__gte=OuterRef("pk"))
            queryset = queryset.filter(Exists(scored), ~present)
        if word in PREDICTION_BUCKETS:
            actual = GroundTruthValue.PRESENT if word in ("TP", "FN") else GroundTruthValue.ABSENT
            truth = Annotation.objects.filter(sample_id=OuterRef("pk"), label_class_id=class_id, value=actual)
            queryset = queryset.filter(Exists(truth))
    if spec.in_sample:
        members = ResampleMember.objects.filter(sample_id=OuterRef("pk"), resample__dataset=dataset)
        if spec.split:
            members = members.filter(resample__split=spec.split)
        queryset = queryset.filter(Exists(members))
    return queryset


COUNT_CAP = 10_000  # filtered lists count exactly up to here; beyond it the count is a lower bound
# Columns a grid or data view never shows: left in the database.
_LIST_DEFERRED = ("search_text", "sha256", "original", "thumbnail", "import_job")


@dataclass
class SamplePage:
    samples: list
    count: int
    count_exact: bool
    has_more: bool


def _order(ordering, spec):
    """The ORDER BY; for id orderings, led by the columns of the (dataset, split, id) index so deep pages
    walk the index instead of the primary key."""
    key, descending = ordering.lstrip("-"), ordering.startswith("-")
    if key == "id":
        lead = ["dataset_id", "split"] if spec.split else ["dataset_id"]
        return [f"-{c}" if descending else c for c in [*lead, "id"]]
    return [ordering, "-id" if descending else "id"]


def sample_count(*, dataset, spec: SampleFilter):
    """(count, exact). Served from the maintained counters when the filter allows, else counted up to COUNT_CAP."""
    plain = not (spec.tag_ids or spec.search or spec.in_sample or spec.ids is not None or spec.lf_votes
                 or spec.lf_conflicts or spec.predictions)
    splits = [spec.split] if spec.split else list(dataset.split_counts)
    if plain and not spec.ground_truth:
        return sum(dataset.split_counts.get(split, 0) for split in splits), True
    if plain and len(spec.ground_truth) == 1:
        class_id, word = spec.ground_truth[0]
        rows = GroundTruthCount.objects.filter(label_class_id=class_id, split__in=splits)
        present = sum(r.present for r in rows)
        absent = sum(r.absent for r in rows)
        total = sum(dataset.split_counts.get(split, 0) for split in splits)
        return {GroundTruthValue.PRESENT: present, GroundTruthValue.ABSENT: absent, GT_ANY: present + absent,
                GroundTruthValue.ABSTAIN: total - present - absent}[word], True
    counted = sample_filter(dataset=dataset, spec=spec).values("id")[:COUNT_CAP + 1].count()
    return min(counted, COUNT_CAP), counted <= COUNT_CAP


def sample_page(*, dataset, spec: SampleFilter, ordering="id", limit=50, offset=0, after=None):
    """One page of the grid / data view: ids from the index first, then only those rows, with their
    ground truth and tags. `after` (an id, for id orderings) pages by key, at any depth in constant time."""
    queryset = sample_filter(dataset=dataset, spec=spec).order_by(*_order(ordering, spec))
    if after is not None:
        queryset = queryset.filter(id__lt=after) if ordering.startswith("-") else queryset.filter(id__gt=after)
        offset = 0
    ids = list(queryset.values_list("id", flat=True)[offset:offset + limit + 1])
    has_more = len(ids) > limit
    ids = ids[:limit]
    rows = Sample.objects.filter(id__in=ids).defer(*_LIST_DEFERRED).prefetch_related(
        Prefetch("annotations", queryset=Annotation.objects.filter(value__in=LABEL_VALUES)
                 .select_related("label_class").order_by("label_class_id")),
        "tags",
    ).in_bulk()
    count, exact = sample_count(dataset=dataset, spec=spec)
    return SamplePage(samples=[rows[i] for i in ids], count=count, count_exact=exact, has_more=has_more)


def sample_detail(*, dataset, sample_id):
    return (
        Sample.objects.filter(dataset=dataset, pk=sample_id)
        .prefetch_related(
            Prefetch("annotations",
                     queryset=Annotation.objects.select_related("label_class", "updated_by").order_by("label_class_id")),
            "tags",
            "comments__author",
            Prefetch("lf_votes", queryset=LFVote.objects.select_related("lf__label_class").order_by("lf_id")),
        )
        .first()
    )
