from celery import shared_task

from imagestudio.embeddings.services import embeddings_run, resources_expire
from imagestudio.jobs.services import run_job


@shared_task(name="workers.tasks.embeddings.compute_embeddings")
def compute_embeddings(job_id):
    run_job(job_id, embeddings_run)


@shared_task(name="workers.tasks.embeddings.expire_resources")
def expire_resources():
    resources_expire()
