"""Labeling functions: validate, score, preview on a histogram, save with materialized votes, summarize."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from imagestudio import pipeline
from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.arrays import locate, top_k
from imagestudio.common.errors import Conflict, NotFound, ValidationFailed, VersionConflict
from imagestudio.common.transactions import duplicate_refused, retry_transient
from imagestudio.common.votes import vote_word
from imagestudio.datasets.field_stats import BUILTIN_FIELDS
from imagestudio.datasets.locks import classes_lock_shared
from imagestudio.datasets.models import SPLIT_CODES, ResampleMember, Sample
from imagestudio.datasets.selectors import field_column, field_values, metadata_field_exists, samples_version
from imagestudio.embeddings.encoders import ENCODER_KEYS, SPACES
from imagestudio.embeddings.services import query_vector, scores_for
from imagestudio.jobs.services import job_progress

from . import metrics, vote_rows
from .config_schemas import BUILDERS, PATTERN_SCHEMAS, ConfigError, check, pattern_schema, similarity_schema
from .models import SIMILARITY_TYPES, LabelingFunction, LFType
from .patterns import PatternError, not_numbers, pattern_scores, validate_pattern
from .score_sources import score_source

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from imagestudio.datasets.models import Dataset, LabelClass
    from imagestudio.jobs.models import Job

MAX_BINS = 200
MAX_TOP = 500


@dataclass
class Rule:
    """What decides an LF's votes (a saved LF or a preview request)."""

    label_class: object
    type: str
    config: dict
    low: float | None = None
    high: float | None = None
    invert: bool = False


SIMILARITY_SCHEMAS = {lf_type: similarity_schema(lf_type, ENCODER_KEYS, SPACES) for lf_type in SIMILARITY_TYPES}


def _similarity_config(dataset, type, config):
    """The type's JSON Schema, then what it cannot say: the query sample is this dataset's."""
    try:
        clean = check(SIMILARITY_SCHEMAS[type], config)
    except ConfigError as exc:
        raise ValidationFailed(f"{exc} ({exc.field})", field="config") from None
    if clean.get("encoder") is None:
        clean.pop("encoder", None)  # the configured default
    if "sample_id" in clean:
        clean["sample_id"] = int(clean["sample_id"])
        if not Sample.objects.filter(dataset=dataset, pk=clean["sample_id"]).exists():
            raise ValidationFailed("'sample_id' must name a sample of this dataset.", field="config")
    if "box" in clean:
        clean["box"] = [int(v) for v in clean["box"]]
    return clean


def lf_type_catalogue() -> dict[str, Any]:
    """The composer's menu: every LF type with its config's JSON Schema (the one validation enforces), the pattern
    builders with theirs, and the built-in columns a pattern may read besides metadata fields."""
    schemas = {**SIMILARITY_SCHEMAS, LFType.PATTERN: pattern_schema()}
    schemas.update({lf_type: source.schema for lf_type in LFType.values if (source := score_source(lf_type))})

    def entry(schema):
        return {"title": schema["title"], "description": schema["description"], "config_schema": schema}

    return {"dialect": "https://json-schema.org/draft/2020-12/schema",
            "types": [{"type": lf_type, **entry(schemas[lf_type])} for lf_type in LFType.values if lf_type in schemas],
            "builders": [{"builder": builder, **entry(PATTERN_SCHEMAS[builder])} for builder in BUILDERS],
            "builtin_fields": list(BUILTIN_FIELDS)}


