"""Reads: datasets visible to a user, roles, sample pages and details, and sample fields as columns."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from django.db import connection
from django.db.models import Count, F, Prefetch, Q, QuerySet, Value
from django.db.models.functions import StrIndex

from imagestudio.common.cache import VersionedLRU
from imagestudio.common.errors import ValidationFailed

from .field_stats import BUILTIN_FIELDS, EXAMPLES, KINDS, catalogue_row, field_catalogue_of
from .filters import ClassLookup, SampleFilter, filter_members, filter_term, sample_filter
from .metadata_sql import MetadataHasField, MetadataText
from .models import SPLIT_CODES, Comment, Dataset, DatasetMembership, LabelClass, Resample, Role, Sample, Tag

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SAMPLE_ORDERINGS = ("id", "external_id", "created_at", "width", "height", "bytes", "split")


def datasets_for_user(*, user: User) -> QuerySet:
    if user.is_superuser:
        return Dataset.objects.all()
    return Dataset.objects.filter(memberships__user=user)


def dataset_list(*, user: User) -> QuerySet:
    """The datasets a user may see, with their classes and counts, ordered."""
    classes = LabelClass.objects.select_related("dataset").prefetch_related("counts").order_by("id")
    return datasets_for_user(user=user).prefetch_related(Prefetch("classes", queryset=classes)).order_by("id")


def dataset_get_visible(*, user: User, dataset_id: int | None) -> Dataset | None:
    """The dataset if the user may see it; None alike for a missing one and another team's (no oracle)."""
    if dataset_id is None:
        return None
    return datasets_for_user(user=user).filter(pk=dataset_id).first()


def dataset_roles(*, user: User) -> dict[int, str]:
    """Dataset id -> the user's role, for every dataset the user is a member of."""
    return dict(DatasetMembership.objects.filter(user=user).values_list("dataset_id", "role"))


def label_class_list(*, dataset: Dataset) -> QuerySet:
    return LabelClass.objects.filter(dataset=dataset).select_related("dataset").prefetch_related("counts").order_by("id")


def membership_list(*, dataset: Dataset) -> QuerySet:
    return DatasetMembership.objects.filter(dataset=dataset).select_related("user").order_by("id")


def tag_list(*, dataset: Dataset | int) -> QuerySet:
    return Tag.objects.filter(dataset=dataset).annotate(sample_count=Count("samples")).order_by("id")


def tag_counted(*, tag: Tag) -> Tag:
    """The tag with its `sample_count`, as the list shows it."""
    return tag_list(dataset=tag.dataset_id).get(pk=tag.pk)


def comment_list(*, dataset: Dataset, sample: Sample) -> QuerySet:
    return Comment.objects.filter(sample=sample, sample__dataset=dataset).select_related("author").order_by("id")


def resample_get(*, dataset: Dataset, split: str) -> Resample | None:
    return Resample.objects.filter(dataset=dataset, split=split).first()


def dataset_role(*, user: User, dataset: Dataset) -> str | None:
    """The user's role on the dataset, or None for a stranger. Superusers act as owners."""
    if user.is_superuser:
        return Role.OWNER
    return DatasetMembership.objects.filter(dataset=dataset, user=user).values_list("role", flat=True).first()


def label_class_by_ref(*, dataset: Dataset, ref: str | int) -> LabelClass | None:
    """A class of the dataset by name (as stored, or as names.class_name_key compares them) or id, or None:
    the filters' ClassLookup, so a reference means one class everywhere."""
    return ClassLookup(dataset).find(str(ref))


COUNT_CAP = 10_000  # filtered lists count exactly up to here; beyond it the count is a lower bound
# Rows an offset may skip: its cost grows with the depth (the skipped rows are read), so deeper pages go by key
# (`after` / `before`), whose cost does not. As large as COUNT_CAP, so every page a capped count announces is
# reachable by offset.
MAX_OFFSET = 10_000
# A search counts less: each match counted is a row read (the trigram index only proposes candidates), and a
# common word matches all over a large dataset; 1,000 keeps the count of a 2,000,000-sample dataset in a few ms.
SEARCH_COUNT_CAP = 1_000
SEARCH_WINDOW = 20_000  # rows tested in order before a search turns to the trigram index (_searched_ids)
# Columns a grid or data view never shows: left in the database.
_LIST_DEFERRED = ("search_text", "sha256", "original", "thumbnail", "import_job")


@dataclass
class SamplePage:
    samples: list
    count: int
    count_exact: bool
    has_more: bool  # rows after the page
    has_previous: bool | None = None  # rows before it; None when unknown (a page by offset)


