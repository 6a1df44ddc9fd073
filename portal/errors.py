"""Domain errors: raised by services, turned into 4xx answers by views and the API, and into
`error` events by the socket guard (with `code` as the event's code)."""

from __future__ import annotations

from flask_babel import gettext as _


class DomainError(Exception):
    """A request the domain refuses, with a message fit to show the person who made it."""

    status = 422
    default_code = "invalid"

    def __init__(self, message: str, *, field: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code or self.default_code


class Forbidden(DomainError):
    """The asker may not do this (a guest asking for a host's action, say)."""

    status = 403
    default_code = "forbidden"


class NotFound(DomainError):
    """The object does not exist, or the asker may not know that it does."""

    status = 404
    default_code = "not_found"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message or _("Not found."), code=code)


class Conflict(DomainError):
    """The object is in a state that does not allow this change."""

    status = 409
    default_code = "conflict"


class TooManyAttempts(DomainError):
    """Too many failed attempts on this account: the next is checked only after `retry_at`."""

    status = 429
    default_code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        #: Seconds to wait (for the Retry-After header).
        self.retry_after = retry_after
