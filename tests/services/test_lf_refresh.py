"""LFs under concurrent edits: the vote refresh job refreshes each LF as it stands when the job reaches it (an edit
made while the job runs is not undone by a rule read when the job started), a new LF catches up with samples edited
while it read them, and an edit of an LF deleted meanwhile is a 404, not a 500."""

import threading

import numpy as np
import pytest
from django.db import connections

from imagestudio.common.errors import NotFound
from imagestudio.datasets.models import Sample
from imagestudio.datasets.services import sample_update
from imagestudio.demo.integrity import integrity_check
from imagestudio.jobs.models import Job
from imagestudio.labeling import services as labeling
from imagestudio.labeling.models import LabelingFunction
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)


def keyword_lf(dataset, owner, name, word):
    return labeling.lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name=name,
                              type="pattern", config={"field": "caption", "builder": "keyword", "words": [word]},
                              low=0, high=1)


def test_an_lf_edited_while_the_refresh_runs_keeps_the_edited_rule(dataset, owner, monkeypatch):
    make_samples(dataset, [{"metadata": {"caption": c}} for c in ("cat", "dog", "bird")])
    first, second = keyword_lf(dataset, owner, "first", "cat"), keyword_lf(dataset, owner, "second", "cat")
    job = Job.objects.create(kind="lf_votes", dataset=dataset, status="running", params={"sample_ids": None})
    record_progress = labeling.job_progress

    def edit_second_after_the_first(*, job_id, progress, message=""):
        if progress < 1:  # the first LF is done, the second not yet: a user edits it now
            labeling.lf_update(lf=LabelingFunction.objects.get(pk=second.pk), user=owner,
                               config={"field": "caption", "builder": "keyword", "words": ["dog"]})
        record_progress(job_id=job_id, progress=progress, message=message)

    monkeypatch.setattr(labeling, "job_progress", edit_second_after_the_first)
    result = labeling.lfs_refresh_run(job)
    assert set(result["refreshed"]) == {first.id, second.id}
    assert integrity_check(datasets=[dataset]).clean


def test_an_lf_deleted_while_the_refresh_runs_is_skipped(dataset, owner, monkeypatch):
    make_samples(dataset, [{"metadata": {"caption": "cat"}}])
    first, second = keyword_lf(dataset, owner, "first", "cat"), keyword_lf(dataset, owner, "second", "cat")
    job = Job.objects.create(kind="lf_votes", dataset=dataset, status="running", params={"sample_ids": None})
    monkeypatch.setattr(labeling, "job_progress", lambda **kwargs: labeling.lf_delete(
        lf=LabelingFunction.objects.get(pk=second.pk)) if kwargs["progress"] < 1 else None)
    assert set(labeling.lfs_refresh_run(job)["refreshed"]) == {first.id}
    assert not LabelingFunction.objects.filter(pk=second.pk).exists()
    assert integrity_check(datasets=[dataset]).clean


def test_editing_an_lf_deleted_since_it_was_read_is_not_found(dataset, owner):
    make_samples(dataset, [{"metadata": {"caption": "cat"}}])
    lf = keyword_lf(dataset, owner, "first", "cat")
    labeling.lf_delete(lf=LabelingFunction.objects.get(pk=lf.pk))  # by another request, after this one read it
    with pytest.raises(NotFound):
        labeling.lf_update(lf=lf, user=owner, active=False)


def test_a_sample_edited_while_a_new_lf_reads_the_samples_gets_its_vote(dataset, owner, monkeypatch):
    """The edit's own refresh job cannot see the LF before it commits: the LF's creation notices the change."""
    sample = make_samples(dataset, [{"metadata": {"caption": "cat"}}])[0]
    read_column = labeling.field_column

    def an_edit_commits_after_the_read(**kwargs):
        column = read_column(**kwargs)
        monkeypatch.undo()
        edit = threading.Thread(target=edit_in_another_request)
        edit.start()
        edit.join()
        return column

    def edit_in_another_request():
        try:
            sample_update(sample=Sample.objects.get(pk=sample.pk), metadata={"caption": "dog"})
        finally:
            connections.close_all()

    monkeypatch.setattr(labeling, "field_column", an_edit_commits_after_the_read)
    keyword_lf(dataset, owner, "first", "cat")
    assert integrity_check(datasets=[dataset]).clean


def test_a_defect_in_one_lf_fails_the_refresh_after_the_others_are_refreshed(dataset, owner, monkeypatch):
    make_samples(dataset, [{"metadata": {"caption": "cat"}}])
    broken, sound = keyword_lf(dataset, owner, "broken", "cat"), keyword_lf(dataset, owner, "sound", "cat")
    materialize = labeling.lf_materialize

    def broken_first(*, lf, sample_ids=None):
        if lf.pk == broken.pk:
            raise ValueError("a defect")
        return materialize(lf=lf, sample_ids=sample_ids)

    monkeypatch.setattr(labeling, "lf_materialize", broken_first)
    make_samples(dataset, [{"metadata": {"caption": "cat"}}])  # its vote refresh meets the defect first
    refresh = Job.objects.filter(dataset=dataset, kind="lf_votes").order_by("-id").first()
    assert refresh.status == "failed" and "a defect" in refresh.error
    sound.refresh_from_db()
    broken.refresh_from_db()
    assert len(np.frombuffer(bytes(sound.votes_present), dtype=np.int64)) == 2
    # its votes are withdrawn where it could not score, and it says why
    assert broken.refresh_error.startswith("internal error (ValueError)") and len(bytes(broken.votes_present)) == 0
