"""Concurrent writers on Postgres: no lost update, complete history, exact counts."""

import threading

import numpy as np
import pytest
from django.db import connection, connections

from imagestudio.annotations.models import Annotation, AnnotationEvent, GroundTruthCount
from imagestudio.annotations.services import counts_rebuild
from tests.conftest import client_for
from tests.factories import make_samples

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need Postgres")


def run_together(*calls):
    """Start every call at the same moment in its own thread (own DB connection); return their results."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_bulk_writers_on_overlapping_samples(postgres_only, owner, dataset, member_client):
    samples = make_samples(dataset, [{"split": "train"} for _ in range(400)])
    ids = [s.id for s in samples]
    first, second = client_for(owner), member_client("annotator")
    url = f"/api/datasets/{dataset.id}/annotations/bulk/"
    for _ in range(3):
        results = run_together(
            lambda: first.post(url, {"sample_ids": ids[:300], "classes": ["cat", "dog"], "value": "PRESENT"},
                               format="json"),
            lambda: second.post(url, {"sample_ids": ids[100:], "classes": ["cat"], "value": "ABSENT"},
                                format="json"),
        )
        assert [r.status_code for r in results] == [200, 200], [r.content for r in results]
    # Every change is in the history: replaying the events per pair ends at the stored value.
    final = {}
    for sample_id, class_id, old, new in AnnotationEvent.objects.order_by("id").values_list(
            "sample_id", "label_class_id", "old_value", "new_value"):
        assert final.get((sample_id, class_id), "ABSTAIN") == old  # each event starts where the last ended
        final[(sample_id, class_id)] = new
    stored = {(a.sample_id, a.label_class_id): a.value for a in Annotation.objects.all()}
    assert stored == final
    cat = dataset.classes.get(name="cat")
    assert {stored[(i, cat.id)] for i in ids[:100]} == {"PRESENT"}
    assert {stored[(i, cat.id)] for i in ids[300:]} == {"ABSENT"}
    live = {(c.label_class_id, c.split): (c.present, c.absent) for c in GroundTruthCount.objects.all()}
    counts_rebuild(dataset=dataset)
    assert live == {(c.label_class_id, c.split): (c.present, c.absent) for c in GroundTruthCount.objects.all()}


def test_same_version_two_writers_one_wins(postgres_only, owner, dataset, member_client):
    sample = make_samples(dataset, [{}])[0]
    url = f"/api/datasets/{dataset.id}/annotations/"
    first, second = client_for(owner), member_client("annotator")
    body = {"sample": sample.id, "label_class": "cat", "version": 0}
    results = run_together(
        lambda: first.put(url, {**body, "value": "PRESENT"}, format="json"),
        lambda: second.put(url, {**body, "value": "ABSENT"}, format="json"),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    winner = next(r for r in results if r.status_code == 200).json()["annotation"]
    assert Annotation.objects.get().value == winner["value"]
    assert AnnotationEvent.objects.count() == 1


def test_concurrent_threshold_edits_of_one_lf(postgres_only, owner, dataset, member_client):
    from imagestudio.labeling.models import LabelingFunction, LFVote

    make_samples(dataset, [{"metadata": {"caption": "cat" if i % 2 else "dog"}} for i in range(40)])
    first = client_for(owner)
    created = first.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "kw", "label_class": "cat", "type": "pattern", "high": 1, "low": 0,
        "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, format="json").json()
    url = f"/api/datasets/{dataset.id}/lfs/{created['id']}/"
    second = member_client("annotator")
    results = run_together(
        lambda: first.patch(url, {"low": None, "version": 1}, format="json"),
        lambda: second.patch(url, {"high": None, "version": 1}, format="json"),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    lf = LabelingFunction.objects.get()
    winner = next(r for r in results if r.status_code == 200).json()
    assert lf.version == 2 and (lf.low, lf.high) == (winner["low"], winner["high"])
    expected = 20  # one side of the two-sided rule was removed: 20 samples still vote
    assert LFVote.objects.filter(lf=lf).count() == expected


def test_large_bulk_uses_copy_and_array_updates_and_stays_exact(postgres_only, owner, dataset):
    from imagestudio.annotations.services import COPY_AT

    samples = make_samples(dataset, [{"split": "train"} for _ in range(COPY_AT + 200)])
    client = client_for(owner)
    url = f"/api/datasets/{dataset.id}/annotations/bulk/"
    ids = [s.id for s in samples]
    for value in ("PRESENT", "ABSENT"):
        body = client.post(url, {"sample_ids": ids, "classes": ["cat"], "value": value}, format="json").json()
        assert body["changed"] == len(ids)
    assert AnnotationEvent.objects.filter(source="bulk").count() == 2 * len(ids)
    assert set(Annotation.objects.values_list("value", "version").distinct()) == {("ABSENT", 2)}
    undone = client.post(f"{url}undo/").json()
    assert undone["reverted"] == len(ids)
    assert set(Annotation.objects.values_list("value", "version").distinct()) == {("PRESENT", 3)}
    live = {(c.label_class_id, c.split): (c.present, c.absent) for c in GroundTruthCount.objects.all()}
    counts_rebuild(dataset=dataset)
    assert live == {(c.label_class_id, c.split): (c.present, c.absent) for c in GroundTruthCount.objects.all()}


def test_parallel_resamples_of_one_split_each_answer_and_one_stands(postgres_only, owner, dataset):
    make_samples(dataset, [{"split": "dev"} for _ in range(40)])
    client, url = client_for(owner), f"/api/datasets/{dataset.id}/samples/resample/"
    results = run_together(*[lambda seed=seed: client.post(url, {"split": "dev", "sample_size": 10, "seed": seed},
                                                           format="json") for seed in range(6)])
    assert [r.status_code for r in results] == [200] * 6, [r.content[:300] for r in results]
    active = client.get(f"{url}?split=dev").json()
    assert active["seed"] in range(6) and active["current"]["total"] == 10
    assert client.get(f"/api/datasets/{dataset.id}/samples/?in_sample=true").json()["count"] == 10


def test_a_label_committed_after_a_later_one_still_reaches_the_ground_truth_cache(postgres_only, owner, dataset):
    """Event ids are taken at insert: a writer that inserted first may commit last. A cache keyed by the newest
    event id would keep, for good, what a reader saw between the two commits."""
    from django.db import transaction

    from imagestudio.annotations.selectors import _labels_of, ground_truth_for
    from imagestudio.annotations.services import annotation_set

    first, second = make_samples(dataset, [{"split": "dev"}, {"split": "valid"}])  # counters of their own
    cat = dataset.classes.get(name="cat")
    ids = np.array([first.id, second.id])
    written, release = threading.Event(), threading.Event()

    def slow_writer():  # inserts its event first, commits last
        try:
            with transaction.atomic():
                annotation_set(dataset=dataset, user=owner, sample=first, label_class=cat, value="PRESENT")
                written.set()
                release.wait(30)
        finally:
            connections.close_all()

    def fast_writer():
        try:
            annotation_set(dataset=dataset, user=owner, sample=second, label_class=cat, value="ABSENT")
        finally:
            connections.close_all()

    slow, fast = threading.Thread(target=slow_writer), threading.Thread(target=fast_writer)
    slow.start()
    assert written.wait(30)
    fast.start()
    fast.join(2)  # commits unless it must wait for the slow one
    ground_truth_for(dataset=dataset, label_class=cat, sample_ids=ids)  # a reader between the commits fills the cache
    release.set()
    slow.join(30)
    fast.join(30)
    expected_ids, expected = _labels_of(cat)
    assert list(ground_truth_for(dataset=dataset, label_class=cat, sample_ids=ids)) == [1, -1]
    assert list(expected_ids) == list(ids) and list(expected) == [1, -1]


@pytest.mark.parametrize("conditional", [False, True], ids=["plain", "if-match"])
def test_owners_demoting_each_other_at_once_never_deadlock(postgres_only, owner, dataset, conditional):
    """Each locked its own row, then every owner's: opposite orders, a deadlock, a 503 'database unavailable'.
    Now one demotion wins; the other is refused as the last owner's (409) or, read after it, as an editor's (403)."""
    from imagestudio.datasets.models import DatasetMembership, Role
    from imagestudio.datasets.services import membership_set
    from tests.conftest import make_user

    second = make_user("second-owner")
    membership_set(dataset=dataset, user=second, role=Role.OWNER)
    rows = {row.user_id: row.pk for row in DatasetMembership.objects.filter(dataset=dataset)}
    first_client, second_client = client_for(owner), client_for(second)
    url = f"/api/datasets/{dataset.id}/members/"
    for _ in range(6):
        DatasetMembership.objects.filter(dataset=dataset).update(role=Role.OWNER)
        # With If-Match the write locked its target row first (ConditionalWritesMixin), then the owners: a deadlock.
        tags = {user_id: first_client.get(f"{url}{row}/")["ETag"] if conditional else None
                for user_id, row in rows.items()}

        def demote(client, user_id):
            headers = {"HTTP_IF_MATCH": tags[user_id]} if conditional else {}
            return lambda: client.patch(f"{url}{rows[user_id]}/", {"role": "editor"}, format="json", **headers)

        answers = run_together(demote(first_client, second.id), demote(second_client, owner.id))
        refused = [answer for answer in answers if answer.status_code != 200]
        assert len(refused) == 1, [a.content for a in answers]
        assert (refused[0].status_code, refused[0].json()["code"]) in ((409, "last_owner"), (403, "permission_denied"))
        assert DatasetMembership.objects.filter(dataset=dataset, role=Role.OWNER).count() == 1


def test_an_owner_demoted_while_its_request_waited_changes_no_one(postgres_only, owner, dataset):
    """Three owners: B's request passed its role check, then A demoted B; B's request went on and demoted C. Now the
    caller's role is read again under the members' lock."""
    from imagestudio.datasets.models import DatasetMembership, Role
    from imagestudio.datasets.services import membership_set
    from tests.conftest import make_user

    second, third = make_user("owner-b"), make_user("owner-c")
    for user in (second, third):
        membership_set(dataset=dataset, user=user, role=Role.OWNER)
    rows = {row.user_id: row.pk for row in DatasetMembership.objects.filter(dataset=dataset)}
    url = f"/api/datasets/{dataset.id}/members/"
    checked, release = threading.Event(), threading.Event()
    first_client, second_client = client_for(owner), client_for(second)

    import api.views.datasets as views

    real, b_thread = views.services.memberships_locked, []

    def after_role_check(**kwargs):  # B's role was checked (initial()); A demotes B before B locks
        if threading.current_thread() in b_thread:
            checked.set()
            release.wait(10)
        return real(**kwargs)

    def demote_c_as_b():
        b_thread.append(threading.current_thread())
        return second_client.patch(f"{url}{rows[third.id]}/", {"role": "editor"}, format="json")

    def demote_b_as_a():
        checked.wait(10)
        try:
            return first_client.patch(f"{url}{rows[second.id]}/", {"role": "editor"}, format="json")
        finally:
            release.set()

    views.services.memberships_locked = after_role_check
    try:
        by_b, by_a = run_together(demote_c_as_b, demote_b_as_a)
    finally:
        views.services.memberships_locked = real
    assert by_a.status_code == 200 and by_b.status_code == 403, (by_a.content, by_b.content)
    roles = dict(DatasetMembership.objects.filter(dataset=dataset).values_list("user_id", "role"))
    assert roles == {owner.id: Role.OWNER, second.id: Role.EDITOR, third.id: Role.OWNER}
