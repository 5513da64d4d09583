"""Exact import accounting (issue 12): every input file in exactly one bucket, duplicates pointing at their
sample, conflicts settled by the request's duplicate policy, bad rows refused alone, the full per-file report
downloadable, and no staged file left behind."""

import io
import json
import os
import time
import warnings
import zipfile
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.annotations.models import Annotation
from imagestudio.celery import app as celery_app
from imagestudio.datasets.imports import import_finished, imports_sweep_orphans
from imagestudio.datasets.imports import report as report_module
from imagestudio.datasets.imports import run as run_module
from imagestudio.datasets.imports import start as start_module
from imagestudio.datasets.models import Sample
from imagestudio.demo.integrity import integrity_check
from imagestudio.jobs.models import Job
from imagestudio.jobs.services import job_claim, run_job
from tests.conftest import client_for, png_bytes, zip_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def post_import(client, dataset, **data):
    return client.post(f"/api/datasets/{dataset.id}/imports/", data, format="multipart")


def archive_upload(members):
    return SimpleUploadedFile("set.zip", zip_bytes(members), content_type="application/zip")


def finished(client, response):
    assert response.status_code == 202, response.content
    job = client.get(response["Location"]).json()
    assert job["status"] == "succeeded", job
    return job["result"]


def assert_buckets_add_up(result):
    assert result["created"] + result["duplicates"] + result["errors"] + result["skipped"] == result["total"], result


def staged_files():
    root = default_storage.path("staging")
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(run_module, "BATCH_SIZE", 4)


def test_twins_in_later_batches_are_duplicates_of_the_first_sample(api, dataset, small_batches):
    images = {f"img/{i:02}.png": png_bytes((i * 10, 5, 5)) for i in range(10)}
    twins = {f"img/twin-{i:02}.png": images[f"img/{i:02}.png"] for i in (0, 1, 2, 5)}  # later batches
    rows = "".join(f"{name},{'valid' if 'twin' in name else ''},{name}-caption\n" for name in [*images, *twins])
    result = finished(api, post_import(api, dataset, archive=archive_upload(
        {**images, **twins, "manifest.csv": f"file,split,caption\n{rows}".encode()})))
    assert (result["total"], result["created"], result["duplicates"], result["errors"]) == (14, 10, 4, 0), result
    assert Sample.objects.filter(dataset=dataset).count() == 10
    for entry in result["duplicate_files"]:
        first = entry["file"].replace("twin-", "")
        assert entry["sample_id"] == Sample.objects.get(external_id=first).id
        assert entry["reason"] == f"the same image as {first} in this import"
        assert "split 'valid' here, 'train' kept" in entry["conflict"]  # reported, not silently dropped
    assert result["conflicts"] == 4


def make_stored_twin(api, dataset):
    manifest = b"file,caption,gt:cat\na.png,a cat,PRESENT\nb.png,b,\n"
    finished(api, post_import(api, dataset, archive=archive_upload(
        {"a.png": png_bytes((1, 2, 3)), "b.png": png_bytes((4, 5, 6)), "manifest.csv": manifest})))
    return Sample.objects.get(external_id="a.png"), Sample.objects.get(external_id="b.png")


def import_conflicting_twins(api, dataset, policy):
    """a2: the same image as a.png with a new key and a new label (consistent); b2: as b.png, caption differs."""
    manifest = (b"file,caption,source,gt:cat,gt:dog\n"
                b"a2.png,a cat,web,PRESENT,ABSENT\n"
                b"b2.png,not b,,,\n")
    return finished(api, post_import(api, dataset, duplicates=policy, archive=archive_upload(
        {"a2.png": png_bytes((1, 2, 3)), "b2.png": png_bytes((4, 5, 6)), "manifest.csv": manifest})))


def labels(sample):
    return dict(Annotation.objects.filter(sample=sample).values_list("label_class__name", "value"))


def test_keep_first_is_the_default_and_reports_conflicts(api, dataset):
    a, b = make_stored_twin(api, dataset)
    result = import_conflicting_twins(api, dataset, "keep_first")
    assert (result["duplicates"], result["conflicts"], result["merged"], result["errors"]) == (2, 2, 0, 0)
    conflicts = {e["file"]: e for e in result["duplicate_files"]}
    assert conflicts["a2.png"]["sample_id"] == a.id and "metadata 'source'" in conflicts["a2.png"]["conflict"]
    assert "ground truth 'dog'" in conflicts["a2.png"]["conflict"]
    assert "metadata 'caption': 'not b' here, 'b' kept" in conflicts["b2.png"]["conflict"]
    a.refresh_from_db()
    assert a.metadata == {"caption": "a cat"} and labels(a) == {"cat": "PRESENT"}
    assert result["duplicate_policy"] == "keep_first"


