"""Celery tasks: thin wrappers that take ids and call domain services. Queues: default, embeddings, training."""

from . import imports  # noqa: F401  (registers the tasks)
