from celery import shared_task

from imagestudio.datasets.imports import import_run
from imagestudio.jobs.services import run_job


@shared_task(name="workers.tasks.imports.run_import")
def run_import(job_id):
    run_job(job_id, import_run)
