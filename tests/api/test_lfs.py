"""Labeling functions through the HTTP API, with the numbers checked against independent computations."""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.metrics import precision_score, recall_score

from imagestudio.datasets.models import Role, Sample
from imagestudio.datasets.services import dataset_create
from imagestudio.labeling.models import LFVote
from tests.conftest import png_bytes
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

CAPTIONS = ["a cat on a mat", "a dog", "cat and dog", "a bird", "the cat", "concatenate", "", "a dog and a cat",
            "two birds", "cat"]
TRUTH = ["PRESENT", "ABSENT", "PRESENT", "ABSENT", "PRESENT", "ABSENT", None, None, "ABSENT", "PRESENT"]


@pytest.fixture
def captioned(dataset):
    specs = [{"split": "dev", "metadata": {"caption": c, "n": i}, "gt": {"cat": t} if t else {}}
             for i, (c, t) in enumerate(zip(CAPTIONS, TRUTH, strict=True))]
    return make_samples(dataset, specs)


def keyword_rule(**extra):
    return {"label_class": "cat", "type": "pattern", "low": 0, "high": 1,
            "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}, **extra}


def test_pattern_preview_numbers_match_an_independent_computation(api, dataset, captioned):
    response = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**keyword_rule(), "split": "dev", "bins": 2},
                        format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    matched = np.array([" cat " in f" {c} " for c in CAPTIONS])
    truth = np.array([{"PRESENT": 1, "ABSENT": -1, None: 0}[t] for t in TRUTH])
    labeled = truth != 0
    assert body["population"] == 10
    metrics = body["metrics"]
    assert metrics["present"]["precision"]["value"] == pytest.approx(
        precision_score(truth[labeled] == 1, matched[labeled]))
    assert metrics["present"]["recall"]["value"] == pytest.approx(recall_score(truth[labeled] == 1, matched[labeled]))
    assert metrics["absent"]["precision"]["value"] == pytest.approx(
        precision_score(truth[labeled] == -1, ~matched[labeled]))
    assert metrics["coverage"]["value"] == 1.0  # two-sided: every sample votes
    assert metrics["votes"] == {"present": int(matched.sum()), "absent": int((~matched).sum()), "abstain": 0}
    lo, hi = metrics["present"]["precision"]["interval"]
    assert 0 <= lo <= metrics["present"]["precision"]["value"] <= hi <= 1
    assert sum(body["histogram"]["counts"]["present"]) == 4 and sum(body["histogram"]["counts"]["unlabeled"]) == 2
    assert body["top"][0]["score"] == 1.0 and body["top"][0]["vote"] == "PRESENT"
    assert body["suggested"]["high"]["best_f1"]["threshold"] == 1.0


def test_one_sided_and_inverted(api, dataset, captioned):
    url = f"/api/datasets/{dataset.id}/lfs/preview/"
    one_sided = api.post(url, {**keyword_rule(low=None)}, format="json").json()
    assert one_sided["metrics"]["votes"]["absent"] == 0 and one_sided["metrics"]["coverage"]["value"] == 0.5
    inverted = api.post(url, {**keyword_rule(), "invert": True}, format="json").json()
    assert inverted["metrics"]["votes"]["present"] == one_sided["metrics"]["votes"]["abstain"]


@pytest.mark.parametrize("invert", [False, True])
def test_preview_without_thresholds_sweeps_every_edge_as_the_point_figures_count(api, dataset, captioned, invert):
    url = f"/api/datasets/{dataset.id}/lfs/preview/"
    rule = {**keyword_rule(low=None, high=None), "invert": invert, "split": "dev", "bins": 4}
    response = api.post(url, rule, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["metrics"]["votes"]["abstain"] == 10
    assert body["suggested"]["low" if invert else "high"]["best_f1"] is not None  # the PRESENT side's
    edges, sweep = body["histogram"]["edges"], body["sweep"]
    assert len(edges) == 5 and all(len(sweep[side][key]) == 5 for side in ("present", "absent")
                                   for key in ("votes", "labeled", "correct", "precision", "recall", "coverage"))
    for side in ("present", "absent"):
        arrays = sweep[side]
        threshold = "high" if arrays["operator"] == ">=" else "low"
        assert (threshold == "high") != (invert == (side == "present"))
        for j, edge in enumerate(edges):
            point = api.post(url, {**rule, threshold: edge}, format="json").json()["metrics"]
            assert arrays["votes"][j] == point["votes"][side]
            assert arrays["coverage"][j] == point["coverage"]["value"]
            assert arrays["precision"][j] == point[side]["precision"]["value"]
            assert arrays["recall"][j] == point[side]["recall"]["value"]
            assert arrays["correct"][j] == point[side]["precision"]["successes"]


def test_a_saved_lf_needs_a_threshold(api, dataset, captioned):
    response = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(low=None, high=None), "name": "none"},
                        format="json")
    assert response.status_code == 400 and "threshold" in str(response.json())
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "cat"}, format="json").json()
    edit = api.patch(f"/api/datasets/{dataset.id}/lfs/{lf['id']}/", {"low": None, "high": None}, format="json")
    assert edit.status_code == 400 and "threshold" in str(edit.json())


