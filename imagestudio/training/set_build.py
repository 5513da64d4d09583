"""A training set's build: the label model of each class over the votes of the set's snapshot. Its inputs are read
in one snapshot of the database. Where they changed while the set was queued (its LFs' votes refreshed after an
edit, a label written), the set takes them and its snapshot and content hash follow, so that its contents are
always what its hash says; where a ready set holds those inputs already, that set is the job's answer (this one,
its copy, goes), and where one is still being built, this one fails and names it.
"""

from collections.abc import Callable

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Value
from django.db.models.functions import Greatest
from django.utils import timezone

from imagestudio.annotations.selectors import ground_truth_for
from imagestudio.common.artifacts import artifact_write
from imagestudio.common.errors import Conflict
from imagestudio.common.transactions import read_snapshot
from imagestudio.datasets.models import SPLIT_CODES, LabelClass, Split
from imagestudio.labeling.label_choice import label_class_votes
from imagestudio.labeling.models import LabelingFunction
from imagestudio.labeling.selectors import vote_matrix

from . import fitting
from .class_names import by_current_name
from .models import TrainingSet
from .selectors import split_samples, training_snapshot


def _label_class(votes, truth, dev, valid, in_set, lfs, seed):
    """Labels (of the rows `in_set`) and report of one class's label model over its LF votes; `dev` marks the rows
    whose ground truth chooses and fits it, `valid` those it is evaluated on. The one place that calls the label
    model."""
    if votes.shape[1] == 0:  # no evidence at all: abstain everywhere rather than label by the prior
        labels = np.zeros(int(in_set.sum()), dtype=np.int8)
        return (np.full(len(labels), np.nan, dtype=np.float32), labels,
                {"chosen": None, "reason": "no active LF for this class", **fitting.label_counts(labels)})
    result = label_class_votes(votes, truth, dev, seed=seed)  # the seed deals the dev folds
    report = fitting.label_model_report(result, votes, truth, valid, lfs)
    label = result.labels.label[in_set]
    return result.labels.probability[in_set], label, {**report, **fitting.label_counts(label)}


def _class_lfs(snapshot):
    """The snapshot's LFs by class id, as stored rows (a Conflict when one was deleted since)."""
    entries = snapshot["lfs"]
    lfs = {lf.id: lf for lf in LabelingFunction.objects.filter(id__in=[e["id"] for e in entries])}
    by_class = {}
    for entry in entries:
        if entry["id"] not in lfs:
            raise Conflict(f"LF {entry['id']} was deleted while the training set was queued; build it again.")
        by_class.setdefault(entry["class_id"], []).append(lfs[entry["id"]])
    return by_class


def _inputs(training_set):
    """(ids, split codes, which rows are the set's, [(class, its LFs, their votes, its ground truth)]) of the set's
    splits and dev, as they are now, read in one state of the database; the set's snapshot and hash follow them when
    they changed. Dev is read whichever splits the set labels: its labels orient, choose and calibrate the label
    model (a set of train alone, fitted unsupervised, labelled a class backwards where its LFs were written so)."""
    dataset = training_set.dataset
    with read_snapshot():
        stored = TrainingSet.objects.filter(pk=training_set.pk).values_list("snapshot", "content_hash").get()
        snapshot, content_hash = training_snapshot(dataset, stored[0]["splits"], stored[0].get("seed", 0),
                                                   scoped="labels_classes" in stored[0])
        ids, codes = split_samples(dataset, sorted({*snapshot["splits"], Split.DEV}))
        in_set = np.isin(codes, [SPLIT_CODES[split] for split in snapshot["splits"]])
        by_class = _class_lfs(snapshot)
        classes = []
        for label_class in LabelClass.objects.filter(dataset=dataset).order_by("id"):
            members = by_class.get(label_class.id, [])
            classes.append((label_class, members, vote_matrix(members, ids),
                            ground_truth_for(dataset=dataset, label_class=label_class, sample_ids=ids)))
    if content_hash != stored[1]:
        _follow(training_set, snapshot, content_hash)
    return ids, codes, in_set, classes