def test_merge_adds_consistent_keys_and_labels_and_keeps_the_first_on_a_contradiction(api, dataset):
    a, b = make_stored_twin(api, dataset)
    result = import_conflicting_twins(api, dataset, "merge")
    assert (result["duplicates"], result["conflicts"], result["merged"], result["errors"]) == (2, 1, 1, 0)
    entries = {e["file"]: e for e in result["duplicate_files"]}
    assert sorted(entries["a2.png"]["merged"]) == ["ground truth 'dog'", "metadata 'source'"]
    assert "conflict" not in entries["a2.png"] and "caption" in entries["b2.png"]["conflict"]
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.metadata == {"caption": "a cat", "source": "web"} and labels(a) == {"cat": "PRESENT", "dog": "ABSENT"}
    assert b.metadata == {"caption": "b"}
    assert result["annotations"] == 1
    found = api.get(f"/api/datasets/{dataset.id}/samples/?search=web").json()["results"]
    assert [s["id"] for s in found] == [a.id]  # the merged metadata is searchable


def test_metadata_merged_into_a_twin_refreshes_its_votes(api, dataset):
    a, _ = make_stored_twin(api, dataset)
    assert api.patch(f"/api/datasets/{dataset.id}/samples/{a.id}/", {"metadata": {}}, format="json").status_code == 200
    lf = api.post(f"/api/datasets/{dataset.id}/lfs/", {
        "name": "says cat", "label_class": "cat", "type": "pattern", "high": 1,
        "config": {"field": "caption", "builder": "keyword", "words": ["cat"]}}, format="json").json()
    voted = f"/api/datasets/{dataset.id}/samples/?lf_vote={lf['id']}:PRESENT"
    assert api.get(voted).json()["count"] == 0
    result = finished(api, post_import(api, dataset, duplicates="merge", archive=archive_upload(
        {"a3.png": png_bytes((1, 2, 3)), "manifest.csv": b"file,caption\na3.png,a cat\n"})))
    assert (result["created"], result["merged"]) == (0, 1)  # nothing new: the twin took the caption
    assert [row["id"] for row in api.get(voted).json()["results"]] == [a.id]
    assert integrity_check(datasets=[dataset]).clean


def test_merge_inside_one_import_across_batches(api, dataset, small_batches):
    images = {f"{i}.png": png_bytes((i, 99, 0)) for i in range(6)}
    manifest = "file,colour,shape\n" + "".join(f"{i}.png,c{i},\n" for i in range(6)) + "twin.png,c0,round\n"
    result = finished(api, post_import(api, dataset, duplicates="merge", archive=archive_upload(
        {**images, "twin.png": images["0.png"], "manifest.csv": manifest.encode()})))
    assert (result["created"], result["duplicates"], result["merged"]) == (6, 1, 1)
    assert Sample.objects.get(external_id="0.png").metadata == {"colour": "c0", "shape": "round"}


def test_refuse_policy_refuses_conflicting_duplicates_with_the_reason(api, dataset):
    a, _ = make_stored_twin(api, dataset)
    result = import_conflicting_twins(api, dataset, "refuse")
    assert_buckets_add_up(result)
    assert (result["duplicates"], result["errors"], result["conflicts"]) == (0, 2, 0)
    reasons = {e["file"]: e["reason"] for e in result["error_files"]}
    assert "differs" in reasons["a2.png"] and "metadata 'source'" in reasons["a2.png"]
    a.refresh_from_db()
    assert a.metadata == {"caption": "a cat"}


def test_unknown_duplicate_policy_is_a_400(api, dataset):
    response = post_import(api, dataset, duplicates="newest", files=[SimpleUploadedFile("a.png", png_bytes())])
    assert response.status_code == 400 and "duplicates" in response.json()
    assert not staged_files()


