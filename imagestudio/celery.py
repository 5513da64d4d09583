"""The Celery app. Tasks live in workers/; the domain enqueues them by name (see jobs.services)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imagestudio.settings")

app = Celery("imagestudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")
