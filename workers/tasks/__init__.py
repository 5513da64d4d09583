"""Celery tasks: thin wrappers that take ids and call domain services. Queues: default, embeddings, training."""

from . import embeddings, exports, imports, jobs, labeling, training  # noqa: F401  (registers the tasks)