def test_a_bad_manifest_row_is_refused_alone(api, dataset):
    images = {f"{i}.png": png_bytes((i, 0, 200)) for i in range(40)}
    rows = [{"file": name, "caption": f"image {name}"} for name in images]
    rows[5]["caption"] = "a NUL \u0000 inside"
    rows[35]["caption"] = "a lone \ud800 surrogate"
    rows[36]["external_id"] = "id-\u0000"
    manifest = "\n".join(json.dumps(row) for row in rows).encode()
    result = finished(api, post_import(api, dataset, archive=archive_upload({**images, "manifest.jsonl": manifest})))
    assert (result["total"], result["created"], result["errors"]) == (40, 37, 3), result
    assert_buckets_add_up(result)
    reasons = {e["file"]: e["reason"] for e in result["error_files"]}
    assert "NUL" in reasons["5.png"] and "surrogate" in reasons["35.png"] and "external_id contains a NUL" in reasons["36.png"]
    assert Sample.objects.filter(dataset=dataset).count() == 37


def test_an_uploaded_file_whose_metadata_value_is_too_long_is_refused_alone(api, dataset):
    """An upload's metadata takes what a manifest takes: a pattern LF searches every value whole."""
    files = [SimpleUploadedFile(f"{i}.png", png_bytes((i, 9, 9))) for i in range(3)]
    metadata = {"0.png": {"caption": "a" * 10_001}, "1.png": {"tags": ["a" * 6_000, "b" * 6_000]},
                "2.png": {"caption": "a" * 10_000}}
    result = finished(api, post_import(api, dataset, files=files, metadata=json.dumps(metadata)))
    assert (result["created"], result["errors"]) == (1, 2), result
    reasons = {e["file"]: e["reason"] for e in result["error_files"]}
    assert "'caption' is longer than" in reasons["0.png"] and "'tags' is longer than" in reasons["1.png"]


def test_metadata_too_large_as_a_whole_is_refused_alone_from_uploads_and_manifests(api, dataset):
    """One sample's metadata is read by every list, filter and catalogue: bounded in fields and characters."""
    files = [SimpleUploadedFile(f"{i}.png", png_bytes((i, 8, 8))) for i in range(4)]
    metadata = {"0.png": {f"k{i}": i for i in range(257)}, "1.png": {f"k{i}": "x" * 9_000 for i in range(23)},
                "2.png": {f"{'n' * 101}": 1}, "3.png": {f"k{i}": i for i in range(256)}}
    result = finished(api, post_import(api, dataset, files=files, metadata=json.dumps(metadata)))
    assert (result["created"], result["errors"]) == (1, 3), result
    reasons = {e["file"]: e["reason"] for e in result["error_files"]}
    assert "257 fields; at most 256" in reasons["0.png"] and "200,000 characters" in reasons["1.png"]
    assert "longer than 100 characters" in reasons["2.png"]
    wide = "file," + ",".join(f"c{i}" for i in range(300)) + "\n" + "a.png," + ",".join("1" * 300) + "\n"
    result = finished(api, post_import(api, dataset, archive=archive_upload({
        "a.png": png_bytes((1, 2, 3)), "manifest.csv": wide.encode()})))
    assert (result["created"], result["errors"]) == (0, 1) and "300 fields" in result["error_files"][0]["reason"]


def test_every_bucket_and_listing_refusals_add_up_to_the_total(api, dataset):
    image = png_bytes((3, 3, 3))
    archive = {"plain.png": png_bytes((1, 1, 1)), "copy.png": image, "orig.png": image,
               "cut.png": png_bytes((2, 2, 2)) + b"<html>appended</html>", "text.png": b"not an image",
               "../escape.png": png_bytes((4, 4, 4))}
    result = finished(api, post_import(api, dataset, archive=archive_upload(archive)))
    assert (result["total"], result["created"], result["stripped"], result["duplicates"], result["errors"]) == \
        (6, 3, 1, 1, 2), result


