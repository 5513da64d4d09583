"""LF vote rows: the first save writes them in bulk (a partition of its own on Postgres), later writes only the
difference; rows, blobs, the samples-list vote filters and the integrity check agree after every step; deleting
an LF (alone or with its dataset) takes its rows and, on Postgres, its partition along."""

import numpy as np
import pytest
from django.db import connection
from django.test import TestCase

from imagestudio.common.cache import clear_database_caches
from imagestudio.datasets.services import dataset_delete
from imagestudio.labeling import vote_rows
from imagestudio.labeling.integrity import lf_votes_drift, lf_votes_repair
from imagestudio.labeling.models import LFVote
from imagestudio.labeling.services import lf_create, lf_delete, lf_materialize, lf_rematerialize, lf_update
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

SCORES = [0.1, 0.9, 0.5, 0.95, 0.0, 0.7, 0.3, 0.8]


@pytest.fixture
def scored(dataset):
    return make_samples(dataset, [{"split": "train" if i % 2 else "dev", "metadata": {"score": s},
                                   "gt": {"cat": "PRESENT" if s > 0.5 else "ABSENT"}} for i, s in enumerate(SCORES)])


def at_least(value):
    return {"field": "score", "builder": "numeric", "op": ">=", "value": value}


def numeric_lf(dataset, name="score", value=0.7, low=0):
    """Votes PRESENT where the score is at least `value`; ABSENT below it, or abstains there when `low` is None."""
    return lf_create(dataset=dataset, user=dataset.created_by, label_class=dataset.classes.get(name="cat"),
                     name=name, type="pattern", config=at_least(value), low=low, high=1)


def expected(samples, value, two_sided=True, scores=SCORES):
    return {s.id: 1 if v >= value else -1 for s, v in zip(samples, scores, strict=True) if v >= value or two_sided}


def rows(lf):
    return dict(LFVote.objects.filter(lf_id=lf.id).values_list("sample_id", "vote"))


def blobs(lf):
    lf.refresh_from_db()
    present, absent = (np.frombuffer(bytes(b), dtype=np.int64).tolist() for b in (lf.votes_present, lf.votes_absent))
    return {**dict.fromkeys(present, 1), **dict.fromkeys(absent, -1)}


def listed(api, dataset, query):
    return {s["id"] for s in api.get(f"/api/datasets/{dataset.id}/samples/?{query}&limit=100").json()["results"]}


def partition_attached(lf_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'labeling_lfvote'::regclass "
                       "AND inhrelid = to_regclass(%s)", [vote_rows.partition_name(lf_id)])
        return cursor.fetchone()[0] == 1


def agrees(api, dataset, lf, want):
    assert rows(lf) == want and blobs(lf) == want
    ids = {s.id for s in dataset.samples.all()}
    for word, value in (("PRESENT", 1), ("ABSENT", -1)):
        assert listed(api, dataset, f"lf_vote={lf.id}:{word}") == {k for k, v in want.items() if v == value}
    assert listed(api, dataset, f"lf_vote={lf.id}:ABSTAIN") == ids - set(want)
    assert lf_votes_drift(dataset=dataset) == []


def test_first_save_then_edits_refreshes_and_repairs_keep_rows_blobs_and_filters_equal(api, dataset, scored):
    lf = numeric_lf(dataset)
    if connection.vendor == "postgresql":
        assert partition_attached(lf.id)
    agrees(api, dataset, lf, expected(scored, 0.7))

    lf = lf_update(lf=lf, invert=True)  # every vote flips
    agrees(api, dataset, lf, {sample_id: -vote for sample_id, vote in expected(scored, 0.7).items()})

    lf = lf_update(lf=lf, invert=False, config=at_least(0.9), low=None)  # rows deleted and inserted
    agrees(api, dataset, lf, expected(scored, 0.9, two_sided=False))

    changed = scored[:3]
    type(changed[0]).objects.filter(pk=changed[0].pk).update(metadata={"score": 1.0})
    clear_database_caches()  # the metadata column cached under the samples' version, which a raw update keeps
    result = lf_materialize(lf=lf, sample_ids=[s.id for s in changed])
    assert result["rows_written"] == 1 and result["rows_deleted"] == 0
    want = expected(scored, 0.9, two_sided=False, scores=[1.0, *SCORES[1:]])
    agrees(api, dataset, lf, want)

    LFVote.objects.filter(lf_id=lf.id, sample_id=next(iter(want))).delete()  # drift, then the repair
    assert lf_votes_drift(dataset=dataset)
    lf_rematerialize(lf=lf)
    agrees(api, dataset, lf, want)


def test_conflict_filter_reads_every_active_lf_of_the_class(api, dataset, scored):
    high = numeric_lf(dataset, "high", value=0.7)
    low = numeric_lf(dataset, "low", value=0.3)
    disagree = {s.id for s, v in zip(scored, SCORES, strict=True) if 0.3 <= v < 0.7}
    assert disagree and listed(api, dataset, "lf_conflict=cat") == disagree
    lf_update(lf=low, active=False)
    assert listed(api, dataset, "lf_conflict=cat") == set()
    assert rows(high) == expected(scored, 0.7)


def test_an_lf_with_no_votes_has_its_rows_table_and_takes_votes_later(api, dataset, scored):
    lf = numeric_lf(dataset, value=2, low=None)
    assert rows(lf) == {} and vote_rows.has_rows_table(lf.id)
    lf = lf_update(lf=lf, config=at_least(0.7))
    agrees(api, dataset, lf, expected(scored, 0.7, two_sided=False))


@pytest.mark.django_db(transaction=True)
def test_deleting_an_lf_or_its_dataset_removes_rows_and_partitions(dataset, scored):
    first, second = numeric_lf(dataset, "first"), numeric_lf(dataset, "second")
    lf_ids = [first.id, second.id]  # None on the instances once deleted
    with TestCase.captureOnCommitCallbacks(execute=True):
        lf_delete(lf=first)
    assert not LFVote.objects.filter(lf_id=lf_ids[0]).exists()
    assert LFVote.objects.filter(lf_id=lf_ids[1]).count() == len(scored)
    with TestCase.captureOnCommitCallbacks(execute=True):
        dataset_delete(dataset=dataset)
    assert not LFVote.objects.exists()
    if connection.vendor == "postgresql":
        assert not any(vote_rows.has_rows_table(lf_id) for lf_id in lf_ids)


def test_a_lost_partition_is_drift_and_the_repair_builds_it_again(api, dataset, scored):
    if connection.vendor != "postgresql":
        pytest.skip("partitions are Postgres's")
    lf = numeric_lf(dataset)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {vote_rows.partition_name(lf.id)}")
    drifts = lf_votes_drift(dataset=dataset)
    assert [drift.ref for drift in drifts] == [lf.id]
    lf_votes_repair(dataset=dataset, drifts=drifts)
    assert partition_attached(lf.id)
    agrees(api, dataset, lf, expected(scored, 0.7))
