"""Import grants in the domain: which grants apply to whom, and a grant revoked before its import runs."""

import pytest
from django.db import transaction

from imagestudio.common.errors import ValidationFailed
from imagestudio.datasets.imports import import_start
from imagestudio.datasets.imports.grants import (
    NOT_GRANTED,
    granted_sources,
    import_grant_create,
    import_grant_revoke,
    resolve_granted_path,
)
from imagestudio.datasets.models import Role, Sample
from imagestudio.datasets.services import membership_set
from imagestudio.jobs.models import Job
from tests.conftest import make_user, png_bytes


@pytest.fixture
def root(tmp_path, settings):
    for folder in ("shared", "mine"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{folder}.png").write_bytes(png_bytes((len(folder), 0, 0)))
    settings.IMPORT_ROOT = str(tmp_path)
    return tmp_path


@pytest.mark.django_db
@pytest.mark.parametrize("role, applies", [(Role.VIEWER, False), (Role.ANNOTATOR, False), (Role.EDITOR, True),
                                           (Role.OWNER, True), (None, False)])
def test_a_user_grant_applies_to_the_datasets_its_user_edits(dataset, root, role, applies):
    uma = make_user("uma")
    import_grant_create(user=uma, path="mine")
    if role:
        membership_set(dataset=dataset, user=uma, role=role)
    assert granted_sources(dataset=dataset, user=uma) == ([root / "mine"] if applies else [])
    if not applies:
        with pytest.raises(ValidationFailed, match=NOT_GRANTED):
            resolve_granted_path("mine", dataset=dataset, user=uma)


@pytest.mark.django_db
def test_a_dataset_grant_applies_to_a_job_whose_creator_is_gone(dataset, root):
    import_grant_create(dataset=dataset, path="shared")
    assert resolve_granted_path("shared/", dataset=dataset, user=None).source == root / "shared"


@pytest.mark.django_db(transaction=True)
def test_a_grant_revoked_before_the_import_runs_fails_it_with_the_same_refusal(dataset, owner, root):
    import_grant_create(dataset=dataset, path="shared")
    with transaction.atomic():  # the job starts on commit, after the revocation
        job = import_start(dataset=dataset, user=owner, split="train", path="shared")
        import_grant_revoke(dataset=dataset, path="shared")
    job = Job.objects.get(pk=job.pk)
    assert job.status == "failed" and job.error.endswith(NOT_GRANTED) and not Sample.objects.exists()
