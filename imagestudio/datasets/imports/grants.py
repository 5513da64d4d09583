"""Server-side import sources: the sub-directories of IMPORT_ROOT an operator grants to a dataset (any editor of it
imports from them) or to a user (on the datasets that user edits). IMPORT_ROOT alone grants nothing.

A path is importable only when it lies inside a grant that applies, with no link on the way to it below IMPORT_ROOT.
Every other path, whether it exists or not, gets one and the same refusal, so nobody learns what exists outside
their grants."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from imagestudio.common.errors import NotFound, ValidationFailed

from ..models import ImportGrant, Role, role_at_least
from ..selectors import dataset_role
from .staging import MANIFEST_SUFFIXES

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from ..models import Dataset

NOT_GRANTED = ("Nothing to import at this path within the import sources granted to this dataset or to you. "
               "An operator grants sources with `manage.py grant_import_source`.")


@dataclass(frozen=True)
class GrantedPath:
    target: Path  # the directory or manifest to import, absolute, reached without a link
    source: Path  # the granted directory holding it, absolute, reached without a link: nothing is read outside it


def grant_path_clean(path: str) -> str:
    """A grant's path as stored: relative to IMPORT_ROOT, POSIX separators, without '.' parts ('.' is the whole
    root); or ValidationFailed for an absolute path or one with '..'."""
    if "\x00" in path:
        raise ValidationFailed("The path contains a NUL character.", field="path")
    if path.startswith("/"):
        raise ValidationFailed("A grant's path is relative to IMPORT_ROOT (no leading '/').", field="path")
    parts = [part for part in path.strip().split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValidationFailed("A grant's path cannot contain '..'.", field="path")
    return "/".join(parts) or "."


def import_root() -> Path:
    """IMPORT_ROOT with its links resolved, or ValidationFailed when the operator has not set it."""
    if not settings.IMPORT_ROOT:
        raise ValidationFailed("Server-side imports are disabled: the operator has not set IMPORT_ROOT.",
                               code="import_root_unset", field="path")
    return Path(settings.IMPORT_ROOT).resolve()


def _resolved(path: Path) -> Path | None:
    """`path` (below the resolved IMPORT_ROOT) when no link lies on the way to it, else None: a grant names a
    directory, not whatever a link in its place points to later (someone who may write beside it could swap it
    for a link to another team's directory)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop, a name too long, a NUL byte
        return None
    return resolved if resolved == Path(os.path.normpath(path)) else None


def grantable_directory(path: str) -> str:
    """`path` cleaned as grant_path_clean does, once checked to name a directory inside IMPORT_ROOT reached
    without a link; or ValidationFailed."""
    clean = grant_path_clean(path)
    root = import_root()
    directory = _resolved(root / clean)
    if directory is None or not directory.is_relative_to(root) or not directory.is_dir():
        raise ValidationFailed(f"{clean!r} is not a directory inside IMPORT_ROOT ({root}).", field="path")
    return clean


def import_grant_create(*, path: str, dataset: Dataset | None = None, user: User | None = None,
                        created_by: User | None = None) -> ImportGrant:
    """Grant the directory `path` (relative to IMPORT_ROOT; it must exist there) to a dataset or to a user."""
    if (dataset is None) == (user is None):
        raise ValidationFailed("Grant a source to exactly one of a dataset or a user.")
    clean = grantable_directory(path)
    try:
        with transaction.atomic():
            return ImportGrant.objects.create(dataset=dataset, user=user, path=clean, created_by=created_by)
    except IntegrityError:
        raise ValidationFailed(f"{clean!r} is already granted to this {'dataset' if dataset else 'user'}.",
                               field="path") from None


def import_grant_revoke(*, path: str, dataset: Dataset | None = None, user: User | None = None) -> None:
    """Withdraw the grant of `path` to the dataset or the user; imports queued under it fail when they start."""
    deleted, _ = ImportGrant.objects.filter(dataset=dataset, user=user, path=grant_path_clean(path)).delete()
    if not deleted:
        raise NotFound("No such grant.")


def granted_sources(*, dataset: Dataset, user: User | None) -> list[Path]:
    """The directories (absolute, reached without a link) that `user` may import into `dataset` from: grants to the
    dataset, and the user's own grants when the user is at least editor of it. A grant through a link counts not."""
    root = import_root()
    applies = Q(dataset=dataset)
    if user is not None and role_at_least(dataset_role(user=user, dataset=dataset), Role.EDITOR):
        applies |= Q(user=user)
    sources = []
    for path in ImportGrant.objects.filter(applies).order_by("id").values_list("path", flat=True):
        directory = _resolved(root / path)
        if directory is not None and directory.is_relative_to(root) and directory.is_dir():
            sources.append(directory)
    return sources


def resolve_granted_path(relative: str, *, dataset: Dataset, user: User | None) -> GrantedPath:
    """The directory or manifest `relative` names below IMPORT_ROOT (a leading '/' is the root too) and the grant
    it lies in; or ValidationFailed, the same for every path outside the grants, missing, or leaving them by a link."""
    root = import_root()
    target = _resolved(root / relative.lstrip("/"))
    source = None if target is None else next(
        (directory for directory in granted_sources(dataset=dataset, user=user) if target.is_relative_to(directory)),
        None)
    if source is None or not (target.is_dir() or target.is_file()):
        raise ValidationFailed(NOT_GRANTED, code="path_not_granted", field="path")
    if target.is_file() and not target.name.lower().endswith(MANIFEST_SUFFIXES):
        raise ValidationFailed("A server path must be a directory or a .csv / .jsonl manifest.", field="path")
    return GrantedPath(target, source)