def test_split_without_ground_truth_gives_null_rates_with_reason(api, dataset, captioned):
    body = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**keyword_rule(), "split": "test"},
                    format="json").json()
    assert body["population"] == 0 and body["metrics"]["present"]["precision"]["value"] is None
    assert "ground truth" in body["metrics"]["reason"]


def test_create_materializes_votes_filters_and_detail(api, dataset, captioned):
    created = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "says cat"}, format="json")
    assert created.status_code == 201, created.content
    lf = created.json()
    assert lf["votes"] == {"present": 5, "absent": 5} and lf["version"] == 1
    assert LFVote.objects.filter(lf_id=lf["id"]).count() == 10
    listed = api.get(f"/api/datasets/{dataset.id}/samples/?lf_vote={lf['id']}:PRESENT").json()
    assert sorted(r["metadata"]["caption"] for r in listed["results"]) == sorted(
        c for c in CAPTIONS if " cat " in f" {c} ")
    detail = api.get(f"/api/datasets/{dataset.id}/samples/{captioned[0].id}/").json()
    assert detail["votes"] == [{"lf": lf["id"], "name": "says cat", "label_class": "cat", "vote": "PRESENT"}]
    dog = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "says dog", "low": None,
                   "invert": True, "config": {"field": "caption", "builder": "keyword", "words": ["dog"]}},
                   format="json").json()
    assert dog["votes"] == {"present": 0, "absent": 3}
    conflicts = api.get(f"/api/datasets/{dataset.id}/samples/?lf_conflict=cat").json()
    assert sorted(r["metadata"]["caption"] for r in conflicts["results"]) == ["a dog and a cat", "cat and dog"]
    summary = api.get(f"/api/datasets/{dataset.id}/lfs/summary/?label_class=cat").json()["lfs"]
    assert [row["conflicts"]["successes"] for row in summary] == [2, 2]
    # an inactive LF is no one's conflict (as for the filter and the label model), though it has its own
    assert api.patch(f"/api/datasets/{dataset.id}/lfs/{dog['id']}/", {"active": False}, format="json").status_code == 200
    assert api.get(f"/api/datasets/{dataset.id}/samples/?lf_conflict=cat").json()["count"] == 0
    summary = api.get(f"/api/datasets/{dataset.id}/lfs/summary/?label_class=cat").json()["lfs"]
    assert [(row["active"], row["conflicts"]["successes"], row["overlaps"]["successes"]) for row in summary] == [
        (True, 0, 0), (False, 2, 3)]
    assert api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "says cat"},
                    format="json").status_code == 409


def test_an_edit_that_changes_nothing_keeps_the_version(api, dataset, captioned):
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "cat"}, format="json").json()
    url = f"/api/datasets/{dataset.id}/lfs/{lf['id']}/"
    for body in ({}, {"name": "cat"}, {"high": lf["high"], "low": lf["low"], "invert": False},
                 {"config": lf["config"], "active": True}):
        same = api.patch(url, body, format="json")
        assert same.status_code == 200 and same.json()["version"] == 1, (body, same.content)
    assert api.patch(url, {"name": "kitty"}, format="json", HTTP_IF_MATCH='"1"').json()["version"] == 2


def test_threshold_edit_rematerializes_and_stale_edits_conflict(api, dataset, captioned):
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "cat"}, format="json").json()
    url = f"/api/datasets/{dataset.id}/lfs/{lf['id']}/"
    edited = api.patch(url, {"low": None, "version": 1}, format="json")
    assert edited.status_code == 200 and edited.json()["votes"] == {"present": 5, "absent": 0}
    assert edited.json()["version"] == 2 and edited["ETag"].startswith('"2.')
    stale = api.patch(url, {"high": 0.5, "version": 1}, format="json")
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict" and stale.json()["version"] == 2
    assert api.patch(url, {"active": False}, format="json", HTTP_IF_MATCH='"1"').status_code == 412
    off = api.patch(url, {"active": False}, format="json", HTTP_IF_MATCH='"2"').json()
    assert off["active"] is False and off["votes"] == {"present": 5, "absent": 0}
    assert api.get(f"/api/datasets/{dataset.id}/lfs/?active=false").json()["count"] == 1
    assert api.delete(url).status_code == 204
    assert not LFVote.objects.exists()


