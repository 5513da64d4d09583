"""Training sets (label model over LF votes) and fast models, through the HTTP API and the jobs."""

import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.datasets.models import LabelClass, Sample
from imagestudio.labeling.label_choice import CANDIDATES, label_class_votes
from imagestudio.labeling.models import LabelingFunction
from imagestudio.labeling.selectors import vote_array
from imagestudio.training.fitting import C_GRID
from imagestudio.training.models import FastModel, Prediction
from imagestudio.training.selectors import artifact_arrays
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

SPLITS = ["train"] * 30 + ["dev"] * 10 + ["valid"] * 10


@pytest.fixture
def world(api, dataset, tiny_clip):
    rng = np.random.default_rng(0)
    files, manifest = [], ["file,split,colour,gt:cat"]
    for i, split in enumerate(SPLITS):
        red = i % 2 == 0
        colour = (200 + int(rng.integers(0, 50)), int(rng.integers(0, 60)), 20) if red else (
            20, int(rng.integers(0, 60)), 200 + int(rng.integers(0, 50)))
        name = f"{i}.png"
        files.append(SimpleUploadedFile(name, png_bytes(colour, size=(48, 48)), content_type="image/png"))
        truth = ("PRESENT" if red else "ABSENT") if split != "train" or i % 3 == 0 else ""
        # the caption is right 80% of the time: the LF is useful but imperfect
        said = ("red" if red else "blue") if rng.random() < 0.8 else ("blue" if red else "red")
        manifest.append(f"{name},{split},{said},{truth}")
    response = api.post(f"/api/datasets/{dataset.id}/imports/",
                        {"files": files, "manifest": SimpleUploadedFile("m.csv", "\n".join(manifest).encode())},
                        format="multipart")
    assert api.get(response["Location"]).json()["result"]["created"] == 50
    assert api.post(f"/api/datasets/{dataset.id}/embeddings/", {}, format="json").status_code == 202
    for name, words, low, high in (("says red", ["red"], None, 1), ("says blue", ["blue"], None, 1)):
        body = {"name": name, "label_class": "cat", "type": "pattern", "low": low, "high": high,
                "invert": name == "says blue",
                "config": {"field": "colour", "builder": "keyword", "words": words}}
        assert api.post(f"/api/datasets/{dataset.id}/lfs/", body, format="json").status_code == 201
    return dataset


def build(api, dataset, **body):
    response = api.post(f"/api/datasets/{dataset.id}/training-sets/", body, format="json")
    assert response.status_code == 202, response.content
    job = api.get(response["Location"]).json()
    assert job["status"] == "succeeded", job
    return api.get(f"/api/datasets/{dataset.id}/training-sets/{job['result']['training_set']}/").json()


def independent_scores(dataset, model_id):
    """Decision function per sample id from the model's stored coefficients and the stored float16 vectors."""
    from imagestudio.embeddings.models import Embedding
    from imagestudio.training.models import FastModel
    from imagestudio.training.selectors import artifact_arrays

    arrays = artifact_arrays(FastModel.objects.get(pk=model_id))
    coef, intercept = arrays["coef"][0].astype(np.float64), float(arrays["intercept"][0])
    return {e.sample_id: float(np.frombuffer(bytes(e.vector), dtype=np.float16).astype(np.float64) @ coef + intercept)
            for e in Embedding.objects.filter(sample__dataset=dataset)}


def test_training_set_snapshot_labels_and_provenance(api, world):
    dataset = world
    ts = build(api, dataset)
    assert ts["ready"] and ts["samples"] == 50 and len(ts["snapshot"]["lfs"]) == 2
    again = api.post(f"/api/datasets/{dataset.id}/training-sets/", {}, format="json")
    assert again.status_code == 200 and again.json()["id"] == ts["id"]  # same inputs, same snapshot
    report = ts["report"]["cat"]
    assert report["chosen"] in CANDIDATES
    assert set(report["candidates"]) == set(CANDIDATES)
    assert all(set(figures) == {"dev", "valid"} for figures in report["candidates"].values())
    # every candidate is scored on the same dev samples; valid figures on the valid labels
    assert {figures["dev"]["scored"] for figures in report["candidates"].values()} == {SPLITS.count("dev")}
    assert {figures["valid"]["scored"] for figures in report["candidates"].values()} == {SPLITS.count("valid")}
    assert report["calibration"]["valid"]["count"] == report["candidates"]["majority_vote"]["valid"]["scored"]
    assert report["calibration"]["map"]["method"] == "platt" and report["calibration"]["map"]["slope"] >= 0
    assert {lf["name"] for lf in report["lfs"]} == {"says red", "says blue"}
    # independent computation: the label model on the same votes
    ids = np.array(sorted(Sample.objects.values_list("id", flat=True)))
    lfs = list(LabelingFunction.objects.order_by("id"))
    votes = np.stack([vote_array(lf, ids) for lf in lfs], axis=1)
    dev = np.array([s == "dev" for s in SPLITS])
    from imagestudio.annotations.selectors import ground_truth_for

    truth = ground_truth_for(dataset=dataset, label_class=dataset.classes.get(name="cat"), sample_ids=ids)
    expected = label_class_votes(votes, truth, dev).labels
    page = api.get(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/labels/?limit=50").json()
    assert page["count"] == 50
    for row in page["results"]:
        k = int(np.searchsorted(ids, row["sample_id"]))
        cat = row["classes"]["cat"]
        assert cat["probability"] == pytest.approx(float(expected.probability[k]), abs=1e-5)
        assert cat["label"] == {1: "PRESENT", -1: "ABSENT", 0: "ABSTAIN"}[int(expected.label[k])]
        assert set(cat["provenance"].values()) <= {"PRESENT", "ABSENT"} and cat["provenance"]
    assert row["classes"]["dog"]["label"] == "ABSTAIN"  # no LF for dog
    dev_page = api.get(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/labels/?split=dev").json()
    assert dev_page["count"] == 10 and {r["split"] for r in dev_page["results"]} == {"dev"}


def test_lf_change_gives_a_new_snapshot(api, world):
    dataset = world
    first = build(api, dataset)
    lf = LabelingFunction.objects.first()
    api.patch(f"/api/datasets/{dataset.id}/lfs/{lf.id}/", {"active": False}, format="json")
    assert build(api, dataset)["id"] != first["id"]


def test_fast_model_metrics_predictions_filters_and_model_lf(api, world):
    dataset = world
    build(api, dataset)
    response = api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"], "negative_ratio": 3},
                        format="json")
    assert response.status_code == 202, response.content
    job = api.get(response["Location"]).json()
    assert job["status"] == "succeeded", job
    model = api.get(f"/api/datasets/{dataset.id}/models/{job['result']['model']}/").json()
    assert model["ready"] and model["version"] == 1
    valid = model["metrics"]["cat"]["valid"]
    assert valid["labeled"] == 10 and set(valid["confusion"]) == {"tp", "fp", "fn", "tn"}
    assert sum(valid["confusion"].values()) == 10 and valid["roc_auc"] is not None
    assert model["params"]["space"] == "visual"  # open_clip serves it from its joint vectors
    # the ceiling: the same features on the ground truth of train (every third sample) and dev, same valid rows
    ceiling = model["metrics"]["cat"]["ceiling"]
    assert ceiling["trained_on"] == 10 + 10 and ceiling["valid"]["labeled"] == 10
    assert set(ceiling["cv_f1_by_C"]) == set(map(str, C_GRID)) and str(ceiling["C"]) in ceiling["cv_f1_by_C"]
    predictions = api.get(f"/api/datasets/{dataset.id}/models/{model['id']}/predictions/?limit=100").json()
    assert predictions["count"] == 50
    rows = {r["sample_id"]: r for r in predictions["results"]}
    # independent computation: the stored coefficients on the float32 embeddings
    expected = independent_scores(dataset, model["id"])
    from imagestudio.training.models import FastModel
    from imagestudio.training.selectors import artifact_arrays

    coef_norm = float(np.linalg.norm(artifact_arrays(FastModel.objects.get(pk=model["id"]))["coef"][0]))
    for sample_id, row in rows.items():
        # in the bfloat16 precision of the scan matrix (embeddings/matrix.py): within 2^-8 of the coefficients' norm
        assert row["score"] == pytest.approx(expected[sample_id], abs=coef_norm / 256)
        assert row["probability"] == pytest.approx(1 / (1 + np.exp(-row["score"])), abs=1e-6)
        assert row["label"] == ("PRESENT" if row["score"] >= 0 else "ABSENT")
    # the database holds the PRESENT rows only; ABSENT is the rest of the scored range
    present = {r["sample_id"] for r in rows.values() if r["label"] == "PRESENT"}
    assert set(Prediction.objects.filter(model_id=model["id"]).values_list("sample_id", flat=True)) == present
    for word in ("PRESENT", "ABSENT"):
        listed = api.get(f"/api/datasets/{dataset.id}/samples/?prediction={model['id']}:cat:{word}&limit=100").json()
        assert {r["id"] for r in listed["results"]} == {i for i, r in rows.items() if r["label"] == word}
    one = api.get(f"/api/datasets/{dataset.id}/models/{model['id']}/predictions/?sample={min(rows)}").json()
    assert one["count"] == 1 and one["results"][0] == rows[min(rows)]
    detail = api.get(f"/api/datasets/{dataset.id}/samples/{min(rows)}/").json()  # the image view: latest per class
    assert detail["model"] is None and detail["predictions"] == [rows[min(rows)]]
    assert rows[min(rows)]["model"] == model["id"]
    assert api.get(f"/api/datasets/{dataset.id}/samples/{min(rows)}/?model=99999").status_code == 400
    assert api.get(f"/api/datasets/{dataset.id}/samples/{min(rows)}/?model=x").status_code == 400
    page = api.get(f"/api/datasets/{dataset.id}/models/{model['id']}/predictions/?limit=7&offset=45").json()
    assert [r["sample_id"] for r in page["results"]] == sorted(rows)[45:]
    for bucket, (label, truth) in {"TP": ("PRESENT", "PRESENT"), "FP": ("PRESENT", "ABSENT"),
                                   "FN": ("ABSENT", "PRESENT"), "TN": ("ABSENT", "ABSENT")}.items():
        listed = api.get(f"/api/datasets/{dataset.id}/samples/?split=valid&prediction={model['id']}:cat:{bucket}"
                         f"&limit=100").json()
        assert listed["count"] == valid["confusion"][bucket.lower()]
        for sample in listed["results"]:
            assert rows[sample["id"]]["label"] == label and sample["ground_truth"]["cat"] == truth
    for url in (f"/api/datasets/{dataset.id}/samples/?prediction={model['id']}:dog:FN",  # trained for cat only
                f"/api/datasets/{dataset.id}/models/{model['id']}/predictions/?label_class=dog"):
        refused = api.get(url)
        assert refused.status_code == 400 and f"model {model['id']} (v" in str(refused.json()), refused.content
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {"name": "model says", "label_class": "cat", "type": "model",
                  "config": {"model_id": model["id"]}, "low": -1, "high": 1}, format="json")
    assert lf.status_code == 201, lf.content
    preview = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {"label_class": "cat", "type": "model",
                       "config": {"model_id": model["id"]}, "high": 0, "split": "valid"}, format="json").json()
    assert preview["metrics"]["present"]["precision"]["successes"] == valid["confusion"]["tp"]


