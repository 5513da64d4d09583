"""Writes on datasets, classes, members, tags, comments and samples."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F, Q, QuerySet

from imagestudio import pipeline
from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.common.transactions import duplicate_refused, retry_transient, save_fields
from imagestudio.jobs.services import jobs_cancel_active

from .locks import classes_lock_exclusive, dataset_classes_lock_shared, dataset_lock
from .models import (
    Comment,
    Dataset,
    DatasetMembership,
    LabelClass,
    Resample,
    ResampleMember,
    Role,
    Sample,
    Tag,
    empty_split_counts,
)
from .names import NameError_, class_name_clean, class_name_key
from .selectors import sample_split_counts
from .signals import label_class_renamed, sample_split_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def dataset_create(*, user: User, name: str, description: str = "", classes: Iterable[str] = (),
                   auto_embed: bool = False, auto_train: bool = False) -> Dataset:
    """A dataset owned by its creator, with its first classes."""
    with transaction.atomic():
        dataset = Dataset.objects.create(name=name, description=description, created_by=user, auto_embed=auto_embed,
                                         auto_train=auto_train)
        DatasetMembership.objects.create(dataset=dataset, user=user, role=Role.OWNER)
        for class_name in dict.fromkeys(classes):
            label_class_create(dataset=dataset, name=class_name)
    return dataset


def dataset_update(*, dataset: Dataset, **fields: Any) -> Dataset:
    for name, value in fields.items():
        setattr(dataset, name, value)
    save_fields(dataset, [*fields, "updated_at"])
    return dataset


logger = logging.getLogger(__name__)
DELETE_ATTEMPTS = 4


def dataset_delete(*, dataset: Dataset) -> None:
    """Cancel the dataset's jobs, delete its rows, then its blobs and staged uploads once the deletion is committed.

    A job that was writing (an import's batch) may still commit rows between the cancel and the delete: the
    delete then meets them and is tried again, and answers 409 rather than fail when the job keeps writing."""
    from .imports.staging import staging_remove  # the imports package stores through this module

    dataset_id, folder = dataset.pk, f"datasets/{dataset.pk}"
    jobs_cancel_active(dataset=dataset)
    # Staged uploads of its imports: a queued one never runs now (its job row goes with the dataset).
    staged = [prefix for prefix in dataset.jobs.filter(kind="import").values_list("params__staging", flat=True) if prefix]

    def remove_blobs():
        with contextlib.suppress(NotImplementedError, FileNotFoundError):
            shutil.rmtree(default_storage.path(folder), ignore_errors=True)
        for prefix in staged:
            staging_remove(prefix)

    for attempt in range(DELETE_ATTEMPTS):
        try:
            with transaction.atomic():
                # A fresh instance each attempt: a delete rolled back at commit has already cleared `dataset.pk`.
                Dataset.objects.get(pk=dataset_id).delete()
                transaction.on_commit(remove_blobs)
            return
        except (IntegrityError, OperationalError) as exc:  # rows committed meanwhile, or a deadlock with their writer
            logger.info("dataset %s: delete attempt %s met a concurrent writer: %s", dataset_id, attempt + 1, exc)
            time.sleep(0.25 * (attempt + 1))
    raise Conflict("A job of this dataset kept writing while it was being deleted; retry in a few seconds.",
                   code="dataset_busy")


def _checked_name(name: str) -> tuple[str, str]:
    try:
        clean = class_name_clean(name)
    except NameError_ as exc:
        raise ValidationFailed(str(exc), field="name") from None
    return clean, class_name_key(clean)


def _duplicate_name(name):
    return Conflict(f"The dataset already has a class named {name!r} (names that differ only in case, width or "
                    "invisible characters are the same).", code="duplicate_name", field="name")


def label_class_create(*, dataset: Dataset, name: str, description: str = "") -> LabelClass:
    clean, key = _checked_name(name)
    with duplicate_refused(_duplicate_name(clean)):
        return LabelClass.objects.create(dataset=dataset, name=clean, name_key=key, description=description)


def label_class_update(*, label_class: LabelClass, **fields: Any) -> LabelClass:
    if "name" in fields:
        fields["name"], fields["name_key"] = _checked_name(fields["name"])
    old_name = label_class.name
    with duplicate_refused(_duplicate_name(fields.get("name"))):
        for name, value in fields.items():
            setattr(label_class, name, value)
        save_fields(label_class, list(fields))
        if label_class.name != old_name:
            _resample_class_renamed(dataset_id=label_class.dataset_id, old_name=old_name, new_name=label_class.name)
            label_class_renamed.send(sender=LabelClass, label_class=label_class, old_name=old_name)
    return label_class


@retry_transient
def label_class_delete(*, label_class: LabelClass) -> None:
    """Delete a class with its labels, LFs and counters (they cascade), once no writer of its labels is running
    (datasets/locks.py)."""
    with transaction.atomic():
        classes_lock_exclusive(class_ids=[label_class.id])
        # A copy is deleted: delete() clears the pk of its instance, which a retry (a deadlock victim) reads again.
        current = LabelClass.objects.filter(pk=label_class.id).first()
        if current is None:
            return
        # Its labels go with it. The dataset row before the rows of products naming it (resamples, training sets,
        # models), as their writers take them (datasets/locks.py).
        dataset_labels_changed(dataset_id=current.dataset_id)
        _resample_class_renamed(dataset_id=current.dataset_id, old_name=current.name, new_name=None)
        current.delete()


def dataset_labels_changed(*, dataset_id: int) -> None:
    """Bump `labels_version` in the writer's transaction (a class delete, a counter rebuild), its dataset row the
    last of its label locks (datasets/locks.py): held to the commit, so versions follow commit order."""
    Dataset.objects.filter(pk=dataset_id).update(labels_version=F("labels_version") + 1)


def _resample_class_renamed(*, dataset_id: int, old_name: str, new_name: str | None) -> None:
    """A resample's draw-time counts (`realized`, its `shortfall`) name the classes: they follow a rename, and a
    deleted class's go (kept, they would read as those of the next class given its name)."""
    for resample in Resample.objects.select_for_update().filter(dataset_id=dataset_id,
                                                                 realized__per_class__has_key=old_name):
        per_class = resample.realized["per_class"]
        figures = per_class.pop(old_name)
        if new_name is not None:
            per_class[new_name] = figures
        resample.save(update_fields=["realized"])


def user_by_username(username: str) -> User:
    """The active user of that name; owners adding a member need to know when there is none."""
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationFailed(f"No user named {username!r}.", field="username")
    return user


def membership_set(*, dataset: Dataset, user: User, role: str) -> tuple[DatasetMembership, bool]:
    """Add a member or change a member's role; the last owner cannot be demoted."""
    with transaction.atomic():
        locked = _memberships_lock(dataset, Q(user=user))
        membership = next((row for row in locked if row.user_id == user.pk), None)
        if membership is None:
            return DatasetMembership.objects.create(dataset=dataset, user=user, role=role), True
        if membership.role == Role.OWNER and role != Role.OWNER:
            _refuse_last_owner(locked, membership)
        membership.role = role
        membership.save(update_fields=["role"])
        return membership, False


def membership_remove(*, membership: DatasetMembership) -> None:
    with transaction.atomic():
        locked = _memberships_lock(membership.dataset, Q(pk=membership.pk))
        current = next((row for row in locked if row.pk == membership.pk), None)
        if current is None:
            return  # removed meanwhile
        if current.role == Role.OWNER:
            _refuse_last_owner(locked, current)
        current.delete()


@contextlib.contextmanager
def memberships_locked(*, dataset: Dataset, users: Iterable[int]) -> Iterator[list[DatasetMembership]]:
    """One transaction holding the dataset's owner rows and those of `users` (a request's caller and target), locked
    in one ascending statement before anything else: a conditional write (If-Match) locked its target row first, and
    two owners demoting each other deadlocked again. Yields the rows, as stored under the lock."""
    with transaction.atomic():
        yield _memberships_lock(dataset, Q(user__in=sorted(set(users))))


def _memberships_lock(dataset, target):
    """The dataset's owner rows and the `target` row, locked in one statement in ascending id: two owners demoting
    each other locked their own row, then the other owners', and deadlocked."""
    return list(DatasetMembership.objects.select_for_update().filter(Q(role=Role.OWNER) | target, dataset=dataset)
                .order_by("pk"))


def _refuse_last_owner(locked, membership):
    if not any(row.role == Role.OWNER and row.pk != membership.pk for row in locked):
        raise Conflict("A dataset keeps at least one owner; make someone else owner first.", code="last_owner")


@retry_transient
def sample_update(*, sample: Sample, split: str | None = None, metadata: dict[str, Any] | None = None,
                  user: User | None = None) -> Sample:
    """Move a sample to another split and / or replace its metadata. Arrays derived from the samples (columns,
    matrices) follow through `samples_version`; LF votes, which read metadata (a model LF: the split), are refreshed
    by a job.

    Locks in the order of datasets/locks.py: the move reads the split under the sample's lock, so no label
    write on the sample can run between that read and the counters following the labels to the new split."""
    with transaction.atomic():
        if split is not None:
            dataset_classes_lock_shared(dataset_id=sample.dataset_id)
        current = Sample.objects.select_for_update(no_key=True).get(pk=sample.pk)
        sample.split, sample.metadata, sample.search_text = current.split, current.metadata, current.search_text
        fields = []
        if split is not None and split != sample.split:
            sample_split_changed.send(sender=Sample, sample=sample, old_split=sample.split, new_split=split)
            old_split, sample.split = sample.split, split
            fields.append("split")
        # As JSON, not as Python values: False == 0 in Python, yet false -> 0 is an edit.
        if metadata is not None and json.dumps(metadata, sort_keys=True) != json.dumps(sample.metadata, sort_keys=True):
            sample.metadata = metadata
            sample.search_text = search_text(sample.external_id, sample.file_name, metadata)
            fields += ["metadata", "search_text"]
        if fields:
            sample.save(update_fields=fields)
            counts = {old_split: -1, split: 1} if "split" in fields else {}
            dataset_add_counts(dataset_id=sample.dataset_id, counts=counts)
        if "split" in fields:  # out of its old split's resample: after the dataset row, as datasets/locks.py orders
            ResampleMember.objects.filter(sample=sample).delete()
        if fields:
            pipeline.after_samples_changed(dataset=sample.dataset, user=user, sample_ids=[sample.pk])
    return sample


def search_text(external_id: str, file_name: str, metadata: Mapping[str, Any]) -> str:
    """The lower-cased text the metadata search matches against."""
    values = [external_id, file_name] + [str(v) for v in metadata.values() if v is not None]
    return " ".join(values).lower()


def dataset_add_counts(*, dataset_id: int, counts: Mapping[str, int]) -> None:
    """Add to the per-split sample counts and bump `samples_version`, under the dataset's row lock (concurrent
    imports add up correctly). The last lock a writer takes (datasets/locks.py)."""
    with transaction.atomic():
        merged = dict(dataset_lock(dataset_id=dataset_id).split_counts)
        for split, delta in counts.items():
            merged[split] = merged.get(split, 0) + delta
        Dataset.objects.filter(pk=dataset_id).update(split_counts=merged, samples_version=F("samples_version") + 1)


@retry_transient
def dataset_recount_splits(*, dataset: Dataset) -> dict[str, int]:
    """Set the per-split sample counts from the samples (a repair tool; writes keep them exact) and return them.

    Writers change samples first and the counts last, under the dataset's lock: once that lock is held, a
    committed writer is in both the rows and the counts, and one still running is in neither."""
    with transaction.atomic():
        dataset_lock(dataset_id=dataset.id)
        counts = {**empty_split_counts(), **sample_split_counts(dataset_id=dataset.id)}
        Dataset.objects.filter(pk=dataset.id).update(split_counts=counts)
    dataset.split_counts = counts
    return counts


def _checked_tag_name(name: str) -> str:
    try:
        return class_name_clean(name, what="tag")
    except NameError_ as exc:
        raise ValidationFailed(str(exc), field="name") from None


def _duplicate_tag(name):
    return Conflict(f"The dataset already has a tag named {name!r}.", code="duplicate_name", field="name")


def tag_create(*, dataset: Dataset, name: str) -> Tag:
    name = _checked_tag_name(name)
    with duplicate_refused(_duplicate_tag(name)):
        return Tag.objects.create(dataset=dataset, name=name)


def tag_rename(*, tag: Tag, name: str) -> Tag:
    name = _checked_tag_name(name)
    with duplicate_refused(_duplicate_tag(name)):
        tag.name = name
        save_fields(tag, ["name"])
    return tag


def tag_apply(*, tag: Tag, samples: QuerySet[Sample]) -> int:
    """Put the tag on the samples (a queryset of the tag's dataset). Returns how many gained it."""
    through = Sample.tags.through
    with transaction.atomic():
        ids = list(samples.exclude(tags=tag).values_list("id", flat=True))
        through.objects.bulk_create([through(sample_id=i, tag_id=tag.id) for i in ids], batch_size=10_000,
                                    ignore_conflicts=True)
    return len(ids)


def tag_remove(*, tag: Tag, samples: QuerySet[Sample]) -> int:
    """Take the tag off the samples. Returns how many lost it."""
    through = Sample.tags.through
    deleted, _ = through.objects.filter(tag=tag, sample_id__in=samples.values("id")).delete()
    return deleted


def tag_delete(*, tag: Tag) -> None:
    tag.delete()


def comment_create(*, sample: Sample, author: User | None, body: str) -> Comment:
    return Comment.objects.create(sample=sample, author=author, body=body)


def comment_update(*, comment: Comment, body: str) -> Comment:
    comment.body = body
    save_fields(comment, ["body", "updated_at"])
    return comment


def comment_delete(*, comment: Comment) -> None:
    comment.delete()
