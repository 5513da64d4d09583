"""Schemathesis against the live OpenAPI schema, authenticated, every operation: no 5xx and every response
conforms to the schema. A bounded profile runs here (CI); bench/fuzz_api.sh runs a longer one."""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from imagestudio.wsgi import application
from tests.conftest import make_user
from tests.factories import make_samples

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The WSGI app runs in-process inside the test's transaction: like Django's test client, keep the
    request signals from closing that connection after each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(db):
    from imagestudio.accounts.services import token_for
    from imagestudio.datasets.services import dataset_create

    user = make_user("fuzzer")
    dataset = dataset_create(user=user, name="Fuzzed", classes=["cat", "dog"])
    make_samples(dataset, [{"metadata": {"caption": "a cat"}, "gt": {"cat": "PRESENT"}} for _ in range(3)])
    return token_for(user=user, name="fuzzer")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
@pytest.mark.django_db
def test_api_conforms_and_never_fails(case, token):
    # Every check but the two about which inputs are accepted: the API parses leniently where DRF does ("1" as a
    # boolean) and refuses what Postgres cannot store (NUL characters) although the schema does not say so.
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, excluded_checks=[
        schemathesis.checks.negative_data_rejection, schemathesis.checks.positive_data_acceptance])