def test_samples_without_embeddings_are_neither_present_nor_absent(api, world):
    from django.db.models import F

    from imagestudio.embeddings.models import Embedding, EmbeddingSet
    from imagestudio.training.models import ScoredRange

    dataset = world
    ids = sorted(Sample.objects.filter(dataset=dataset).values_list("id", flat=True))
    unscored = {ids[0], ids[20], ids[21]}
    Embedding.objects.filter(sample_id__in=unscored).delete()
    EmbeddingSet.objects.filter(dataset=dataset).update(count=F("count") - 3, version=F("version") + 1)
    build(api, dataset)
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model = job.json()["result"]["model"]
    ranges = sorted(ScoredRange.objects.filter(model_id=model).values_list("low", "high"))
    assert ranges == [(ids[1], ids[19]), (ids[22], ids[-1])]
    imported = api.post(f"/api/datasets/{dataset.id}/imports/", {"files": [SimpleUploadedFile(
        "late.png", png_bytes((1, 2, 3)), content_type="image/png")]}, format="multipart")
    assert api.get(imported["Location"]).json()["result"]["created"] == 1  # after training: not scored either
    listed = set()
    for word in ("PRESENT", "ABSENT"):
        page = api.get(f"/api/datasets/{dataset.id}/samples/?prediction={model}:cat:{word}&limit=100").json()
        listed |= {r["id"] for r in page["results"]}
    assert listed == set(ids) - unscored
    assert api.get(f"/api/datasets/{dataset.id}/models/{model}/predictions/?sample={ids[0]}").json()["count"] == 0
    detail = api.get(f"/api/datasets/{dataset.id}/samples/{ids[0]}/?model={model}").json()
    assert detail["model"] == model and detail["predictions"] == []


def test_a_model_lf_follows_its_samples_into_their_splits_now(api, world):
    dataset = world
    build(api, dataset)
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model = job.json()["result"]["model"]
    moved = Sample.objects.filter(dataset=dataset, split="valid").order_by("id").first()
    learned = Sample.objects.filter(dataset=dataset, split="train").order_by("id").first()  # scored in-sample
    rule = {"label_class": "cat", "type": "model", "config": {"model_id": model}, "low": -1e-6, "high": 1e-6}
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**rule, "name": "model says"}, format="json").json()
    def voters(sample):
        return {row["lf"] for row in api.get(f"/api/datasets/{dataset.id}/samples/{sample.id}/").json()["votes"]}

    assert lf["id"] in voters(learned)
    for sample in (moved, learned):  # the saved votes follow (a refresh of the moved sample), not only previews
        assert api.patch(f"/api/datasets/{dataset.id}/samples/{sample.id}/", {"split": "dev"},
                         format="json").status_code == 200
    assert lf["id"] not in voters(learned) and lf["id"] in voters(moved)
    dev = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "split": "dev"}, format="json").json()
    valid = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "split": "valid"}, format="json").json()
    assert (dev["population"], dev["unscored"], valid["population"], valid["unscored"]) == (12, 1, 9, 0)
    summary = api.get(f"/api/datasets/{dataset.id}/lfs/summary/?split=dev").json()
    row = next(row for row in summary["lfs"] if row["lf"] == lf["id"])
    assert row["coverage"]["successes"] == 11 and row["coverage"]["trials"] == 12


def test_a_model_learns_the_set_s_labels_of_the_samples_in_train_now(api, world):
    dataset = world
    ts = build(api, dataset)
    page = api.get(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/labels/?split=train&limit=100").json()
    labels = {row["sample_id"]: row["classes"]["cat"]["label"] for row in page["results"]}
    moved = next(i for i, label in labels.items() if label == "PRESENT")
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{moved}/", {"split": "valid"}, format="json").status_code == 200
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"], "training_set": ts["id"]},
                           format="json")["Location"]).json()
    metrics = api.get(f"/api/datasets/{dataset.id}/models/{job['result']['model']}/").json()["metrics"]["cat"]
    # the moved sample is measured on valid, not learned
    assert metrics["trained_on"] == {"positives": sum(label == "PRESENT" for i, label in labels.items() if i != moved),
                                     "negatives": sum(label == "ABSENT" for label in labels.values())}
    assert metrics["valid"]["labeled"] == SPLITS.count("valid") + 1


