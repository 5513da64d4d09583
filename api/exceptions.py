"""One error shape for the whole API: DRF's {"detail", "code"} or {field: [messages]}, never a 500 for bad input."""

import logging

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from imagestudio.common.errors import Conflict, DomainError, NotFound, ServiceUnavailable, VersionConflict
from imagestudio.common.transactions import is_transient

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The database is unavailable right now (unreachable, restarting or busy). Retry later."
_STATUS = {Conflict: status.HTTP_409_CONFLICT, NotFound: status.HTTP_404_NOT_FOUND,
           ServiceUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE}


class PreconditionFailed(exceptions.APIException):
    """412: the If-Match header names a version the resource has moved on from (RFC 9110, 13.1.1)."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "version_conflict"

    def __init__(self, detail, *, version, etag):
        super().__init__(detail)
        self.version, self.etag = version, etag


def _domain_response(exc):
    code = next((value for kind, value in _STATUS.items() if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)
    if exc.field and code == status.HTTP_400_BAD_REQUEST:
        return Response({exc.field: [exc.message]}, status=code)
    headers = {"Retry-After": "30"} if code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    body = {"detail": exc.message, "code": exc.code}
    if isinstance(exc, VersionConflict):
        body["version"] = exc.current_version
    return Response(body, status=code, headers=headers)


# Foreign-key and unique violations: what two requests racing produce. Any other violation (NOT NULL, CHECK) is a
# defect, left to answer 500 and be seen.
_RACE_SQLSTATES = {"23503", "23505"}
_RACE_SQLITE = ("FOREIGN KEY constraint failed", "UNIQUE constraint failed")


def _is_race(exc):
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate in _RACE_SQLSTATES if sqlstate else str(exc).startswith(_RACE_SQLITE)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return _domain_response(exc)
    if isinstance(exc, PreconditionFailed):
        return Response({"detail": str(exc.detail), "code": exc.default_code, "version": exc.version, "etag": exc.etag},
                        status=exc.status_code, headers={"ETag": exc.etag})
    if is_transient(exc):
        # A deadlock or serialization failure with a request writing the same rows (a writer that retries itself
        # ran out of tries): the database is fine, this request lost a race.
        logger.warning("concurrent change (transient): %s", exc)
        return Response({"detail": "A change made at the same time as this request conflicted with it; retry.",
                         "code": "concurrent_change"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down, restarting or refusing connections (Django replaces a broken connection on the
        # next request): a prompt, retryable 503 in the API's shape rather than an HTML 500 page.
        logger.warning("database unavailable: %s", exc)
        return Response({"detail": DATABASE_UNAVAILABLE, "code": "database_unavailable"},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "10"})
    if isinstance(exc, ObjectDoesNotExist):
        # A row this request read was deleted by another request while it ran (a DELETE racing a PATCH or a job
        # start): what a request after the DELETE would have been told.
        logger.info("gone while the request ran: %s", exc)
        return Response({"detail": "What this request refers to was deleted while it ran.", "code": "deleted"},
                        status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, IntegrityError) and _is_race(exc):
        # A row it writes refers to one deleted meanwhile (or another request created the same thing first).
        logger.warning("concurrent change: %s", exc, exc_info=True)
        return Response({"detail": "A change made at the same time conflicts with this request (something it refers "
                                   "to was deleted or created meanwhile); read it again and retry.",
                         "code": "concurrent_change"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, OverflowError | DataError):
        # A value the database cannot hold (a number past bigint, say) that a serializer let through.
        return Response({"detail": "A value in the request is out of the range the service can store.",
                         "code": "out_of_range"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        response.data["code"] = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
    return response
