"""Converting between the viewer's wall-clock time and stored UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask_babel import get_timezone


def viewer_zone() -> ZoneInfo:
    """The viewer's zone as a zoneinfo zone. Babel hands out pytz zones when pytz is installed,
    and replace(tzinfo=<pytz zone>) applies local mean time (Oslo +00:53), not the real offset."""
    return ZoneInfo(str(get_timezone()))


def local_to_utc(naive_local: datetime) -> datetime:
    """A wall-clock time typed by the viewer, in their zone, as aware UTC."""
    return naive_local.replace(tzinfo=viewer_zone()).astimezone(UTC)


def utc_to_local_naive(moment: datetime) -> datetime:
    """Stored UTC as the viewer's wall-clock time, for a datetime-local input."""
    return moment.astimezone(viewer_zone()).replace(tzinfo=None)
