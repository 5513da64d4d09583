"""Bulk COPY of narrow rows, and the planner statistics refreshed after a large write (Postgres)."""

import numpy as np
import pytest
from django.db import connection

from imagestudio.common.bulk import copy_id_rows
from imagestudio.labeling.models import LFVote

pytestmark = pytest.mark.django_db(transaction=True)


def reltuples():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'labeling_lfvote'::regclass")
        return cursor.fetchone()[0]


def test_rows_land_with_their_constant_columns():
    written = copy_id_rows(LFVote, ("lf_id", "sample_id", "vote"),
                           [((7,), np.array([3, 1, 2]), (1,)), ((7,), np.array([9]), (-1,)), ((8,), np.array([]), (1,))])
    assert written == 4
    assert sorted(LFVote.objects.values_list("lf_id", "sample_id", "vote")) == [
        (7, 1, 1), (7, 2, 1), (7, 3, 1), (7, 9, -1)]


def test_a_large_write_refreshes_the_statistics_a_small_one_does_not():
    if connection.vendor != "postgresql":
        pytest.skip("planner statistics are Postgres's")
    copy_id_rows(LFVote, ("lf_id", "sample_id", "vote"), [((1,), np.arange(1, 3001), (1,))])
    assert reltuples() == 3000  # ANALYZE ran once the write committed
    copy_id_rows(LFVote, ("lf_id", "sample_id", "vote"), [((2,), np.arange(1, 201), (1,))])
    assert reltuples() == 3000  # 200 rows: left to autovacuum
