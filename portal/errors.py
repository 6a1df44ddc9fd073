"""Domain errors: raised by services, turned into 4xx answers by views and the API."""

from __future__ import annotations

from flask_babel import gettext as _


class DomainError(Exception):
    """A request the domain refuses, with a message fit to show the person who made it."""

    status = 422

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class NotFound(DomainError):
    """The object does not exist, or the asker may not know that it does."""

    status = 404

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or _("Not found."), code="not_found")


class Conflict(DomainError):
    """The object is in a state that does not allow this change."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message, code="conflict")
