"""Derived data follow the data they come from: LF votes after a metadata edit, split-dependent arrays (the
embedding matrix, metadata columns) after a split move."""

import pytest
from django.db import connection

from imagestudio.demo.integrity import integrity_check
from imagestudio.jobs.models import Job
from tests.api.test_embeddings import COLOURS, embed, ingest
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)


def test_votes_follow_a_caption_edit(api, dataset):
    samples = make_samples(dataset, [{"metadata": {"caption": "a cat"}}, {"metadata": {"caption": "a cat too"}}])
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "says cat", "label_class": "cat", "type": "pattern", "high": 0.5,
        "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, format="json").json()
    voted = f"/api/datasets/{dataset.id}/samples/?lf_vote={lf['id']}:PRESENT"
    assert api.get(voted).json()["count"] == 2
    edited = api.patch(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/", {"metadata": {"caption": "a dog"}},
                       format="json")
    assert edited.status_code == 200 and edited.json()["votes"] == []
    assert [row["id"] for row in api.get(voted).json()["results"]] == [samples[1].id]
    preview = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {
        "label_class": "cat", "type": "pattern", "high": 0.5,
        "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, format="json").json()
    # the saved LF and a preview of the same rule agree
    assert {row["sample_id"]: row["vote"] for row in preview["top"]} == {samples[0].id: "ABSTAIN",
                                                                         samples[1].id: "PRESENT"}


def test_a_vote_the_refresh_cannot_recompute_is_withdrawn_and_the_lf_says_why(api, dataset):
    samples = make_samples(dataset, [{"metadata": {"caption": "a dog"}}, {"metadata": {"caption": "a dog"}}])
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "slow on a's", "label_class": "cat", "type": "pattern", "high": 1,
        "config": {"field": "caption", "builder": "regex", "pattern": r"(a+)+\1b|^a dog$"}}, format="json").json()
    assert lf["votes"] == {"present": 2, "absent": 0} and lf["refresh_error"] == ""
    # the new caption takes the pattern past its time budget: the old PRESENT vote no longer describes the sample
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/", {"metadata": {"caption": "a" * 9990 + "!"}},
                     format="json").status_code == 200
    now = api.get(f"/api/datasets/{dataset.id}/lfs/{lf['id']}/").json()
    assert now["votes"] == {"present": 1, "absent": 0} and "too long" in now["refresh_error"]
    voted = api.get(f"/api/datasets/{dataset.id}/samples/?lf_vote={lf['id']}:PRESENT").json()
    assert [row["id"] for row in voted["results"]] == [samples[1].id]
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{samples[1].id}/", {"metadata": {"caption": "a dog!"}},
                     format="json").status_code == 200  # another sample's refresh does not score the first
    assert api.get(f"/api/datasets/{dataset.id}/lfs/{lf['id']}/").json()["refresh_error"] == now["refresh_error"]
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/", {"metadata": {"caption": "a dog"}},
                     format="json").status_code == 200
    again = api.patch(f"/api/datasets/{dataset.id}/lfs/{lf['id']}/", {}, format="json").json()  # scored again
    assert again["votes"] == {"present": 1, "absent": 0} and again["refresh_error"] == ""
    assert again["version"] == lf["version"]  # the rule did not change


def test_split_moves_reach_the_cached_matrix_and_columns(api, dataset, tiny_clip):
    ingest(api, dataset, COLOURS[:4])
    embed(api, dataset)
    url = f"/api/datasets/{dataset.id}/lfs/preview/"
    text_rule = {"label_class": "cat", "type": "similarity_text", "config": {"text": "red"}, "high": 0.0,
                 "split": "dev"}
    pattern_rule = {"label_class": "cat", "type": "pattern", "high": 0.5, "split": "dev",
                    "config": {"field": "width", "builder": "numeric", "op": ">", "value": 0}}
    assert api.post(url, text_rule, format="json").json()["population"] == 0
    assert api.post(url, pattern_rule, format="json").json()["population"] == 0  # fills both caches
    moved = api.get(f"/api/datasets/{dataset.id}/samples/?limit=1").json()["results"][0]["id"]
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{moved}/", {"split": "dev"}, format="json").status_code == 200
    assert api.post(url, text_rule, format="json").json()["population"] == 1
    assert api.post(url, pattern_rule, format="json").json()["population"] == 1
    hits = api.post(f"/api/datasets/{dataset.id}/embeddings/search/", {"text": "red", "split": "dev"},
                    format="json").json()["results"]
    assert [hit["sample_id"] for hit in hits] == [moved]


