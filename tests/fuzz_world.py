"""What the API fuzzers run against (tests/api/test_fuzz_schema.py in CI, bench/fuzz_api.sh against a live server):
a user owning a dataset of a few labeled samples, and that user's API token."""

from imagestudio.accounts.services import token_for
from imagestudio.datasets.services import dataset_create
from tests.conftest import make_user
from tests.factories import make_samples


def fuzz_token(user) -> str:
    """An API token for `user`: the one place the fuzzers make credentials (adapt it when authentication changes)."""
    return token_for(user=user)


def fuzz_world(username: str = "fuzzer") -> str:
    """Create the fuzzers' user and dataset; returns the user's token."""
    user = make_user(username)
    dataset = dataset_create(user=user, name="Fuzzed", classes=["cat", "dog"])
    make_samples(dataset, [{"metadata": {"caption": "a cat"}, "gt": {"cat": "PRESENT"}} for _ in range(3)])
    return fuzz_token(user)
