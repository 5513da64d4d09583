"""The import job's body: read and validate each item (in a thread pool), decide per batch what is new
(dedupe.decide), store it (store.batch_store) and report every file. Re-running the job, or resuming one whose
worker died, adds nothing twice: stored samples of this job count as created again, the rest as duplicates."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from django.conf import settings

from imagestudio import pipeline
from imagestudio.jobs.services import JobCancelled, job_progress, job_record_result

from ..imaging import InvalidImage, validate_image
from ..models import LabelClass
from ..sources import SourceError
from .dedupe import Candidate, Decision, DuplicatePolicy, JobMemory, Outcome, decide, lost_to_concurrent_import
from .plan import Item, open_plan
from .report import ImportReport
from .staging import staging_remove
from .store import Validated, batch_store, external_ids_taken, stored_twins

if TYPE_CHECKING:
    from imagestudio.jobs.models import Job

BATCH_SIZE = 32


def import_run(job: Job) -> dict:
    """Returns the job's result: exact counts per bucket and per-file reasons."""
    started = time.monotonic()
    classes_by_name = {c.name: c for c in LabelClass.objects.filter(dataset=job.dataset)}
    with ImportReport() as report:
        with open_plan(job, list(classes_by_name)) as plan:
            for name, reason in plan.refused:
                report.refuse(name, reason)
            for name, reason in plan.skipped:
                report.skip(name, reason)
            try:
                _import_items(job, plan.items, classes_by_name, report, started)
            except JobCancelled:
                # The samples stored so far stay: say which, and let their vectors and votes follow them.
                for item in plan.items[report.reported - len(plan.refused) - len(plan.skipped):]:
                    report.cancel(item.name)
                job_record_result(job_id=job.id, result=_result(job, plan, report, started))
                raise
        return _result(job, plan, report, started)


def _result(job, plan, report, started) -> dict:
    result = report.as_dict(len(plan.items) + len(plan.refused) + len(plan.skipped))
    result["duplicate_policy"] = str(_policy(job))
    if result["truncated"]:
        result["report_file"] = report.save_full(job.id)
    result["seconds"] = round(time.monotonic() - started, 3)
    if result["created"]:
        result.update(pipeline.after_import(dataset=job.dataset, user=job.creator))
    return result


def import_finished(job: Job) -> None:
    """Once the job's outcome is recorded: its staged files go (before, a redelivery after a killed worker needs
    them; a worker killed in between leaves them to imports_sweep_orphans)."""
    staging_remove(job.params.get("staging"))


def _policy(job) -> DuplicatePolicy:
    return DuplicatePolicy(job.params.get("duplicates") or DuplicatePolicy.KEEP_FIRST)


def _import_items(job, items: list[Item], classes_by_name, report, started):
    memory = JobMemory()
    total = len(items)
    with ThreadPoolExecutor(max_workers=max(1, settings.INGEST_THREADS)) as pool:
        for start in range(0, total, BATCH_SIZE):
            chunk = items[start:start + BATCH_SIZE]
            valid = []
            for item, outcome in pool.map(_validate, chunk):
                if isinstance(outcome, str):
                    report.refuse(item.name, outcome)
                else:
                    valid.append(outcome)
            _import_batch(job, valid, classes_by_name, memory, report)
            done = start + len(chunk)
            job_progress(job_id=job.id, progress=done / max(total, 1),
                         message=f"{done}/{total} files, {done / max(time.monotonic() - started, 1e-6):.1f} files/s")


def _validate(item: Item) -> tuple[Item, Validated | str]:
    """The item's image, or the reason it is refused."""
    try:
        data = item.read()
        image = validate_image(data, max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS,
                               thumbnail_size=settings.THUMBNAIL_SIZE)
    except (SourceError, InvalidImage) as exc:
        return item, str(exc)
    return item, Validated(item, image, data[:image.bytes])


def _candidate(entry: Validated) -> Candidate:
    item = entry.item
    return Candidate(item.name, entry.image.sha256, item.external_id[:512], item.split, item.metadata,
                     item.ground_truth)


def _import_batch(job, valid: list[Validated], classes_by_name, memory: JobMemory, report: ImportReport):
    if not valid:
        return
    dataset = job.dataset
    candidates = [_candidate(entry) for entry in valid]
    decided = decide(candidates, stored=stored_twins(dataset=dataset, job=job, sha256s=[c.sha256 for c in candidates]),
                     taken_external_ids=external_ids_taken(dataset=dataset,
                                                           external_ids=[c.external_id for c in candidates]),
                     memory=memory, policy=_policy(job))
    new = [entry for entry, d in zip(valid, decided.decisions, strict=True) if d.outcome is Outcome.CREATED]
    stored = batch_store(job=job, dataset=dataset, new=new, merges=decided.merges, classes_by_name=classes_by_name)
    report.annotations += stored.annotations
    decisions = _settle_lost(job, candidates, decided.decisions, stored.sample_ids)
    for entry, candidate, decision in zip(valid, candidates, decisions, strict=True):
        _report(report, entry, decision, stored.sample_ids)
        if decision.outcome in (Outcome.CREATED, Outcome.RESUMED):
            memory.remember(candidate)
        if decision.outcome is Outcome.RESUMED:  # stored by a killed earlier run, with its labels in one transaction
            report.annotations += len(candidate.ground_truth)


def _settle_lost(job, candidates, decisions, sample_ids) -> list[Decision]:
    """Candidates decided CREATED that another import stored first become its duplicates (or are refused)."""
    lost = [c.sha256 for c, d in zip(candidates, decisions, strict=True)
            if d.outcome is Outcome.CREATED and c.sha256 not in sample_ids]
    if not lost:
        return decisions
    twins = stored_twins(dataset=job.dataset, job=job, sha256s=lost)
    return [lost_to_concurrent_import(twins.get(c.sha256))
            if d.outcome is Outcome.CREATED and c.sha256 not in sample_ids else d
            for c, d in zip(candidates, decisions, strict=True)]


def _report(report: ImportReport, entry: Validated, decision: Decision, sample_ids: dict[str, int]):
    name = entry.item.name
    # A twin first seen in this batch has its sample id only now that the batch is stored.
    sample_id = decision.sample_id or sample_ids.get(entry.image.sha256)
    if decision.outcome is Outcome.REFUSED:
        report.refuse(name, decision.reason, decision.conflict)
    elif sample_id is None:
        report.refuse(name, "the same image as another file of this import, which could not be stored")
    elif decision.outcome is Outcome.DUPLICATE:
        report.duplicate(name, sample_id, decision.reason, decision.conflict, decision.merged)
    else:
        report.create(name, sample_id, entry.image.trailing_note)
