"""The Image Studio loop through the Python client generated from api/openapi.yaml, fully typed (`mypy --strict`).

Generate the client, then run this against a server:

    openapi-python-client generate --path api/openapi.yaml --config api/openapi-python-client.yaml \\
        --meta none --output-path imagestudio_client
    PYTHONPATH=. python tests/client_example/example.py http://localhost:8000 alice 'her password'

It signs in, creates a dataset with two classes, uploads 40 generated images with a caption and (on dev and
valid) ground truth, embeds them, follows each job, lists samples, previews a keyword LF and saves it, builds a
training set, trains a fast model and reads its metrics. tests/api/test_generated_client.py runs it in CI.
"""

import csv
import io
import sys
import time
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from imagestudio_client import AuthenticatedClient, Client
from imagestudio_client.api.auth import auth_token_create
from imagestudio_client.api.datasets import datasets_create
from imagestudio_client.api.embeddings import datasets_embeddings_create
from imagestudio_client.api.imports import datasets_imports_create
from imagestudio_client.api.jobs import jobs_retrieve
from imagestudio_client.api.lfs import datasets_lfs_create, datasets_lfs_preview_create
from imagestudio_client.api.models import datasets_models_create, datasets_models_retrieve
from imagestudio_client.api.samples import datasets_samples_list
from imagestudio_client.api.training_sets import datasets_training_sets_create, datasets_training_sets_retrieve
from imagestudio_client.models import (
    CredentialsRequest,
    DatasetCreateRequest,
    EmbeddingComputeRequest,
    EmbeddingsJob,
    FastModel,
    FastModelCreateRequest,
    FastModelJob,
    ImportJob,
    ImportRequest,
    IssuedToken,
    JobStatusEnum,
    KeywordBuilderEnum,
    KeywordPattern,
    PatternLF,
    PatternLFCreateRequest,
    PatternPreviewRequest,
    PatternTypeEnum,
    PreviewResult,
    SampleOrderingEnum,
    SamplePage,
    SimilarityPatchConfig,
    SimilarityPatchLF,
    SimilarityPatchLFCreateRequest,
    SimilarityPatchSnapshotLF,
    SimilarityPatchTypeEnum,
    SplitEnum,
    TrainingSet,
    TrainingSetCreateRequest,
    TrainingSetJob,
)
from imagestudio_client.models import Dataset as DatasetRecord
from imagestudio_client.types import File, Response, Unset
from PIL import Image

T = TypeVar("T")
Job = TypeVar("Job", ImportJob, EmbeddingsJob, TrainingSetJob, FastModelJob)
SPLITS = [SplitEnum.TRAIN] * 20 + [SplitEnum.DEV] * 10 + [SplitEnum.VALID] * 10


@dataclass
class Outcome:
    dataset: int
    samples: int
    dev_samples: int
    lf: int
    patch_box: list[int]  # of the patch LF, as the training set's snapshot of it reads
    preview_present_precision: float | None
    training_set: int
    model: int
    valid_f1: float | None


def expect(response: Response[Any], wanted: type[T]) -> T:
    """The parsed body when it is what the call should answer; else the error the server sent."""
    if not isinstance(response.parsed, wanted):
        raise RuntimeError(f"HTTP {response.status_code}: {response.content.decode(errors='replace')}")
    return response.parsed


def given(value: T | Unset) -> T:
    """A field a finished job's result always has."""
    if isinstance(value, Unset):
        raise RuntimeError("the job's result lacks a field")
    return value


