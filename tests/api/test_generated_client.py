"""A client generated from the committed api/openapi.yaml (openapi-python-client) works against a live server.

test_schema.py proves the schema matches the code; this proves the schema is good enough for a real generated
client: sign in, create and edit a dataset, upload images (multipart list of files), follow the import job, read
samples, fetch a thumbnail, and see a 404 come back as a 404, all through the generated `sync_detailed` functions
and typed models.
"""

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conformance import response_problems
from tests.conftest import make_user, png_bytes

SCHEMA = Path(__file__).resolve().parents[2] / "api" / "openapi.yaml"
GENERATOR_CONFIG = SCHEMA.with_name("openapi-python-client.yaml")
PACKAGE = "imagestudio_client"  # the name tests/client_example/example.py imports
EXAMPLE = Path(__file__).resolve().parents[1] / "client_example" / "example.py"
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Generate the client into a temp dir with the committed generator config (no ruff post-hooks) and import it."""
    root = tmp_path_factory.mktemp("openapi_client")
    config = root / "openapi-python-client.yaml"
    config.write_text(GENERATOR_CONFIG.read_text() + "post_hooks: []\n")
    run = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(SCHEMA),
         "--output-path", str(root / PACKAGE), "--meta", "none", "--config", str(config)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"openapi-python-client failed:\n{run.stdout}\n{run.stderr}"
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield SimpleNamespace(
            package=importlib.import_module(PACKAGE),
            models=importlib.import_module(f"{PACKAGE}.models"),
            types=importlib.import_module(f"{PACKAGE}.types"),
            errors=importlib.import_module(f"{PACKAGE}.errors"),
            op=lambda name: importlib.import_module(f"{PACKAGE}.api.{name}"),
            output=run.stdout + run.stderr,
            root=root,
        )
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.mark.django_db(transaction=True)
def test_end_to_end_through_generated_client(generated, live_server):
    models, op = generated.models, generated.op
    user = make_user("gina")

    # Sign in. Every client is closed by a `with`: an open keep-alive socket keeps a server thread, and its database
    # connection, alive past the test (on Postgres the test database then cannot be dropped).
    with generated.package.Client(base_url=live_server.url) as anonymous:
        signed_in = op("auth.auth_token_create").sync_detailed(
            client=anonymous, body=models.CredentialsRequest(username=user.username, password="gina-password-123"))
        assert signed_in.status_code == 200, signed_in.content
        token = signed_in.parsed
        assert isinstance(token, models.IssuedToken) and token.token

        wrong = op("auth.auth_token_create").sync_detailed(
            client=anonymous, body=models.CredentialsRequest(username=user.username, password="nope"))
        assert wrong.status_code == 401 and wrong.parsed.code == "authentication_failed"
        assert op("datasets.datasets_list").sync_detailed(client=anonymous).status_code == 401

    with generated.package.AuthenticatedClient(base_url=live_server.url, token=token.token, prefix="Token") as client:
        created = op("datasets.datasets_create").sync_detailed(
            client=client, body=models.DatasetCreateRequest(name="Pets", classes=["cat", "dog"]))
        assert created.status_code == 201, created.content
        dataset = created.parsed
        assert isinstance(dataset, models.Dataset) and isinstance(dataset.id, int)
        assert [c.name for c in dataset.classes] == ["cat", "dog"]
        assert dataset.role == "owner" and dataset.sample_count == 0 and dataset.split_counts.train == 0

        edited = op("datasets.datasets_partial_update").sync_detailed(
            dataset_id=dataset.id, client=client, body=models.PatchedDatasetUpdateRequest(description="Cats and dogs"))
        assert edited.status_code == 200, edited.content
        assert (edited.parsed.name, edited.parsed.description) == ("Pets", "Cats and dogs")

        listed = op("datasets.datasets_list").sync_detailed(client=client)
        assert listed.status_code == 200
        assert isinstance(listed.parsed, models.PaginatedDatasetList)
        assert listed.parsed.count == 1
        assert [d.id for d in listed.parsed.results] == [dataset.id]
        assert listed.parsed.results[0].name == "Pets"

        # Upload two images: a multipart list of files, through the generated function.
        File = generated.types.File
        red, blue = png_bytes((255, 0, 0)), png_bytes((0, 0, 255))
        imported = op("imports.datasets_imports_create").sync_detailed(
            dataset_id=dataset.id, client=client,
            body=models.ImportRequest(
                files=[File(payload=BytesIO(red), file_name="red.png", mime_type="image/png"),
                       File(payload=BytesIO(blue), file_name="blue.png", mime_type="image/png")],
                split=models.SplitEnum.DEV,
                metadata=json.dumps({"red.png": {"caption": "A red one"}}),
            ),
        )
        assert imported.status_code == 202, imported.content
        job = imported.parsed
        assert isinstance(job, models.ImportJob) and job.kind == models.ImportKindEnum.IMPORT
        assert imported.headers["Location"] == job.url == f"{live_server.url}/api/jobs/{job.id}/"
        assert job.dataset == dataset.id and job.creator == user.username

        # Poll the job (tasks run in-process in tests, so it is already finished).
        deadline = time.monotonic() + 30
        while True:
            polled = op("jobs.jobs_retrieve").sync_detailed(job_id=job.id, client=client)
            assert polled.status_code == 200, polled.content
            job = polled.parsed
            if job.status in FINISHED or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert job.status == models.JobStatusEnum.SUCCEEDED, (job.status, job.error)
        assert job.progress == 1.0 and job.finished_at is not None
        assert isinstance(job, models.ImportJob)
        assert (job.result.created, job.result.errors, job.result.duplicates) == (2, 0, 0)
        # The events stream is text; its payloads parse with the generated models (a `done` event's data is the Job).
        stream = client.get_httpx_client().get(f"/api/jobs/{job.id}/events/").text
        done = json.loads(next(line[len("data: "):] for line in stream.splitlines() if line.startswith("data: ")))
        assert models.ImportJob.from_dict(done).status == models.JobStatusEnum.SUCCEEDED
        progress = models.JobProgressEvent.from_dict({"status": "running", "progress": 0.5, "message": "half"})
        assert (progress.status, progress.progress) == (models.JobStatusEnum.RUNNING, 0.5)

        # The samples list: typed models, enum query parameters.
        samples = op("samples.datasets_samples_list").sync_detailed(
            dataset_id=dataset.id, client=client, ordering=models.SampleOrderingEnum.ID)
        assert samples.status_code == 200, samples.content
        page = samples.parsed
        assert isinstance(page, models.SamplePage) and page.count_exact
        assert page.count == 2 and len(page.results) == 2
        by_name = {s.file_name: s for s in page.results}
        assert set(by_name) == {"red.png", "blue.png"}
        for sample in page.results:
            assert isinstance(sample, models.Sample)
            assert sample.split == models.SplitEnum.DEV
            assert (sample.width, sample.height, sample.format_) == (64, 48, "PNG")
            assert sample.bytes_ > 0 and sample.tags == []
            assert sample.ground_truth.additional_properties == {}
            assert sample.thumbnail_url.startswith(
                f"{live_server.url}/api/datasets/{dataset.id}/samples/{sample.id}/thumbnail/?exp=")
            assert sample.image_url.startswith(f"{live_server.url}/api/datasets/{dataset.id}/samples/{sample.id}/image/?exp=")
        assert by_name["red.png"].metadata.additional_properties == {"caption": "A red one"}
        assert by_name["blue.png"].metadata.additional_properties == {}
        ids = [s.id for s in page.results]
        assert ids == sorted(ids)

        in_train = op("samples.datasets_samples_list").sync_detailed(
            dataset_id=dataset.id, client=client, split=models.SplitEnum.TRAIN)
        assert in_train.status_code == 200 and in_train.parsed.count == 0

        retrieved = op("datasets.datasets_retrieve").sync_detailed(dataset_id=dataset.id, client=client)
        assert retrieved.status_code == 200
        assert retrieved.parsed.sample_count == 2 and retrieved.parsed.split_counts.dev == 2

        # One sample's detail and its bytes.
        red_sample = by_name["red.png"]
        detail = op("samples.datasets_samples_retrieve").sync_detailed(
            dataset_id=dataset.id, sample_id=red_sample.id, client=client)
        assert detail.status_code == 200, detail.content
        assert isinstance(detail.parsed, models.SampleDetail)
        assert detail.parsed.id == red_sample.id and detail.parsed.file_name == "red.png"
        assert len(detail.parsed.sha256) == 64
        assert detail.parsed.annotations == [] and detail.parsed.comments == []

        # Image bodies come back as File objects (the generator config reads image/* as bytes).
        thumbnail = op("samples.datasets_samples_thumbnail_retrieve").sync_detailed(
            dataset_id=dataset.id, sample_id=red_sample.id, client=client)
        assert thumbnail.status_code == 200
        assert thumbnail.headers["Content-Type"] == "image/jpeg"
        assert isinstance(thumbnail.parsed, generated.types.File)
        assert thumbnail.parsed.payload.read().startswith(b"\xff\xd8")
        image = op("samples.datasets_samples_image_retrieve").sync_detailed(
            dataset_id=dataset.id, sample_id=red_sample.id, client=client)
        assert image.status_code == 200 and image.parsed.payload.read() == red
        # A CSV export, downloaded as bytes (text/csv is read as a file, as images are).
        export_job = op("exports.datasets_exports_create").sync_detailed(
            dataset_id=dataset.id, client=client,
            body=models.ExportCreateRequest.from_dict({"kind": "dataset", "columns": ["id", "external_id"]}))
        assert export_job.status_code == 202, export_job.content
        export_id = json.loads(op("jobs.jobs_retrieve").sync_detailed(job_id=export_job.parsed.id, client=client)
                               .content)["result"]["export"]
        download = op("exports.datasets_exports_download_retrieve").sync_detailed(
            dataset_id=dataset.id, export_id=export_id, client=client)
        assert download.status_code == 200 and isinstance(download.parsed, generated.types.File)
        csv_text = download.parsed.payload.read().decode()
        assert csv_text.splitlines()[0] == "id,external_id,gt:cat,gt:dog" and f"\n{red_sample.id},red.png," in csv_text

        # Error path: an unknown dataset is a 404 whose body the client parses into the documented Error model.
        missing = op("datasets.datasets_retrieve").sync_detailed(dataset_id=dataset.id + 10_000, client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Error) and missing.parsed.code == "not_found"

        # A bad body comes back as a 400 with per-field messages.
        bad = op("datasets.datasets_create").sync_detailed(client=client, body=models.DatasetCreateRequest(name=""))
        assert bad.status_code == 400 and "name" in json.loads(bad.content)


def test_every_generated_operation_imports_and_nothing_is_left_out(generated):
    """Covers the endpoints the flow above does not use: a schema change that generates broken code fails here."""
    api = importlib.import_module(f"{PACKAGE}.api")
    operations = [f"{group.name}.{module.name}"
                  for group in pkgutil.iter_modules(api.__path__)
                  for module in pkgutil.iter_modules(importlib.import_module(f"{PACKAGE}.api.{group.name}").__path__)]
    assert len(operations) > 20
    for name in operations:
        assert callable(generated.op(name).sync_detailed), name
    assert "WARNING" not in generated.output, "openapi-python-client dropped parts of the client:\n" + generated.output


def test_typed_example_passes_mypy_strict(generated, tmp_path):
    """tests/client_example/example.py, a script a user would write on the generated client, type-checks with no
    error under --strict: no untyped body, no `Any` where the schema knows the shape."""
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy"), str(EXAMPLE)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "MYPYPATH": str(generated.root)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success: no issues found" in run.stdout


@pytest.mark.django_db(transaction=True)
def test_typed_example_runs_against_a_live_server(generated, live_server, tiny_clip):
    """The example's whole loop (sign in ... read the model's metrics) works, and every JSON body the server
    answers on the way matches the committed schema exactly (tests/conformance.py)."""
    user = make_user("ella")
    problems = []

    def check(response):
        response.read()
        problems.extend(response_problems(response.request.method, response.request.url.path, response.status_code,
                                          response.headers.get("content-type", ""), response.content))

    example = importlib.import_module("tests.client_example.example")
    outcome = example.main(live_server.url, user.username, "ella-password-123",
                           httpx_args={"event_hooks": {"response": [check]}})
    assert not problems, problems
    assert (outcome.samples, outcome.dev_samples) == (40, 10)
    assert outcome.preview_present_precision is not None
    assert min(outcome.dataset, outcome.lf, outcome.training_set, outcome.model) > 0
    assert outcome.valid_f1 is not None
    assert outcome.patch_box == [0, 0, 16, 16]  # the snapshot's patch LF read as one (its box was an unknown key)