def validate_rule(*, dataset: Dataset, label_class: LabelClass, type: str, config: Any, low: float | None,
                  high: float | None, thresholds_required: bool = True) -> dict[str, Any]:
    """A normalized config for the type, or ValidationFailed naming the field at fault. A rule that votes needs
    a threshold; a preview may go without (its histogram comes first)."""
    if label_class.dataset_id != dataset.id:
        raise ValidationFailed("The class belongs to another dataset.", field="label_class")
    if low is not None and high is not None and low >= high:
        raise ValidationFailed(f"low ({low}) must be below high ({high}).", field="low")
    if low is None and high is None and thresholds_required:
        raise ValidationFailed("Give at least one threshold (low and / or high).", field="high")
    if not isinstance(config, dict):
        raise ValidationFailed("The config must be an object.", field="config")
    if type in SIMILARITY_TYPES:
        return _similarity_config(dataset, type, config)
    if type == LFType.PATTERN:
        try:
            clean = validate_pattern(config)
        except PatternError as exc:
            raise ValidationFailed(f"{exc} ({exc.field})", field="config") from None
        # Asked when a rule is written, not when its votes are refreshed: a field the data no longer has is a
        # miss for every sample then, not a reason to keep stale votes.
        if any(dataset.split_counts.values()) and not metadata_field_exists(dataset=dataset, field=clean["field"]):
            raise ValidationFailed(f"No sample of this dataset has a metadata field {clean['field']!r}.",
                                   field="config")
        return clean
    source = score_source(type)
    if source is not None:
        return source.validate(dataset, label_class, config)
    raise ValidationFailed(f"Unknown LF type {type!r}.", field="type")


def rule_scores(*, dataset: Dataset, rule: Rule, split: str | None = None, in_sample: bool = False,
                sample_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(sample ids ascending, float32 scores, notes) of the rule over a split (or the whole dataset), or over
    `sample_ids` alone (a pattern then reads only their values)."""
    if rule.type in SIMILARITY_TYPES:
        try:
            vector, record, notes = query_vector(
                dataset=dataset, encoder=rule.config.get("encoder"), text=rule.config.get("text"),
                sample_id=rule.config.get("sample_id"), box=rule.config.get("box"), space=rule.config.get("space"))
        except ValidationFailed as exc:
            if exc.field != "box":
                raise
            raise ValidationFailed(f"'box': {exc.message}", field="config") from None  # a box of the LF's config
        ids, scores = scores_for(dataset=dataset, record=record, vector=vector, split=split, in_sample=in_sample)
        return (ids, scores, notes) if sample_ids is None else (*_only(ids, scores, sample_ids=sample_ids), notes)
    source = score_source(rule.type)
    if source is not None:
        ids, splits, values = source.column(dataset, rule.label_class, rule.config)
        if sample_ids is not None:
            ids, splits, values = _only(ids, splits, values, sample_ids=sample_ids)
    elif sample_ids is not None:
        ids, splits, values = field_values(dataset=dataset, field=rule.config["field"], sample_ids=sample_ids)
    else:
        ids, splits, values = field_column(dataset=dataset, field=rule.config["field"])
    rows = np.ones(len(ids), dtype=bool)
    if split:
        rows &= splits == SPLIT_CODES[split]
    if in_sample:
        members = ResampleMember.objects.filter(resample__dataset=dataset)
        if split:
            members = members.filter(resample__split=split)
        rows &= np.isin(ids, np.fromiter(members.values_list("sample_id", flat=True), dtype=np.int64))
    if source is not None:
        return ids[rows], values[rows].astype(np.float32), {}
    try:
        scores = pattern_scores(values[rows], rule.config)
    except PatternError as exc:
        raise ValidationFailed(str(exc), field="config") from None
    notes = {"not_numbers": not_numbers(values[rows])} if rule.config["builder"] == "numeric" else {}
    return ids[rows], scores, notes


def _only(ids, *arrays, sample_ids):
    """The rows of `ids` (and of the arrays aligned with them) that are among `sample_ids`."""
    keep = np.isin(ids, np.fromiter(sample_ids, dtype=np.int64))
    return (ids[keep], *(array[keep] for array in arrays))


def lf_preview(*, dataset: Dataset, rule: Rule, split: str | None = None, in_sample: bool = False, bins: int = 40,
               top: int = 50, min_precision: float = 0.9) -> dict[str, Any]:
    """Everything the histogram view needs for a rule on a split, computed from one scoring pass."""
    started = time.perf_counter()
    ids, scores, notes = rule_scores(dataset=dataset, rule=rule, split=split, in_sample=in_sample)
    ids, scores, unscored = _over_population(dataset, ids, scores, split, in_sample)
    truth = ground_truth_for(dataset=dataset, label_class=rule.label_class, sample_ids=ids)
    votes = metrics.votes_from_scores(scores, rule.low, rule.high, rule.invert)
    quality = metrics.vote_quality(votes, truth)
    if quality["labeled"] == 0:
        quality["reason"] = (f"No sample of {'split ' + split if split else 'the dataset'} has ground truth for "
                             f"{rule.label_class.name!r}: precision and recall need some.")
    finite = scores[np.isfinite(scores)]
    order = top_k(scores, top, descending=not rule.invert)
    binned = metrics.bin_scores(scores, truth, bins)
    return {
        **notes,
        "population": int(len(ids)),
        "unscored": unscored,
        "score_range": [float(finite.min()), float(finite.max())] if len(finite) else None,
        "histogram": metrics.histogram_of(binned),
        "sweep": metrics.threshold_sweep(binned, invert=rule.invert),
        "metrics": quality,
        "suggested": metrics.suggest_thresholds(scores, truth, invert=rule.invert, min_precision=min_precision),
        "top": [{"sample_id": int(ids[i]), "score": float(scores[i]), "ground_truth": vote_word(truth[i]),
                 "vote": vote_word(votes[i])} for i in order],
        "seconds": round(time.perf_counter() - started, 4),
    }


def _over_population(dataset, ids, scores, split, in_sample):
    """(ids, scores, unscored): the rule's scores over every sample of the split (or its resample), NaN (an
    abstain) where it has none, such as a sample without an embedding, so that the preview's coverage and recall
    count it as the saved LF's figures do. The ids are read only when the count says some are missing."""
    samples = Sample.objects.filter(dataset=dataset)
    if split:
        samples = samples.filter(split=split)
    if in_sample:
        members = ResampleMember.objects.filter(resample__dataset=dataset)
        samples = samples.filter(id__in=(members.filter(resample__split=split) if split else members).values("sample_id"))
    if samples.count() == len(ids):  # samples are only ever added: the same count is the same samples
        return ids, scores, 0
    everyone = np.fromiter(samples.order_by("id").values_list("id", flat=True), dtype=np.int64)
    where, hit = locate(everyone, ids)
    full = np.full(len(everyone), np.nan, dtype=np.float32)
    full[where[hit]] = scores[hit]
    return everyone, full, int(len(everyone) - hit.sum())