class SameInputs(Exception):  # noqa: N818  (not an error: the answer is another set)
    """The inputs a set reads are those of another set, already built: that one is the answer."""

    def __init__(self, twin):
        super().__init__(twin.id)
        self.twin = twin


def _follow(training_set, snapshot, content_hash):
    """The set's snapshot and hash become those of the inputs it reads (they changed while it was queued, or it was
    asked for while the LF votes were refreshed). Where a ready set holds those inputs, it is the answer."""
    try:
        with transaction.atomic():
            TrainingSet.objects.filter(pk=training_set.pk).update(snapshot=snapshot, content_hash=content_hash)
    except IntegrityError:
        twin = TrainingSet.objects.filter(dataset=training_set.dataset_id, content_hash=content_hash).first()
        if twin is not None and twin.ready:
            raise SameInputs(twin) from None
        raise Conflict(f"Its inputs changed while it was queued, to those of training set {getattr(twin, 'id', '?')}, "
                       "still being built: use that one.", code="inputs_changed") from None
    training_set.snapshot, training_set.content_hash = snapshot, content_hash


def training_set_requested(training_set: TrainingSet, at=None) -> None:
    """A request asked for this set's inputs `at` (now): it becomes the dataset's latest set once ready
    (selectors.ready_training_set). Never moved back: a twin answered for an older request keeps its later time."""
    TrainingSet.objects.filter(pk=training_set.pk).update(requested_at=Greatest("requested_at", Value(at or timezone.now())))
    training_set.refresh_from_db(fields=["requested_at"])


def training_set_build(training_set: TrainingSet, progress: Callable[[float, str], None]) -> dict:
    """Run the label model of each class over the snapshot's LF votes and store the result; or, where a ready set
    holds the very inputs it reads, answer that set (`reused`) and delete this one, which would be its copy."""
    dataset = training_set.dataset
    try:
        ids, codes, in_set, classes = _inputs(training_set)
    except SameInputs as same:
        TrainingSet.objects.filter(pk=training_set.pk).delete()
        twin = same.twin
        training_set_requested(twin, at=training_set.requested_at)
        return {"training_set": twin.id, "samples": twin.samples, "classes": twin.report, "reused": True}
    arrays, report = {"ids": ids[in_set], "splits": codes[in_set]}, {}
    dev, valid = codes == SPLIT_CODES[Split.DEV], codes == SPLIT_CODES[Split.VALID]
    for index, (label_class, members, votes, truth) in enumerate(classes):
        probability, label, class_report = _label_class(votes, truth, dev, valid, in_set,
                                                        [(lf.id, lf.name) for lf in members],
                                                        training_set.snapshot.get("seed", 0))
        arrays.update({f"probability_{label_class.id}": probability, f"label_{label_class.id}": label,
                       f"votes_{label_class.id}": votes[in_set],
                       f"lfs_{label_class.id}": np.array([lf.id for lf in members], dtype=np.int64)})
        report[label_class.id] = {"class_id": label_class.id, **class_report}
        progress((index + 1) / max(len(classes), 1), f"label model for {label_class.name}")
    key, digest = artifact_write(
        f"datasets/{dataset.id}/training-sets/{training_set.id}-{training_set.content_hash[:12]}.npz", arrays)
    with transaction.atomic():  # under the row lock a class rename takes: the names as they are now
        TrainingSet.objects.select_for_update().filter(pk=training_set.pk).exists()
        report = by_current_name(report)
        TrainingSet.objects.filter(pk=training_set.pk).update(report=report, artifact=key, artifact_sha256=digest,
                                                              samples=int(in_set.sum()), ready=True)
    return {"training_set": training_set.id, "samples": int(in_set.sum()), "classes": report}
