"""Writing hundreds of thousands of narrow rows at once (LF votes, predictions): COPY on Postgres, then fresh
planner statistics when the write changed the table a lot."""

from django.db import connection, transaction

_COPY_BLOCK = 50_000
_STALE_SHARE = 0.1  # autovacuum's default analyze scale factor


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
    _analyze_when_stale(model, written)
    return written


def _analyze_when_stale(model, written):
    """ANALYZE the table (after the commit) when this write alone changed a tenth of it: a table analyzed while
    nearly empty makes the planner pick nested loops that scan every row of a new model or LF, seconds per
    samples-list page, until autovacuum gets to it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        known = max(cursor.fetchone()[0], 0)
    if written >= 1000 and written > _STALE_SHARE * known:
        transaction.on_commit(lambda: _analyze(model._meta.db_table))


def _analyze(table):
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
