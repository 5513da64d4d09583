"""sample_page called directly: keyset pages (`after` / `before`) in every ordering give the pages an offset
gives, ties included, and a cursor whose value is gone is refused."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagestudio.common.errors import ValidationFailed
from imagestudio.datasets.filters import SampleFilter
from imagestudio.datasets.models import Sample
from imagestudio.datasets.selectors import SAMPLE_ORDERINGS, sample_page
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

SAMPLES = 9
ORDERINGS = [*SAMPLE_ORDERINGS, *(f"-{o}" for o in SAMPLE_ORDERINGS)]


@pytest.fixture
def blank(dataset):
    return make_samples(dataset, [{"split": "dev" if i % 3 else "train"} for i in range(SAMPLES)])


def page_ids(dataset, spec, ordering, limit, **cursor):
    page = sample_page(dataset=dataset, spec=spec, ordering=ordering, limit=limit, **cursor)
    return [s.id for s in page.samples], page


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widths=st.lists(st.integers(1, 3), min_size=SAMPLES, max_size=SAMPLES), ordering=st.sampled_from(ORDERINGS),
       limit=st.integers(1, 4), split=st.sampled_from([None, "dev"]))
def test_keyset_pages_equal_offset_pages_both_ways(dataset, blank, widths, ordering, limit, split):
    for sample, width in zip(blank, widths, strict=True):  # few distinct values: ties everywhere
        Sample.objects.filter(pk=sample.pk).update(width=width, bytes=width * 10)
    spec = SampleFilter(split=split)
    everything, _ = page_ids(dataset, spec, ordering, SAMPLES)
    pages, after = [], None
    while True:  # forward by `after`, as the next links go
        ids, page = page_ids(dataset, spec, ordering, limit, **({"after": after} if after else {}))
        assert ids == page_ids(dataset, spec, ordering, limit, offset=len(pages) * limit)[0]
        pages.append(ids)
        if not page.has_more:
            break
        after = ids[-1]
    assert [i for ids in pages for i in ids] == everything
    for number in range(len(pages) - 1, 0, -1):  # backward by `before`, from each page's first sample
        ids, page = page_ids(dataset, spec, ordering, limit, before=pages[number][0])
        assert ids == pages[number - 1] and page.has_more
        assert page.has_previous == (number > 1)


def test_a_cursor_gone_is_refused_under_a_value_ordering_but_not_by_id(dataset, blank):
    gone = blank[4].id
    Sample.objects.filter(pk=gone).delete()
    spec = SampleFilter()
    assert page_ids(dataset, spec, "id", 3, after=gone)[0] == [s.id for s in blank[5:8]]
    assert page_ids(dataset, spec, "-id", 3, before=gone)[0] == [s.id for s in blank[5:8]][::-1]
    for cursor in ("after", "before"):
        with pytest.raises(ValidationFailed) as refused:
            page_ids(dataset, spec, "width", 3, **{cursor: gone})
        assert refused.value.field == cursor


def test_a_cursor_of_another_dataset_names_nothing_here(owner, dataset, blank):
    from imagestudio.datasets.services import dataset_create

    other = make_samples(dataset_create(user=owner, name="Other"), [{}])[0]
    with pytest.raises(ValidationFailed):
        sample_page(dataset=dataset, spec=SampleFilter(), ordering="created_at", after=other.id)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hits=st.lists(st.booleans(), min_size=SAMPLES, max_size=SAMPLES), window=st.integers(1, SAMPLES + 1),
       ordering=st.sampled_from(["id", "-id"]), limit=st.integers(1, 4), offset=st.integers(0, 3),
       split=st.sampled_from([None, "dev"]))
def test_a_search_pages_as_a_plain_filter_whatever_its_window(dataset, blank, monkeypatch, hits, window, ordering,
                                                             limit, offset, split):
    from imagestudio.datasets import selectors

    for sample, hit in zip(blank, hits, strict=True):
        Sample.objects.filter(pk=sample.pk).update(search_text="a zebra" if hit else "a horse")
    monkeypatch.setattr(selectors, "SEARCH_WINDOW", window)  # the dense step, the sparse step, or both
    spec = SampleFilter(split=split, search="ZEBRA")
    expected = sorted((s.id for s, hit in zip(blank, hits, strict=True) if hit and split in (None, s.split)),
                      reverse=ordering == "-id")
    assert page_ids(dataset, spec, ordering, limit, offset=offset)[0] == expected[offset:offset + limit]
    if len(expected) > 1:
        assert page_ids(dataset, spec, ordering, limit, after=expected[0])[0] == expected[1:1 + limit]
        assert page_ids(dataset, spec, ordering, limit, before=expected[-1])[0] == expected[-1 - limit:-1][-limit:]