def test_a_model_lf_withdraws_only_the_votes_of_rows_its_model_learned_that_moved(api, world, monkeypatch):
    dataset = world
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"], "label_source": "ground_truth",
                                                                    "ground_truth_splits": ["train"]},
                           format="json")["Location"]).json()
    model = job["result"]["model"]
    rule = {"label_class": "cat", "type": "model", "config": {"model_id": model}, "low": -1e-6, "high": 1e-6}
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**rule, "name": "model says"}, format="json").json()
    train = Sample.objects.filter(dataset=dataset, split="train").order_by("id")
    learned = next(s for s in train if s.annotations.filter(value__in=["PRESENT", "ABSENT"]).exists())
    unlabeled = next(s for s in train if not s.annotations.exists())  # scored by the model, never learned

    def voters(sample):
        return {row["lf"] for row in api.get(f"/api/datasets/{dataset.id}/samples/{sample.id}/").json()["votes"]}

    def measured():  # the model's figures on valid, in charts/ and analysis/
        charts = api.get(f"/api/datasets/{dataset.id}/models/{model}/charts/?split=valid").json()
        analysed = api.get(f"/api/datasets/{dataset.id}/analysis/?model={model}").json()["classes"][0]["model"]
        assert analysed["learned"] == charts["classes"][0]["learned"]
        return charts["scored"], charts["classes"][0], analysed["valid"]["labeled"]

    scored, before, _ = measured()
    assert lf["id"] in voters(learned) and lf["id"] in voters(unlabeled)
    for sample in (learned, unlabeled):
        assert api.patch(f"/api/datasets/{dataset.id}/samples/{sample.id}/", {"split": "valid"},
                         format="json").status_code == 200
    assert lf["id"] not in voters(learned) and lf["id"] in voters(unlabeled)
    # nor do its metrics on valid count the row it learned from (they did: in-sample, a flattering TP or TN)
    scored_now, after, analysed = measured()
    assert (scored_now, after["learned"], after["labeled"], analysed) == (scored + 2, 1, before["labeled"],
                                                                          before["labeled"])
    assert after["confusion"] == before["confusion"]
    valid = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "split": "valid"}, format="json").json()
    assert (valid["population"], valid["unscored"]) == (12, 1)
    # a model stored before it recorded its in-sample rows: every row of its label splits counts as learned
    from imagestudio.training import selectors

    arrays = artifact_arrays(FastModel.objects.get(pk=model))
    monkeypatch.setattr(selectors, "artifact_arrays", lambda record: {key: value for key, value in arrays.items()
                                                                       if not key.startswith("in_sample_")})
    older = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "split": "valid"}, format="json").json()
    assert (older["population"], older["unscored"]) == (12, 2)


def test_a_model_lf_scores_samples_embedded_after_its_model_by_its_coefficients(api, world):
    dataset = world
    build(api, dataset)
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model = job.json()["result"]["model"]
    rule = {"label_class": "cat", "type": "model", "config": {"model_id": model}, "low": -1e-6, "high": 1e-6}
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {**rule, "name": "model says"}, format="json").json()
    late = [SimpleUploadedFile(f"late{i}.png", png_bytes(colour, size=(48, 48)), content_type="image/png")
            for i, colour in enumerate([(240, 10, 20), (10, 20, 240), (230, 40, 30)])]
    manifest = SimpleUploadedFile("m.csv", b"file,split\nlate0.png,valid\nlate1.png,valid\nlate2.png,train\n")
    imported = api.post(f"/api/datasets/{dataset.id}/imports/", {"files": late, "manifest": manifest},
                        format="multipart")
    assert api.get(imported["Location"]).json()["result"]["created"] == 3
    before = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "split": "valid"}, format="json").json()
    assert (before["population"], before["unscored"]) == (12, 2)  # not embedded yet
    assert api.post(f"/api/datasets/{dataset.id}/embeddings/", {}, format="json").status_code == 202
    after = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "split": "valid"}, format="json").json()
    assert (after["population"], after["unscored"]) == (12, 0)
    expected = independent_scores(dataset, model)
    coef_norm = float(np.linalg.norm(artifact_arrays(FastModel.objects.get(pk=model))["coef"][0]))
    new = Sample.objects.filter(dataset=dataset, external_id__startswith="late").order_by("id")
    assert new.count() == 3
    votes = {sample.id: next(row["vote"] for row in api.get(f"/api/datasets/{dataset.id}/samples/{sample.id}/")
                             .json()["votes"] if row["lf"] == lf["id"]) for sample in new}  # the refresh voted
    # by the coefficients, in the bfloat16 precision of the scan matrix (as the model's own predictions)
    clear = {i: expected[i] for i in votes if abs(expected[i]) > coef_norm / 256}
    assert clear and all(votes[i] == ("PRESENT" if score > 0 else "ABSENT") for i, score in clear.items())
    # vectors of other weights (the encoder configured anew) are not what its coefficients were fitted on
    stored = FastModel.objects.get(pk=model)
    FastModel.objects.filter(pk=model).update(params={**stored.params, "inputs": {**stored.params["inputs"],
                                                                                  "vectors": "open_clip:other"}})
    other = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {**rule, "split": "valid"}, format="json").json()
    assert (other["population"], other["unscored"]) == (12, 2)
    FastModel.objects.filter(pk=model).update(params=stored.params)
    # the model's own predictions stay those it stored: the late samples are outside its scored ranges
    listed = api.get(f"/api/datasets/{dataset.id}/models/{model}/predictions/?limit=100").json()
    assert listed["count"] == 50 and not {row["sample_id"] for row in listed["results"]} & set(new.values_list("id",
                                                                                                     flat=True))


def test_bad_training_requests(api, world, owner):
    dataset = world
    url = f"/api/datasets/{dataset.id}/models/"
    assert api.post(url, {"negative_ratio": 0}, format="json").status_code == 400
    no_ts = api.post(url, {}, format="json")
    assert no_ts.status_code == 400 and "training set" in json.dumps(no_ts.json())
    assert api.post(url, {"classes": ["unicorn"]}, format="json").status_code == 400
    bad_lf = api.post(f"/api/datasets/{dataset.id}/lfs/preview/", {"label_class": "cat", "type": "model",
                      "config": {"model_id": 424242}, "high": 0}, format="json")
    assert bad_lf.status_code == 400 and "trained fast model" in bad_lf.json()["config"][0]
    build(api, dataset)
    no_positive = api.post(url, {"classes": ["dog"]}, format="json")
    job = api.get(no_positive["Location"]).json()
    assert job["status"] == "failed" and "dog" in job["error"] and "training labels" in job["error"]
    assert not job["error"].startswith("ValidationFailed")  # what to change, as a 400 says it; no class name
    LabelingFunction.objects.update(active=False)
    empty = api.post(f"/api/datasets/{dataset.id}/training-sets/", {}, format="json")
    assert empty.status_code == 400 and empty.json()["code"] == "no_active_lfs"


def test_csv_exports_dataset_and_training_labels(api, world):
    import csv
    import io

    dataset = world
    build(api, dataset)
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model = job.json()["result"]["model"]
    response = api.post(f"/api/datasets/{dataset.id}/exports/", {
        "kind": "dataset", "columns": ["id", "external_id", "split"], "fields": ["colour"], "model": model,
        "splits": ["valid", "dev"]}, format="json")
    assert response.status_code == 202, response.content
    export_id = api.get(response["Location"]).json()["result"]["export"]
    download = api.get(f"/api/datasets/{dataset.id}/exports/{export_id}/download/")
    assert download.status_code == 200 and download["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(rows) == 20 and {r["split"] for r in rows} == {"valid", "dev"}
    assert set(rows[0]) == {"id", "external_id", "split", "colour", "gt:cat", "gt:dog", "pred:cat", "prob:cat"}
    listed = api.get(f"/api/datasets/{dataset.id}/models/{model}/predictions/?limit=100").json()["results"]
    predictions = {p["sample_id"]: p for p in listed}
    for row in rows:
        sample = Sample.objects.get(pk=int(row["id"]))
        assert row["colour"] == sample.metadata["colour"]
        assert row["gt:cat"] == next((a.value for a in sample.annotations.all()), "")
        assert row["pred:cat"] == predictions[sample.id]["label"]
        assert float(row["prob:cat"]) == pytest.approx(predictions[sample.id]["probability"], abs=1e-5)
    # a class created after the set was built has no labels in it: no column (every row said ABSTAIN)
    assert api.post(f"/api/datasets/{dataset.id}/classes/", {"name": "bird"}, format="json").status_code == 201
    labels = api.post(f"/api/datasets/{dataset.id}/exports/", {"kind": "training_labels", "splits": ["train"],
                                                             "ground_truth": False}, format="json")
    export_id = api.get(labels["Location"]).json()["result"]["export"]
    body = b"".join(api.get(f"/api/datasets/{dataset.id}/exports/{export_id}/download/").streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(body)))
    assert len(table) == 30 and {"label:cat", "prob:cat", "label:dog", "prob:dog"} <= set(table[0])
    assert not {"label:bird", "prob:bird"} & set(table[0])
    assert {r["label:dog"] for r in table} == {"ABSTAIN"} and {r["label:cat"] for r in table} <= {"PRESENT", "ABSENT"}