def test_members_a_manifest_leaves_out_are_skipped_and_refused_members_are_counted_once(api, dataset):
    archive = {"listed.png": png_bytes((1, 1, 1)), "unlisted.png": png_bytes((2, 2, 2)),
               "sub/other.png": png_bytes((3, 3, 3)), "notes.txt": b"hello", "../escape.png": png_bytes((4, 4, 4)),
               "manifest.csv": b"file,split\nlisted.png,dev\n../escape.png,dev\nmissing.png,dev\n"}
    result = finished(api, post_import(api, dataset, archive=archive_upload(archive)))
    assert_buckets_add_up(result)
    assert (result["total"], result["created"], result["errors"], result["skipped"]) == (6, 1, 2, 3), result
    assert {e["file"] for e in result["error_files"]} == {"../escape.png", "missing.png"}  # the row, not twice
    assert {e["file"]: e["reason"] for e in result["skipped_files"]} == {
        name: "not listed in the manifest manifest.csv" for name in ("notes.txt", "sub/other.png", "unlisted.png")}


def test_a_manifest_row_for_a_name_two_members_share_imports_the_first(api, dataset):
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": the archive this test is about
        for name, colour in (("a.png", 1), ("a.png", 2), ("b.png", 3)):
            archive.writestr(name, png_bytes((colour, 1, 1)))
        archive.writestr("manifest.csv", "file,split\na.png,dev\nb.png,dev\n")
    result = finished(api, post_import(api, dataset, archive=SimpleUploadedFile("twice.zip", data.getvalue())))
    assert_buckets_add_up(result)
    assert (result["total"], result["created"], result["errors"], result["skipped"]) == (3, 2, 1, 0), result


def test_the_full_report_is_stored_when_the_result_cannot_hold_it(api, dataset, stranger, monkeypatch):
    monkeypatch.setattr(report_module, "MAX_REPORTED", 2)
    images = {f"{i}.png": png_bytes((i, 50, 50)) for i in range(3)}
    copies = {f"copy-{i}.png": png_bytes((i, 50, 50)) for i in range(3)}
    response = post_import(api, dataset, archive=archive_upload({**images, **copies, "bad.png": b"x"}))
    result = finished(api, response)
    assert result["truncated"] and len(result["duplicate_files"]) == 2 and result["duplicates"] == 3
    assert result["report_file"]
    url = f"{response['Location']}report/"
    download = api.get(url)
    assert download.status_code == 200 and download["Content-Type"] == "application/jsonl"
    lines = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert len(lines) == result["total"] == 7
    outcomes = [line["outcome"] for line in lines]
    assert (outcomes.count("created"), outcomes.count("duplicate"), outcomes.count("refused")) == (3, 3, 1)
    ids = {line["file"]: line["sample_id"] for line in lines if line["outcome"] != "refused"}
    assert all(ids[f"copy-{i}.png"] == ids[f"{i}.png"] for i in range(3))
    assert client_for(stranger).get(url).status_code == 404


def test_a_job_without_a_stored_report_answers_404(api, dataset):
    response = post_import(api, dataset, files=[SimpleUploadedFile("a.png", png_bytes())])
    finished(api, response)
    assert api.get(f"{response['Location']}report/").status_code == 404


