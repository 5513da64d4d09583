"""An export's download URL: signed, short-lived access to its CSV (imagestudio.common.access), valid
EXPORT_DOWNLOAD_ACCESS_SECONDS, so a page on another origin can hand it to `<a download>` (which sends no token)
instead of holding a CSV of up to 2M rows in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from imagestudio.common.access import access_token, access_user

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from .models import Export


def export_access_token(*, export: Export, user: User, now: float | None = None) -> str:
    return access_token(kind="export", object_id=str(export.pk), user=user,
                        lifetime=settings.EXPORT_DOWNLOAD_ACCESS_SECONDS, now=now)


def export_access_user(*, token: str, export_id: int | str, now: float | None = None) -> User | None:
    """The active user the token was issued to, when it is genuine, unexpired and names this export; else None."""
    try:
        number = int(str(export_id))
    except ValueError:
        return None
    return access_user(token=token, kind="export", object_id=str(number), now=now)