def test_export_bad_input_and_not_ready(api, world, owner):
    from imagestudio.datasets.services import dataset_create
    from imagestudio.exports.models import Export

    dataset = world
    url = f"/api/datasets/{dataset.id}/exports/"
    assert api.post(url, {"kind": "dataset", "columns": ["id", "password"]}, format="json").status_code == 400
    assert api.post(url, {"kind": "dataset", "model": 999}, format="json").status_code == 400
    assert api.post(url, {"kind": "training_labels"}, format="json").status_code == 400  # no training set yet
    assert api.post(url, {"kind": "pdf"}, format="json").status_code == 400
    for body, field in (({"kind": "dataset", "training_set": 1}, "training_set"),  # it was ignored without a word
                        ({"kind": "training_labels", "model": 1}, "model")):
        misplaced = api.post(url, body, format="json")
        assert misplaced.status_code == 400 and "goes with kind" in misplaced.json()[field][0], misplaced.content
    for body, field in (({"columns": ["id", "id"]}, "columns"), ({"fields": ["colour", "colour"]}, "fields"),
                        ({"columns": ["id", "split"], "fields": ["split"]}, "fields")):  # one header per column
        Sample.objects.filter(dataset=dataset).update(metadata={"colour": "red", "split": "x"})
        repeated = api.post(url, {"kind": "dataset", **body}, format="json")
        assert repeated.status_code == 400 and "asked twice" in repeated.json()[field][0], repeated.content
    other = dataset_create(user=owner, name="Other")
    from imagestudio.training.models import FastModel

    foreign = FastModel.objects.create(dataset=other, version=1, label_source="ground_truth", ready=True)
    refused = api.post(url, {"kind": "dataset", "model": foreign.id}, format="json")  # another dataset's model
    assert refused.status_code == 400 and "model" in refused.json()
    sample = Sample.objects.filter(dataset=dataset).first()
    assert api.get(f"/api/datasets/{dataset.id}/samples/{sample.id}/?model={foreign.id}").status_code == 400
    pending = Export.objects.create(dataset=dataset, kind="dataset")
    response = api.get(f"{url}{pending.id}/download/")
    assert response.status_code == 409 and response["Retry-After"] and response.json()["code"] == "not_ready"
    assert api.get(f"/api/datasets/{other.id}/exports/{pending.id}/download/").status_code == 404


def test_the_default_training_set_is_the_one_asked_for_last_not_the_newest(api, world):
    """A set built while an LF was off, then the LF back on and its set asked for again (200: that one): models,
    analysis, exports and the LF summary took the newer set, stale, as the dataset's latest."""
    dataset = world
    url = f"/api/datasets/{dataset.id}/training-sets/"
    first = build(api, dataset)
    lf = LabelingFunction.objects.order_by("id").first()
    lf_url = f"/api/datasets/{dataset.id}/lfs/{lf.id}/"
    assert api.patch(lf_url, {"active": False}, format="json").status_code == 200
    newer = build(api, dataset)
    assert api.patch(lf_url, {"active": True}, format="json").status_code == 200
    again = api.post(url, {}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first["id"] and not again.json()["stale"]
    newer = api.get(f"{url}{newer['id']}/").json()
    assert newer["stale"] and again.json()["requested_at"] > newer["requested_at"] > first["requested_at"]
    model = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    trained = api.get(f"/api/datasets/{dataset.id}/models/{model.json()['result']['model']}/").json()
    assert trained["training_set"] == first["id"]
    assert api.get(f"/api/datasets/{dataset.id}/analysis/").json()["training_set"] == first["id"]
    summary = api.get(f"/api/datasets/{dataset.id}/lfs/summary/").json()["lfs"]
    assert {entry["learned"]["training_set"] for entry in summary} == {first["id"]}
    export = api.post(f"/api/datasets/{dataset.id}/exports/", {"kind": "training_labels"}, format="json")
    assert api.get(export["Location"]).json()["result"].get("stale_sources") == []


def test_analysis_guidance_links_work_and_next_samples_are_unlabeled(api, world):
    dataset = world
    build(api, dataset)
    api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    body = api.get(f"/api/datasets/{dataset.id}/analysis/?split=train").json()
    classes = {c["label_class"]: c for c in body["classes"]}
    cat, dog = classes["cat"], classes["dog"]
    ids = np.array(sorted(Sample.objects.filter(split="train").values_list("id", flat=True)))
    votes = np.stack([vote_array(lf, ids) for lf in LabelingFunction.objects.filter(active=True)], axis=1)
    assert cat["lfs"]["active"] == 2
    assert cat["lfs"]["coverage"] == pytest.approx((votes != 0).any(axis=1).mean())
    assert cat["lfs"]["conflicts"] == pytest.approx(((votes == 1).any(axis=1) & (votes == -1).any(axis=1)).mean())
    assert set(cat["label_model"]["candidates"]) == set(CANDIDATES)
    assert cat["model"]["valid"]["labeled"] == 10
    assert cat["valid_labels"] == 10
    assert body["training_set_stale_reasons"] == []
    kinds = {tip["kind"] for tip in cat["guidance"]}
    assert "little_ground_truth" in kinds  # 10 < 50 valid labels, and valid has no other sample to annotate
    links = [tip["samples"] for tip in cat["guidance"]]
    assert f"http://testserver/api/datasets/{dataset.id}/samples/?split=valid" in links
    for tip in cat["guidance"] + dog["guidance"]:
        shown = api.get(tip["samples"])
        assert shown.status_code == 200 and shown.json()["count"] > 0, tip  # a link opens the cases it names
    assert [tip["kind"] for tip in dog["guidance"]] == ["no_lfs"]
    labeled = set(Sample.objects.filter(annotations__label_class__name="cat",
                                        annotations__value__in=["PRESENT", "ABSENT"]).values_list("id", flat=True))
    assert all(entry["sample_id"] not in labeled for entry in cat["next_to_annotate"])
    priorities = [entry["priority"] for entry in cat["next_to_annotate"]]
    assert priorities == sorted(priorities, reverse=True)


def test_analysis_says_nothing_is_missed_where_valid_has_no_positive(api, world):
    dataset = world
    build(api, dataset)
    api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    valid = list(Sample.objects.filter(split="valid").values_list("id", flat=True))
    assert api.post(f"/api/datasets/{dataset.id}/annotations/bulk/", {
        "sample_ids": valid, "classes": ["cat"], "value": "ABSENT"}, format="json").status_code == 200
    cat = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()["classes"][0]
    confusion = cat["model"]["valid"]["confusion"]
    assert confusion["tp"] == confusion["fn"] == 0
    kinds = [tip["kind"] for tip in cat["guidance"]]
    assert "false_negatives" not in kinds
    assert ("false_positives" in kinds) == (confusion["fp"] > 0)
    for tip in cat["guidance"]:
        assert api.get(tip["samples"]).json()["count"] > 0, tip


def test_analysis_says_when_the_training_labels_of_a_class_are_all_on_one_side(api, world):
    """Every sample the set labels for the class is on one side (its only active LF votes ABSENT everywhere, so
    every candidate says the same of every sample): no model can learn the class from it, and the analysis says
    so."""
    dataset = world
    for lf in LabelingFunction.objects.all():
        api.patch(f"/api/datasets/{dataset.id}/lfs/{lf.id}/", {"active": False}, format="json")
    assert api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "never", "label_class": "cat", "type": "pattern", "low": 0.5,
        "config": {"field": "colour", "builder": "keyword", "words": ["green"]}}, format="json").status_code == 201
    report = build(api, dataset)["report"]["cat"]
    side = "ABSENT" if report["present"] == 0 else "PRESENT"  # votes alike on every sample: one label for all
    assert min(report["present"], report["absent"]) == 0 and report["covered"] == 50
    cat = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()["classes"][0]
    tips = [tip for tip in cat["guidance"] if tip["kind"] == "one_sided_labels"]
    assert len(tips) == 1 and f"every sample it labels for 'cat' {side} (50" in tips[0]["message"]
    assert api.get(tips[0]["samples"]).status_code == 200
    for lf in LabelingFunction.objects.exclude(name="never"):
        api.patch(f"/api/datasets/{dataset.id}/lfs/{lf.id}/", {"active": True}, format="json")
    build(api, dataset)
    cat = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()["classes"][0]
    assert "one_sided_labels" not in {tip["kind"] for tip in cat["guidance"]}


