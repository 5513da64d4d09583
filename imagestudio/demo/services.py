"""The demo dataset, set up through the domain services (the quick start and the browser tests use it)."""

from django.core.files.uploadedfile import SimpleUploadedFile

from imagestudio.datasets.imports import import_start
from imagestudio.datasets.models import Dataset
from imagestudio.datasets.services import dataset_create
from imagestudio.demo.images import DEMO_CLASSES, demo_archive
from imagestudio.embeddings.models import EmbeddingSet
from imagestudio.embeddings.services import embeddings_start
from imagestudio.jobs.models import Job

DEMO_NAME = "Demo shapes"


def demo_dataset_get_or_create(*, user, count: int = 60) -> tuple[Dataset, Job | None]:
    """The user's demo dataset; when it does not exist yet, created and `count` demo images imported (the job)."""
    dataset = Dataset.objects.filter(name=DEMO_NAME, created_by=user).first()
    if dataset is not None:
        return dataset, None
    dataset = dataset_create(user=user, name=DEMO_NAME, description="Shapes drawn with Pillow.", classes=DEMO_CLASSES)
    archive = SimpleUploadedFile("demo.zip", demo_archive(count=count), content_type="application/zip")
    job = import_start(dataset=dataset, user=user, archive=archive, split="train")
    job.refresh_from_db()
    return dataset, job


def demo_embeddings_ensure(*, dataset: Dataset, user) -> Job | None:
    """Embed the dataset with the default encoder unless it has vectors already (the job, or None)."""
    if EmbeddingSet.objects.filter(dataset=dataset, count__gt=0).exists():
        return None
    job = embeddings_start(dataset=dataset, user=user)
    job.refresh_from_db()
    return job
