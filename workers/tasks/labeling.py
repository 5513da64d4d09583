from celery import shared_task

from imagestudio.jobs.services import run_job
from imagestudio.labeling.services import lfs_refresh_run


@shared_task(name="workers.tasks.labeling.refresh_votes")
def refresh_votes(job_id):
    run_job(job_id, lfs_refresh_run)