def test_auto_train_on_lf_change(api, world):
    from imagestudio.jobs.models import Job
    from imagestudio.training.models import FastModel

    dataset = world
    api.patch(f"/api/datasets/{dataset.id}/", {"auto_train": True}, format="json")
    lf = LabelingFunction.objects.first()
    response = api.patch(f"/api/datasets/{dataset.id}/lfs/{lf.id}/", {"high": 0.5}, format="json")
    assert response.status_code == 200
    job = Job.objects.filter(kind="auto_train").get()
    assert job.status == "succeeded", job.error
    model = FastModel.objects.get(job=job)
    assert model.ready and model.params["auto"] and model.params["classes"] == [dataset.classes.get(name="cat").id]
    assert job.result["training_set"] and "cat" in job.result["metrics"]

    # Delivered again, as when its worker died before recording success: the same model, nothing added.
    from imagestudio.celery import app

    stored = sorted(Prediction.objects.filter(model=model).values_list("label_class_id", "sample_id"))
    Job.objects.filter(pk=job.pk).update(status="running", finished_at=None)
    app.tasks["workers.tasks.training.auto_train"].apply(args=[str(job.id)])
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2 and job.result["model"] == model.id, job.error
    assert list(FastModel.objects.filter(job=job).values_list("id", flat=True)) == [model.id]
    assert sorted(Prediction.objects.filter(model=model).values_list("label_class_id", "sample_id")) == stored


def test_auto_train_bursts_coalesce_into_one_queued_job(api, world, monkeypatch):
    from imagestudio.celery import app
    from imagestudio.jobs import services as job_services
    from imagestudio.jobs.models import Job
    from imagestudio.pipeline import auto_train_enqueue

    dataset = world
    dataset.auto_train = True
    sent = []
    monkeypatch.setattr(job_services, "_send", lambda task, job_id: sent.append(job_id))
    monkeypatch.setattr(job_services, "queue_check", lambda: None)
    app.conf.task_always_eager = False
    cat = dataset.classes.get(name="cat")
    jobs = {auto_train_enqueue(dataset=dataset, label_class=cat).id for _ in range(5)}
    assert len(jobs) == 1 and len(sent) == 1  # one job in the queue for the burst
    Job.objects.filter(pk=jobs.pop()).update(status="running")
    assert auto_train_enqueue(dataset=dataset, label_class=cat).status == "queued"  # a running one does not absorb
    assert Job.objects.filter(kind="auto_train").count() == 2
    dog = dataset.classes.get(name="dog")
    assert auto_train_enqueue(dataset=dataset, label_class=dog) is not None  # one per class
    assert Job.objects.filter(kind="auto_train", status="queued").count() == 2


def test_training_set_identity_is_content_not_versions(api, world):
    dataset = world
    first = build(api, dataset)
    lf = LabelingFunction.objects.order_by("id").first()
    for active in (False, True):  # off and on again: the same rules and votes
        assert api.patch(f"/api/datasets/{dataset.id}/lfs/{lf.id}/", {"active": active}, format="json").status_code == 200
    again = api.post(f"/api/datasets/{dataset.id}/training-sets/", {}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    # a dev label the label model learns from is content too
    dev_sample = Sample.objects.filter(split="dev").order_by("id").first()
    current = api.get(f"/api/datasets/{dataset.id}/annotations/?sample={dev_sample.id}").json()["results"][0]
    flipped = "ABSENT" if current["value"] == "PRESENT" else "PRESENT"
    assert api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": dev_sample.id, "label_class": "cat",
                                                                "value": flipped}, format="json").status_code == 200
    assert build(api, dataset)["id"] != first["id"]


def test_a_failed_model_reads_as_failed_with_its_error(api, world):
    dataset = world
    build(api, dataset)
    response = api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["dog"]}, format="json")  # dog: no LF
    job = api.get(response["Location"]).json()
    assert job["status"] == "failed"
    model = api.get(f"/api/datasets/{dataset.id}/models/").json()["results"][0]
    assert model["status"] == "failed" and "no positive training labels" in model["error"] and not model["ready"]
    refused = api.get(f"/api/datasets/{dataset.id}/models/{model['id']}/predictions/")
    assert refused.status_code == 409 and refused.json()["code"] == "job_failed"
    assert "no positive training labels" in refused.json()["detail"]


def test_imprecise_lf_links_list_exactly_the_wrong_votes_their_messages_count(api, world):
    import re

    dataset = world
    body = {"name": "backwards", "label_class": "cat", "type": "pattern", "low": 0, "high": 1,  # votes both ways
            "config": {"field": "colour", "builder": "keyword", "words": ["blue"]}}
    assert api.post(f"/api/datasets/{dataset.id}/lfs/", body, format="json").status_code == 201
    analysis = api.get(f"/api/datasets/{dataset.id}/analysis/?split=dev&label_class=cat").json()
    tips = [tip for tip in analysis["classes"][0]["guidance"] if tip["kind"] == "imprecise_lf"]
    assert {re.search(r"of its (\w+) votes", tip["message"]).group(1) for tip in tips} == {"PRESENT", "ABSENT"}
    for tip in tips:
        right = int(re.search(r"right only (\d+)%", tip["message"]).group(1))  # wrong mostly: no threshold fixes it
        assert right < 50 and ("invert it" in tip["message"]) == (right < 50) and ("tighten" in tip["message"]) == (right >= 50)
        counted = int(re.search(r"; (\d+) of its", tip["message"]).group(1))
        listed = api.get(tip["samples"]).json()
        assert listed["count"] == counted and {row["split"] for row in listed["results"]} == {"dev"}


def test_products_say_when_their_inputs_changed_and_rebuild_in_one_call(api, world):
    dataset = world
    ts = build(api, dataset)
    assert ts["stale"] is False and ts["stale_reasons"] == []
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model_url = f"/api/datasets/{dataset.id}/models/{job.json()['result']['model']}/"
    assert api.get(model_url).json()["stale"] is False
    lf = LabelingFunction.objects.order_by("id").first()
    assert api.patch(f"/api/datasets/{dataset.id}/lfs/{lf.id}/", {"high": 0.9}, format="json").status_code == 200
    stale = api.get(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/").json()
    assert stale["stale"] and stale["stale_reasons"] == [f"LF cat/{lf.id} changed its rule"]
    assert api.get(model_url).json()["stale_reasons"] == [f"its training set is stale: LF cat/{lf.id} changed its rule"]
    def exported(body):  # an export of a stale source says so, in its job's result and its params
        result = api.get(api.post(f"/api/datasets/{dataset.id}/exports/", body, format="json")["Location"]).json()
        params = api.get(f"/api/datasets/{dataset.id}/exports/{result['result']['export']}/").json()["params"]
        assert result["result"]["stale_sources"] == params["stale_sources"]
        return params["stale_sources"]

    assert exported({"kind": "training_labels", "training_set": ts["id"]}) == [
        f"training set {ts['id']}: LF cat/{lf.id} changed its rule"]
    assert exported({"kind": "dataset", "model": int(model_url.split("/")[-2])}) == [
        f"model {model_url.split('/')[-2]} (v1): its training set is stale: LF cat/{lf.id} changed its rule"]
    rebuilt = api.post(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/rebuild/", {}, format="json")
    assert rebuilt.status_code == 202
    fresh_id = api.get(rebuilt["Location"]).json()["result"]["training_set"]
    fresh = api.get(f"/api/datasets/{dataset.id}/training-sets/{fresh_id}/").json()
    assert fresh["id"] != ts["id"] and fresh["stale"] is False
    assert exported({"kind": "training_labels"}) == []
    again = api.post(f"/api/datasets/{dataset.id}/training-sets/{fresh['id']}/rebuild/", {}, format="json")
    assert again.status_code == 200 and again.json()["id"] == fresh["id"]  # nothing changed: the same set
    # a valid label measures the model: its metrics are out of date
    valid_sample = Sample.objects.filter(split="valid").order_by("id").first()
    value = api.get(f"/api/datasets/{dataset.id}/annotations/?sample={valid_sample.id}").json()["results"][0]["value"]
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": valid_sample.id, "label_class": "cat",
                                                         "value": "ABSENT" if value == "PRESENT" else "PRESENT"},
            format="json")
    assert "valid ground truth changed" in api.get(model_url).json()["stale_reasons"]
    measured = api.get(f"/api/datasets/{dataset.id}/training-sets/{fresh['id']}/").json()  # its report's valid figures
    assert measured["stale_reasons"] == ["valid ground truth changed (the report's figures on it)"]
    remeasured = api.get(api.post(f"/api/datasets/{dataset.id}/training-sets/{fresh['id']}/rebuild/", {},
                                  format="json")["Location"]).json()["result"]["training_set"]
    assert remeasured != fresh["id"]
    assert api.get(f"/api/datasets/{dataset.id}/training-sets/{remeasured}/").json()["stale"] is False
    retrained = api.post(f"{model_url}retrain/", {}, format="json")
    assert retrained.status_code == 202
    new_model = api.get(retrained["Location"]).json()["result"]["model"]
    assert api.get(f"/api/datasets/{dataset.id}/models/{new_model}/").json()["stale"] is False


