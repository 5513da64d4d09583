"""A filter of one tag or one ground-truth condition pages and counts from that condition's own table
(filters.filter_members): the same pages, by offset and by key both ways, and the same capped count as the
samples table gives, with another dataset's tagged and labeled samples beside them."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagestudio.annotations.models import Annotation
from imagestudio.datasets import selectors
from imagestudio.datasets.filters import SampleFilter, filter_members, sample_filter
from imagestudio.datasets.models import Sample, Tag
from imagestudio.datasets.selectors import sample_count, sample_page
from imagestudio.datasets.services import dataset_create
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

SAMPLES = 9
LABELS = [None, "ABSTAIN", "PRESENT", "ABSENT"]  # None: no row


@pytest.fixture
def world(owner, dataset):
    """The dataset's samples and tag, and another dataset whose samples all carry its own tag and label."""
    samples = make_samples(dataset, [{"split": "dev" if i % 3 else "train"} for i in range(SAMPLES)])
    other = dataset_create(user=owner, name="Other", classes=["cat"])
    strangers = make_samples(other, [{"gt": {"cat": "PRESENT"}, "tags": ["blurry"]} for _ in range(3)])
    assert all(s.tags.exists() for s in strangers)
    return samples, Tag.objects.create(dataset=dataset, name="blurry"), dataset.classes.get(name="cat")


def _expected(dataset, spec, ordering):
    ids = sample_filter(dataset=dataset, spec=spec).order_by().values_list("id", flat=True)
    return sorted(ids, reverse=ordering == "-id")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tagged=st.lists(st.booleans(), min_size=SAMPLES, max_size=SAMPLES),
       labels=st.lists(st.sampled_from(LABELS), min_size=SAMPLES, max_size=SAMPLES),
       condition=st.sampled_from(["tag", "gt:PRESENT", "gt:ABSENT", "gt:LABELED"]),
       ordering=st.sampled_from(["id", "-id"]), limit=st.integers(1, 4), offset=st.integers(0, 3),
       cap=st.integers(1, SAMPLES + 1))
def test_pages_and_count_from_the_condition_table_equal_the_samples_table(dataset, world, monkeypatch, tagged,
                                                                          labels, condition, ordering, limit,
                                                                          offset, cap):
    samples, tag, cat = world
    tag.samples.set([s for s, on in zip(samples, tagged, strict=True) if on])
    Annotation.objects.filter(label_class=cat).delete()
    Annotation.objects.bulk_create(Annotation(sample=s, label_class=cat, value=label)
                                   for s, label in zip(samples, labels, strict=True) if label)
    spec = (SampleFilter(tag_ids=[tag.id]) if condition == "tag"
            else SampleFilter(terms=[("gt", (cat.id, condition.split(":")[1]))]))
    assert filter_members(spec=spec) is not None
    expected = _expected(dataset, spec, ordering)

    def ids(**cursor):
        page = sample_page(dataset=dataset, spec=spec, ordering=ordering, limit=limit, **cursor)
        return [s.id for s in page.samples], page

    page_ids, page = ids(offset=offset)
    assert page_ids == expected[offset:offset + limit]
    assert page.has_more == (len(expected) > offset + limit)
    if len(expected) > 1:
        assert ids(after=expected[0])[0] == expected[1:1 + limit]
        assert ids(before=expected[-1])[0] == expected[-1 - limit:-1][-limit:]
    monkeypatch.setattr(selectors, "COUNT_CAP", cap)
    if condition == "tag":  # ground truth alone counts from its counters
        assert sample_count(dataset=dataset, spec=spec) == (min(len(expected), cap), len(expected) <= cap)


def test_only_a_single_condition_with_rows_of_its_own_reads_its_table(world):
    _, tag, cat = world
    assert filter_members(spec=SampleFilter(terms=[("gt", (cat.id, "ABSTAIN"))])) is None  # no row means ABSTAIN
    for spec in (SampleFilter(tag_ids=[tag.id], split="dev"), SampleFilter(tag_ids=[tag.id, tag.id]),
                 SampleFilter(tag_ids=[tag.id], search="x"), SampleFilter(tag_ids=[tag.id], ids=[1]),
                 SampleFilter(tag_ids=[tag.id], terms=[("gt", (cat.id, "PRESENT"))])):
        assert filter_members(spec=spec) is None
    assert Sample.objects.count() == SAMPLES + 3
