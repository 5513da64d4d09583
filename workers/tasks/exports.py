from celery import shared_task

from imagestudio.exports.services import export_run
from imagestudio.jobs.services import run_job


@shared_task(name="workers.tasks.exports.write_export")
def write_export(job_id):
    run_job(job_id, export_run)