def test_labels_of_a_class_a_product_does_not_read_leave_it_current(api, world):
    from imagestudio.training.models import TrainingSet
    from imagestudio.training.selectors import snapshot_hash, training_snapshot

    dataset = world
    ts = build(api, dataset)  # LFs for cat only; dog abstains everywhere
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"], "label_source": "ground_truth"},
                           format="json")["Location"]).json()
    model_url = f"/api/datasets/{dataset.id}/models/{job['result']['model']}/"
    ts_url = f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/"
    for split in ("train", "dev", "valid"):
        sample = Sample.objects.filter(dataset=dataset, split=split).order_by("id").first()
        assert api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": sample.id, "label_class": "dog",
                       "value": "PRESENT"}, format="json").status_code in (200, 201)
    assert api.get(ts_url).json()["stale_reasons"] == [] and api.get(model_url).json()["stale_reasons"] == []
    # a set recorded before its digests were scoped to its LFs' classes compares as it was recorded: dog counts
    unscoped, unscoped_hash = training_snapshot(dataset, ts["snapshot"]["splits"], 0, scoped=False)
    assert "labels_classes" not in unscoped and unscoped_hash == snapshot_hash(unscoped)
    TrainingSet.objects.filter(pk=ts["id"]).update(snapshot=unscoped, content_hash=unscoped_hash)
    assert api.get(ts_url).json()["stale_reasons"] == []
    dog = Sample.objects.filter(dataset=dataset, split="dev").order_by("id").first()
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": dog.id, "label_class": "dog", "value": "ABSENT"},
            format="json")
    assert api.get(ts_url).json()["stale_reasons"] == ["dev ground truth changed"]
    assert api.get(model_url).json()["stale_reasons"] == []
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": dog.id, "label_class": "cat", "value": "ABSTAIN"},
            format="json")
    assert api.get(model_url).json()["stale_reasons"] == ["dev ground truth changed"]
    # a model recorded before `labels_classes` digested every class's labels: it compares them so
    from imagestudio.annotations.selectors import ground_truth_digest
    from imagestudio.training.models import FastModel

    model = FastModel.objects.get(pk=job["result"]["model"])
    splits = list(model.params["inputs"]["labels_sha256"])
    inputs = {key: value for key, value in model.params["inputs"].items() if key != "labels_classes"}
    inputs["labels_sha256"] = {split: ground_truth_digest(dataset=dataset, split=split) for split in splits}
    FastModel.objects.filter(pk=model.pk).update(params={**model.params, "inputs": inputs})
    assert api.get(model_url).json()["stale_reasons"] == []
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": dog.id, "label_class": "dog", "value": "PRESENT"},
            format="json")
    assert api.get(model_url).json()["stale_reasons"] == ["dev ground truth changed"]


def test_sets_of_some_splits_learn_from_the_dev_labels_and_train_no_model_without_train(api, world):
    dataset = world
    ts = build(api, dataset, splits=["train", "valid"])
    dev_sample = Sample.objects.filter(dataset=dataset, split="dev").order_by("id").first()
    value = api.get(f"/api/datasets/{dataset.id}/annotations/?sample={dev_sample.id}").json()["results"][0]["value"]
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": dev_sample.id, "label_class": "cat",
                                                         "value": "ABSENT" if value == "PRESENT" else "PRESENT"},
            format="json")
    assert api.get(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/").json()["stale_reasons"] == [
        "dev ground truth changed"]  # its label model learns from them
    no_train = build(api, dataset, splits=["valid"])["id"]
    refused = api.post(f"/api/datasets/{dataset.id}/models/", {"training_set": no_train}, format="json")
    assert refused.status_code == 400 and "covers no train samples" in refused.json()["training_set"][0]
    with_dev = build(api, dataset)
    api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": dev_sample.id, "label_class": "cat",
                                                         "value": value}, format="json")
    assert api.get(f"/api/datasets/{dataset.id}/training-sets/{with_dev['id']}/").json()["stale_reasons"] == [
        "dev ground truth changed"]


def test_model_charts_match_an_independent_computation_and_follow_the_ground_truth(api, world, stranger):
    from sklearn.metrics import average_precision_score, precision_recall_curve

    from tests.conftest import client_for

    dataset = world
    build(api, dataset)
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model_id = job.json()["result"]["model"]
    model = api.get(f"/api/datasets/{dataset.id}/models/{model_id}/").json()
    url = f"/api/datasets/{dataset.id}/models/{model_id}/charts/"
    body = api.get(url).json()
    assert (body["split"], body["threshold"], body["scored"], body["unscored"]) == ("valid", 0.0, 10, 0)
    assert [c["label_class"] for c in body["classes"]] == ["cat"]  # the classes it was trained for
    cat = body["classes"][0]
    valid = model["metrics"]["cat"]["valid"]
    assert cat["confusion"] == valid["confusion"] and cat["labeled"] == valid["labeled"] == 10
    # independent computation: the predictions' scores against the ground truth of valid
    predictions = api.get(f"/api/datasets/{dataset.id}/models/{model_id}/predictions/?limit=100").json()["results"]
    scores = {p["sample_id"]: p["score"] for p in predictions}
    rows = Sample.objects.filter(dataset=dataset, split="valid").order_by("id")
    s = np.array([scores[r.id] for r in rows], np.float32).astype(np.float64)
    y = np.array([r.annotations.get(label_class__name="cat").value == "PRESENT" for r in rows])
    assert cat["pr_auc"] == pytest.approx(average_precision_score(y, s)) == pytest.approx(valid["pr_auc"])
    assert cat["roc_auc"] == pytest.approx(valid["roc_auc"])
    precision, recall, thresholds = precision_recall_curve(y, s)
    at = {t: (p, r) for p, r, t in zip(precision, recall, thresholds, strict=False)}
    curve = cat["curve"]
    for k, t in enumerate(curve["thresholds"]):
        assert (curve["precision"][k], curve["recall"][k]) == pytest.approx(at[t])
    assert sum(cat["histogram"]["counts"]["present"]) == y.sum() and cat["calibration"]["count"] == 10
    few = api.get(f"{url}?label_class=cat&split=train&points=3&bins=5&calibration_bins=4").json()["classes"][0]
    assert len(few["curve"]["thresholds"]) <= 3 and len(few["histogram"]["edges"]) == 6
    assert len(few["calibration"]["bins"]) == 4 and few["labeled"] == 10  # every third train sample is labeled
    # the charts read the ground truth as it is now
    flipped = rows[0]
    value = "ABSENT" if y[0] else "PRESENT"
    assert api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": flipped.id, "label_class": "cat",
                                                                "value": value}, format="json").status_code == 200
    after = api.get(url).json()["classes"][0]
    assert after["positives"] == cat["positives"] + (1 if value == "PRESENT" else -1)
    assert api.get(f"{url}?label_class=dog").status_code == 400  # not trained for dog
    for bad in ("split=holdout", "points=2", "points=5000", "bins=0", "calibration_bins=1000", "label_class=unicorn"):
        assert api.get(f"{url}?{bad}").status_code == 400, bad
    assert client_for(stranger).get(url).status_code == 404
    assert api.get(f"/api/datasets/{dataset.id}/models/999999/charts/").status_code == 404


