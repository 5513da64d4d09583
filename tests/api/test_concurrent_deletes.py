"""A DELETE that commits while another request is between reading its object and writing: that request answers a
JSON 404 (deleted) or 409 (concurrent change), never a 500. Each race is made certain by deleting the object just
before the request's service runs, as the other request's commit would."""

import functools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.datasets.models import Comment, Dataset, LabelClass, Tag
from tests.conftest import png_bytes
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)  # deferred foreign keys are checked at a real commit


def deleted_first(monkeypatch, target, victim):
    """Make `target` ("module.function") delete `victim()`'s row first."""
    module, name = target.rsplit(".", 1)
    imported = __import__(module, fromlist=[name])
    original = getattr(imported, name)

    @functools.wraps(original)
    def racing(*args, **kwargs):
        row = victim()
        type(row).objects.filter(pk=row.pk).delete()
        return original(*args, **kwargs)

    monkeypatch.setattr(imported, name, racing)


@pytest.fixture
def world(api, dataset):
    sample = make_samples(dataset, [{"metadata": {"caption": "a cat"}}])[0]
    tag = Tag.objects.create(dataset=dataset, name="blurry")
    comment = Comment.objects.create(sample=sample, author=dataset.created_by, body="look")
    return sample, tag, comment


def races(dataset, sample, tag, comment):
    """(service the request reaches, what the racing DELETE removes, method, path, body)."""
    base = f"/api/datasets/{dataset.id}"
    cat = dataset.classes.get(name="cat")
    the = {"dataset": lambda: Dataset.objects.get(pk=dataset.pk), "class": lambda: LabelClass.objects.get(pk=cat.pk),
           "tag": lambda: Tag.objects.get(pk=tag.pk), "comment": lambda: Comment.objects.get(pk=comment.pk)}
    return [
        ("imagestudio.datasets.services.dataset_update", the["dataset"], "patch", f"{base}/", {"name": "renamed"}),
        ("imagestudio.datasets.services.label_class_update", the["class"], "patch", f"{base}/classes/{cat.id}/",
         {"name": "feline"}),
        ("imagestudio.datasets.services.tag_rename", the["tag"], "patch", f"{base}/tags/{tag.id}/", {"name": "sharp"}),
        ("imagestudio.datasets.services.comment_update", the["comment"], "patch",
         f"{base}/samples/{sample.id}/comments/{comment.id}/", {"body": "edited"}),
        ("imagestudio.datasets.services.tag_apply", the["tag"], "post", f"{base}/tags/{tag.id}/apply/",
         {"sample_ids": [sample.id]}),
        ("imagestudio.annotations.services.annotations_bulk_set", the["class"], "post", f"{base}/annotations/bulk/",
         {"sample_ids": [sample.id], "classes": ["cat"], "value": "PRESENT"}),
        ("api.views.samples.resample_create", the["dataset"], "post", f"{base}/samples/resample/",
         {"split": "train", "sample_size": 1}),
        ("api.views.exports.export_start", the["dataset"], "post", f"{base}/exports/",
         {"kind": "dataset", "columns": ["id"]}),
        ("api.views.samples.import_start", the["dataset"], "post", f"{base}/imports/", None),
    ]


@pytest.mark.parametrize("race", range(9))
def test_a_write_racing_the_delete_of_its_object_is_a_json_4xx(api, dataset, world, monkeypatch, race):
    target, victim, method, path, body = races(dataset, *world)[race]
    deleted_first(monkeypatch, target, victim)
    if body is None:  # an import: multipart
        answer = api.post(path, {"files": [SimpleUploadedFile("a.png", png_bytes())]}, format="multipart")
    else:
        answer = getattr(api, method)(path, body, format="json")
    assert answer.status_code in (404, 409), (target, answer.status_code, answer.content[:300])
    assert answer.json()["code"] in ("deleted", "concurrent_change", "not_found"), (target, answer.json())


@pytest.mark.parametrize(("sqlstate", "message", "race"), [
    ("23503", "", True), ("23505", "", True), ("23502", "", False), ("23514", "", False),
    (None, "FOREIGN KEY constraint failed", True), (None, "UNIQUE constraint failed: t.x", True),
    (None, "NOT NULL constraint failed: t.x", False)])
def test_only_races_answer_409_other_integrity_errors_stay_visible_defects(sqlstate, message, race):
    from django.db import IntegrityError

    from api.exceptions import exception_handler

    class DriverError(Exception):  # psycopg's errors carry the SQLSTATE
        pass

    exc = IntegrityError(message)
    if sqlstate:
        exc.__cause__ = DriverError()
        exc.__cause__.sqlstate = sqlstate
    if race:
        assert exception_handler(exc, {}).status_code == 409
    else:
        with pytest.raises(IntegrityError):  # DRF re-raises what its handler does not answer: a 500, logged
            response = exception_handler(exc, {})
            if response is None:
                raise exc


@pytest.mark.parametrize(("sqlstate", "answer"), [
    ("40P01", (409, "concurrent_change")), ("40001", (409, "concurrent_change")),  # deadlock, serialization failure
    ("57P01", (503, "database_unavailable")), (None, (503, "database_unavailable"))])  # admin shutdown, no server
def test_a_lost_race_is_a_409_and_only_an_unreachable_database_a_503(sqlstate, answer):
    """A deadlock victim was told the database was 'unreachable, restarting or busy' (503)."""
    from django.db import OperationalError

    from api.exceptions import exception_handler

    class DriverError(Exception):
        pass

    exc = OperationalError("aborted")
    if sqlstate:
        exc.__cause__ = DriverError()
        exc.__cause__.sqlstate = sqlstate
    response = exception_handler(exc, {})
    assert (response.status_code, response.data["code"]) == answer