@pytest.mark.parametrize("change, field", [
    ({"low": 2, "high": 1}, "low"),
    ({"label_class": "unicorn"}, "label_class"),
    ({"type": "telepathy"}, "type"),
    ({"config": {"field": "caption", "builder": "regex", "pattern": "(open"}}, "config"),
    ({"config": {"field": "nosuchfield", "builder": "keyword", "words": ["x"]}}, "field"),
    ({"config": {"field": "caption", "builder": "keyword", "words": []}}, "config"),
    ({"type": "model", "config": {"model_id": 1}}, "config"),
    ({"type": "similarity_image", "config": {"sample_id": 999999}}, "config"),
    ({"type": "similarity_patch", "config": {"sample_id": "FIRST", "box": [0, 0, 5]}}, "config"),
    ({"type": "similarity_text", "config": {"text": ""}}, "config"),
    ({"bins": 0}, "bins"),
    ({"bins": 10_000}, "bins"),
    ({"split": "holdout"}, "split"),
])
def test_bad_previews_are_400(api, dataset, captioned, change, field):
    body = {**keyword_rule(), **change}
    if body["config"].get("sample_id") == "FIRST":
        body["config"]["sample_id"] = captioned[0].id
    response = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", body, format="json")
    assert response.status_code == 400 and field in str(response.json()), response.content


def test_pathological_regex_is_refused(api, dataset):
    make_samples(dataset, [{"metadata": {"caption": "a" * 60 + "b"}} for _ in range(40)])
    body = {**keyword_rule(), "config": {"field": "caption", "builder": "regex", "pattern": "(a|aa)+(?=c)"}}
    response = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", body, format="json")
    assert response.status_code == 400 and "too long" in str(response.json())


def test_class_and_sample_of_another_dataset(api, owner, dataset, captioned):
    other = dataset_create(user=owner, name="Other", classes=["zebra"])
    other_sample = make_samples(other, [{}])[0]
    url = f"/api/datasets/{dataset.id}/lfs/preview/"
    assert api.post(url, {**keyword_rule(), "label_class": str(other.classes.get().id)},
                    format="json").status_code == 400
    assert api.post(url, {**keyword_rule(), "type": "similarity_image", "config": {"sample_id": other_sample.id}},
                    format="json").status_code == 400


def test_roles(dataset, captioned, member_client):
    viewer = member_client(Role.VIEWER)
    assert viewer.post(f"/api/datasets/{dataset.id}/lfs/preview/", keyword_rule(), format="json").status_code == 200
    assert viewer.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "x"},
                       format="json").status_code == 403
    annotator = member_client(Role.ANNOTATOR)
    assert annotator.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "x"},
                          format="json").status_code == 201


def test_summary_matches_a_recount(api, dataset, captioned):
    cat = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(low=None), "name": "cat"},
                   format="json").json()
    dog = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(high=None, low=0.5), "name": "no dog",
                   "invert": False, "config": {"field": "caption", "builder": "keyword", "words": ["dog"]}},
                   format="json").json()
    body = api.get(f"/api/datasets/{dataset.id}/lfs/summary/?split=dev&label_class=cat").json()
    rows = {row["lf"]: row for row in body["lfs"]}
    has_cat = np.array([" cat " in f" {c} " for c in CAPTIONS])
    no_dog = np.array([" dog " not in f" {c} " for c in CAPTIONS])  # score 0 <= 0.5: votes ABSENT
    truth = np.array([{"PRESENT": 1, "ABSENT": -1, None: 0}[t] for t in TRUTH])
    assert rows[cat["id"]]["polarity"] == ["PRESENT"] and rows[dog["id"]]["polarity"] == ["ABSENT"]
    assert rows[cat["id"]]["coverage"]["value"] == pytest.approx(has_cat.mean())
    assert rows[cat["id"]]["overlaps"]["value"] == pytest.approx((has_cat & no_dog).mean())
    assert rows[cat["id"]]["conflicts"]["value"] == pytest.approx((has_cat & no_dog).mean())
    labeled = no_dog & (truth != 0)
    assert rows[dog["id"]]["precision"]["value"] == pytest.approx((truth[labeled] == -1).mean())
    assert body["samples"] == 10