def _order(ordering, spec):
    """The ORDER BY; for id orderings, led by the columns of the (dataset, split, id) index so deep pages
    walk the index instead of the primary key."""
    key, descending = ordering.lstrip("-"), ordering.startswith("-")
    if key == "id":
        lead = ["dataset_id", "split"] if spec.split else ["dataset_id"]
        return [f"-{c}" if descending else c for c in [*lead, "id"]]
    return [ordering, "-id" if descending else "id"]


def _reversed(ordering):
    return ordering[1:] if ordering.startswith("-") else f"-{ordering}"


def _beyond(dataset, ordering, cursor, field):
    """The rows after sample `cursor` in `ordering` (ties broken by id, as _order does): for an id ordering the
    cursor need not exist; for another it is read for its value."""
    key, descending = ordering.lstrip("-"), ordering.startswith("-")
    after = "lt" if descending else "gt"
    if key == "id":
        return Q(**{f"id__{after}": cursor})
    value = Sample.objects.filter(dataset=dataset, pk=cursor).values_list(key, flat=True).first()
    if value is None:
        raise ValidationFailed(f"The dataset has no sample {cursor}: start again from the first page.", field=field)
    return Q(**{f"{key}__{after}": value}) | Q(**{key: value, f"id__{after}": cursor})


def sample_count(*, dataset: Dataset, spec: SampleFilter) -> tuple[int, bool]:
    """(count, exact). Served from maintained counters when the filter allows, else counted up to COUNT_CAP
    (SEARCH_COUNT_CAP with a search)."""
    splits = [spec.split] if spec.split else list(dataset.split_counts)
    if spec.plain and not spec.terms:
        return sum(dataset.split_counts.get(split, 0) for split in splits), True
    if spec.plain and len(spec.terms) == 1:
        key, value = spec.terms[0]
        term = filter_term(key)
        if term.count is not None:
            return term.count(dataset, value, splits), True
    cap = SEARCH_COUNT_CAP if spec.search else COUNT_CAP
    members = filter_members(spec=spec)
    if members is not None:
        counted = members.order_by().values("sample_id")[:cap + 1].count()
        return min(counted, cap), counted <= cap
    # Unordered: an ORDER BY id would let the plan walk the primary key through other datasets' rows.
    counted = sample_filter(dataset=dataset, spec=spec).order_by().values("id")[:cap + 1].count()
    return min(counted, cap), counted <= cap


def _searched_ids(dataset, spec, cursor, order, start, stop):
    """Ids [start:stop] of a search in an id ordering on Postgres, in two bounded steps whose plans cannot flip.

    Dense: the next SEARCH_WINDOW rows of the filter without the search, from the (dataset[, split], id) index,
    each tested with strpos (which no index serves, so the planner walks the window); common words fill the page
    here. Sparse: past the window, the trigram index finds the rare rest, sorted by `id + 0` so that no plan walks
    the primary key through other datasets' rows. The matches of a rare word are few, so sorting them is cheap."""
    unsearched = sample_filter(dataset=dataset, spec=replace(spec, search=None)).filter(cursor).order_by(*order)
    term = spec.search.lower()
    descending = order[-1].startswith("-")
    ids = unsearched.values_list("id", flat=True)
    first, edge = list(ids[:1]), list(ids[SEARCH_WINDOW - 1:SEARCH_WINDOW])
    # Both ends of the window as an id range: with only one, a range scan of the primary key can run through
    # other datasets' rows.
    window = unsearched.filter(id__range=sorted([first[0], edge[0]])) if edge else unsearched
    hits = window.alias(at=StrIndex("search_text", Value(term))).filter(at__gt=0)
    ids = list(hits.values_list("id", flat=True)[:stop])
    if len(ids) < stop and edge:
        rest = unsearched.filter(**{"id__lt" if descending else "id__gt": edge[0]}, search_text__contains=term)
        key = F("id") + 0
        ids += rest.order_by(key.desc() if descending else key.asc()).values_list("id", flat=True)[:stop - len(ids)]
    return ids[start:stop]


def _member_ids(members, ordering, cursor, start, stop):
    """Ids [start:stop] in an id ordering (after sample `cursor` when given) from the filter's own table
    (filter_members), whose (condition, sample_id) index holds them in order."""
    descending = ordering.startswith("-")
    if cursor is not None:
        members = members.filter(**{"sample_id__lt" if descending else "sample_id__gt": cursor})
    rows = members.order_by("-sample_id" if descending else "sample_id").values_list("sample_id", flat=True)
    return list(rows[start:stop])


