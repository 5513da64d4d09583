from celery import shared_task

from imagestudio.jobs.services import jobs_requeue_orphaned


@shared_task(name="workers.tasks.jobs.requeue_orphaned")
def requeue_orphaned():
    jobs_requeue_orphaned()
