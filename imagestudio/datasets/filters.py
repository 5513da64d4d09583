"""The samples filter language, shared by the samples list and every bulk action ("split dev, tag blurry").

`filter_parse` resolves the raw conditions (names, ids and words, as the API received them) against a dataset
and raises ValidationFailed naming the parameter at fault: an unknown class or tag is an error, not an empty
page. `sample_filter` turns the resolved filter into a queryset.

Conditions on data of downstream domains (ground truth, LF votes and conflicts, model predictions) are
`FilterTerm`s those domains register when their app is ready, so this module never imports them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from imagestudio.common.errors import ValidationFailed
from imagestudio.common.ids import parse_id

from .models import Dataset, LabelClass, ResampleMember, Sample
from .names import class_name_key

MAX_FILTER_IDS = 10_000  # ids one filter or bulk action may name


@dataclass(frozen=True)
class FilterTerm:
    """A condition kind of a downstream domain, e.g. `lf_vote`: `<lf id>:<PRESENT|ABSENT|ABSTAIN>`."""

    key: str
    # (dataset, raw condition string, class lookup) -> resolved value; raises FilterError with the reason
    resolve: Callable[[Any, str, "ClassLookup"], Any]
    # (queryset, resolved value) -> narrowed queryset
    apply: Callable[[QuerySet, Any], QuerySet]
    # (dataset, resolved value, splits) -> the exact count of samples meeting this condition alone, from
    # maintained counters; None when the term has none
    count: Callable[[Any, Any, list[str]], int] | None = None
    # resolved value -> rows of the domain's own table, one per sample meeting this condition (all of them samples
    # of the dataset), with a `sample_id` column; None when the condition has no such rows (e.g. "no label")
    members: Callable[[Any], QuerySet | None] | None = None


class FilterError(ValueError):
    """A condition that does not parse or names nothing of the dataset; the message says which."""


_terms: dict[str, FilterTerm] = {}


def filter_term_register(term: FilterTerm) -> None:
    _terms[term.key] = term


def filter_term(key: str) -> FilterTerm:
    return _terms[key]


@dataclass
class SampleFilter:
    split: str | None = None
    tag_ids: list[int] = field(default_factory=list)  # every tag must be on the sample
    search: str | None = None
    in_sample: bool = False
    ids: list[int] | None = None
    # (term key, resolved value) of the registered terms, all must hold.
    terms: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def plain(self) -> bool:
        """No condition but the split and the registered terms: counts may come from maintained counters."""
        return not (self.tag_ids or self.search or self.in_sample or self.ids is not None)


class ClassLookup:
    """A dataset's classes by reference, read once: by name as stored, else by names.class_name_key, else by an id
    in ASCII digits (common.ids.parse_id). A name's key is never looked up among the ids, so `¹`, `１` or ` 1`
    (whose key is `1`) name no class rather than the class whose id is 1."""

    def __init__(self, dataset: Dataset) -> None:
        classes = list(dataset.classes.all())
        self._by_name = {label_class.name: label_class for label_class in classes}
        self._by_key = {label_class.name_key: label_class for label_class in classes}
        self._by_id = {label_class.id: label_class for label_class in classes}

    def find(self, ref: str) -> LabelClass | None:
        found = self._by_name.get(ref) or self._by_key.get(class_name_key(ref))
        return found if found is not None else self._by_id.get(parse_id(ref))

    def __call__(self, ref: str) -> int:
        found = self.find(ref)
        if found is None:
            raise FilterError(f"The dataset has no class {ref!r}.")
        return found.id


def _tag_ids(dataset, refs):
    if not refs:
        return []
    tags = {}
    for tag in dataset.tags.all():
        tags[str(tag.id)] = tags[tag.name] = tag.id
    missing = [ref for ref in refs if ref not in tags]
    if missing:
        raise ValidationFailed(f"The dataset has no tag {missing[0]!r}.", field="tag")
    return [tags[ref] for ref in refs]


def _resolve_each(key, conditions, resolve):
    resolved = []
    for condition in conditions:
        try:
            resolved.append(resolve(condition))
        except FilterError as exc:
            raise ValidationFailed(str(exc), field=key) from None
    return resolved


def filter_parse(*, dataset: Dataset, values: dict) -> SampleFilter:
    """Resolve raw conditions: `split`, `tag` (names or ids), `search`, `in_sample`, `ids` and the registered
    terms' keys (each a list of condition strings)."""
    classes = ClassLookup(dataset)
    terms = []
    for key, term in _terms.items():
        conditions = values.get(key) or []
        terms += [(key, value) for value in _resolve_each(key, conditions,
                                                          lambda c, term=term: term.resolve(dataset, c, classes))]
    return SampleFilter(
        split=values.get("split"), tag_ids=_tag_ids(dataset, values.get("tag") or []), search=values.get("search"),
        in_sample=bool(values.get("in_sample")), ids=values.get("ids"), terms=terms,
    )


def filter_members(*, spec: SampleFilter) -> QuerySet | None:
    """When the filter is a single condition kept in a table of its own (one tag, or a term with `members`), that
    table's rows for it, one per matching sample (`sample_id`), every one a sample of the dataset; else None.

    Read alone, in its own index, such a table answers the page (in sample id order) and the count without the
    samples table: joined to it, the planner takes the condition's rows for a spread over every dataset's samples,
    underestimates the matches of a small dataset beside a large one by their ratio, and for deep offsets and
    counts hashes every sample of the dataset instead of merging two indexes."""
    if spec.split or spec.search or spec.in_sample or spec.ids is not None or len(spec.tag_ids) + len(spec.terms) != 1:
        return None
    if spec.tag_ids:
        return Sample.tags.through.objects.filter(tag_id=spec.tag_ids[0])
    key, value = spec.terms[0]
    members = _terms[key].members
    return members(value) if members else None


def sample_filter(*, dataset: Dataset, spec: SampleFilter) -> QuerySet:
    queryset = Sample.objects.filter(dataset=dataset)
    if spec.split:
        queryset = queryset.filter(split=spec.split)
    if spec.ids is not None:
        queryset = queryset.filter(id__in=spec.ids)
    for tag_id in spec.tag_ids:
        queryset = queryset.filter(Exists(Sample.tags.through.objects.filter(sample_id=OuterRef("pk"), tag_id=tag_id)))
    if spec.search:
        queryset = queryset.filter(search_text__contains=spec.search.lower())
    for key, value in spec.terms:
        queryset = _terms[key].apply(queryset, value)
    if spec.in_sample:
        members = ResampleMember.objects.filter(sample_id=OuterRef("pk"), resample__dataset=dataset)
        if spec.split:
            members = members.filter(resample__split=spec.split)
        queryset = queryset.filter(Exists(members))
    return queryset


def samples_select(*, dataset: Dataset, sample_ids: list[int] | None = None, filter_values: dict | None = None) -> QuerySet:
    """The samples a bulk action touches: explicit ids (all of this dataset, or a ValidationFailed naming the
    strangers), or a filter."""
    if filter_values is not None:
        return sample_filter(dataset=dataset, spec=filter_parse(dataset=dataset, values=filter_values))
    wanted = set(sample_ids or [])
    samples = Sample.objects.filter(dataset=dataset, id__in=wanted)
    missing = wanted - set(samples.values_list("id", flat=True))
    if missing:
        raise ValidationFailed(f"Not samples of this dataset: {sorted(missing)[:10]}.", field="sample_ids")
    return samples