def sample_page(*, dataset: Dataset, spec: SampleFilter, ordering: str = "id", limit: int = 50, offset: int = 0,
                after: int | None = None, before: int | None = None,
                prefetch: Iterable[Prefetch | str] = ()) -> SamplePage:
    """One page of the grid / data view: ids from the index first, then only those rows, with their tags and
    what `prefetch` adds (a downstream domain's relations, e.g. ground truth).

    By key, at any depth in the time of the first page: `after` (a sample id) gives the rows after that sample in
    `ordering`, `before` the `limit` rows before it; `offset` is then ignored. By offset: at most MAX_OFFSET rows
    skipped (the caller refuses more)."""
    backwards = before is not None
    walk = _reversed(ordering) if backwards else ordering
    cursor, anchor = Q(), before if backwards else after
    if anchor is not None:
        cursor, offset = _beyond(dataset, walk, anchor, "before" if backwards else "after"), 0
    order = _order(walk, spec)
    members = filter_members(spec=spec) if walk.lstrip("-") == "id" else None
    if members is not None:
        ids = _member_ids(members, walk, anchor, offset, offset + limit + 1)
    elif spec.search and walk.lstrip("-") == "id" and connection.vendor == "postgresql":
        ids = _searched_ids(dataset, spec, cursor, order, offset, offset + limit + 1)
    else:
        queryset = sample_filter(dataset=dataset, spec=spec).filter(cursor).order_by(*order)
        ids = list(queryset.values_list("id", flat=True)[offset:offset + limit + 1])
    has_previous = None
    if backwards:
        has_previous, ids = len(ids) > limit, ids[:limit][::-1]
        has_more = bool(ids) and sample_filter(dataset=dataset, spec=spec).filter(
            _beyond(dataset, ordering, ids[-1], "before")).exists()
    else:
        has_more, ids = len(ids) > limit, ids[:limit]
        if after is not None:  # rows before the page: the anchor's at least, unless it left the filter
            has_previous = bool(ids) and sample_filter(dataset=dataset, spec=spec).filter(
                _beyond(dataset, _reversed(ordering), ids[0], "after")).exists()
    rows = Sample.objects.filter(id__in=ids).defer(*_LIST_DEFERRED).prefetch_related("tags", *prefetch).in_bulk()
    count, exact = sample_count(dataset=dataset, spec=spec)
    return SamplePage(samples=[rows[i] for i in ids], count=count, count_exact=exact, has_more=has_more,
                      has_previous=has_previous)


def sample_get(*, dataset: Dataset, sample_id: int | None, prefetch: Iterable[Prefetch | str] = ()) -> Sample | None:
    """One sample of the dataset with what `prefetch` names (e.g. tags, comments, a downstream domain's relations)."""
    if sample_id is None:
        return None
    return Sample.objects.filter(dataset=dataset, pk=sample_id).prefetch_related(*prefetch).first()


@dataclass(frozen=True)
class SampleFiles:
    """What serving a sample's files reads: their storage keys, the content hash (the ETag) and the image format."""

    original: str
    thumbnail: str
    sha256: str
    format: str


_SAMPLE_FILES_SQL = (f"SELECT original, thumbnail, sha256, format FROM {Sample._meta.db_table} "  # noqa: S608 (constants)
                     "WHERE id = %s AND dataset_id = %s")


def sample_files_signed(*, dataset_id: int, sample_id: int) -> SampleFiles | None:
    """A sample's files by its dataset's id and its own, visible to nobody in particular: for a signed image URL,
    whose signature (checked by the caller) is the permission. One read by primary key, in SQL: a grid of thumbnails
    asks it 100 times, and building the ORM query cost more than running it."""
    with connection.cursor() as cursor:
        cursor.execute(_SAMPLE_FILES_SQL, [sample_id, dataset_id])
        row = cursor.fetchone()
    return SampleFiles(*row) if row else None


# One field of a dataset as arrays, valid until the dataset's samples change.
_columns = VersionedLRU("sample columns", max_entries=16)


def _read_column(dataset, field, sample_ids=None):
    # Metadata values come back as text (->>): decoding 500,000 JSON values costs more than the query.
    source = F(field) if field in BUILTIN_FIELDS else MetadataText(field)
    samples = Sample.objects.filter(dataset=dataset)
    if sample_ids is not None:
        samples = samples.filter(id__in=sample_ids)
    rows = samples.order_by("id").values_list("id", "split", source)
    ids, splits, values = [], [], []
    for sample_id, split, value in rows.iterator(chunk_size=20_000):
        ids.append(sample_id)
        splits.append(SPLIT_CODES[split])
        values.append(value)
    return np.array(ids, dtype=np.int64), np.array(splits, dtype=np.int8), np.array(values, dtype=object)


def metadata_field_exists(*, dataset: Dataset, field: str) -> bool:
    """A built-in sample column, or a metadata field some sample of the dataset has."""
    return field in BUILTIN_FIELDS or Sample.objects.filter(MetadataHasField(field), dataset=dataset).exists()


def samples_version(*, dataset: Dataset) -> int | None:
    """Bumped by every write of the dataset's samples (rows, splits, metadata) as it commits."""
    return Dataset.objects.filter(pk=dataset.pk).values_list("samples_version", flat=True).first()


