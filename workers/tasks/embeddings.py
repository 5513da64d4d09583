from celery import shared_task

from imagestudio.embeddings.services import embeddings_run
from imagestudio.jobs.services import run_job


@shared_task(name="workers.tasks.embeddings.compute_embeddings")
def compute_embeddings(job_id):
    run_job(job_id, embeddings_run)
