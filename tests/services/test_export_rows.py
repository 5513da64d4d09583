"""CSV export rows: on Postgres the server writes them (COPY); they read back as the Python writer's rows, cell for
cell, formula neutralization included; the SQL's number test never leaves a cell Python would quote."""

import csv
import io

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagestudio.datasets.models import LabelClass, Sample
from imagestudio.exports import services
from imagestudio.exports.cells import neutralized
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

TRICKY = ["=1+1", "+cmd|' /C calc'!A0", "-3", "+1.5e3", "-inf", "@SUM(1)", "\t=1", "", "a,b", 'say "hi"',
          "two\nlines", "carriage\rreturn", "\r=1", "crlf\r\n", "é ☃", "-1_000.5", " -2 ", "-1e999", "plain"]


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the COPY path is Postgres's")


@pytest.fixture
def tricky(dataset):
    specs = [{"split": "train" if i % 2 else "dev", "metadata": {"note": text, "n": i, **({"gap": None} if i % 3 else {})},
              "gt": {"cat": "PRESENT" if i % 2 else "ABSENT"} if i % 4 else {}} for i, text in enumerate(TRICKY)]
    samples = make_samples(dataset, specs)
    Sample.objects.filter(pk=samples[1].pk).update(external_id="=HYPERLINK(1)", file_name="-x.png")
    return samples


def written(by_copy, dataset, params):
    """(rows written, rows read back) of the COPY path or of the Python path."""
    classes = list(LabelClass.objects.filter(dataset=dataset).order_by("id"))
    stream = io.BytesIO()
    arguments = (stream, dataset, params, classes, (None, None))
    count = services._rows_by_copy(*arguments) if by_copy else services._rows_by_python(*arguments, lambda n: None)
    return count, list(csv.reader(io.StringIO(stream.getvalue().decode("utf-8"), newline="")))


@pytest.mark.parametrize("raw", [False, True])
def test_copy_rows_read_back_as_the_python_rows(dataset, tricky, raw):
    postgres_only()
    params = {"columns": list(services.SAMPLE_COLUMNS), "fields": ["note", "n", "gap", "missing"],
              "splits": ["train", "dev"], "ground_truth": True, "raw": raw}
    by_copy, by_python = written(True, dataset, params), written(False, dataset, params)
    assert by_copy == by_python
    count, rows = by_copy
    assert count == len(TRICKY) == len(rows)
    notes = [row[len(services.SAMPLE_COLUMNS)] for row in rows]
    assert notes == (TRICKY if raw else [neutralized(text) for text in TRICKY])
    assert "'=HYPERLINK(1)" in rows[1] or raw


def test_a_split_subset_without_ground_truth(dataset, tricky):
    postgres_only()
    params = {"columns": ["external_id"], "fields": [], "splits": ["dev"], "ground_truth": False}
    by_copy = written(True, dataset, params)
    assert by_copy == written(False, dataset, params)
    assert by_copy[0] == len(TRICKY[::2]) and all(len(row) == 1 for row in by_copy[1])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(services.SAMPLE_COLUMNS).flatmap(
    lambda columns: st.integers(1, len(columns)).map(lambda k: list(columns[:k]))))
def test_any_columns_in_any_order_write_the_same_rows_both_ways(dataset, tricky, columns):
    """The Python writer keyed each row's ground truth by its first column, taken for the id: with another column
    first it wrote the wrong samples' labels (or failed on a split name)."""
    postgres_only()
    params = {"columns": columns, "fields": ["n"], "splits": ["train", "dev"], "ground_truth": True}
    assert written(True, dataset, params) == written(False, dataset, params)


STORABLE = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))  # Postgres text refuses both


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=STORABLE, max_size=12).map(
    lambda text: text if text[:1] else "-" + text) | st.from_regex(r"[-+=@]\s?[0-9_.eE+-]{0,8}\s?", fullmatch=True),
    min_size=1, max_size=20))
def test_the_sql_quotes_every_cell_python_quotes(texts):
    postgres_only()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {services._text_cell('t', raw=False)} FROM unnest(%s::text[]) WITH ORDINALITY AS "
                       "u(t, n) ORDER BY n", [texts])
        quoted = [row[0] for row in cursor.fetchall()]
    for text, sql in zip(texts, quoted, strict=True):
        python = neutralized(text)
        if text == "":
            assert sql is None
        elif python != text:
            assert sql == python  # Python quotes it: so does the SQL
        else:
            assert sql in (text, "'" + text)  # a number past the SQL's bounds may get the quote, nothing else



def test_a_delivery_again_after_the_file_was_written_leaves_one_file(dataset, owner):
    """A worker killed after writing the CSV but before recording it: the next delivery wrote `<name>_<random>.csv`
    beside it, and the first file stayed in storage, referenced by nothing (found from outside)."""
    from django.core.files.storage import default_storage

    from imagestudio.exports.models import Export

    make_samples(dataset, [{"metadata": {"note": "a"}}, {"metadata": {"note": "b"}}])
    export = services.export_start(dataset=dataset, user=owner, kind="dataset")  # its job runs on commit: not here
    services.export_run(export.job)
    first = Export.objects.get(pk=export.pk).file
    services.export_run(export.job)  # delivered again: it writes the file anew
    export = Export.objects.get(pk=export.pk)
    assert default_storage.listdir(f"datasets/{dataset.id}/exports")[1] == [first.rsplit("/", 1)[1]]
    assert export.file == first and export.rows == 2
