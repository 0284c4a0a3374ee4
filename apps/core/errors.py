"""Domain errors: raised by services, turned into HTTP answers by one exception handler."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses. ``field`` names the input at fault, when there is one."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class NotFoundError(DomainError):
    status = 404
    code = "not_found"


class ConflictError(DomainError):
    status = 409
    code = "conflict"


class ForbiddenError(DomainError):
    status = 403
    code = "forbidden"


class UnavailableError(DomainError):
    """A dependency (a cluster, Prometheus) cannot be reached; retrying later may succeed."""

    status = 503
    code = "unavailable"