def test_a_model_trained_on_dev_rows_cross_fits_them_over_ten_folds(api, world, monkeypatch):
    """Its out-of-fold dev scores stand in for the model's own on dev (an LF over it, the label model's
    calibration): fold models of 3 folds learned 2 / 3 of a few hundred dev labels and read weaker on dev than the
    model is elsewhere (fitting.CROSS_FIT_FOLDS)."""
    from imagestudio.training import fitting

    calls = []
    select_c_by_cv = fitting.select_c_by_cv
    monkeypatch.setattr(fitting, "select_c_by_cv", lambda *args, **kwargs: calls.append(kwargs.get("folds"))
                        or select_c_by_cv(*args, **kwargs))
    response = api.post(f"/api/datasets/{world.id}/models/", {"classes": ["cat"], "label_source": "ground_truth",
                                                              "ground_truth_splits": ["dev"]}, format="json")
    assert response.status_code == 202, response.content
    assert api.get(response["Location"]).json()["status"] == "succeeded"
    assert calls == [fitting.CROSS_FIT_FOLDS]


@pytest.mark.parametrize(("splits", "chosen_by"), [(["train"], "dev_f1_by_C"), (["train", "dev"], "cv_f1_by_C"),
                                                   (["dev"], "cv_f1_by_C")])
def test_c_is_never_chosen_on_the_rows_the_model_trains_on(api, world, splits, chosen_by):
    """Scored on its own training rows the largest C would always win: a model trained on dev rows chooses C by
    cross-validation over its training rows, one trained apart from dev on the dev rows."""
    dataset = world
    response = api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"], "label_source": "ground_truth",
                                                                "ground_truth_splits": splits}, format="json")
    assert response.status_code == 202, response.content
    job = api.get(response["Location"]).json()
    assert job["status"] == "succeeded", job
    metrics = api.get(f"/api/datasets/{dataset.id}/models/{job['result']['model']}/").json()["metrics"]["cat"]
    other = {"dev_f1_by_C": "cv_f1_by_C", "cv_f1_by_C": "dev_f1_by_C"}[chosen_by]
    assert set(metrics[chosen_by]) == set(map(str, C_GRID)) and metrics[other] is None
    assert metrics[chosen_by][str(metrics["C"])] == max(metrics[chosen_by].values())

    # Rows it did not train on are scored by the model; a model trained on dev scores its training rows
    # out-of-fold (cross-fitting), never by the fit that learned them.
    model_id = job["result"]["model"]
    expected = independent_scores(dataset, model_id)
    scores = {r["sample_id"]: r["score"] for r in api.get(
        f"/api/datasets/{dataset.id}/models/{model_id}/predictions/?limit=100").json()["results"]}
    from imagestudio.training.models import FastModel
    from imagestudio.training.selectors import artifact_arrays

    coef_norm = float(np.linalg.norm(artifact_arrays(FastModel.objects.get(pk=model_id))["coef"][0]))
    split_of = dict(Sample.objects.filter(dataset=dataset).values_list("id", "split"))
    dev_ids = {i for i, split in split_of.items() if split == "dev"}
    apart = [i for i in scores if split_of[i] in ("valid", "test")]
    assert apart and all(scores[i] == pytest.approx(expected[i], abs=coef_norm / 256) for i in apart)
    if chosen_by == "cv_f1_by_C":
        assert any(scores[i] != pytest.approx(expected[i], abs=coef_norm / 256) for i in dev_ids)


def test_a_training_set_model_fits_its_probabilities_or_its_labels_whichever_dev_prefers(api, world):
    """A training set's train rows give two kinds of targets, its P(PRESENT) (fitted by cross-entropy,
    soft_logistic) and its labels: the model fits both along the C grid and keeps the better dev F1."""
    from imagestudio.annotations.selectors import ground_truth_for
    from imagestudio.datasets.models import SPLIT_CODES, LabelClass
    from imagestudio.embeddings.store import matrix_get, record_for
    from imagestudio.training.fitting import select_c
    from imagestudio.training.models import FastModel, TrainingSet
    from imagestudio.training.selectors import artifact_arrays

    dataset = world
    training_set = build(api, dataset)
    response = api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")
    assert response.status_code == 202, response.content
    model = FastModel.objects.get(pk=api.get(response["Location"]).json()["result"]["model"])
    labels = artifact_arrays(TrainingSet.objects.get(pk=training_set["id"]))
    label_class = LabelClass.objects.get(pk=model.params["classes"][0])
    matrix = matrix_get(dataset=dataset, record=record_for(model.params["encoder"], model.params["space"]))
    assert np.array_equal(labels["ids"], matrix.sample_ids)
    train = np.flatnonzero((matrix.splits == SPLIT_CODES["train"]) & (labels[f"label_{label_class.id}"] != 0))
    probability = labels[f"probability_{label_class.id}"][train]
    assert ((probability > 0.01) & (probability < 0.99)).any()  # probabilities, not labels
    truth = ground_truth_for(dataset=dataset, label_class=label_class, sample_ids=matrix.sample_ids)
    dev = np.flatnonzero((matrix.splits == SPLIT_CODES["dev"]) & (truth != 0))
    fits = {kind: select_c(matrix.features(train), target, matrix.features(dev), truth[dev] == 1, seed=0)
            for kind, target in (("probabilities", probability), ("labels", probability > 0.5))}
    assert not np.allclose(fits["probabilities"].coef, fits["labels"].coef, rtol=1e-2, atol=1e-3)
    metrics = api.get(f"/api/datasets/{dataset.id}/models/{model.id}/").json()["metrics"]["cat"]
    best = {kind: max(fit.dev_f1_by_c.values()) for kind, fit in fits.items()}
    assert metrics["dev_f1_by_targets"] == pytest.approx(best)
    chosen = "probabilities" if best["probabilities"] >= best["labels"] else "labels"
    assert metrics["targets"] == chosen and metrics["dev_f1_by_C"] == pytest.approx(fits[chosen].dev_f1_by_c)
    assert metrics["C"] == fits[chosen].c_value
    np.testing.assert_allclose(artifact_arrays(model)["coef"][0], fits[chosen].coef, rtol=1e-5, atol=1e-6)


def test_a_renamed_class_keeps_its_figures(api, world):
    dataset = world
    ts = build(api, dataset)
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model_url = f"/api/datasets/{dataset.id}/models/{job.json()['result']['model']}/"
    before = {"report": ts["report"], "metrics": api.get(model_url).json()["metrics"]["cat"],
              "analysis": api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()["classes"][0]}
    cat = LabelClass.objects.get(dataset=dataset, name="cat")
    assert api.patch(f"/api/datasets/{dataset.id}/classes/{cat.id}/", {"name": "feline"}, format="json").status_code == 200
    renamed = api.get(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/").json()
    assert renamed["report"] == {("feline" if name == "cat" else name): entry for name, entry in before["report"].items()}
    assert renamed["stale"] is False and api.get(model_url).json()["stale"] is False  # a name is no input
    assert {lf["class"] for lf in renamed["snapshot"]["lfs"]} == {"feline"}
    assert api.get(model_url).json()["metrics"] == {"feline": before["metrics"]}
    analysis = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=feline").json()["classes"][0]
    assert analysis["label_model"] == before["analysis"]["label_model"] is not None
    assert analysis["model"] == before["analysis"]["model"] and analysis["model"]["valid"] is not None
    assert api.get(f"{model_url}predictions/?label_class=feline").status_code == 200
    # a class later given the old name is another class: none of those figures are its
    assert api.post(f"/api/datasets/{dataset.id}/classes/", {"name": "cat"}, format="json").status_code == 201
    fresh = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()["classes"][0]
    assert fresh["label_model"] is None and fresh["model"] is None
    dog = LabelClass.objects.get(dataset=dataset, name="dog")
    assert api.delete(f"/api/datasets/{dataset.id}/classes/{dog.id}/").status_code == 204
    assert api.post(f"/api/datasets/{dataset.id}/classes/", {"name": "dog"}, format="json").status_code == 201
    assert api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=dog").json()["classes"][0]["label_model"] is None
    # a deleted class's figures go with it: the set and the model do not show them under a new class of its name
    assert api.delete(f"/api/datasets/{dataset.id}/classes/{cat.id}/").status_code == 204
    assert api.post(f"/api/datasets/{dataset.id}/classes/", {"name": "feline"}, format="json").status_code == 201
    assert "feline" not in api.get(f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/").json()["report"]
    assert api.get(model_url).json()["metrics"] == {}


def test_analysis_of_a_named_model_and_training_set(api, world):
    dataset = world
    url = f"/api/datasets/{dataset.id}/analysis/"
    first_set = build(api, dataset)
    first = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat", "CAT"]},  # one class, twice
                             format="json")["Location"])
    cat = LabelClass.objects.get(dataset=dataset, name="cat")
    assert api.get(f"/api/datasets/{dataset.id}/models/{first.json()['result']['model']}/").json()["params"][
        "classes"] == [cat.id]
    lf = LabelingFunction.objects.order_by("id").first()
    assert api.patch(f"/api/datasets/{dataset.id}/lfs/{lf.id}/", {"high": 0.9}, format="json").status_code == 200
    second_set = build(api, dataset)
    second = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    first_model, second_model = first.json()["result"]["model"], second.json()["result"]["model"]
    latest = api.get(url, {"label_class": "cat"}).json()
    assert (latest["model"], latest["training_set"]) == (second_model, second_set["id"])
    named = api.get(url, {"model": first_model, "training_set": first_set["id"]}).json()
    assert (named["model"], named["training_set"]) == (first_model, first_set["id"])
    by_class = {entry["label_class"]: entry for entry in named["classes"]}
    assert by_class["cat"]["model"]["id"] == first_model and by_class["dog"]["model"] is None  # trained for cat only
    assert by_class["cat"]["label_model"]["candidates"] == first_set["report"]["cat"]["candidates"]
    assert by_class["cat"]["label_model"]["reason"] == first_set["report"]["cat"]["reason"]
    assert {row["learned"]["training_set"] for row in by_class["cat"]["lfs"]["per_lf"] if row["learned"]} == {
        first_set["id"]}
    assert named["training_set_stale_reasons"] == [f"LF cat/{lf.id} changed its rule"]
    for query in ({"model": 424242}, {"training_set": 424242}, {"model": "x"}):
        refused = api.get(url, query)
        assert refused.status_code == 400 and set(refused.json()) & {"model", "training_set"}, refused.content