def test_a_field_removed_from_every_sample_refreshes_votes_to_misses(api, dataset):
    rule = {"name": "not a pet", "label_class": "cat", "type": "pattern", "invert": True, "low": 0, "high": 1,
            "config": {"field": "caption", "builder": "keyword", "words": ["cat", "dog"]}}
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", rule, format="json").json()  # on an empty dataset
    sample = make_samples(dataset, [{"metadata": {"caption": "cat cat cat"}}])[0]
    voted = f"/api/datasets/{dataset.id}/samples/?lf_vote={lf['id']}:"
    assert api.get(voted + "ABSENT").json()["count"] == 1
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{sample.id}/", {"metadata": {}}, format="json").status_code == 200
    assert api.get(voted + "PRESENT").json()["count"] == 1  # a missing field is a miss, inverted: PRESENT
    # a new rule on a field no sample has is still refused where it is written
    refused = api.post(f"/api/datasets/{dataset.id}/lfs/", {**rule, "name": "other"}, format="json")
    assert refused.status_code == 400 and "caption" in str(refused.json())


def test_a_training_set_of_no_samples_is_refused(api, dataset):
    rule = {"name": "kw", "label_class": "cat", "type": "pattern", "high": 1,
            "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}
    assert api.post(f"/api/datasets/{dataset.id}/lfs/", rule, format="json").status_code == 201
    refused = api.post(f"/api/datasets/{dataset.id}/training-sets/", {}, format="json")
    assert refused.status_code == 400 and "splits" in refused.json()


def vote_rows(lf_id):
    """{sample id: (vote, the row version)}: xmin changes when a row is written again."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sample_id, vote, xmin::text FROM labeling_lfvote WHERE lf_id = %s", [lf_id])
        return {sample_id: (vote, version) for sample_id, vote, version in cursor.fetchall()}


def test_a_metadata_edit_reapplies_the_pattern_lfs_to_the_edited_sample_alone(api, dataset):
    if connection.vendor != "postgresql":
        pytest.skip("row versions (xmin) are Postgres's")
    samples = make_samples(dataset, [{"metadata": {"caption": c}} for c in ("cat", "cat", "dog", "cat", "")])
    lfs = [api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": name, "label_class": "cat", "type": "pattern", "low": 0, "high": 1,
        "config": {"field": "caption", "builder": "keyword", "words": [word]}}, format="json").json()["id"]
        for name, word in (("says cat", "cat"), ("says dog", "dog"))]
    before = {lf: vote_rows(lf) for lf in lfs}
    edited = samples[1].id
    response = api.patch(f"/api/datasets/{dataset.id}/samples/{edited}/", {"metadata": {"caption": "dog"}},
                         format="json")
    assert response.status_code == 200
    job = Job.objects.get(kind="lf_votes")
    assert job.status == "succeeded" and job.params == {"sample_ids": [edited]}
    assert {int(lf): result["scored"] for lf, result in job.result["refreshed"].items()} == {lf: 1 for lf in lfs}
    for lf in lfs:
        after = vote_rows(lf)
        assert {s: row for s, row in after.items() if s != edited} == {s: row for s, row in before[lf].items()
                                                                         if s != edited}
        assert after[edited][0] == -before[lf][edited][0]  # its vote flipped, in a row written again
    assert integrity_check(datasets=[dataset]).clean