# ---------------------------------------------------------------- saved LFs and their votes


def lf_rule(lf: LabelingFunction) -> Rule:
    """The rule a saved LF votes by."""
    return Rule(label_class=lf.label_class, type=lf.type, config=lf.config, low=lf.low, high=lf.high,
                invert=lf.invert)


def lf_materialize(*, lf: LabelingFunction, sample_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Score the LF over the whole dataset (or over `sample_ids` alone, whose data changed) and store its
    non-abstain votes. The caller holds the LF's row lock, or the LF is new.

    A first save writes every vote in bulk (vote_rows.votes_create). Afterwards only the difference with the
    stored votes is written (vote_rows.votes_apply): a threshold nudge or a refresh after new samples rewrites
    the rows that changed, not every row of the dataset."""
    ids, scores, notes = rule_scores(dataset=lf.dataset, rule=lf_rule(lf), sample_ids=sample_ids)
    votes = metrics.votes_from_scores(scores, lf.low, lf.high, lf.invert)
    # Only a scoring of every sample clears a refresh error: the samples it withdrew votes on may be any.
    stored = _votes_store(lf, sample_ids, ids[votes == metrics.PRESENT], ids[votes == metrics.ABSENT],
                          encoder=notes.get("encoder", ""), error="" if sample_ids is None else None)
    return {**stored, "scored": int(len(ids))}


def _votes_store(lf, sample_ids, present, absent, *, encoder, error):
    """Store the LF's votes (on `sample_ids` alone, the others kept, when given) and its refresh error (None:
    kept as it is)."""
    stored = LabelingFunction.objects.filter(pk=lf.pk).values_list("votes_present", "votes_absent").get()
    old_present, old_absent = (np.frombuffer(bytes(blob), dtype=np.int64) for blob in stored)
    all_present, all_absent = present, absent
    if sample_ids is not None:  # the votes of other samples stay as they are
        scope = np.unique(np.fromiter(sample_ids, dtype=np.int64))
        all_present = np.union1d(np.setdiff1d(old_present, scope, assume_unique=True), present)
        all_absent = np.union1d(np.setdiff1d(old_absent, scope, assume_unique=True), absent)
        old_present, old_absent = (np.intersect1d(old, scope, assume_unique=True) for old in (old_present, old_absent))
    with transaction.atomic():
        if vote_rows.has_rows_table(lf.id):
            written = vote_rows.votes_apply(lf.id, (old_present, old_absent), (present, absent))
        else:
            vote_rows.votes_create(lf.id, all_present, all_absent)
            written = {"rows_deleted": 0, "rows_written": int(len(all_present) + len(all_absent))}
        LabelingFunction.objects.filter(pk=lf.pk).update(
            votes_present=all_present.tobytes(), votes_absent=all_absent.tobytes(), votes_updated_at=timezone.now(),
            encoder=encoder, **({} if error is None else {"refresh_error": error}))
    return {"present": int(len(all_present)), "absent": int(len(all_absent)), **written}


def lf_rematerialize(*, lf: LabelingFunction) -> dict[str, int]:
    """Rewrite every vote of the LF, rows and blobs (a repair: `lf_materialize` writes only the difference with
    the stored blobs, which cannot mend vote rows that drifted from them)."""
    with transaction.atomic():
        LabelingFunction.objects.select_for_update().filter(pk=lf.pk).update(votes_present=b"", votes_absent=b"")
        vote_rows.votes_clear(lf.id)
        return lf_materialize(lf=lf)


def lf_create(*, dataset: Dataset, user: User | None, label_class: LabelClass, name: str, type: str, config: Any,
              low: float | None = None, high: float | None = None, invert: bool = False,
              active: bool = True) -> LabelingFunction:
    config = validate_rule(dataset=dataset, label_class=label_class, type=type, config=config, low=low, high=high)
    read_at = samples_version(dataset=dataset)
    with duplicate_refused(Conflict(f"The dataset already has an LF named {name!r}.", code="duplicate_name",
                                    field="name")):
        lf = LabelingFunction.objects.create(dataset=dataset, label_class=label_class, name=name, type=type,
                                             config=config, low=low, high=high, invert=invert, active=active,
                                             author=user)
        lf_materialize(lf=lf)
    if samples_version(dataset=dataset) != read_at:
        # Samples changed while the new LF, invisible to their refresh jobs until now, read them: refresh it too.
        pipeline.lf_refresh_enqueue(dataset=dataset, user=user)
    lf.refresh_from_db()
    _lfs_changed(lf, user)
    return lf


def _lfs_changed(lf, user):
    pipeline.after_lfs_changed(dataset=lf.dataset, label_class=lf.label_class, user=user)


def lf_delete(*, lf: LabelingFunction, user: User | None = None) -> None:
    with transaction.atomic():
        # Locked first, so that votes a refresh is writing are committed before the delete collects them.
        list(LabelingFunction.objects.select_for_update().filter(pk=lf.pk).values_list("id", flat=True))
        lf.delete()
        if lf.active:
            _lfs_changed(lf, user)


RULE_FIELDS = ("type", "config", "low", "high", "invert", "label_class")


def lf_update(*, lf: LabelingFunction, user: User | None = None, expected_version: int | None = None,
              **changes: Any) -> LabelingFunction:
    """Edit an LF; rule edits re-materialize its votes. A stale `expected_version` is a VersionConflict."""
    with transaction.atomic():
        # The lock order of datasets/locks.py: its classes (shared), then the LF row alone (a refresh of its votes
        # waits, and then applies the edited rule).
        classes_lock_shared(class_ids=[lf.label_class_id, *([changes["label_class"].id] if "label_class" in changes
                                                            else [])])
        current = LabelingFunction.objects.select_for_update(of=("self",)).select_related("label_class", "dataset") \
            .filter(pk=lf.pk).first()
        if current is None:  # deleted since the request read it
            raise NotFound("The LF was deleted.")
        if expected_version is not None and expected_version != current.version:
            raise VersionConflict(f"The LF changed since version {expected_version}; it is now version "
                                  f"{current.version}. Reload and retry.", current_version=current.version)
        merged = {name: changes.get(name, getattr(current, name)) for name in RULE_FIELDS}
        if any(name in changes for name in RULE_FIELDS):
            merged["config"] = validate_rule(dataset=current.dataset, **{k: merged[k] for k in
                                                                         ("label_class", "type", "config", "low",
                                                                          "high")})
        updates = {name: value for name, value in {**changes, **merged}.items() if getattr(current, name) != value}
        if not updates:  # nothing changes: the same version, so another client's If-Match of it still holds
            if current.refresh_error:  # but an LF whose votes were withdrawn is scored again
                lf_materialize(lf=current)
                _lfs_changed(current, user)
                current.refresh_from_db()
            return current
        for name, value in updates.items():
            setattr(current, name, value)
        current.version += 1
        with duplicate_refused(Conflict(f"The dataset already has an LF named {changes.get('name')!r}.",
                                        code="duplicate_name", field="name")):
            current.save()
        if any(name in updates for name in RULE_FIELDS):
            lf_materialize(lf=current)
        if any(name in updates for name in (*RULE_FIELDS, "active")):
            _lfs_changed(current, user)
    current.refresh_from_db()
    return current


def lfs_refresh_run(job: Job) -> dict[str, Any]:
    """Re-apply the dataset's LFs: every one to every sample, or, when the job names samples (their metadata or
    split changed), the LFs that read those (pattern; model: training/lf_source) to those samples alone."""
    sample_ids = job.params.get("sample_ids")
    lfs = LabelingFunction.objects.filter(dataset=job.dataset).order_by("id")
    if sample_ids is not None:
        lfs = lfs.filter(type__in=[LFType.PATTERN, LFType.MODEL])
    lf_ids = list(lfs.values_list("id", flat=True))
    refreshed, failed, defect = {}, {}, None
    for index, lf_id in enumerate(lf_ids):
        try:
            result = _refresh_one(lf_id, sample_ids)
        except Exception as exc:  # e.g. its query sample was removed, a pattern timed out; or a defect in its scoring
            expected = isinstance(exc, (ValidationFailed, Conflict))
            failed[lf_id] = exc.message if expected else f"internal error ({type(exc).__name__}): report it"
            _refresh_one(lf_id, sample_ids, failure=failed[lf_id])
            defect = defect or (None if expected else exc)  # the others are refreshed first
        else:
            if result is not None:
                refreshed[lf_id] = result
        job_progress(job_id=job.id, progress=(index + 1) / len(lf_ids), message=f"{index + 1}/{len(lf_ids)} LFs")
    if defect is not None:
        raise defect  # the job fails with it, visibly
    return {"refreshed": refreshed, "failed": failed, "samples": None if sample_ids is None else len(sample_ids)}


@retry_transient
def _refresh_one(lf_id, sample_ids, failure=None):
    """Materialize one LF as it stands under its row lock (an edit or a delete of it waits, and is not undone by
    a rule read before it); None when it was deleted meanwhile. With `failure` (why it could not be scored) its
    votes on the samples are withdrawn instead, so that none stands for data it did not read, and the LF says
    why."""
    with transaction.atomic():
        class_id = LabelingFunction.objects.filter(pk=lf_id).values_list("label_class_id", flat=True).first()
        if class_id is None:
            return None
        classes_lock_shared(class_ids=[class_id])  # the lock order of datasets/locks.py: classes first
        lf = LabelingFunction.objects.select_for_update(of=("self",)).select_related("label_class", "dataset") \
            .filter(pk=lf_id).first()
        if lf is None:
            return None
        if failure is None:
            return lf_materialize(lf=lf, sample_ids=sample_ids)
        nothing = np.empty(0, dtype=np.int64)
        return _votes_store(lf, sample_ids, nothing, nothing, encoder=lf.encoder, error=failure)
