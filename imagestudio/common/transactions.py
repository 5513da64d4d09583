"""Transactions that survive their neighbours: a writer re-run when Postgres aborts it as a deadlock victim or
a serialization failure, and a read-only snapshot for checks that compare two tables."""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import ParamSpec, TypeVar

from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction

from .errors import NotFound

# SQLSTATE of psycopg's errors.SerializationFailure and errors.DeadlockDetected: the transaction was rolled back
# whole and running it again is safe.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
ATTEMPTS = 5

P = ParamSpec("P")
R = TypeVar("R")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES


def retry_transient(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` (which opens its own transaction) again when the database aborted it as transient.

    Inside an outer transaction there is nothing to retry (the outer one is aborted too): the error goes up to
    whoever owns that transaction."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            return func(*args, **kwargs)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if attempt == ATTEMPTS or not is_transient(exc):
                    raise
            time.sleep(random.uniform(0, 0.02 * 2 ** attempt))  # noqa: S311  (jitter, so the victims do not meet again)
        raise AssertionError("unreachable")

    return run


@contextlib.contextmanager
def read_snapshot() -> Iterator[None]:
    """Every query inside sees one committed state of the database (REPEATABLE READ on Postgres), so counters
    and the rows they count are compared as of the same moment while writers go on. Inside an outer
    transaction, that transaction's view is used as it is."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        with transaction.atomic():
            yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def save_fields(instance, fields: list[str]) -> None:
    """`instance.save(update_fields=fields)`, or NotFound when its row was deleted meanwhile (a DELETE racing
    this edit), which Django reports as a bare DatabaseError (the transaction it ran in can read nothing more)."""
    try:
        instance.save(update_fields=fields)
    except DatabaseError as exc:
        if type(exc) is not DatabaseError:  # the database's own errors are its subclasses; this one is Django's
            raise
        raise NotFound(f"This {instance._meta.verbose_name} was deleted while the request ran.", code="deleted") from None


def row_values(instance, fields: Sequence[str]) -> dict | None:
    """The `fields` of `instance`'s row as stored now (None when it was deleted)."""
    return type(instance).objects.filter(pk=instance.pk).values(*fields).first()


@contextlib.contextmanager
def row_locked(instance, fields: Sequence[str]) -> Iterator[dict]:
    """Inside one transaction, the row of `instance` locked, and its `fields` as stored now (NotFound when it was
    deleted): a check of what a write may change, then the write, with no other write in between. NO KEY UPDATE:
    rows that name it (foreign keys) may still be written meanwhile."""
    with transaction.atomic():
        stored = type(instance).objects.select_for_update(no_key=True).filter(pk=instance.pk).values(*fields).first()
        if stored is None:
            raise NotFound(f"This {instance._meta.verbose_name} was deleted while the request ran.", code="deleted")
        yield stored


def is_unique_violation(exc: BaseException) -> bool:
    """A unique constraint refused the write (SQLSTATE 23505; SQLite's message), not a foreign key to a row deleted
    meanwhile (23503), which names no duplicate."""
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate == "23505" if sqlstate else str(exc).startswith("UNIQUE constraint failed")


@contextlib.contextmanager
def duplicate_refused(error: Exception) -> Iterator[None]:
    """An atomic block whose unique violation raises `error` (a name taken); any other integrity error goes up as it
    is (a class or dataset deleted meanwhile: the API's 409 concurrent_change, not 'the name is taken')."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise error from None
