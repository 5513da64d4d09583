from datetime import timedelta

from celery import shared_task

from imagestudio.datasets.imports import import_finished, import_run, imports_sweep_orphans
from imagestudio.jobs.services import run_job


@shared_task(name="workers.tasks.imports.run_import")
def run_import(job_id):
    run_job(job_id, import_run, finished=import_finished)


@shared_task(name="workers.tasks.imports.sweep_orphans")
def sweep_orphans(older_than_seconds=86_400):
    return imports_sweep_orphans(older_than=timedelta(seconds=older_than_seconds))
