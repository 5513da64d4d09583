"""An export's download URL: signed, short-lived access to its CSV (imagestudio.common.access), valid
EXPORT_DOWNLOAD_ACCESS_SECONDS, so a page on another origin can hand it to `<a download>` (which sends no token)
instead of holding a CSV of up to 2M rows in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from imagestudio.common.access import access_grant, access_token, access_user

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Export


def export_access_token(*, export: Export, user: User, grant: int | None = None, now: float | None = None) -> str:
    return access_token(kind="export", object_id=str(export.pk), user=user,
                        lifetime=settings.EXPORT_DOWNLOAD_ACCESS_SECONDS, grant=grant, now=now)


def export_access_user(*, token: str, export_id: int | str, now: float | None = None) -> User | None:
    """The active user the token was issued to, when it is genuine, unexpired and names this export; else None."""
    export_key = _export_key(export_id)
    return None if export_key is None else access_user(token=token, kind="export", object_id=export_key, now=now)


def export_access_grant(*, token: str, export_id: int | str) -> int | None:
    """The API token id the download URL was issued under (common.access.access_grant)."""
    export_key = _export_key(export_id)
    return None if export_key is None else access_grant(token=token, kind="export", object_id=export_key)


def _export_key(export_id):
    try:
        return str(int(str(export_id)))
    except ValueError:
        return None
