"""Converting between the viewer's wall-clock time and stored UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_babel import get_timezone


def local_to_utc(naive_local: datetime) -> datetime:
    """A wall-clock time typed by the viewer, in their zone, as aware UTC."""
    return naive_local.replace(tzinfo=get_timezone()).astimezone(UTC)


def utc_to_local_naive(moment: datetime) -> datetime:
    """Stored UTC as the viewer's wall-clock time, for a datetime-local input."""
    return moment.astimezone(get_timezone()).replace(tzinfo=None)
