"""Bulk COPY of narrow rows (text and binary), and the planner statistics refreshed after a large write
(Postgres)."""

import struct

import numpy as np
import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imagestudio.common.bulk import binary_copy_data, copy_binary, copy_id_rows
from imagestudio.training.models import Prediction

pytestmark = pytest.mark.django_db(transaction=True)

COLUMNS = ("model_id", "label_class_id", "sample_id")
FORMATS = {np.dtype(np.int16): "h", np.dtype(np.int32): "i", np.dtype(np.int64): "q", np.dtype(np.float32): "f",
           np.dtype(np.float64): "d"}


def reltuples():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'training_prediction'::regclass")
        return cursor.fetchone()[0]


def parsed(data, dtypes):
    """The rows of COPY binary data, read field by field as the server reads them."""
    assert data[:11] == b"PGCOPY\n\xff\r\n\x00" and data[11:19] == bytes(8) and data[-2:] == b"\xff\xff"
    rows, at = [], 19
    while at < len(data) - 2:
        (fields,) = struct.unpack_from(">h", data, at)
        assert fields == len(dtypes)
        at += 2
        row = []
        for dtype in dtypes:
            (size,) = struct.unpack_from(">i", data, at)
            assert size == dtype.itemsize
            row.append(struct.unpack_from(">" + FORMATS[dtype], data, at + 4)[0])
            at += 4 + size
        rows.append(tuple(row))
    assert at == len(data) - 2
    return rows


@pytest.mark.django_db(transaction=False)
@given(ids=hnp.arrays(np.int64, st.integers(0, 50)), votes=st.sampled_from([np.int16, np.int32]),
       constant=st.integers(-2**63, 2**63 - 1), scores=st.sampled_from([np.float32, np.float64]))
def test_binary_rows_read_back_as_written(ids, votes, constant, scores):
    small = (ids % 3 - 1).astype(votes)
    real = (ids / 7).astype(scores)
    data = binary_copy_data(ids, np.int64(constant), small, real)
    dtypes = [np.dtype(np.int64), np.dtype(np.int64), np.dtype(votes), np.dtype(scores)]
    assert parsed(data, dtypes) == list(zip(ids.tolist(), [constant] * len(ids), small.tolist(), real.tolist(),
                                            strict=True))


@settings(max_examples=20, deadline=None)
@given(ids=st.lists(st.integers(1, 2**63 - 1), unique=True, max_size=200))
def test_binary_copy_lands_every_id_in_postgres(ids):
    if connection.vendor != "postgresql":
        pytest.skip("COPY is Postgres's")
    Prediction.objects.all().delete()
    copy_binary("training_prediction", COLUMNS, np.int64(3), np.int64(4), np.array(ids, dtype=np.int64))
    assert sorted(Prediction.objects.values_list(*COLUMNS)) == sorted((3, 4, i) for i in ids)


def test_rows_land_with_their_constant_columns():
    written = copy_id_rows(Prediction, COLUMNS, [((7, 1), np.array([3, 1, 2]), ()), ((7, 2), np.array([9]), ()),
                                                 ((8, 1), np.array([]), ())])
    assert written == 4
    assert sorted(Prediction.objects.values_list(*COLUMNS)) == [(7, 1, 1), (7, 1, 2), (7, 1, 3), (7, 2, 9)]


def test_a_large_write_refreshes_the_statistics_a_small_one_does_not():
    if connection.vendor != "postgresql":
        pytest.skip("planner statistics are Postgres's")
    copy_id_rows(Prediction, COLUMNS, [((1, 1), np.arange(1, 3001), ())])
    assert reltuples() == 3000  # ANALYZE ran once the write committed
    copy_id_rows(Prediction, COLUMNS, [((2, 1), np.arange(1, 201), ())])
    assert reltuples() == 3000  # 200 rows: left to autovacuum
