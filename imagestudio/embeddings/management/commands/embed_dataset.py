"""Embed a dataset from the command line, in this process, with a progress bar."""

import sys

from django.core.management.base import BaseCommand, CommandError

from imagestudio.common.errors import DomainError
from imagestudio.datasets.models import Dataset, Split
from imagestudio.embeddings.services import embeddings_run
from imagestudio.jobs.liveness import job_heartbeat
from imagestudio.jobs.models import Job, JobStatus
from imagestudio.jobs.services import job_claim, job_fail, job_succeed


class Command(BaseCommand):
    help = "Compute the missing embeddings of a dataset in this process (recorded as a Job like any other)."

    def add_arguments(self, parser):
        parser.add_argument("dataset_id", type=int)
        parser.add_argument("--encoder", choices=["open_clip", "conse-offline"], default=None)
        parser.add_argument("--split", choices=Split.values, default=None)

    def handle(self, *args, dataset_id, encoder, split, **options):
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise CommandError(f"no dataset {dataset_id}")
        job = Job.objects.create(kind="embeddings", dataset=dataset,
                                 params={"encoder": encoder, "split": split, "source": "command line"})
        job_claim(job_id=job.id)
        job.refresh_from_db()
        try:
            with job_heartbeat(job.id):
                result = embeddings_run(job, progress=self._bar)
        except DomainError as exc:
            job_fail(job_id=job.id, error=exc.message)
            raise CommandError(exc.message) from None
        except BaseException as exc:
            job_fail(job_id=job.id, error=f"{type(exc).__name__}: {exc}")
            raise
        job_succeed(job_id=job.id, result=result)
        sys.stderr.write("\n")
        self.stdout.write(self.style.SUCCESS(
            f"{result['computed']} vectors computed with {result['identity']} on {result['device']} "
            f"({result['images_per_second']} images/s), {result['failed']} failed; job {job.id} {JobStatus.SUCCEEDED}"
        ))

    def _bar(self, fraction, message, width=40):
        filled = int(width * fraction)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:6.1%} {message}")
        sys.stderr.flush()