@pytest.mark.django_db(transaction=True)
def test_similarity_lfs_with_embeddings(api, dataset, tiny_clip):
    from imagestudio.embeddings.models import Embedding
    from imagestudio.embeddings.store import encoder_for

    url = f"/api/datasets/{dataset.id}/lfs/preview/"
    files = [SimpleUploadedFile(f"{i}.png", png_bytes((i * 40, 255 - i * 40, 90), size=(64, 64)),
                                content_type="image/png") for i in range(6)]
    api.post(f"/api/datasets/{dataset.id}/imports/", {"files": files}, format="multipart")
    first = Sample.objects.order_by("id").first()
    rule = {"label_class": "cat", "type": "similarity_image", "config": {"sample_id": first.id}, "high": 0.5}
    missing = api.post(url, rule, format="json")
    assert missing.status_code == 409 and "embeddings" in missing.json()["detail"]
    api.post(f"/api/datasets/{dataset.id}/embeddings/", {}, format="json")
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": first.id, "label_class": "cat",
                                                         "value": "PRESENT"}, format="json")
    body = api.post(url, {**rule, "top": 6}, format="json").json()
    vectors = {e.sample_id: np.frombuffer(e.vector, np.float16).astype(np.float32) for e in Embedding.objects.all()}
    expected = {sid: float(v @ vectors[first.id]) for sid, v in vectors.items()}
    for hit in body["top"]:
        assert hit["score"] == pytest.approx(expected[hit["sample_id"]], abs=3e-3)
    assert body["metrics"]["present"]["recall"]["value"] == 1.0  # the query image itself scores 1
    text = api.post(url, {**rule, "type": "similarity_text", "config": {"text": "green"}}, format="json").json()
    encoder, _ = encoder_for("open_clip")
    query = encoder.encode_texts(["green"])[0][0]
    top = text["top"][0]
    assert top["score"] == pytest.approx(float(vectors[top["sample_id"]] @ query), abs=3e-3)
    patch = api.post(url, {**rule, "type": "similarity_patch", "config": {"sample_id": first.id,
                                                                           "box": [0, 0, 32, 32]}}, format="json")
    assert patch.status_code == 200 and patch.json()["population"] == 6
    outside = api.post(url, {**rule, "type": "similarity_patch", "config": {"sample_id": first.id,
                                                                             "box": [0, 0, 65, 10]}}, format="json")
    assert outside.status_code == 400
    saved = api.post(f"/api/datasets/{dataset.id}/lfs/", {**rule, "name": "like first"}, format="json").json()
    assert saved["votes"]["present"] >= 1 and saved["encoder"].startswith("open_clip:")
    more = [SimpleUploadedFile("new.png", png_bytes((1, 2, 3), size=(64, 64)), content_type="image/png")]
    imported = api.post(f"/api/datasets/{dataset.id}/imports/", {"files": more}, format="multipart")
    result = api.get(imported["Location"]).json()["result"]
    assert api.get(f"/api/jobs/{result['lf_refresh_job']}/").json()["status"] == "succeeded"
    # the new sample has no embedding yet: the preview counts it, abstaining, as the saved LF's summary does
    assert Embedding.objects.count() == 6
    preview = api.post(url, rule, format="json").json()
    summary = api.get(f"/api/datasets/{dataset.id}/lfs/summary/?label_class=cat").json()["lfs"]
    coverage = next(row["coverage"] for row in summary if row["lf"] == saved["id"])
    assert (preview["population"], preview["unscored"]) == (7, 1)
    assert preview["metrics"]["coverage"] == coverage and coverage["value"] == saved["votes"]["present"] / 7


def test_rematerializing_writes_only_the_votes_that_changed(api, dataset, captioned):
    from imagestudio.labeling.services import lf_materialize

    lf_id = api.post(f"/api/datasets/{dataset.id}/lfs/", {**keyword_rule(), "name": "cat"}, format="json").json()["id"]
    from imagestudio.labeling.models import LabelingFunction

    lf = LabelingFunction.objects.select_related("dataset", "label_class").get(pk=lf_id)
    unchanged = lf_materialize(lf=lf)
    assert (unchanged["rows_deleted"], unchanged["rows_written"]) == (0, 0)
    api.patch(f"/api/datasets/{dataset.id}/lfs/{lf_id}/", {"invert": True}, format="json")
    rows = dict(LFVote.objects.filter(lf_id=lf_id).values_list("sample_id", "vote"))
    expected = {s.id: (-1 if " cat " in f" {c} " else 1) for s, c in zip(captioned, CAPTIONS, strict=True)}
    assert rows == expected
    api.patch(f"/api/datasets/{dataset.id}/lfs/{lf_id}/", {"low": None}, format="json")
    assert dict(LFVote.objects.filter(lf_id=lf_id).values_list("sample_id", "vote")) == {
        sid: v for sid, v in expected.items() if v == -1}


def test_a_numeric_pattern_says_how_many_values_are_not_numbers(api, dataset):
    make_samples(dataset, [{"metadata": {"v": value}} for value in ("a cat", "12", 7, True, None)] + [{"metadata": {}}])
    preview = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {
        "label_class": "cat", "type": "pattern", "high": 1,
        "config": {"field": "v", "builder": "numeric", "op": ">", "value": 4}}, format="json").json()
    assert preview["not_numbers"] == 2  # "a cat" and true; "12" reads as a number, null and absent are no value
    keyword = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {
        "label_class": "cat", "type": "pattern", "high": 1,
        "config": {"field": "v", "builder": "keyword", "words": ["cat"]}}, format="json").json()
    assert "not_numbers" not in keyword
