"""What follows what: auto-embed after an import, vote refresh after new samples, vectors or edits, auto-train
after LF changes. Every step is a Job enqueued by task name, so this module imports no domain service and any
domain may call it without an import cycle (domains: datasets <- annotations <- embeddings <- labeling <-
training <- exports).
"""

from collections.abc import Iterable

from django.conf import settings

from imagestudio.jobs.models import Job, JobKind, JobStatus
from imagestudio.jobs.services import job_enqueue

EMBED_TASK = "workers.tasks.embeddings.compute_embeddings"
LF_REFRESH_TASK = "workers.tasks.labeling.refresh_votes"
AUTO_TRAIN_TASK = "workers.tasks.training.auto_train"


def embeddings_enqueue(*, dataset, user, encoder_key: str, split: str | None = None) -> Job:
    """The job computing missing vectors under an encoder (or the same job already in flight)."""
    job, _ = job_enqueue(kind="embeddings", task_name=EMBED_TASK, dataset=dataset, creator=user,
                         params={"encoder": encoder_key, "split": split}, dedupe_key=f"{encoder_key}:{split or '*'}")
    return job


# A refresh of more samples than this re-applies the LFs to every sample (one column read beats a long id list).
MAX_REFRESH_SAMPLES = 10_000


def lf_refresh_enqueue(*, dataset, user=None, sample_ids: Iterable[int] | None = None) -> Job | None:
    """Re-apply the LFs to the samples named (`sample_ids`: their metadata changed; None: every sample and every
    LF, after new samples or vectors). A queued job absorbs further requests, with the union of their samples;
    a running one does not, since it may have read the samples before they changed."""
    if not dataset.lfs.exists():
        return None
    wanted = None if sample_ids is None else sorted(set(sample_ids))

    def coalesce(params):
        queued = params.get("sample_ids")
        union = None if queued is None or wanted is None else sorted(set(queued) | set(wanted))
        return {"sample_ids": union if union is None or len(union) <= MAX_REFRESH_SAMPLES else None}

    job, _ = job_enqueue(kind=JobKind.LF_VOTES, task_name=LF_REFRESH_TASK, dataset=dataset, creator=user,
                         params={"sample_ids": wanted}, dedupe_key="refresh", dedupe_statuses=(JobStatus.QUEUED,),
                         coalesce=coalesce)
    return job


def auto_train_enqueue(*, dataset, label_class, user=None) -> Job | None:
    """When the dataset asks for it, a training set and a model for the class. A burst of LF edits coalesces into
    the one queued job, which reads the LFs when it runs (so the latest edit wins); a running one does not."""
    if not dataset.auto_train:
        return None
    job, _ = job_enqueue(kind="auto_train", task_name=AUTO_TRAIN_TASK, dataset=dataset, creator=user,
                         params={"label_class": label_class.id}, dedupe_key=f"class:{label_class.id}",
                         dedupe_statuses=(JobStatus.QUEUED,))
    return job


def after_import(*, dataset, user) -> dict:
    """Samples were created: embed them (when the dataset auto-embeds) and refresh the LF votes.
    Returns the follow-up job ids for the import's result."""
    follow_ups = {}
    if dataset.auto_embed:
        job = embeddings_enqueue(dataset=dataset, user=user, encoder_key=settings.EMBEDDING_DEFAULT_ENCODER)
        follow_ups["auto_embed_job"] = str(job.id)
    refresh = lf_refresh_enqueue(dataset=dataset, user=user)
    if refresh is not None:
        follow_ups["lf_refresh_job"] = str(refresh.id)
    return follow_ups


def after_samples_changed(*, dataset, user, sample_ids: Iterable[int]) -> Job | None:
    """The metadata or split of these samples changed: pattern LFs read the metadata, model LFs the split (a sample
    its model learned in-sample has no score once it left that split)."""
    return lf_refresh_enqueue(dataset=dataset, user=user, sample_ids=sample_ids)


def after_embeddings(*, dataset, user) -> Job | None:
    """New vectors change what similarity LFs vote."""
    return lf_refresh_enqueue(dataset=dataset, user=user)


def after_lfs_changed(*, dataset, label_class, user) -> Job | None:
    """The active LFs of a class changed."""
    return auto_train_enqueue(dataset=dataset, label_class=label_class, user=user)
