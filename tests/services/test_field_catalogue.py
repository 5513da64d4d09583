"""The metadata field catalogue: Postgres's SQL and the Python path against the pure reference, and by hand."""

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagestudio.datasets.field_stats import EXAMPLE_CHARS, field_catalogue_of
from imagestudio.datasets.models import Sample
from imagestudio.datasets.selectors import _catalogue_in_python, field_catalogue
from imagestudio.datasets.services import sample_update
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

SAMPLES = 12
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.integers(-2, 2).map(float),
                    st.floats(-1, 1, allow_nan=False).map(lambda x: round(x, 1)), st.text(alphabet="ab é", max_size=3))
values = st.one_of(scalars, st.lists(st.integers(0, 2), max_size=2),
                   st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 1), max_size=2))
metadata_objects = st.dictionaries(st.sampled_from(["a", "b", "Caption", "é"]), values, max_size=4)


@pytest.fixture
def blank(dataset):
    return make_samples(dataset, [{"split": "dev" if i % 3 else "test"} for i in range(SAMPLES)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(metadata_objects, min_size=SAMPLES, max_size=SAMPLES))
def test_sql_and_python_paths_give_the_reference_catalogue(dataset, blank, metadata):
    for sample, values_of in zip(blank, metadata, strict=True):
        sample_update(sample=sample, metadata=values_of)
    for split in (None, "dev"):
        rows = [m for s, m in zip(blank, metadata, strict=True) if split in (None, s.split)]
        expected = field_catalogue_of(rows)
        assert field_catalogue(dataset=dataset, split=split) == expected
        assert _catalogue_in_python(dataset.id, split) == expected


def test_a_catalogue_by_hand(dataset):
    long_text = "x" * (EXAMPLE_CHARS + 50)
    samples = make_samples(dataset, [{} for _ in range(5)])
    for sample, metadata in zip(samples, [
        {"caption": "a cat", "n": 1, "ok": True, "mixed": 1, "blank": None},
        {"caption": "a dog", "n": 2.0, "ok": False, "mixed": "one", "blank": None},
        {"caption": "a cat", "n": 1.0, "mixed": [1]},
        {"caption": long_text},
        {},
    ], strict=True):
        sample_update(sample=sample, metadata=metadata)
    rows = {row["name"]: row for row in field_catalogue(dataset=dataset)}
    assert list(rows) == ["blank", "caption", "mixed", "n", "ok"]
    caption = rows["caption"]
    assert (caption["type"], caption["samples"], caption["filled"], caption["fill_rate"]) == ("string", 5, 4, 0.8)
    assert caption["distinct"] == 3 and caption["examples"] == ["a cat", "a dog", "x" * EXAMPLE_CHARS]
    assert (rows["n"]["type"], rows["n"]["distinct"], rows["n"]["examples"]) == ("number", 2, [1, 2])
    assert rows["ok"]["kinds"] == {"string": 0, "number": 0, "boolean": 2, "object": 0, "array": 0, "null": 0}
    assert (rows["mixed"]["type"], rows["mixed"]["distinct"]) == ("mixed", 3)
    assert (rows["blank"]["type"], rows["blank"]["filled"], rows["blank"]["kinds"]["null"]) == ("null", 0, 2)
    assert rows["blank"]["examples"] == [] and rows["blank"]["fill_rate"] == 0.0


def test_the_catalogue_follows_metadata_edits_and_imports(dataset):
    first = make_samples(dataset, [{"metadata": {"caption": "a cat"}}])[0]
    assert [row["name"] for row in field_catalogue(dataset=dataset)] == ["caption"]
    sample_update(sample=first, metadata={"colour": "red"})
    assert [row["name"] for row in field_catalogue(dataset=dataset)] == ["colour"]
    make_samples(dataset, [{"split": "valid", "metadata": {"colour": "blue", "size": 3}}])
    rows = field_catalogue(dataset=dataset)
    assert [(row["name"], row["filled"], row["samples"]) for row in rows] == [("colour", 2, 2), ("size", 1, 2)]
    assert [row["name"] for row in field_catalogue(dataset=dataset, split="train")] == ["colour"]
    assert field_catalogue(dataset=dataset, split="test") == []


def test_postgres_counts_in_sql(dataset):
    """The catalogue on Postgres comes from one SQL statement, not from reading every sample's metadata."""
    if connection.vendor != "postgresql":
        pytest.skip("the SQL path is Postgres's")
    make_samples(dataset, [{"metadata": {"caption": "a cat"}}])
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        field_catalogue(dataset=dataset)
    assert any("jsonb_each" in query["sql"] for query in queries.captured_queries)
    assert not any(Sample._meta.db_table in q["sql"] and "jsonb_each" not in q["sql"] for q in queries.captured_queries)
