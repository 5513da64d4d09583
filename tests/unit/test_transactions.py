"""retry_transient: a deadlock victim or a serialization failure runs again; anything else goes up at once."""

import pytest
from django.db import OperationalError

from imagestudio.common import transactions
from imagestudio.common.transactions import ATTEMPTS, retry_transient


class FakeCause(Exception):
    def __init__(self, sqlstate):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def failing(sqlstate, times):
    calls = []

    @retry_transient
    def write():
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("aborted") from FakeCause(sqlstate)
        return "written"

    return write, calls


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch):
    monkeypatch.setattr(transactions.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])  # deadlock detected, serialization failure
def test_transient_failures_are_retried(sqlstate):
    write, calls = failing(sqlstate, times=2)
    assert write() == "written" and len(calls) == 3


def test_retries_give_up_after_the_last_attempt():
    write, calls = failing("40P01", times=ATTEMPTS)
    with pytest.raises(OperationalError):
        write()
    assert len(calls) == ATTEMPTS


def test_other_database_errors_are_not_retried():
    write, calls = failing("08006", times=1)  # connection failure
    with pytest.raises(OperationalError):
        write()
    assert len(calls) == 1


def test_inside_an_outer_transaction_nothing_is_retried(monkeypatch):
    monkeypatch.setattr(transactions.connection, "in_atomic_block", True, raising=False)
    write, calls = failing("40P01", times=1)
    with pytest.raises(OperationalError):
        write()
    assert len(calls) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("sqlstate", "message", "duplicate"), [
    ("23505", "duplicate key value violates unique constraint", True),
    ("23503", "insert or update violates foreign key constraint", False),  # the class was deleted meanwhile
    (None, "UNIQUE constraint failed: labeling_labelingfunction.name", True),
    (None, "FOREIGN KEY constraint failed", False)])
def test_only_a_unique_violation_is_reported_as_a_name_taken(sqlstate, message, duplicate):
    """An LF created while its class was deleted answered 'The dataset already has an LF named ...' (409
    duplicate_name), a name no LF had; the foreign-key violation now goes up for the API's concurrent_change."""
    from django.db import IntegrityError

    from imagestudio.common.errors import Conflict
    from imagestudio.common.transactions import duplicate_refused

    exc = IntegrityError(message)
    exc.__cause__ = FakeCause(sqlstate) if sqlstate else None
    taken = Conflict("The name is taken.", code="duplicate_name")
    with pytest.raises(Conflict if duplicate else IntegrityError) as raised, duplicate_refused(taken):
        raise exc
    assert (raised.value is taken) == duplicate