def finished(client: AuthenticatedClient, job_id: UUID, kind: type[Job], timeout: float = 600) -> Job:
    """Poll a job until it ends; its result when it succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        job = expect(jobs_retrieve.sync_detailed(job_id=job_id, client=client), kind)
        if job.status == JobStatusEnum.SUCCEEDED:
            return job
        if job.status in (JobStatusEnum.FAILED, JobStatusEnum.CANCELLED) or time.monotonic() > deadline:
            raise RuntimeError(f"{job.kind} job {job.id}: {job.status} {job.error}")
        time.sleep(0.5)


def images() -> tuple[list[File], File]:
    """40 reddish or bluish PNGs and their manifest: a caption right 8 times in 10, ground truth off train."""
    files, rows = [], [["file", "split", "caption", "gt:red", "gt:blue"]]
    for index, split in enumerate(SPLITS):
        red = index % 2 == 0
        out = io.BytesIO()
        Image.new("RGB", (32, 32), (210, 20 + index, 30) if red else (30, 20 + index, 210)).save(out, format="PNG")
        name = f"square-{index}.png"
        files.append(File(payload=io.BytesIO(out.getvalue()), file_name=name, mime_type="image/png"))
        said_red = red if index % 5 else not red
        labeled = split != SplitEnum.TRAIN
        rows.append([name, split.value, f"a {'red' if said_red else 'blue'} square",
                     ("PRESENT" if red else "ABSENT") if labeled else "",
                     ("ABSENT" if red else "PRESENT") if labeled else ""])
    manifest = io.StringIO()
    csv.writer(manifest).writerows(rows)
    return files, File(payload=io.BytesIO(manifest.getvalue().encode()), file_name="manifest.csv",
                       mime_type="text/csv")


def sign_in(base_url: str, username: str, password: str, httpx_args: dict[str, Any]) -> str:
    with Client(base_url=base_url, httpx_args=httpx_args) as anonymous:
        answer = auth_token_create.sync_detailed(
            client=anonymous, body=CredentialsRequest(username=username, password=password))
        return expect(answer, IssuedToken).token


def build_training_set(client: AuthenticatedClient, dataset_id: int) -> int:
    """202 with the job building it, or 200 with the set already built from the same inputs."""
    answer = datasets_training_sets_create.sync_detailed(dataset_id=dataset_id, client=client,
                                                         body=TrainingSetCreateRequest())
    if isinstance(answer.parsed, TrainingSet):
        return answer.parsed.id
    job = finished(client, expect(answer, TrainingSetJob).id, TrainingSetJob)
    return given(job.result.training_set)


def main(base_url: str, username: str, password: str, httpx_args: dict[str, Any] | None = None) -> Outcome:
    """`httpx_args` go to the clients (e.g. event hooks that log every call)."""
    httpx_args = httpx_args or {}
    token = sign_in(base_url, username, password, httpx_args)
    with AuthenticatedClient(base_url=base_url, token=token, prefix="Token", httpx_args=httpx_args) as client:
        dataset = expect(datasets_create.sync_detailed(
            client=client, body=DatasetCreateRequest(name="Squares", classes=["red", "blue"])), DatasetRecord)

        files, manifest = images()
        upload = datasets_imports_create.sync_detailed(
            dataset_id=dataset.id, client=client, body=ImportRequest(files=files, manifest=manifest))
        imported = finished(client, expect(upload, ImportJob).id, ImportJob)
        print(f"imported {given(imported.result.created)} images")

        embedding = datasets_embeddings_create.sync_detailed(dataset_id=dataset.id, client=client,
                                                             body=EmbeddingComputeRequest())
        embedded = finished(client, expect(embedding, EmbeddingsJob).id, EmbeddingsJob)
        print(f"embedded {given(embedded.result.computed)} images with {given(embedded.result.identity)}")

        page = expect(datasets_samples_list.sync_detailed(dataset_id=dataset.id, client=client), SamplePage)
        dev = expect(datasets_samples_list.sync_detailed(
            dataset_id=dataset.id, client=client, split=SplitEnum.DEV, ordering=SampleOrderingEnum.ID_DESC),
            SamplePage)
        print(f"{page.count} samples, {dev.count} on dev; first: {page.results[0].file_name}")

        says_red = KeywordPattern(field="caption", builder=KeywordBuilderEnum.KEYWORD, words=["red"])
        preview = expect(datasets_lfs_preview_create.sync_detailed(
            dataset_id=dataset.id, client=client,
            body=PatternPreviewRequest(label_class="red", type_=PatternTypeEnum.PATTERN, config=says_red, high=1.0,
                                       low=0.0, split=SplitEnum.DEV)), PreviewResult)
        precision = preview.metrics.present.precision.value
        print(f"preview on dev: {preview.population} scored, PRESENT precision {precision}")

        lf = expect(datasets_lfs_create.sync_detailed(
            dataset_id=dataset.id, client=client,
            body=PatternLFCreateRequest(name="says red", label_class="red", type_=PatternTypeEnum.PATTERN,
                                        config=says_red, high=1.0, low=0.0)), PatternLF)

        # An LF scoring images like the top-left quarter of the first sample's image.
        patch = SimilarityPatchConfig(sample_id=page.results[0].id, box=[0, 0, 16, 16])
        expect(datasets_lfs_create.sync_detailed(
            dataset_id=dataset.id, client=client,
            body=SimilarityPatchLFCreateRequest(name="like the corner", label_class="red",
                                                type_=SimilarityPatchTypeEnum.SIMILARITY_PATCH, config=patch,
                                                high=0.9)), SimilarityPatchLF)

        training_set = build_training_set(client, dataset.id)
        snapshot = expect(datasets_training_sets_retrieve.sync_detailed(
            dataset_id=dataset.id, training_set_id=training_set, client=client), TrainingSet).snapshot
        patch_box = [box for read in snapshot.lfs if isinstance(read, SimilarityPatchSnapshotLF)
                     for box in read.config.box]
        training = datasets_models_create.sync_detailed(
            dataset_id=dataset.id, client=client, body=FastModelCreateRequest(training_set=training_set, classes=["red"]))
        trained = finished(client, expect(training, FastModelJob).id, FastModelJob)
        model = expect(datasets_models_retrieve.sync_detailed(
            dataset_id=dataset.id, model_id=given(trained.result.model), client=client), FastModel)
        red = model.metrics.additional_properties["red"].valid
        f1 = None if isinstance(red.f1, Unset) else red.f1
        print(f"model v{model.version} ({model.status.value}): F1 on valid for red {f1}, {red.labeled} labeled")

        return Outcome(dataset=dataset.id, samples=page.count, dev_samples=dev.count, lf=lf.id, patch_box=patch_box,
                       preview_present_precision=precision, training_set=training_set, model=model.id,
                       valid_f1=f1)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} BASE_URL USERNAME PASSWORD")
    main(sys.argv[1], sys.argv[2], sys.argv[3])
