"""Ingestion through the HTTP API: uploads, archives, server paths; every refusal has a per-file reason."""

import hashlib
import io
import json
import logging
import os
import tarfile
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.annotations.models import Annotation, AnnotationEvent
from imagestudio.datasets.imports.grants import import_grant_create
from imagestudio.datasets.imports.run import import_run
from imagestudio.datasets.models import Dataset, Role, Sample
from imagestudio.jobs.services import run_job
from tests.conftest import png_bytes, zip_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def upload(name, data, content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def post_import(client, dataset, **data):
    return client.post(f"/api/datasets/{dataset.id}/imports/", data, format="multipart")


def finished(client, response):
    assert response.status_code == 202, response.content
    assert response["Location"] == f"http://testserver/api/jobs/{response.json()['id']}/" == response.json()["url"]
    job = client.get(response["Location"]).json()
    assert job["status"] == "succeeded", job
    return job["result"]


def stored_files():
    root = default_storage.path("datasets")
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


def test_upload_files_with_split_and_metadata(api, dataset):
    response = post_import(api, dataset, files=[upload("red.png", png_bytes((255, 0, 0))),
                                                upload("blue.png", png_bytes((0, 0, 255)))],
                           split="dev", metadata=json.dumps({"red.png": {"caption": "A red one", "n": 3}}))
    result = finished(api, response)
    assert (result["total"], result["created"], result["errors"], result["duplicates"]) == (2, 2, 0, 0)
    red = Sample.objects.get(external_id="red.png")
    assert red.split == "dev" and red.metadata == {"caption": "A red one", "n": 3}
    assert (red.width, red.height, red.format) == (64, 48, "PNG")
    assert Dataset.objects.get(pk=dataset.pk).split_counts["dev"] == 2
    assert len(stored_files()) == 4  # two originals, two thumbnails
    assert not default_storage.listdir("staging")[1]  # staging emptied


def test_files_brackets_name_is_accepted(api, dataset):
    response = api.post(f"/api/datasets/{dataset.id}/imports/",
                        {"files[]": [upload("a.png", png_bytes())]}, format="multipart")
    assert finished(api, response)["created"] == 1
    both = api.post(f"/api/datasets/{dataset.id}/imports/", {"files[]": [upload("b.png", png_bytes((1, 1, 1)))],
                                                             "files": [upload("c.png", png_bytes((2, 2, 2)))]},
                    format="multipart")
    assert (finished(api, both)["total"], finished(api, both)["created"]) == (2, 2)  # none dropped


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_metadata_numbers_must_be_finite(api, dataset, number):
    response = post_import(api, dataset, files=[upload("a.png", png_bytes())],
                           metadata='{"a.png": {"n": ' + number + '}}')
    assert response.status_code == 400, response.content
    assert response.json()["metadata"] == [f"{number} is not a finite number"]
    assert not Sample.objects.filter(dataset=dataset).exists()


def test_bad_files_are_reported_and_leave_nothing(api, dataset):
    good = png_bytes((1, 2, 3))
    truncated = png_bytes((9, 9, 9), size=(300, 300), image_format="JPEG")[:400]
    response = post_import(api, dataset, files=[
        upload("good.png", good),
        upload("empty.png", b""),
        upload("notes.txt", b"hello", "text/plain"),
        upload("cut.jpg", truncated, "image/jpeg"),
        upload("vector.svg", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "image/svg+xml"),
    ])
    result = finished(api, response)
    assert result["created"] == 1 and result["errors"] == 4
    reasons = {entry["file"]: entry["reason"] for entry in result["error_files"]}
    assert "empty" in reasons["empty.png"]
    assert "not an image" in reasons["notes.txt"] and "not an image" in reasons["vector.svg"]
    assert "truncated" in reasons["cut.jpg"] or "corrupt" in reasons["cut.jpg"]
    assert Sample.objects.count() == 1
    assert len(stored_files()) == 2


def test_same_import_twice_adds_nothing(api, dataset):
    files = lambda: [upload("a.png", png_bytes((1, 1, 1))), upload("b.png", png_bytes((2, 2, 2)))]  # noqa: E731
    finished(api, post_import(api, dataset, files=files()))
    again = finished(api, post_import(api, dataset, files=files()))
    assert (again["created"], again["duplicates"]) == (0, 2)
    assert {d["reason"] for d in again["duplicate_files"]} == {"the same image is already in the dataset"}
    assert Sample.objects.count() == 2
    assert Dataset.objects.get(pk=dataset.pk).split_counts["train"] == 2


def test_duplicate_inside_one_upload_and_external_id_clash(api, dataset):
    data = png_bytes((5, 5, 5))
    result = finished(api, post_import(api, dataset, files=[upload("x.png", data), upload("y.png", data)]))
    assert (result["created"], result["duplicates"]) == (1, 1)
    clash = finished(api, post_import(api, dataset, files=[upload("x.png", png_bytes((6, 6, 6)))]))
    assert clash["errors"] == 1 and "external_id" in clash["error_files"][0]["reason"]


def test_archive_with_manifest_metadata_and_ground_truth(api, dataset, owner):
    manifest = ("file,split,external_id,caption,weight,gt:cat,gt:dog\n"
                "imgs/a.png,valid,A,a cat on a mat,4.5,PRESENT,ABSENT\n"
                "imgs/b.png,,B,a dog,,ABSENT,PRESENT\n"
                "imgs/missing.png,,C,,,,\n"
                "imgs/c.png,nowhere,D,,,,\n")
    archive = zip_bytes({"manifest.csv": manifest.encode(), "imgs/a.png": png_bytes((1, 0, 0)),
                         "imgs/b.png": png_bytes((0, 1, 0)), "imgs/c.png": png_bytes((0, 0, 1)),
                         "imgs/unlisted.png": png_bytes((3, 3, 3))})
    result = finished(api, post_import(api, dataset, archive=upload("set.zip", archive, "application/zip"),
                                       split="test"))
    assert result["created"] == 2 and result["annotations"] == 4
    reasons = {entry["file"]: entry["reason"] for entry in result["error_files"]}
    assert "no such file" in reasons["imgs/missing.png"] and "nowhere" in reasons["imgs/c.png"]
    a, b = Sample.objects.get(external_id="A"), Sample.objects.get(external_id="B")
    assert a.split == "valid" and b.split == "test"
    assert a.metadata == {"caption": "a cat on a mat", "weight": 4.5}
    values = dict(Annotation.objects.filter(sample=a).values_list("label_class__name", "value"))
    assert values == {"cat": "PRESENT", "dog": "ABSENT"}
    event = AnnotationEvent.objects.filter(sample=a).first()
    assert event.user == owner and event.source == "import" and event.old_value == "ABSTAIN"
    counts = {c["name"]: c["counts"] for c in api.get(f"/api/datasets/{dataset.id}/classes/").json()["results"]}
    assert counts["cat"]["valid"] == {"present": 1, "absent": 0, "unlabeled": 0}
    assert counts["cat"]["test"] == {"present": 0, "absent": 1, "unlabeled": 0}
    assert counts["dog"]["test"] == {"present": 1, "absent": 0, "unlabeled": 0}


def test_manifest_classes_are_named_by_key_and_a_row_naming_an_unknown_class_is_refused_alone(api, dataset):
    manifest = ("file,gt:Ｃａｔ,gt:DOG,gt:unicorn\n"
                "a.png,PRESENT,absent,\n"
                "b.png,,PRESENT,PRESENT\n"
                "c.png,ABSENT,,\n").encode()
    archive = zip_bytes({"manifest.csv": manifest, "a.png": png_bytes((1, 0, 0)), "b.png": png_bytes((2, 0, 0)),
                         "c.png": png_bytes((3, 0, 0))})
    result = finished(api, post_import(api, dataset, archive=upload("set.zip", archive, "application/zip")))
    assert (result["total"], result["created"], result["errors"], result["annotations"]) == (3, 2, 1, 3), result
    assert result["error_files"] == [{"file": "b.png", "reason": "manifest line 3: ground truth for 'unicorn': the "
                                                                 "dataset has no such class (create it first)"}]
    labels = Annotation.objects.values_list("sample__external_id", "label_class__name", "value")
    assert set(labels) == {("a.png", "cat", "PRESENT"), ("a.png", "dog", "ABSENT"), ("c.png", "cat", "ABSENT")}


def test_a_file_uploaded_with_a_bad_manifest_row_is_refused_once_and_not_imported(api, dataset):
    manifest = (b'{"file": "a.png", "ground_truth": {"Cat": "PRESENT"}}\n'
                b'{"file": "b.png", "ground_truth": {"unicorn": "PRESENT"}}\n'
                b'{"file": "c.png", "split": "holdout"}\n'
                b'{"file": "c.png", "split": "nowhere"}\n'
                b'{"file": "not-uploaded.png", "split": "nowhere"}\n')
    files = [upload(f"{name}.png", png_bytes((index, 9, 9))) for index, name in enumerate("abc")]
    result = finished(api, post_import(api, dataset, files=files, manifest=upload("m.jsonl", manifest, "text/plain")))
    assert (result["total"], result["created"], result["errors"]) == (3, 1, 2), result
    reasons = {entry["file"]: entry["reason"] for entry in result["error_files"]}
    assert "unicorn" in reasons["b.png"] and "line 3: split 'holdout'" in reasons["c.png"]
    assert list(Sample.objects.values_list("external_id", flat=True)) == ["a.png"]
    assert list(Annotation.objects.values_list("label_class__name", "value")) == [("cat", "PRESENT")]


def test_jsonl_manifest_beside_a_tar_archive(api, dataset):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in {"p/1.png": png_bytes((10, 0, 0)), "p/2.png": png_bytes((20, 0, 0))}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("p/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    manifest = b'{"file": "p/1.png", "external_id": "one", "metadata": {"k": "v"}, "ground_truth": {"cat": "PRESENT"}}\n'
    result = finished(api, post_import(api, dataset, archive=upload("set.tgz", buffer.getvalue(), "application/gzip"),
                                       manifest=upload("m.jsonl", manifest, "application/json")))
    assert result["created"] == 1 and Sample.objects.get().metadata == {"k": "v"}
    assert any("links" in entry["reason"] for entry in result["error_files"])


def test_archive_without_manifest_imports_every_file_with_path_as_id(api, dataset):
    archive = zip_bytes({"a/x.png": png_bytes((1, 1, 9)), "../evil.png": png_bytes((2, 2, 9)),
                         "/abs.png": png_bytes((3, 3, 9))})
    result = finished(api, post_import(api, dataset, archive=upload("s.zip", archive, "application/zip")))
    assert result["created"] == 1 and Sample.objects.get().external_id == "a/x.png"
    assert result["errors"] == 2


def test_corrupt_archive_fails_with_reason(api, dataset, monkeypatch, caplog):
    monkeypatch.setattr("imagestudio.jobs.services._run_eagerly", lambda task_name, job_id: None)
    response = post_import(api, dataset, archive=upload("s.zip", b"PK\x03\x04 broken", "application/zip"))
    with caplog.at_level(logging.INFO, logger="imagestudio.jobs.services"):
        run_job(response.json()["id"], import_run)  # in this process, so that its log is caplog's
    job = api.get(response["Location"]).json()
    assert job["status"] == "failed" and "archive" in job["error"]
    # the input's fault, said on the job: the log notes it without a traceback
    [record] = [r for r in caplog.records if r.name == "imagestudio.jobs.services" and job["id"] in r.getMessage()]
    assert record.levelno == logging.INFO and record.exc_info is None and "neither a zip" in record.getMessage()


def test_a_manifest_is_held_to_max_manifest_bytes_wherever_it_comes_from(api, dataset, settings, tmp_path):
    """An uploaded manifest over the limit was cut short silently (a caption of 172 characters stored for 300), and
    one inside an archive or a server directory was held to MAX_IMAGE_BYTES instead."""
    settings.MAX_IMAGE_BYTES, settings.MAX_MANIFEST_BYTES = 3000, 400
    caption = "long " * 60
    manifest = f"file,caption\na.png,{caption}\n".encode()  # 327 bytes: over the images' limit, under its own
    big = manifest + b"#" * 200
    refused = post_import(api, dataset, files=[upload("a.png", png_bytes())],
                          manifest=upload("m.csv", big, "text/csv"))
    assert refused.status_code == 400 and "MAX_MANIFEST_BYTES" in refused.json()["manifest"][0]
    archive = zip_bytes({"a.png": png_bytes(), "manifest.csv": big})
    failed = api.get(post_import(api, dataset, archive=upload("m.zip", archive, "application/zip"))["Location"]).json()
    assert failed["status"] == "failed" and "manifest manifest.csv" in failed["error"], failed
    assert "MAX_MANIFEST_BYTES" in failed["error"]
    result = finished(api, post_import(api, dataset, archive=upload(
        "ok.zip", zip_bytes({"a.png": png_bytes(), "manifest.csv": manifest}), "application/zip")))
    assert result["created"] == 1 and Sample.objects.get().metadata["caption"] == caption


def test_a_form_key_the_import_does_not_take_is_a_400(api, dataset):
    response = post_import(api, dataset, files=[upload("a.png", png_bytes())], spilt="dev")
    assert response.status_code == 400 and "Unknown key" in response.json()["spilt"][0]
    assert not Sample.objects.exists()
    both = post_import(api, dataset, **{"files[]": [upload("a.png", png_bytes())], "split": "dev"})
    assert finished(api, both)["created"] == 1 and Sample.objects.get().split == "dev"  # the other spelling of files


def test_zip_bomb_member_is_refused(api, dataset, settings):
    settings.MAX_IMAGE_BYTES = 1_000_000
    archive = zip_bytes({"bomb.png": b"\0" * 20_000_000, "ok.png": png_bytes()})
    result = finished(api, post_import(api, dataset, archive=upload("b.zip", archive, "application/zip")))
    assert result["created"] == 1
    assert "limit" in result["error_files"][0]["reason"]


def test_decompression_bomb_image_is_refused(api, dataset, settings):
    settings.MAX_IMAGE_PIXELS = 1_000_000
    bomb = png_bytes(colour=0, size=(4000, 4000), mode="1")
    result = finished(api, post_import(api, dataset, files=[upload("bomb.png", bomb)]))
    assert result["errors"] == 1 and "pixels" in result["error_files"][0]["reason"]


def test_server_side_directory_and_manifest(api, dataset, settings, tmp_path):
    root = tmp_path / "imports"
    (root / "batch").mkdir(parents=True)
    (root / "batch" / "a.png").write_bytes(png_bytes((7, 0, 0)))
    (root / "batch" / "b.png").write_bytes(png_bytes((8, 0, 0)))
    (root / "batch" / "list.csv").write_text("file,caption\na.png,from manifest\n")
    settings.IMPORT_ROOT = str(root)
    import_grant_create(dataset=dataset, path="batch")
    by_manifest = finished(api, api.post(f"/api/datasets/{dataset.id}/imports/", {"path": "batch/list.csv"},
                                         format="multipart"))
    assert by_manifest["created"] == 1 and Sample.objects.get().metadata == {"caption": "from manifest"}
    whole = finished(api, api.post(f"/api/datasets/{dataset.id}/imports/", {"path": "batch"}, format="multipart"))
    assert (whole["created"], whole["duplicates"]) == (1, 1)


def test_server_side_paths_are_confined(api, dataset, settings, tmp_path):
    url = f"/api/datasets/{dataset.id}/imports/"
    disabled = api.post(url, {"path": "x"}, format="multipart")
    assert disabled.status_code == 400 and "IMPORT_ROOT" in disabled.json()["path"][0]
    settings.IMPORT_ROOT = str(tmp_path / "root")
    (tmp_path / "root" / "granted").mkdir(parents=True)
    import_grant_create(dataset=dataset, path="granted")
    for path in ("../", "/etc", "../../etc/passwd", "nothing-here", "granted/.."):
        response = api.post(url, {"path": path}, format="multipart")
        assert response.status_code == 400, path


@pytest.mark.parametrize("data, field", [
    ({}, "non_field_errors"),
    ({"path": "a", "split": "holdout"}, "split"),
    ({"files": [upload("a.png", b"x")], "metadata": "{not json"}, "metadata"),
    ({"files": [upload("a.png", b"x")], "metadata": json.dumps({"other.png": {}})}, "metadata"),
    ({"files": [upload("a.png", b"x")], "manifest": upload("m.txt", b"file\n", "text/plain")}, "manifest"),
])
def test_bad_import_requests_are_400(api, dataset, data, field):
    response = post_import(api, dataset, **data)
    assert response.status_code == 400 and field in response.json(), response.content
    assert Sample.objects.count() == 0


def test_too_many_files_and_too_large_archive(api, dataset, settings):
    settings.MAX_UPLOAD_FILES = 2
    response = post_import(api, dataset, files=[upload(f"{i}.png", png_bytes((i, 0, 0))) for i in range(3)])
    assert response.status_code == 400 and "files" in response.json()
    settings.MAX_ARCHIVE_BYTES = 10
    response = post_import(api, dataset, archive=upload("a.zip", zip_bytes({"a.png": png_bytes()}), "application/zip"))
    assert response.status_code == 400 and "archive" in response.json()


def test_roles_for_imports(dataset, member_client):
    for role, expected in ((Role.VIEWER, 403), (Role.ANNOTATOR, 403), (Role.EDITOR, 202)):
        client = member_client(role)
        response = post_import(client, dataset, files=[upload(f"{role}.png", png_bytes((len(role), 1, 1)))])
        assert response.status_code == expected, role


def test_large_upload_spooled_to_disk_is_accepted(api, dataset, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # every upload becomes a temporary file
    from PIL import Image

    noisy = io.BytesIO()
    Image.frombytes("RGB", (100, 100), os.urandom(30_000)).save(noisy, format="PNG")
    assert len(noisy.getvalue()) > 10_000
    result = finished(api, post_import(api, dataset, files=[upload("a.png", noisy.getvalue())],
                                       metadata=json.dumps({"a.png": {"k": 1}})))
    assert result["created"] == 1


# ---------------------------------------------------------------- polyglots: files that are two formats at once


def encoded(image, image_format, **save_args):
    out = io.BytesIO()
    image.save(out, format=image_format, **save_args)
    return out.getvalue()


def served(client, dataset, sample_id, what="image"):
    response = client.get(f"/api/datasets/{dataset.id}/samples/{sample_id}/{what}/")
    assert response.status_code == 200, response
    return response, b"".join(response.streaming_content)


def test_polyglot_files_are_stored_as_their_image_alone_and_served_as_what_pillow_decoded(api, dataset):
    from PIL import Image

    plain = png_bytes((10, 20, 30))
    photo = png_bytes((40, 50, 60))
    archive = zip_bytes({"payload.html": b"<script>alert(1)</script>", "run.sh": b"rm -rf ~"})
    # 'GIF89a/*': a width of 10799 pixels reads as the start of a JavaScript comment; the script follows the image.
    gif = encoded(Image.new("P", (10799, 1), 1), "GIF", comment=b"<script>alert('in a comment')</script>")
    assert gif.startswith(b"GIF89a/*")
    jpeg = encoded(Image.new("RGB", (30, 20), (200, 100, 0)), "JPEG",
                   comment=b"<?php system($_GET['c']); ?><html><script>alert(1)</script></html>")
    page_jpeg = encoded(Image.new("RGB", (30, 20), (0, 100, 200)), "JPEG")
    files = {
        "plain.png": (plain, "image/png"),
        "photo.png": (photo + archive, "image/png"),  # a PNG that is also a ZIP archive
        "script.gif": (gif + b"*/=alert(document.domain);//", "image/gif"),  # a GIF that is also JavaScript
        "page.jpg": (page_jpeg + b"<html><script>alert(1)</script></html>", "image/jpeg"),  # JPEG, then HTML
        "shell.php": (jpeg, "application/x-php"),  # PHP and HTML inside the JPEG's comment segment
        "really-a-png.jpg": (png_bytes((70, 80, 90)), "image/jpeg"),  # the extension lies
        "copy-of-plain.png": (plain + archive, "image/png"),  # once cut, the same image as plain.png
        "zip-first.png": (archive + plain, "image/png"),  # a ZIP with an image appended is not an image
    }
    response = post_import(api, dataset, files=[upload(name, data, kind) for name, (data, kind) in files.items()])
    result = finished(api, response)
    assert (result["total"], result["created"], result["duplicates"], result["errors"]) == (8, 6, 1, 1), result
    assert "not an image" in {e["file"]: e["reason"] for e in result["error_files"]}["zip-first.png"]
    assert result["duplicate_files"] == [{"file": "copy-of-plain.png",
                                          "sample_id": Sample.objects.get(external_id="plain.png").id,
                                          "reason": "the same image as plain.png in this import"}]
    stripped = {entry["file"]: entry for entry in result["stripped_files"]}
    assert result["stripped"] == 3 and set(stripped) == {"photo.png", "script.gif", "page.jpg"}
    for name, image_format, clean in (("photo.png", "PNG", photo), ("script.gif", "GIF", gif),
                                      ("page.jpg", "JPEG", page_jpeg)):
        removed = len(files[name][0]) - len(clean)
        assert f"{removed} bytes after the end of the {image_format} image were removed" in stripped[name]["reason"]
        assert stripped[name]["sample_id"] == Sample.objects.get(external_id=name).id

    expected = {  # file: (format, content type, the bytes stored and served)
        "plain.png": ("PNG", "image/png", plain),
        "photo.png": ("PNG", "image/png", photo),
        "script.gif": ("GIF", "image/gif", gif),
        "page.jpg": ("JPEG", "image/jpeg", page_jpeg),
        "shell.php": ("JPEG", "image/jpeg", jpeg),
        "really-a-png.jpg": ("PNG", "image/png", files["really-a-png.jpg"][0]),
    }
    for name, (image_format, content_type, data) in expected.items():
        sample = Sample.objects.get(external_id=name)
        assert (sample.format, sample.bytes) == (image_format, len(data)), name
        assert sample.sha256 == hashlib.sha256(data).hexdigest(), name
        assert sample.original.endswith({"PNG": ".png", "GIF": ".gif", "JPEG": ".jpg"}[image_format]), name
        response, body = served(api, dataset, sample.id)
        assert body == data, name
        assert response["Content-Type"] == content_type, name
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert "sandbox" in response["Content-Security-Policy"], name
        assert response["Content-Disposition"].endswith(f'.{sample.original.rsplit(".", 1)[1]}"'), name
        thumbnail, thumb = served(api, dataset, sample.id, "thumbnail")
        assert thumbnail["Content-Type"] == "image/jpeg" and thumb.startswith(b"\xff\xd8")
    assert not zipfile.is_zipfile(io.BytesIO(served(api, dataset, Sample.objects.get(external_id="photo.png").id)[1]))
    assert b"alert(document.domain)" not in served(api, dataset, Sample.objects.get(external_id="script.gif").id)[1]
    # Nothing of the refused or duplicate files was written: an original and a thumbnail per created sample.
    assert len(stored_files()) == 2 * 6


def test_polyglot_inside_an_archive_is_cut_like_an_upload(api, dataset):
    photo = png_bytes((1, 200, 3))
    archive = zip_bytes({"imgs/photo.png": photo + b"<html><script>alert(1)</script></html>",
                         "imgs/other.png": png_bytes((3, 2, 1))})
    result = finished(api, post_import(api, dataset, archive=upload("a.zip", archive, "application/zip")))
    assert (result["created"], result["stripped"], result["errors"]) == (2, 1, 0), result
    assert result["stripped_files"][0]["file"] == "imgs/photo.png"
    sample = Sample.objects.get(external_id="imgs/photo.png")
    assert served(api, dataset, sample.id)[1] == photo