def test_analysis_measures_the_model_on_the_valid_ground_truth_of_now(api, world):
    dataset = world
    build(api, dataset)
    job = api.get(api.post(f"/api/datasets/{dataset.id}/models/", {"classes": ["cat"]}, format="json")["Location"])
    model_url = f"/api/datasets/{dataset.id}/models/{job.json()['result']['model']}/"
    valid = list(Sample.objects.filter(dataset=dataset, split="valid").order_by("id")[:3])
    for sample in valid[:2]:  # labels flipped on valid, a dev sample moved into it
        value = api.get(f"/api/datasets/{dataset.id}/annotations/?sample={sample.id}").json()["results"][0]["value"]
        api.put(f"/api/datasets/{dataset.id}/annotations/", {"sample": sample.id, "label_class": "cat",
                                                             "value": "ABSENT" if value == "PRESENT" else "PRESENT"},
                format="json")
    moved = Sample.objects.filter(dataset=dataset, split="dev").order_by("id").first()
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{moved.id}/", {"split": "valid"}, format="json").status_code == 200
    stored = api.get(model_url).json()["metrics"]["cat"]["valid"]
    charts = api.get(f"{model_url}charts/?label_class=cat&split=valid").json()["classes"][0]
    analysis = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()["classes"][0]["model"]["valid"]
    assert analysis["confusion"] == charts["confusion"] != stored["confusion"]
    assert analysis["labeled"] == sum(charts["confusion"].values()) == stored["labeled"] + 1


def test_the_lf_summary_shows_what_the_latest_label_model_learned(api, world):
    dataset = world
    summary_url = f"/api/datasets/{dataset.id}/lfs/summary/?label_class=cat"
    assert [row["learned"] for row in api.get(summary_url).json()["lfs"]] == [None, None]  # no training set yet
    ts = build(api, dataset)
    report = {row["lf"]: row for row in ts["report"]["cat"]["lfs"]}
    rows = api.get(summary_url).json()["lfs"]
    for row in rows:
        assert row["learned"] == {"training_set": ts["id"], "learned": report[row["lf"]]["learned"],
                                  "implied_precision": report[row["lf"]]["implied_precision"],
                                  "weight": report[row["lf"]]["weight"], "check": report[row["lf"]]["check"],
                                  "message": report[row["lf"]]["message"], "learned_by": "em_semi_supervised",
                                  "labels_from": ts["report"]["cat"]["chosen"]}
        assert report[row["lf"]]["learned_by"] == "em_semi_supervised"
    later = api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "says nothing", "label_class": "cat", "type": "pattern", "low": None, "high": 1,
        "config": {"field": "colour", "builder": "keyword", "words": ["green"]}}, format="json").json()
    learned = {row["lf"]: row["learned"] for row in api.get(summary_url).json()["lfs"]}
    assert learned[later["id"]] is None and all(learned[row["lf"]] for row in rows)
    # An edit of its rule: the set learned nothing of the new rule. A rename of it is not an edit of its rule.
    edited, renamed = rows[0]["lf"], rows[1]["lf"]
    lf_url = f"/api/datasets/{dataset.id}/lfs/"
    assert api.patch(f"{lf_url}{edited}/", {"high": 0.5}, format="json").status_code == 200
    assert api.patch(f"{lf_url}{renamed}/", {"name": "another name"}, format="json").status_code == 200
    learned = {row["lf"]: row["learned"] for row in api.get(summary_url).json()["lfs"]}
    assert learned[edited] is None and learned[renamed]["training_set"] == ts["id"]
    analysis = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()
    assert {row["lf"]: row["learned"] for row in analysis["classes"][0]["lfs"]["per_lf"]} == learned
    assert analysis["training_set"] == ts["id"]
    assert analysis["training_set_stale_reasons"] == api.get(
        f"/api/datasets/{dataset.id}/training-sets/{ts['id']}/").json()["stale_reasons"] != []


def test_a_ground_truth_model_without_labels_of_both_sides_is_refused_before_its_job(api, world):
    from imagestudio.jobs.models import Job

    jobs = Job.objects.count()
    response = api.post(f"/api/datasets/{world.id}/models/", {"classes": ["cat", "dog"], "label_source": "ground_truth",
                                                               "ground_truth_splits": ["test"]}, format="json")
    assert response.status_code == 400, response.content
    message = response.json()["ground_truth_splits"][0]
    assert "'cat': no" in message and "'dog': no PRESENT label" in message
    assert Job.objects.count() == jobs


def test_a_model_never_trains_on_valid_the_split_it_is_measured_on(api, world):
    for splits in (["valid"], ["train", "valid"]):
        response = api.post(f"/api/datasets/{world.id}/models/", {"classes": ["cat"], "label_source": "ground_truth",
                                                                  "ground_truth_splits": splits}, format="json")
        assert response.status_code == 400 and "valid" in response.json()["ground_truth_splits"][0], response.content


def test_no_miss_or_false_alarm_advice_without_a_miss_or_a_false_alarm(dataset):
    from types import SimpleNamespace

    from imagestudio.training.analysis import _guidance

    cat, lf = dataset.classes.get(name="cat"), SimpleNamespace(id=1)
    none_positive = {"labeled": 2, "confusion": {"tp": 0, "fn": 0, "fp": 0, "tn": 2}, "precision": 0.0, "recall": 0.0}
    tips = _guidance(cat, "train", [lf], [], np.ones((4, 1)), np.zeros(4), 1.0, 0.0, SimpleNamespace(id=7, version=1),
                     none_positive, valid_labels=100, valid_samples=100,
                     evidence=("train", [], np.ones((4, 1)), np.zeros(4)))
    assert tips == []


def test_analysis_of_an_unlabeled_split_judges_lfs_on_dev(api, world):
    dataset = world
    wrong = api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "red means no", "label_class": "cat", "type": "pattern", "low": 0, "high": 1, "invert": True,
        "config": {"field": "colour", "builder": "keyword", "words": ["red"]}}, format="json").json()
    train = list(Sample.objects.filter(split="train").values_list("id", flat=True))
    assert api.post(f"/api/datasets/{dataset.id}/annotations/bulk/", {
        "sample_ids": train, "classes": ["cat"], "value": "ABSTAIN"}, format="json").status_code == 200
    cat = api.get(f"/api/datasets/{dataset.id}/analysis/?label_class=cat").json()["classes"][0]  # split=train
    tips = [tip for tip in cat["guidance"] if tip["kind"] == "imprecise_lf"]
    assert tips and all(f"lf_vote={wrong['id']}" in tip["samples"] and "split=dev" in tip["samples"] for tip in tips)
    for tip in tips:
        assert api.get(tip["samples"]).json()["count"] > 0
