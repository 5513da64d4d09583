"""Writing hundreds of thousands of narrow rows at once (LF votes, predictions): COPY on Postgres, then fresh
planner statistics when the write changed the table a lot."""

from collections.abc import Sequence

import numpy as np
from django.db import connection, transaction

_COPY_BLOCK = 50_000
_STALE_SHARE = 0.1  # autovacuum's default analyze scale factor

# COPY's binary format: a signature, 32-bit flags and header-extension length, then per row a 16-bit field count
# and per field a 32-bit length and the value in network byte order; a field count of -1 ends the stream.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
_BINARY_TYPES = {np.dtype(np.int16): ">i2", np.dtype(np.int32): ">i4", np.dtype(np.int64): ">i8",
                 np.dtype(np.float32): ">f4", np.dtype(np.float64): ">f8"}


def binary_copy_data(*columns) -> bytes:
    """`COPY ... FROM STDIN (FORMAT BINARY)` data for rows whose fields are the aligned `columns`: numpy arrays
    of one length, or numpy scalars repeated on every row (int16 / int32 / int64 / float32 / float64, no NULLs).
    Built as one fixed-width record array: no per-row Python, and nothing for the server to parse."""
    arrays = [np.asarray(column) for column in columns]
    count = next(len(array) for array in arrays if array.ndim)
    layout = [("fields", ">i2")]
    for index, array in enumerate(arrays):
        layout += [(f"size{index}", ">i4"), (f"value{index}", _BINARY_TYPES[array.dtype])]
    rows = np.empty(count, dtype=layout)
    rows["fields"] = len(arrays)
    for index, array in enumerate(arrays):
        rows[f"size{index}"] = array.dtype.itemsize
        rows[f"value{index}"] = array
    return b"".join((_BINARY_HEADER, rows.tobytes(), _BINARY_TRAILER))


def copy_binary(table: str, names: Sequence[str], *columns) -> None:
    """Insert the rows of `binary_copy_data(*columns)` into the columns `names` of `table` (Postgres)."""
    quoted = ", ".join(connection.ops.quote_name(name) for name in names)
    with connection.cursor() as cursor, cursor.connection.cursor().copy(
            f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(binary_copy_data(*columns))


def copy_id_rows(model, columns, groups):
    """Insert rows that differ in one id column only. `groups`: (values before the id, ids, values after)
    tuples of ints, e.g. ((lf_id,), sample_ids, (1,)). Returns the rows written."""
    written = 0
    if connection.vendor != "postgresql":
        model.objects.bulk_create((model(**dict(zip(columns, (*before, int(i), *after), strict=True)))
                                   for before, ids, after in groups for i in ids), batch_size=5000)
        return sum(len(ids) for _, ids, _ in groups)
    with connection.cursor() as cursor, cursor.connection.cursor().copy(
            f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
        for before, ids, after in groups:
            head = "".join(f"{v}\t" for v in before)
            tail = "".join(f"\t{v}" for v in after) + "\n"
            for start in range(0, len(ids), _COPY_BLOCK):
                block = ids[start:start + _COPY_BLOCK]
                if len(block):  # ints only: nothing to escape
                    copy.write(head + (tail + head).join(map(str, block.tolist())) + tail)
            written += len(ids)
    analyze_when_stale(model._meta.db_table, written)
    return written


def analyze_when_stale(table: str, written: int) -> None:
    """ANALYZE the table (after the commit) when this write alone changed a tenth of it: a table analyzed while
    nearly empty makes the planner pick nested loops that scan every row of a new model or LF, seconds per
    samples-list page, until autovacuum gets to it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        known = max(cursor.fetchone()[0], 0)
    if written >= 1000 and written > _STALE_SHARE * known:
        transaction.on_commit(lambda: _analyze(table))


def _analyze(table):
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
