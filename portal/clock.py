"""The time as the portal reads it, kept in `app.extensions["clock"]` so that tests can put a
clock they move by hand in its place (no sleeping to wait out a timer)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Flask, current_app


class Clock:
    """Wall time (aware, UTC) and monotonic seconds, read from the system."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def clock(app: Flask | None = None) -> Clock:
    """The app's clock (the current app's unless one is given); a system clock at first use."""
    extensions = (app or current_app).extensions
    found = extensions.get("clock")
    if found is None:
        found = extensions.setdefault("clock", Clock())
    assert isinstance(found, Clock)
    return found