def test_staged_files_are_removed_when_the_request_fails_after_staging(api, dataset, monkeypatch):
    def broken_enqueue(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(start_module, "job_enqueue", broken_enqueue)
    with pytest.raises(RuntimeError):
        post_import(api, dataset, files=[SimpleUploadedFile("a.png", png_bytes())])
    assert not staged_files()
    assert not Job.objects.exists()


def test_a_run_killed_half_way_and_delivered_again_reports_every_label(api, dataset, monkeypatch, small_batches):
    monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
    images = {f"{i}.png": png_bytes((i, 9, 9)) for i in range(10)}
    manifest = "file,gt:cat,gt:dog\n" + "".join(f"{i}.png,{'PRESENT' if i % 2 else 'ABSENT'},{'' if i % 3 else 'PRESENT'}\n"
                                                 for i in range(10))
    response = post_import(api, dataset, archive=archive_upload({**images, "manifest.csv": manifest.encode()}))
    job_id = response.json()["id"]
    real_batch, batches = run_module._import_batch, []

    def dies_after_two_batches(*args):
        if len(batches) == 2:
            raise SystemExit("worker killed")
        batches.append(real_batch(*args))

    monkeypatch.setattr(run_module, "_import_batch", dies_after_two_batches)
    with pytest.raises(SystemExit):
        run_module.import_run(job_claim(job_id=job_id))  # 8 of 10 samples stored with their labels, then killed
    monkeypatch.setattr(run_module, "_import_batch", real_batch)
    run_job(job_id, run_module.import_run, finished=import_finished)  # the broker's next delivery
    result = api.get(response["Location"]).json()["result"]
    assert (result["created"], result["annotations"]) == (10, 10 + 4) == (
        Sample.objects.filter(dataset=dataset).count(), Annotation.objects.filter(sample__dataset=dataset).count())


def test_a_cancelled_import_accounts_for_what_it_stored_and_what_it_did_not_reach(api, dataset, monkeypatch,
                                                                                   small_batches):
    """Its result was {}: the samples it had stored stayed, with no word of which, and no LF refresh followed them."""
    from imagestudio.jobs.services import job_cancel

    monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
    images = {f"{i}.png": png_bytes((i, 7, 7)) for i in range(10)}
    response = post_import(api, dataset, archive=archive_upload({**images, "bad.png": b"not an image"}))
    job_id = response.json()["id"]
    real_batch, batches, cancelled_at = run_module._import_batch, [], []

    def cancelled_after_two_batches(job, *args):
        batches.append(real_batch(job, *args))
        if len(batches) == 2:  # by its user, while it runs: it stops at its next report
            cancelled_at.append(job_cancel(job=Job.objects.get(pk=job.id)).updated_at)

    monkeypatch.setattr(run_module, "_import_batch", cancelled_after_two_batches)
    refreshes = []
    monkeypatch.setattr(run_module.pipeline, "after_import", lambda **kwargs: refreshes.append(kwargs) or {})
    run_job(job_id, run_module.import_run, finished=import_finished)
    job = api.get(response["Location"]).json()
    result, stored = job["result"], Sample.objects.filter(dataset=dataset).count()
    assert job["status"] == "cancelled" and stored == 8 == result["created"]
    assert result["total"] == 11 and result["cancelled"] == 11 - 8 - result["errors"], result
    assert result["created"] + result["duplicates"] + result["errors"] + result["cancelled"] == result["total"]
    assert len(refreshes) == 1  # the stored samples get their vectors and votes
    assert Job.objects.get(pk=job_id).updated_at > cancelled_at[0]  # a long poll `?since=` the cancel sees it


def test_staged_files_are_removed_when_the_job_fails(api, dataset):
    response = post_import(api, dataset, archive=SimpleUploadedFile("s.zip", b"PK\x03\x04 broken"))
    assert api.get(response["Location"]).json()["status"] == "failed"
    assert not staged_files()


def test_a_redelivery_after_the_work_was_done_but_not_recorded_finds_its_staged_files(api, dataset, monkeypatch):
    monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
    response = post_import(api, dataset, files=[SimpleUploadedFile(f"{i}.png", png_bytes((i, 7, 7))) for i in range(3)])
    job_id = response.json()["id"]
    run_module.import_run(job_claim(job_id=job_id))  # the first delivery did the work; its worker died then
    run_job(job_id, run_module.import_run, finished=import_finished)  # the broker's next delivery
    job = api.get(response["Location"]).json()
    assert job["status"] == "succeeded", job  # it failed: its first delivery had removed the staged files
    assert (job["attempts"], job["result"]["created"]) == (2, 3), job
    assert Sample.objects.filter(dataset=dataset).count() == 3
    assert not staged_files()


def test_sweep_removes_day_old_staging_without_an_active_job(dataset, owner):
    old = default_storage.save("staging/orphan/a.png", SimpleUploadedFile("a.png", b"x"))
    fresh = default_storage.save("staging/fresh/a.png", SimpleUploadedFile("a.png", b"x"))
    active = default_storage.save("staging/active/a.png", SimpleUploadedFile("a.png", b"x"))
    two_days_ago = time.time() - 2 * 86_400
    for key in (old, active):
        os.utime(default_storage.path(key), (two_days_ago, two_days_ago))
    Job.objects.create(kind="import", dataset=dataset, creator=owner, params={"staging": "staging/active"})
    assert imports_sweep_orphans(older_than=timedelta(days=1)) == 1
    assert not default_storage.exists(old)
    assert default_storage.exists(fresh) and default_storage.exists(active)


def test_the_sweep_runs_on_the_beat_schedule():
    entry = django_settings.CELERY_BEAT_SCHEDULE["imports-sweep-orphans"]
    celery_app.loader.import_default_modules()
    assert entry["task"] in celery_app.tasks
    assert celery_app.conf.beat_schedule["imports-sweep-orphans"]["task"] == entry["task"]