def labels_version(*, dataset: Dataset) -> int | None:
    """Bumped by every committed change of the dataset's ground truth, in commit order (Dataset.labels_version)."""
    return Dataset.objects.filter(pk=dataset.pk).values_list("labels_version", flat=True).first()


def field_column(*, dataset: Dataset, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, split codes, values) of one field over the dataset's samples, ascending by id."""
    return _columns.get((dataset.pk, field), samples_version(dataset=dataset), lambda: _read_column(dataset, field))


def split_column(*, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(ids, split codes) of the dataset's samples now, ascending by id."""
    def read():
        rows = Sample.objects.filter(dataset=dataset).order_by("id").values_list("id", "split")
        ids, splits = list(zip(*rows.iterator(chunk_size=20_000), strict=True)) or [(), ()]
        return np.array(ids, dtype=np.int64), np.array([SPLIT_CODES[split] for split in splits], dtype=np.int8)

    return _columns.get((dataset.pk,), samples_version(dataset=dataset), read)  # no (dataset, field) key is a 1-tuple


# A dataset's (or split's) metadata field catalogue, valid until its samples change (samples_version grows with
# every import, metadata edit and split move).
_catalogues = VersionedLRU("field catalogues", max_entries=32)
_KIND_SUMS = ", ".join(f"sum(n) FILTER (WHERE kind = '{kind}')" for kind in KINDS)
# Every (field, value) pair with its count and first sample, then per field the sums by JSON kind, the distinct
# non-null values and the most frequent ones (ties to the first seen): field_stats's rules, in one scan.
_CATALOGUE_SQL = f"""
WITH pairs AS (
    SELECT kv.key, kv.value, count(*) AS n, min(s.id) AS first
    FROM {Sample._meta.db_table} s CROSS JOIN LATERAL jsonb_each(s.metadata) AS kv
    WHERE s.dataset_id = %s AND jsonb_typeof(s.metadata) = 'object' {{split}}
    GROUP BY kv.key, kv.value
), ranked AS (
    SELECT key, value, n, jsonb_typeof(value) AS kind,
           row_number() OVER (PARTITION BY key ORDER BY jsonb_typeof(value) = 'null', n DESC, first) AS rank
    FROM pairs
)
SELECT key, {_KIND_SUMS}, count(*) FILTER (WHERE kind <> 'null'),
       array_agg(value::text ORDER BY rank) FILTER (WHERE rank <= {EXAMPLES} AND kind <> 'null')
FROM ranked GROUP BY key
"""  # noqa: S608  (no user text: table name and constants)


def _catalogue_in_sql(dataset_id, split, samples):
    query, params = _CATALOGUE_SQL.format(split="AND s.split = %s" if split else ""), [dataset_id]
    with connection.cursor() as cursor:
        cursor.execute(query, params + ([split] if split else []))
        rows = cursor.fetchall()
    return [catalogue_row(key, {kind: int(n or 0) for kind, n in zip(KINDS, sums, strict=True)}, distinct,
                          [json.loads(text) for text in examples or []], samples)
            for key, *sums, distinct, examples in sorted(rows, key=lambda row: row[0])]


def _catalogue_in_python(dataset_id, split):
    samples = Sample.objects.filter(dataset_id=dataset_id, **({"split": split} if split else {})).order_by("id")
    return field_catalogue_of(metadata if isinstance(metadata, dict) else {}
                              for metadata in samples.values_list("metadata", flat=True).iterator(chunk_size=20_000))


def field_catalogue(*, dataset: Dataset, split: str | None = None) -> list[dict]:
    """The metadata fields of the dataset's samples (or a split's), by name: kinds, fill rate, distinct count and
    examples (field_stats). Computed in one SQL scan on Postgres, in Python elsewhere; cached per process until
    the samples change."""
    version, counts = Dataset.objects.filter(pk=dataset.pk).values_list("samples_version", "split_counts").get()
    samples = counts.get(split, 0) if split else sum(counts.values())
    if connection.vendor == "postgresql":
        return _catalogues.get((dataset.pk, split), version, lambda: _catalogue_in_sql(dataset.pk, split, samples))
    return _catalogues.get((dataset.pk, split), version, lambda: _catalogue_in_python(dataset.pk, split))


def field_values(*, dataset: Dataset, field: str, sample_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`field_column` restricted to some samples (those of the dataset that still exist), read afresh."""
    return _read_column(dataset, field, sorted(set(sample_ids)))


def sample_split_counts(*, dataset_id: int) -> dict[str, int]:
    """Samples per split, counted (what `Dataset.split_counts` keeps without counting)."""
    rows = Sample.objects.filter(dataset_id=dataset_id).order_by().values("split").annotate(n=Count("id"))
    return {row["split"]: row["n"] for row in rows}
