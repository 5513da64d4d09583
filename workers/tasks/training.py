from celery import shared_task

from imagestudio.jobs.services import run_job
from imagestudio.training.services import auto_train_run, model_run, training_set_run


@shared_task(name="workers.tasks.training.build_training_set")
def build_training_set(job_id):
    run_job(job_id, training_set_run)


@shared_task(name="workers.tasks.training.train_model")
def train_model(job_id):
    run_job(job_id, model_run)


@shared_task(name="workers.tasks.training.auto_train")
def auto_train(job_id):
    run_job(job_id, auto_train_run)
