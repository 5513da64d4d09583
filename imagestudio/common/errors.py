"""Domain errors. The API layer maps them to HTTP statuses; the domain knows nothing of HTTP."""


class DomainError(Exception):
    """A request the domain refuses; `code` is a stable machine-readable word."""

    code = "invalid"

    def __init__(self, message, *, code=None, field=None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ValidationFailed(DomainError):
    code = "invalid"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class ServiceUnavailable(DomainError):
    code = "service_unavailable"


class VersionConflict(Conflict):
    """An edit made from a version that is no longer the current one; `current_version` says which is."""

    code = "version_conflict"

    def __init__(self, message, *, current_version):
        super().__init__(message)
        self.current_version = current_version
