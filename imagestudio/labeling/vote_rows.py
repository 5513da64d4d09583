"""The LFVote rows of one LF: written, deleted, cleared.

On Postgres labeling_lfvote is partitioned by LF (LIST on lf_id), one partition per LF, keyed (sample_id, lf_id).
An LF's first votes (every row new: 500,000 for a 500K dataset) go into a table of their own: binary COPY into
a table without indexes, ANALYZE, then ATTACH, which builds the partition's one index in a single sorted pass.
The same rows inserted into one shared table updated two btrees over every LF's votes row by row: 3-4 s
against ~1 s, and growing with the number of LFs. Later writes (a threshold edit, a refresh) change the rows
that differ, in the LF's partition. ATTACH takes a SHARE UPDATE EXCLUSIVE lock on labeling_lfvote: reads and
writes of other LFs' votes go on; two first saves queue at the attach until the first commits.

SQLite keeps one plain table.
"""

from __future__ import annotations

import contextlib

import numpy as np
from django.db import OperationalError, connection, transaction

from imagestudio.common.bulk import analyze_when_stale, copy_binary

from .models import LFVote

TABLE = LFVote._meta.db_table
COLUMNS = ("sample_id", "lf_id", "vote")
_SQLITE_BATCH = 5000
# Dropping an emptied partition locks labeling_lfvote whole: wait this long for running reads, else leave it.
_DROP_LOCK_TIMEOUT = "2s"


def _partitioned() -> bool:
    return connection.vendor == "postgresql"


def partition_name(lf_id: int) -> str:
    return f"{TABLE}_{int(lf_id)}"


def has_rows_table(lf_id: int) -> bool:
    """Whether the LF's votes have their place already (its partition; always, on SQLite): when not, its next
    write is a first save of all its votes."""
    if not _partitioned():
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [partition_name(lf_id)])
        return cursor.fetchone()[0]


def _sorted_rows(present, absent):
    """(sample ids ascending, votes) of two ascending, disjoint id arrays: rows in key order fill a btree at its
    right edge (the stable sort merges the two runs in linear time)."""
    ids = np.concatenate([np.asarray(present, dtype=np.int64), np.asarray(absent, dtype=np.int64)])
    votes = np.concatenate([np.ones(len(present), dtype=np.int16), np.full(len(absent), -1, dtype=np.int16)])
    order = np.argsort(ids, kind="stable")
    return ids[order], votes[order]


def votes_create(lf_id: int, present: np.ndarray, absent: np.ndarray) -> None:
    """Every vote row of an LF without a rows table yet (`has_rows_table` is False): its partition, built."""
    ids, votes = _sorted_rows(present, absent)
    table = connection.ops.quote_name(partition_name(lf_id))
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (LIKE {TABLE} INCLUDING DEFAULTS, CHECK (lf_id = {int(lf_id)}))")
        copy_binary(partition_name(lf_id), COLUMNS, ids, np.int64(lf_id), votes)
        # Statistics before the first query plans against it; the CHECK spares ATTACH a scan of the rows.
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {table} FOR VALUES IN ({int(lf_id)})")


def votes_apply(lf_id: int, old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]) -> dict[str, int]:
    """Turn the LF's stored rows `old` (PRESENT ids, ABSENT ids; all ascending) into `new`, writing only the
    difference: rows whose vote went or changed are deleted, new votes inserted. (Updating flipped votes in
    place measured no faster: COPY fills the pages, so an update moves the row and adds an index entry too.)
    The LF has a rows table."""
    (old_present, old_absent), (present, absent) = old, new
    gone = np.union1d(np.setdiff1d(old_present, present, assume_unique=True),
                      np.setdiff1d(old_absent, absent, assume_unique=True))
    new_present = np.setdiff1d(present, old_present, assume_unique=True)
    new_absent = np.setdiff1d(absent, old_absent, assume_unique=True)
    votes_delete(lf_id, gone)
    _votes_insert(lf_id, new_present, new_absent)
    return {"rows_deleted": int(len(gone)), "rows_written": int(len(new_present) + len(new_absent))}


def _votes_insert(lf_id, present, absent):
    if not len(present) and not len(absent):
        return
    ids, votes = _sorted_rows(present, absent)
    if not _partitioned():
        LFVote.objects.bulk_create((LFVote(lf_id=lf_id, sample_id=sample_id, vote=vote)
                                    for sample_id, vote in zip(ids.tolist(), votes.tolist(), strict=True)),
                                   batch_size=_SQLITE_BATCH)
        return
    copy_binary(partition_name(lf_id), COLUMNS, ids, np.int64(lf_id), votes)
    analyze_when_stale(partition_name(lf_id), len(ids))


def votes_delete(lf_id: int, sample_ids: np.ndarray) -> None:
    """The LF's vote rows of these samples."""
    if not len(sample_ids):
        return
    if _partitioned():  # one statement with an array parameter
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(partition_name(lf_id))} "  # noqa: S608
                           "WHERE sample_id = ANY(%s)", [sample_ids.tolist()])
        return
    for start in range(0, len(sample_ids), _SQLITE_BATCH):
        LFVote.objects.filter(lf_id=lf_id, sample_id__in=sample_ids[start:start + _SQLITE_BATCH].tolist()).delete()


def votes_clear(lf_id: int) -> None:
    """Every vote row of the LF (its partition emptied at once, not row by row)."""
    if not _partitioned():
        LFVote.objects.filter(lf_id=lf_id).delete()
    elif has_rows_table(lf_id):
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {connection.ops.quote_name(partition_name(lf_id))}")


def rows_table_drop_with(sender, instance, **kwargs) -> None:
    """pre_delete of a LabelingFunction (alone or with its dataset): its partition is emptied in the deleting
    transaction (which then finds no rows to delete one by one), and dropped once that commits."""
    if not _partitioned():
        return
    lf_id = instance.pk  # None once deleted
    votes_clear(lf_id)
    transaction.on_commit(lambda: _drop_partition(lf_id))


def _drop_partition(lf_id):
    """Best effort: a drop that would wait behind long reads of labeling_lfvote (and hold every new read back
    meanwhile) gives up, leaving an empty partition that costs nothing but a place in the plans."""
    with contextlib.suppress(OperationalError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{_DROP_LOCK_TIMEOUT}'")
        cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(partition_name(lf_id))}")
